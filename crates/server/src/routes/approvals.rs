//! `/v1/access-requests`: just-in-time approval over HTTP — list, show, approve, deny, revoke —
//! and the approval gate the read path calls.
//!
//! Requesters see their own requests; members of a rule's approver groups see the requests of
//! that rule. A request the caller may not see answers 404, exactly like one that does not exist,
//! so ids cannot be probed. The rules themselves live in [`tracegate_core::approval`]; every
//! store change runs in a task of its own, so a client hanging up cannot cut a change off
//! between its audit record and its commit.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use tracegate_approvals::{ApprovalStore, Committed, Format, Notifier, Recorder, StoreError, WebhookConfig};
use tracegate_audit::{Decision, Entry, PrincipalRecord, Timestamp};
use tracegate_core::approval::{AccessRequest, Actor, ApprovalError, Change, Status, Terms};
use tracegate_core::pipeline::Gate;
use tracegate_core::Principal;

use super::{query_pairs, Caller};
use crate::audit::{finish, Audited, Reply};
use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Where the approval workflow keeps its state and how it tells approvers.
pub struct Approvals {
    pub store: Arc<ApprovalStore>,
    pub notifier: Option<Notifier>,
    /// Base URL for links in `202` answers and notifications; relative links when unset.
    pub public_url: Option<String>,
    pub sweep_every: Duration,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").field("store", &self.store).finish_non_exhaustive()
    }
}

impl Approvals {
    /// Opens the store named by `[approvals]` (default `<config dir>/approvals`) and starts the
    /// webhook notifier if one is configured. Must run inside the Tokio runtime.
    pub fn open(cfg: &GatewayConfig) -> Result<Approvals, String> {
        let dir = cfg.resolve(cfg.approvals.path.as_deref().unwrap_or(std::path::Path::new("approvals")));
        let store = ApprovalStore::open(&dir).map_err(|e| e.to_string())?;
        Approvals::with_store(cfg, store)
    }

    /// Over a store already opened (a shared backend), with the notifier of `[approvals]`.
    pub fn with_store(cfg: &GatewayConfig, mut store: ApprovalStore) -> Result<Approvals, String> {
        let a = &cfg.approvals;
        let notifier = match &a.webhook {
            None => None,
            Some(w) => {
                let mut wc = WebhookConfig::new(w.url.clone(), cfg.webhook_secret().map_err(|e| e.to_string())?);
                wc.format = w.format.unwrap_or(Format::Json);
                if let Some(n) = w.max_attempts {
                    wc.max_attempts = n;
                }
                if let Some(b) = &w.backoff {
                    wc.backoff = duration(b, "approvals.webhook.backoff")?;
                }
                wc.public_url = a.public_url.clone();
                Some(Notifier::spawn(wc).map_err(|e| e.to_string())?)
            }
        };
        if let Some(n) = &notifier {
            let n = n.clone();
            store.set_listener(Arc::new(move |e, r| n.notify(e, r)));
        }
        Ok(Approvals {
            store: Arc::new(store),
            notifier,
            public_url: a.public_url.clone(),
            sweep_every: match &a.sweep_interval {
                Some(s) => duration(s, "approvals.sweep_interval")?,
                None => Duration::from_secs(15),
            },
        })
    }

    /// The link to follow a request.
    pub fn url(&self, id: &str) -> String {
        let path = format!("/v1/access-requests/{id}");
        match &self.public_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path,
        }
    }
}

fn duration(s: &str, what: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{what}` `{s}` is not a positive duration (e.g. `15s`)")),
    }
}

/// Records expiries as time brings them, so they are logged, notified and audited even when
/// nobody asks. Holds the state weakly: it stops when the gateway is dropped.
pub fn spawn_sweeper(state: &Arc<AppState>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak: Weak<AppState> = Arc::downgrade(state);
    let every = state.approvals.sweep_every;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { return };
            state.limits.forget_idle().await;
            // Each expiry is audited before it is logged; one that cannot be is retried next tick.
            // With a shared backend only one replica sweeps at a time.
            if let Err(e) = change(&state, "", None, |st, mut rec| async move {
                let out = st.approvals.store.sweep(SystemTime::now(), &mut rec).await;
                (out, rec)
            })
            .await
            {
                tracing::error!(error = %e.message, "recording expiries failed");
            }
        }
    });
}

// ---- the read path's gate ----------------------------------------------------------------

/// The answer of the approval gate for one read.
pub enum GateOutcome {
    /// An active grant covers exactly this request: serve it, then [`consume`] the grant.
    Granted(AccessRequest),
    /// No grant: the caller waits on this request; answer `202` with `reply`.
    Wait { request: AccessRequest, reply: Reply },
}

/// Finds the grant covering exactly `gate.shape`, or opens (or joins) the access request for it.
pub async fn gate(state: &Arc<AppState>, request_id: &str, who: &Principal, gate: &Gate<'_>, now: SystemTime) -> Result<GateOutcome, ApiError> {
    let fp = gate.shape.fingerprint();
    let store = &state.approvals.store;
    if let Some(grant) = store.find_grant(&fp, now).await.map_err(store_error)? {
        return Ok(GateOutcome::Granted(grant));
    }
    // Joining the request already pending for exactly this read takes no lock and spends nothing.
    let pending = store.pending_for(&fp, now).await.map_err(store_error)?;
    let r = match pending {
        Some(r) => r,
        None => {
            // One opening per requester at a time in this process, waiting without a pool
            // connection; the opening budget is spent by the recorder only if a request is
            // actually created (see `AuditRecorder`), inside the requester's section.
            let _turn = state.limits.opening(who).await?;
            let shape = gate.shape.clone();
            let terms = Terms::of(gate.role.rule("approval"), gate.rule);
            let max_pending = state.limits.max_pending;
            let opened = change(state, request_id, Some(who), move |st, mut rec| async move {
                let out = st.approvals.store.open_request(shape, terms, now, max_pending, &mut rec).await;
                (out, rec)
            })
            .await?;
            opened.request().clone()
        }
    };
    let url = state.approvals.url(&r.id);
    let body = json!({
        "access_request": {
            "id": r.id,
            "status": r.status_at(now),
            "url": url,
            "fingerprint": r.fingerprint,
            "role": r.shape.role,
            "approvers": r.terms.approvers,
            "approvals_required": r.terms.approvals,
            "pending_until": humantime::format_rfc3339_seconds(r.pending_until).to_string(),
        },
        "message": format!(
            "this read needs {} approval(s) from {}; repeat exactly the same request once approved",
            r.terms.approvals,
            r.terms.approvers.join(", ")
        ),
        "rules": gate.rules,
    });
    let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    let reply = Reply::json(StatusCode::ACCEPTED, bytes).header("location", &url).header("x-tracegate-access-request", &r.id);
    Ok(GateOutcome::Wait { request: r, reply })
}

/// Records that a request was served under `grant`. For a one-time grant exactly one of any
/// concurrent requests gets here first; the others are refused (409) and are sent nothing.
pub async fn consume(
    state: &Arc<AppState>,
    request_id: &str,
    who: &Principal,
    grant: &AccessRequest,
    now: SystemTime,
) -> Result<Committed, ApiError> {
    let (id, fp) = (grant.id.clone(), grant.fingerprint.clone());
    change(state, request_id, Some(who), move |st, mut rec| async move {
        let out = st.approvals.store.use_grant(&id, &fp, now, &mut rec).await;
        (out, rec)
    })
    .await
}

// ---- routes ---------------------------------------------------------------------------------

/// `GET /v1/access-requests[?status=pending]`: the requests the caller may see, newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(q): RawQuery,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/access-requests", None, Some(client));
    let outcome = list_requests(&state, &mut audit, q, caller).await;
    finish(&state, audit, outcome).await
}

async fn list_requests(state: &AppState, audit: &mut Audited, q: Option<String>, caller: Result<Caller, ApiError>) -> Result<Reply, ApiError> {
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let mut status = None;
    for (k, v) in query_pairs(q.as_deref(), &["status"])? {
        let _ = k;
        status = Some(Status::parse(&v).ok_or_else(|| {
            ApiError::bad_request("bad_parameter", "`status` must be one of pending, approved, denied, expired, used, revoked")
        })?);
    }
    let actor = Actor::from(&who);
    let now = SystemTime::now();
    let all = state.approvals.store.list(now).await.map_err(store_error)?;
    let visible: Vec<Value> = all
        .iter()
        .filter(|r| r.visible_to(&actor))
        .filter(|r| status.is_none_or(|s| r.status == s))
        .map(|r| view(state, r, &actor, now))
        .collect();
    ok(&json!({ "access_requests": visible }))
}

/// `GET /v1/access-requests/{id}`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/access-requests/{id}", None, Some(client));
    audit.entry.approval_id = Some(id.clone());
    let outcome = async {
        let Caller(who) = caller?;
        audit.principal(&state, &who);
        let actor = Actor::from(&who);
        let now = SystemTime::now();
        let r = visible(&state, &id, &actor, now).await?;
        ok(&view(&state, &r, &actor, now))
    }
    .await;
    finish(&state, audit, outcome).await
}

/// `GET /v1/access-requests/{id}/result`: the requester's approved read, by request id — the
/// same as repeating exactly the request that was approved (same trace, fields and purpose), and
/// judged, gated, used and audited exactly like it.
pub async fn result(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    caller: Result<Caller, ApiError>,
) -> Response {
    // Resolved requests continue as the read itself, audited there; refusals here are audited
    // as this route.
    let mut audit = Audited::begin("GET", "/v1/access-requests/{id}/result", None, Some(client));
    audit.entry.approval_id = Some(id.clone());
    let resolved = match caller {
        Ok(Caller(who)) => {
            audit.principal(&state, &who);
            result_request(&state, &id, &who).await.map(|tq| (who, tq))
        }
        Err(e) => Err(e),
    };
    match resolved {
        Ok((who, (trace, query))) => {
            super::read::read(State(state), ConnectInfo(client), Path(trace), RawQuery(query), axum::http::HeaderMap::new(), Ok(Caller(who)))
                .await
        }
        Err(e) => finish(&state, audit, Err(e)).await,
    }
}

/// The trace and query string of the read an access request was opened for; the requester's only.
async fn result_request(state: &AppState, id: &str, who: &Principal) -> Result<(String, Option<String>), ApiError> {
    let actor = Actor::from(who);
    let r = visible(state, id, &actor, SystemTime::now()).await?;
    let not_yours = || ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("access request `{id}` has no read result for you"));
    let [trace] = r.shape.traces.as_slice() else { return Err(not_yours()) };
    if !r.is_requester(&actor) {
        return Err(not_yours());
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    for f in r.shape.fields.iter().flatten() {
        q.append_pair("fields", f);
    }
    if let Some(p) = &r.shape.purpose {
        q.append_pair("purpose", p);
    }
    let q = q.finish();
    Ok((trace.to_string(), (!q.is_empty()).then_some(q)))
}

/// Largest body of approve, deny and revoke: a comment, not a document.
const MAX_BODY: usize = 16 * 1024;

/// Body of approve, deny and revoke.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub comment: Option<String>,
}

/// `POST /v1/access-requests/{id}/{approve|deny|revoke}` with `{"comment": ...}` (optional to
/// approve, required to deny or revoke).
pub async fn decision(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((id, verb)): Path<(String, String)>,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Response {
    let verb = Verb::parse(&verb);
    let route = match verb {
        Some(v) => format!("/v1/access-requests/{{id}}/{}", v.as_str()),
        None => "/v1/access-requests/{id}/{verb}".to_owned(),
    };
    let mut audit = Audited::begin("POST", &route, None, Some(client));
    audit.entry.approval_id = Some(id.clone());
    let outcome = match verb {
        Some(v) => decide(&state, &mut audit, id, caller, body, v).await,
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no_route", "expected approve, deny or revoke")),
    };
    finish(&state, audit, outcome).await
}

#[derive(Clone, Copy)]
enum Verb {
    Approve,
    Deny,
    Revoke,
}

impl Verb {
    fn parse(s: &str) -> Option<Verb> {
        match s {
            "approve" => Some(Verb::Approve),
            "deny" => Some(Verb::Deny),
            "revoke" => Some(Verb::Revoke),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verb::Approve => "approve",
            Verb::Deny => "deny",
            Verb::Revoke => "revoke",
        }
    }
}

async fn decide(
    state: &Arc<AppState>,
    audit: &mut Audited,
    id: String,
    caller: Result<Caller, ApiError>,
    body: Body,
    verb: Verb,
) -> Result<Reply, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let actor = Actor::from(&who);
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("a decision body is at most {MAX_BODY} bytes"))
    })?;
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_json", format!("body must be `{{\"comment\": \"...\"}}`: {e}")))?
    };
    let now = SystemTime::now();
    // Only those who may see a request learn that it exists.
    visible(state, &id, &actor, now).await?;
    // Decide, audit (tied to this request's record by its id), then commit — atomically in the
    // store: a change whose record cannot be written does not happen.
    let c = change(state, &audit.entry.request_id, Some(&who), {
        let (id, actor) = (id.clone(), actor.clone());
        move |st, mut rec| async move {
            let (store, comment) = (&st.approvals.store, body.comment.as_deref());
            let out = match verb {
                Verb::Approve => store.approve(&id, &actor, comment, now, &mut rec).await,
                Verb::Deny => store.deny(&id, &actor, comment, now, &mut rec).await,
                Verb::Revoke => store.revoke(&id, &actor, comment, now, &mut rec).await,
            };
            (out, rec)
        }
    })
    .await?;
    ok(&view(state, &c.request, &actor, now))
}

/// The request `id` if `actor` may see it; 404 otherwise, exactly as for one that does not exist.
pub(crate) async fn visible(state: &AppState, id: &str, actor: &Actor, now: SystemTime) -> Result<AccessRequest, ApiError> {
    state
        .approvals
        .store
        .get(id, now)
        .await
        .map_err(store_error)?
        .filter(|r| r.visible_to(actor))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("access request `{id}` not found")))
}

/// The JSON shape of a request, with what the caller may do with it.
fn view(state: &AppState, r: &AccessRequest, actor: &Actor, now: SystemTime) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["status"] = json!(r.status_at(now));
    v["url"] = json!(state.approvals.url(&r.id));
    v["approved_by"] = json!(r.approvers().iter().map(|p| p.subject.as_str()).collect::<Vec<_>>());
    v["you_may_decide"] = json!(r.status_at(now) == Status::Pending && r.may_decide(actor).is_ok());
    v
}

fn ok(body: &Value) -> Result<Reply, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, bytes))
}

/// The gateway's [`Recorder`]: writes each change's `approval` audit record (inside the store's
/// exclusive section, before the change is made durable), and remembers what it recorded and
/// why it refused, for [`change`] to answer with.
pub struct AuditRecorder {
    state: Arc<AppState>,
    request_id: String,
    who: Option<Principal>,
    refused: Option<ApiError>,
    last: Option<Committed>,
}

#[async_trait::async_trait]
impl Recorder for AuditRecorder {
    async fn record(&mut self, c: &Committed) -> Result<(), String> {
        // A new access request pages a human: it spends its requester's opening budget here,
        // inside the requester's section and only once the store has decided to create it, so
        // joining a pending request spends nothing and racing openings cannot overshoot.
        if let (Change::Created { .. }, Some(who)) = (&c.event.change, &self.who) {
            if let Err(e) = self.state.limits.check_open(who).await {
                let m = e.message.clone();
                self.refused = Some(e);
                return Err(m);
            }
        }
        match audit_change(&self.state, &self.request_id, c, self.who.as_ref()).await {
            Ok(()) => {
                self.last = Some(c.clone());
                Ok(())
            }
            Err(e) => {
                let m = e.message.clone();
                self.refused = Some(e);
                Err(m)
            }
        }
    }
}

/// Makes one store change, audit first: `f` gets an [`AuditRecorder`] to pass to the store and
/// hands it back with the outcome. It runs as a task of its own, so the change finishes (or
/// is taken back) even if the client goes away. If the record cannot be written the change does
/// not happen and the caller gets that 503; if the store then fails to make a recorded change
/// durable, a second record says it was not applied. `request_id` ties the records to the HTTP
/// request (empty for the sweeper).
async fn change<T, F, Fut>(state: &Arc<AppState>, request_id: &str, who: Option<&Principal>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Arc<AppState>, AuditRecorder) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (Result<T, StoreError>, AuditRecorder)> + Send + 'static,
{
    let rec = AuditRecorder { state: state.clone(), request_id: request_id.to_owned(), who: who.cloned(), refused: None, last: None };
    let st = state.clone();
    let joined = tokio::spawn(async move {
        let (out, rec) = f(st.clone(), rec).await;
        if let (Err(e), Some(c)) = (&out, &rec.last) {
            if e.is_store_failure() {
                if let Err(e) = audit_not_applied(&st, &rec.request_id, c, rec.who.as_ref()).await {
                    tracing::error!(access_request = %c.request.id, error = %e.message, "recording that a change was not applied failed");
                }
            }
        }
        (out, rec.refused)
    })
    .await
    .map_err(|_| ApiError::internal("internal", "the approvals task failed"))?;
    match joined {
        (Ok(v), _) => Ok(v),
        (Err(StoreError::Unrecorded(_)), Some(e)) => Err(e),
        (Err(e), _) => Err(store_error(e)),
    }
}

/// Store failures as HTTP: who-you-are refusals 403, state conflicts 409, bad input 400, and the
/// store itself failing 503 (the change did not happen).
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(id) => ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("access request `{id}` not found")),
        StoreError::TooManyPending { limit, retry_after, .. } => ApiError::too_many(
            format!("you already have {limit} access requests waiting for a decision; wait for one to be decided or expire"),
            retry_after,
        ),
        StoreError::Busy { requester, retry_after } => ApiError::too_many(
            format!("access requests of `{requester}` are being opened elsewhere; retry later"),
            retry_after,
        ),
        StoreError::Refused(a) => {
            let status = if a.is_forbidden() || matches!(a, ApprovalError::NotCovered { .. }) {
                StatusCode::FORBIDDEN
            } else if a.is_conflict() {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            ApiError::new(status, a.code(), a.to_string())
        }
        other => {
            tracing::error!(error = %other, "approvals store failed");
            ApiError::unavailable("approvals_unavailable", "the approvals store is unavailable")
        }
    }
}

/// Every access-request state change becomes an `approval` audit record, written before the
/// caller is answered (fail closed: 503 if it cannot be). `request_id` ties it to the HTTP
/// request that caused it (the sweeper's expiries have none); `who` is the person, if any.
pub(crate) async fn audit_change(state: &AppState, request_id: &str, c: &Committed, who: Option<&Principal>) -> Result<(), ApiError> {
    let r = &c.request;
    let decision = match r.status {
        Status::Pending => Decision::Pending,
        Status::Approved | Status::Used => Decision::Allow,
        Status::Denied | Status::Expired | Status::Revoked => Decision::Deny,
    };
    let (by, comment) = match &c.event.change {
        Change::Approved { by, comment } | Change::Denied { by, comment } | Change::Revoked { by, comment } => {
            (Some(by.subject.as_str()), comment.as_deref())
        }
        _ => (None, None),
    };
    let mut event = json!({
        "change": c.event.change.name(),
        "status": r.status,
        "requester": r.shape.requester.subject,
        "traces": r.shape.traces,
        "fingerprint": r.fingerprint,
        "approved_by": r.approvers().iter().map(|p| p.subject.as_str()).collect::<Vec<_>>(),
        "approvals_required": r.terms.approvals,
        "uses": r.uses,
    });
    for (k, v) in [("by", by), ("comment", comment), ("purpose", r.shape.purpose.as_deref())] {
        if let Some(v) = v {
            event[k] = json!(v);
        }
    }
    if let Some(f) = &r.shape.fields {
        event["fields"] = json!(f);
    }
    let mut entry = Entry::approval(request_id, r.id.clone(), decision, event);
    entry.time = Timestamp::from_system(c.event.at);
    if let Some(p) = who {
        let roles = state.policy.roles_for_groups(&p.groups).iter().map(|r| r.name.clone()).collect();
        entry.principal = Some(PrincipalRecord::new(p, roles));
    }
    entry.policy_version = Some(r.shape.policy_version.0.clone());
    entry.role = Some(r.shape.role.clone());
    entry.rules = vec![r.terms.rule.clone()];
    state.audit.append(&entry).await.map_err(|e| {
        tracing::error!(error = %e, access_request = %r.id, change = c.event.change.name(), "audit record of an access-request change could not be written; the change was not made");
        ApiError::unavailable("audit_unavailable", "the audit trail could not be written, so the change was not made")
    })?;
    Ok(())
}

/// After [`audit_change`] recorded `c`, the approvals log failed to make it durable: say on the
/// trail that it never took effect, so the trail does not claim a change that did not happen.
async fn audit_not_applied(state: &AppState, request_id: &str, c: &Committed, who: Option<&Principal>) -> Result<(), ApiError> {
    let r = &c.request;
    let event = json!({ "change": c.event.change.name(), "applied": false, "reason": "the approvals store could not make the change durable" });
    let mut entry = Entry::approval(request_id, r.id.clone(), Decision::Error, event);
    if let Some(p) = who {
        let roles = state.policy.roles_for_groups(&p.groups).iter().map(|r| r.name.clone()).collect();
        entry.principal = Some(PrincipalRecord::new(p, roles));
    }
    entry.policy_version = Some(r.shape.policy_version.0.clone());
    entry.role = Some(r.shape.role.clone());
    entry.rules = vec![r.terms.rule.clone()];
    state.audit.append(&entry).await.map(|_| ()).map_err(|_| ApiError::unavailable("audit_unavailable", "the audit trail could not be written"))
}
