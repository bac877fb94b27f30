//! Phase 7, audit: every request — allowed, denied or failed — leaves one record, written
//! before the response is released. If the record cannot be written the client gets 503 and
//! none of the response (fail closed).
//!
//! Handlers open an [`Audited`] when the request arrives, fill it phase by phase, and hand their
//! outcome to [`finish`], which is the only way a trace route produces a response. `finish` marks
//! what it released with [`Recorded`]; the [`record_unrecorded`] layer around every route records
//! (through the same `finish`) any response without that mark — unknown routes, wrong methods,
//! extractor rejections — so a route or a failure mode nobody thought of cannot go unrecorded.
//! Only `GET /healthz`, `GET /readyz`, `GET /metrics` and the console's static files
//! (`GET /console/…`) are exempt: they name no trace and no principal, and a load balancer or
//! scraper polling them (or every page load) would otherwise fill the trail with noise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tracegate_audit::{BodyDigest, Decision, Entry, MaskApplied, PrincipalRecord, RequestRecord, Slice, Timestamp};
use tracegate_core::mask::MaskReport;
use tracegate_core::{Action, Principal, Role};

use crate::error::ApiError;
use crate::metrics::DecisionLabel;
use crate::state::AppState;

/// The audit record of one request, filled in as the request moves through its phases.
pub struct Audited {
    pub entry: Entry,
    started: Instant,
}

/// A successful outcome, fully rendered, not yet released.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The body's lowercase hex SHA-256 when it is already known, so [`finish`] need not hash the
    /// body again: only ever from [`tracegate_store::StoredTrace::digest_if_verbatim`], which
    /// gives it only for a body that is byte for byte the stored bytes it was computed from.
    digest: Option<String>,
}

impl Reply {
    pub fn json(status: StatusCode, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: body.into(),
            digest: None,
        }
    }

    /// Takes the body's digest from the stored trace it is a verbatim copy of, if it is one.
    pub fn verbatim_of(mut self, stored: &tracegate_store::StoredTrace) -> Reply {
        self.digest = stored.digest_if_verbatim(&self.body).map(str::to_owned);
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }
}

impl Audited {
    pub fn begin(method: &str, route: &str, action: Option<Action>, client: Option<SocketAddr>) -> Audited {
        let mut entry = Entry::request(uuid::Uuid::new_v4().to_string(), Timestamp::now());
        entry.client_addr = client.map(|a| a.to_string());
        entry.request = Some(RequestRecord {
            method: method.to_owned(),
            route: route.to_owned(),
            action: action.map(|a| a.as_str().to_owned()),
            ..RequestRecord::default()
        });
        Audited { entry, started: Instant::now() }
    }

    pub fn principal(&mut self, state: &AppState, who: &Principal) {
        let roles = state.policy.roles_for_groups(&who.groups).iter().map(|r| r.name.clone()).collect();
        self.entry.principal = Some(PrincipalRecord::new(who, roles));
        self.entry.policy_version = Some(state.policy.version.0.clone());
    }

    pub fn request(&mut self) -> &mut RequestRecord {
        self.entry.request.get_or_insert_with(RequestRecord::default)
    }

    /// The role that served, the rules behind it, its slice and what masking did.
    pub fn served(&mut self, role: &Role, rules: Vec<String>, masks: MaskReport) {
        self.entry.role = Some(role.name.clone());
        self.entry.rules = rules;
        self.entry.slice = Some(Slice::of(&role.fields));
        self.entry.masks = MaskApplied::from_report(masks);
    }
}

/// Records the outcome, then releases it — or, if the record cannot be written, releases only a
/// 503. Every trace route ends here.
pub async fn finish(state: &AppState, mut audit: Audited, outcome: Result<Reply, ApiError>) -> Response {
    let (mut reply, label) = match outcome {
        Ok(r) => {
            if audit.entry.decision == Some(Decision::Error) {
                audit.entry.decision = Some(Decision::Allow);
            }
            // A request held for approval is neither served nor refused.
            let label = if r.status == StatusCode::ACCEPTED { "pending" } else { "allow" };
            (r, label)
        }
        Err(e) => {
            if audit.entry.principal.is_none() {
                if let Some(who) = &e.who {
                    audit.principal(state, who);
                }
            }
            let e_ref = &e;
            let entry = &mut audit.entry;
            entry.decision = Some(if e_ref.is_refusal() { Decision::Deny } else { Decision::Error });
            entry.deny_code = Some(e_ref.code.to_owned());
            entry.message = Some(e_ref.message.clone());
            if !e_ref.rules.is_empty() {
                entry.rules = e_ref.rules.clone();
            }
            if e_ref.role.is_some() {
                entry.role = e_ref.role.clone();
            }
            // The caller was told less than the truth (a 404 for a trace outside its row
            // scope); the trail keeps the truth.
            if let Some(why) = &e_ref.hidden {
                entry.decision = Some(Decision::Deny);
                entry.deny_code = Some(why.code.as_str().to_owned());
                entry.message = Some(why.message.clone());
                entry.rules = why.rules.clone();
                entry.role = why.role.clone();
            }
            // An error never carries trace data, so whatever was recorded as served is void.
            entry.slice = None;
            entry.masks.clear();
            (e.render(), e.decision())
        }
    };
    audit.entry.status = Some(reply.status.as_u16());
    match reply.digest.take() {
        Some(hex) => {
            audit.entry.bytes_sent = Some(reply.body.len() as u64);
            audit.entry.body_sha256 = Some(hex);
        }
        None => {
            let mut digest = BodyDigest::new();
            digest.update(&reply.body);
            audit.entry.body(digest);
        }
    }
    audit.entry.latency_us = Some(u64::try_from(audit.started.elapsed().as_micros()).unwrap_or(u64::MAX));
    let request_id = audit.entry.request_id.clone();
    let mut resp = match state.audit.append(&audit.entry).await {
        Ok(_) => {
            let mut resp = (reply.status, reply.body).into_response();
            // The reply's first value of a header replaces the default (a body's
            // `application/octet-stream`); later values of the same name are appended, since a
            // reply may set several cookies.
            let mut named: Vec<HeaderName> = Vec::with_capacity(reply.headers.len());
            for (k, v) in reply.headers {
                if named.contains(&k) {
                    resp.headers_mut().append(k, v);
                } else {
                    named.push(k.clone());
                    resp.headers_mut().insert(k, v);
                }
            }
            resp.extensions_mut().insert(DecisionLabel(label));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, request_id, "audit record could not be written; failing the request");
            ApiError::unavailable("audit_unavailable", "the audit trail could not be written, so nothing was served")
                .into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    // Marked whether or not the append succeeded: the record was attempted once, and a second
    // attempt by the layer below would be a second record of the same request.
    resp.extensions_mut().insert(Recorded);
    resp
}

/// On every response [`finish`] released: its audit record was written (or the 503 said why not).
#[derive(Debug, Clone, Copy)]
pub struct Recorded;

/// Routes whose `GET` is not recorded: liveness and metrics. They carry no trace data and no
/// principal, and are polled constantly.
pub const UNRECORDED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Largest body of a response the layer records itself. Such bodies are the router's and the
/// extractors' own short error texts; anything larger is not one of those and fails closed.
const MAX_UNRECORDED_BODY: usize = 64 * 1024;

/// Middleware around every route: a response that did not go through [`finish`] is recorded now,
/// through `finish` — as a JSON error with a stable code when it is one (the router's 404 and
/// 405, extractor rejections), so it is on the trail with its status, caller (when the token is
/// good) and body digest, and fails closed (503) when the record cannot be written.
pub async fn record_unrecorded(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let console = path == crate::routes::console::PREFIX || path.starts_with("/console/");
    if (req.method() == Method::GET || req.method() == Method::HEAD) && (UNRECORDED.contains(&path) || console) {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let mut auth = axum::http::HeaderMap::new();
    for name in [header::AUTHORIZATION, header::COOKIE] {
        for v in req.headers().get_all(&name) {
            auth.append(name.clone(), v.clone());
        }
    }
    let resp = next.run(req).await;
    if resp.extensions().get::<Recorded>().is_some() {
        return resp;
    }
    let mut audit = Audited::begin(&method, &route, None, client);
    if let Ok(who) = crate::routes::authenticate::authenticate(&auth, &state).await {
        audit.principal(&state, &who);
    }
    let (parts, body) = resp.into_parts();
    let outcome = match axum::body::to_bytes(body, MAX_UNRECORDED_BODY).await {
        Err(_) => Err(ApiError::internal("internal", "the response could not be recorded")),
        Ok(bytes) if parts.status.is_success() => Ok(Reply {
            status: parts.status,
            headers: parts.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: bytes,
            digest: None,
        }),
        Ok(bytes) => Err(ApiError::from_rejection(parts.status, &method, &bytes)),
    };
    let mut resp = finish(&state, audit, outcome).await;
    // A 405 keeps its `Allow` header: it is how a client learns what the route takes.
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allow) = parts.headers.get(header::ALLOW) {
            resp.headers_mut().insert(header::ALLOW, allow.clone());
        }
    }
    resp
}
