//! `GET /v1/traces/{id}`: one trace, projected to the caller's view and masked — or, when the
//! role's approval rule gates the read, `202` and an access request until a grant covers it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tracegate_core::approval::MAX_PURPOSE_LEN;
use tracegate_core::decision::{check_rows, roles_for_action};
use tracegate_core::pipeline::{
    decide_read_gated, decide_read_unscoped, explain_withheld, parse_stored, serve_read, Candidate, ReadDecision, ReadRequest, Rendered, ServeError, WithheldReport,
};
use tracegate_core::project::{check_request, FieldRequest};
use tracegate_core::mask::MaskKey;
use tracegate_core::{Action, Denial, DenyCode, Policy, Principal, Role, TraceId, TraceMeta};

use super::approvals::{self, GateOutcome};
use super::{query_pairs, Caller};
use crate::audit::{finish, Audited, Reply};
use crate::budget::{self, offloads};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn read(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/traces/{id}", Some(Action::Read), Some(client));
    let outcome = read_trace(&state, &mut audit, id, query, &headers, caller).await;
    finish(&state, audit, outcome).await
}

async fn read_trace(
    state: &Arc<AppState>,
    audit: &mut Audited,
    id: String,
    query: Option<String>,
    headers: &HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Result<Reply, ApiError> {
    audit.request().trace_ids.push(id.clone());
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let id = TraceId::parse(&id).map_err(|e| ApiError::bad_request("bad_trace_id", e.to_string()))?;
    let pairs = query_pairs(query.as_deref(), &["fields", "purpose", "explain"])?;
    let purpose = purpose_of(&pairs, headers)?;
    let explain = explain_of(&pairs)?;
    audit.request().purpose = purpose.clone();
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k == "fields").collect();
    audit.request().fields = pairs.iter().map(|(_, v)| v.clone()).collect();
    let fields = if pairs.is_empty() {
        None
    } else {
        let exprs = pairs.iter().map(|(_, v)| v.as_str());
        Some(FieldRequest::parse_all(exprs).map_err(|e| match e {
            tracegate_core::project::FieldRequestError::Limit { .. } => ApiError::bad_request("query_too_costly", e.to_string()),
            e => ApiError::bad_request("bad_field", e.to_string()),
        })?)
    };

    // Decide, before anything is fetched. Callers who may not read at all, or whose requested
    // fields no role's view can hold, learn nothing about which traces exist.
    let policy = state.policy.clone();
    let roles = roles_for_action(&policy, &who, Action::Read)?;
    if let Some(f) = fields.as_deref() {
        let mut first = None;
        if !roles.iter().any(|r| check_request(r, f).map_err(|d| first.get_or_insert(d).clone()).is_ok()) {
            return Err(first.map_or_else(|| ApiError::internal("internal", "no role checked"), ApiError::from));
        }
    }
    let now = SystemTime::now();
    let ask = ReadRequest { fields: fields.as_deref(), purpose: purpose.as_deref() };
    // A caller whose every role admits every trace, served without approval, needs from the
    // index only whether the trace exists, which the fetch answers with the same 404: no
    // lookup (a PostgreSQL round trip per read). Anything else decides on the indexed metadata.
    let decided = match decide_read_unscoped(&policy, &who, &id, &ask, now) {
        Some(c) => ReadDecision::Serve(c),
        None => {
            let meta = state
                .index
                .get(&id)
                .await?
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("trace `{id}` not found")))?;
            decide_read_gated(&policy, &who, &meta, &ask, now).map_err(|d| scope_refusal(state, &id, d))?
        }
    };
    let (admitted, grant): (Vec<(String, Vec<String>)>, _) = match decided {
        ReadDecision::Serve(c) => (c.into_iter().map(|c| (c.role.name.clone(), c.rules)).collect(), None),
        // Approve: served only under a grant for exactly this request; otherwise the caller
        // waits (202) on an access request, and nothing is fetched.
        ReadDecision::Approval(gate) => match approvals::gate(state, &audit.entry.request_id, &who, &gate, now).await? {
            // The audit record names the grant (`approval_id`) and its approvers below.
            GateOutcome::Granted(grant) => (vec![(gate.role.name.clone(), gate.rules.clone())], Some(grant)),
            GateOutcome::Wait { request, reply } => {
                audit.entry.decision = Some(tracegate_audit::Decision::Pending);
                audit.entry.approval_id = Some(request.id);
                audit.entry.role = Some(gate.role.name.clone());
                audit.entry.rules = gate.rules;
                return Ok(reply);
            }
        },
    };

    // Fetch, with the gateway's own credential. The store judges the object by its size before
    // loading it: larger than `server.max_read_bytes` is `500 trace_too_large`, and the read
    // waits for its share of `server.read_budget_bytes`, held while `stored` lives (through the
    // projection and masking below), so concurrent reads of large traces cannot exhaust memory.
    let stored = state.store.get(&id).await?;
    audit.entry.object_version = Some(stored.version.clone());
    // Large ones are projected and masked on the blocking pool, so a heavy trace cannot stall
    // the async workers ([`crate::budget`]).
    let len = stored.bytes.len();
    let served = if offloads(len) {
        let (policy, who, id, key) = (policy.clone(), who.clone(), id.clone(), state.mask_key.clone());
        // `stored` comes back with the result: its bytes and budget share live as long as on
        // the inline path, until the response is built.
        let (served, stored) = budget::run(len, move || {
            let job = Job { policy: &policy, who: &who, id: &id, admitted: &admitted, fields: fields.as_deref(), now, explain };
            (job.render(&stored.bytes, &key), stored)
        })
        .await
        .ok_or_else(|| ApiError::internal("internal", "projection task failed"))?;
        (served?, stored)
    } else {
        // Below the threshold on this task, without copying what the job borrows.
        let job = Job { policy: &policy, who: &who, id: &id, admitted: &admitted, fields: fields.as_deref(), now, explain };
        (job.render(&stored.bytes, &state.mask_key)?, stored)
    };
    let (served, stored) = served;
    let (mut served, withheld) = match served {
        Ok(s) => s,
        Err(ServeError::Denied(d)) => return Err(scope_refusal(state, &id, d)),
        Err(ServeError::TooCostly(e)) => return Err(ApiError::bad_request("query_too_costly", e.to_string())),
        Err(ServeError::NotJson(_)) => return Err(ApiError::internal("internal", "the stored trace could not be rendered")),
    };
    if let Some(role) = policy.role(&served.role) {
        audit.served(role, std::mem::take(&mut served.rules), std::mem::take(&mut served.masks));
    }
    // A grant is used only once the response is ready: of concurrent reads under a one-time
    // grant exactly one gets past here; the others are refused and sent nothing.
    if let Some(grant) = &grant {
        let used = approvals::consume(state, &audit.entry.request_id, &who, grant, now).await?;
        audit.entry.approval_id = Some(grant.id.clone());
        audit.entry.event = Some(serde_json::json!({
            "grant": grant.id,
            "approved_by": used.request.approvers().iter().map(|p| p.subject.as_str()).collect::<Vec<_>>(),
            "uses": used.request.uses,
        }));
    }

    if let Some(w) = &withheld {
        // The record says a list was sent beside the body; replay can rebuild it from the
        // served version and the policy, so the paths themselves are not copied here.
        let listed = serde_json::json!({ "withheld_listed": w.paths.len(), "withheld_more": w.more });
        match audit.entry.event.as_mut().and_then(Value::as_object_mut) {
            Some(ev) => {
                if let Some(o) = listed.as_object() {
                    ev.extend(o.clone());
                }
            }
            None => audit.entry.event = Some(listed),
        }
    }

    // Respond. The withheld list travels in a header, outside the body, so the body and its
    // digest are the same bytes whether or not it was asked for.
    // A body that is the stored bytes verbatim keeps their content version as its digest.
    let mut reply = Reply::json(StatusCode::OK, served.body)
        .verbatim_of(&stored)
        .header("x-tracegate-role", &served.role)
        .header("x-tracegate-policy-version", &policy.version.0);
    if let Some(grant) = &grant {
        reply = reply.header("x-tracegate-access-request", &grant.id);
    }
    if let Some(w) = &withheld {
        reply = reply.header("x-tracegate-withheld", &withheld_header(w)?);
    }
    Ok(reply)
}

/// What phases 5 and 6 of a read need once the trace is fetched.
struct Job<'a> {
    policy: &'a Policy,
    who: &'a Principal,
    id: &'a TraceId,
    /// Roles the decision admitted, with their rules, in policy order.
    admitted: &'a [(String, Vec<String>)],
    fields: Option<&'a [FieldRequest]>,
    now: SystemTime,
    /// Whether the caller asked which paths the view withheld (`?explain=withheld`).
    explain: bool,
}

impl Job<'_> {
    /// Row scope again on the served version, then project, mask and render
    /// ([`serve_read`]). A trace that is not JSON fails the request (`trace_corrupt`).
    fn render(&self, stored: &[u8], key: &MaskKey) -> Result<Result<(Rendered, Option<WithheldReport>), ServeError>, ApiError> {
        let corrupt = |e: &dyn std::fmt::Display| {
            tracing::error!(trace = %self.id, error = %e, "stored trace is not valid JSON");
            ApiError::internal("trace_corrupt", format!("stored trace `{}` is not valid JSON", self.id))
        };
        let roles: Vec<(&Role, &Vec<String>)> =
            self.admitted.iter().filter_map(|(name, rules)| self.policy.role(name).map(|role| (role, rules))).collect();
        // Row scope again, on the metadata of exactly the version being served: the index
        // entry the decision used may be stale. Only a role whose row scope reads the trace
        // (`match`, `max_age`) needs the document parsed for it; the parsed tree is reused.
        let parsed: Option<Value> = match roles.iter().any(|(r, _)| r.rows.reads_trace()) {
            true => Some(parse_stored(stored).map_err(|e| corrupt(&e))?),
            false => None,
        };
        let fresh = parsed.as_ref().map(|doc| TraceMeta::extract(self.id.clone(), doc));
        let mut scope_denial = None;
        let candidates: Vec<Candidate<'_>> = roles
            .into_iter()
            .map(|(role, rules)| Candidate { role, rules: rules.clone() })
            .filter(|c| {
                let Some(fresh) = &fresh else { return true };
                match check_rows(c.role, self.who, fresh, self.now) {
                    Ok(_) => true,
                    Err(d) => {
                        scope_denial.get_or_insert(d);
                        false
                    }
                }
            })
            .collect();
        if candidates.is_empty() {
            return Ok(Err(ServeError::Denied(scope_denial.unwrap_or_else(|| {
                Denial::new(DenyCode::OutsideRowScope, None, "no role's row scope admits the served version", vec![])
            }))));
        }
        let parsed_again = if self.explain { parsed.clone() } else { None };
        let rendered = match serve_read(&candidates, stored, parsed, self.fields, key) {
            Err(ServeError::NotJson(e)) => return Err(corrupt(&e)),
            Err(e) => return Ok(Err(e)),
            Ok(r) => r,
        };
        if !self.explain {
            return Ok(Ok((rendered, None)));
        }
        // The same candidates and stored bytes as the body: the list describes exactly the view served.
        match explain_withheld(&candidates, stored, parsed_again, self.fields, key) {
            Ok(w) => Ok(Ok((rendered, Some(w)))),
            Err(ServeError::NotJson(e)) => Err(corrupt(&e)),
            Err(e) => Ok(Err(e)),
        }
    }
}

/// A refusal made after the trace was found: row scope (and the field checks that depend on
/// which role's row scope held) answers exactly like a trace that does not exist, unless the
/// operator opted into explicit 403s. The audit record keeps the true reason.
fn scope_refusal(state: &AppState, id: &TraceId, d: Denial) -> ApiError {
    let hides = matches!(d.code, DenyCode::OutsideRowScope | DenyCode::FieldDenied | DenyCode::FieldOutsideView);
    if hides && !state.explicit_row_scope_denials {
        ApiError::not_found_hiding(id, d)
    } else {
        ApiError::from(d)
    }
}

/// `?explain=withheld`: also say which paths the view withheld. Any other value is refused, so
/// a typo does not silently return less than was asked for.
fn explain_of(pairs: &[(String, String)]) -> Result<bool, ApiError> {
    let mut it = pairs.iter().filter(|(k, _)| k == "explain");
    let first = it.next();
    if it.next().is_some() {
        return Err(ApiError::bad_request("bad_parameter", "`explain` given more than once"));
    }
    match first.map(|(_, v)| v.as_str()) {
        None => Ok(false),
        Some("withheld") => Ok(true),
        Some(_) => Err(ApiError::bad_request("bad_parameter", "`explain` takes only `withheld`")),
    }
}

/// The withheld report as a header value: JSON with every non-ASCII character escaped, so
/// any key survives as a visible-ASCII header.
fn withheld_header(w: &WithheldReport) -> Result<String, ApiError> {
    let json = serde_json::to_string(w).map_err(|_| ApiError::internal("internal", "serialising the withheld paths failed"))?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                let _ = write!(out, "\\u{u:04x}");
            }
        }
    }
    Ok(out)
}

/// The caller's stated purpose: the `x-tracegate-purpose` header or `?purpose=`, not both
/// differently, not twice. It is part of what an approval is bound to.
fn purpose_of(pairs: &[(String, String)], headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut from_query = pairs.iter().filter(|(k, _)| k == "purpose").map(|(_, v)| v.trim());
    let q = from_query.next();
    if from_query.next().is_some() {
        return Err(ApiError::bad_request("bad_parameter", "`purpose` given more than once"));
    }
    let mut hs = headers.get_all("x-tracegate-purpose").iter();
    let h = match hs.next() {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("bad_purpose", "the `x-tracegate-purpose` header is not ASCII"))?.trim()),
    };
    if hs.next().is_some() {
        return Err(ApiError::bad_request("bad_purpose", "more than one `x-tracegate-purpose` header"));
    }
    let p = match (q, h) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request("bad_purpose", "the `purpose` parameter and the `x-tracegate-purpose` header differ"))
        }
        (a, b) => a.or(b).filter(|p| !p.is_empty()),
    };
    if p.is_some_and(|p| p.len() > MAX_PURPOSE_LEN) {
        return Err(ApiError::bad_request("bad_purpose", format!("the purpose is longer than {MAX_PURPOSE_LEN} bytes")));
    }
    Ok(p.map(str::to_owned))
}
