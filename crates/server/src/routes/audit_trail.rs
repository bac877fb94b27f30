//! `GET /v1/audit`: the audit trail, `GET /v1/audit/verify`: whether its chain and checkpoint
//! signatures hold, `GET /v1/audit/checkpoint`: the newest signed checkpoint, and `GET /v1/audit/{request_id}/replay`: a recorded read reproduced — all
//! for roles with the `audit` action. Using them is itself recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};
use tracegate_audit::AuditQuery;
use tracegate_core::decision::roles_for_action;
use tracegate_core::mask::MaskReport;
use tracegate_core::pipeline::{decide_read_gated, project_and_mask, ReadDecision, ReadRequest};
use tracegate_core::{Action, Principal, TraceId, TraceMeta};

use super::{query_pairs, Caller};
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::replay::ReplayError;
use crate::state::AppState;

const PARAMS: [&str; 8] = ["since", "until", "subject", "request_id", "trace_id", "decision", "kind", "limit"];

pub async fn list(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/audit", Some(Action::Audit), Some(client));
    let outcome = run(&state, &mut audit, query, caller).await;
    finish(&state, audit, outcome).await
}

async fn run(state: &AppState, audit: &mut Audited, query: Option<String>, caller: Result<Caller, ApiError>) -> Result<Reply, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let q = parse_query(query.as_deref())?;
    // Decide.
    let roles = roles_for_action(&state.policy, &who, Action::Audit)?;
    if let Some(role) = roles.first() {
        audit.served(role, vec![role.rule("actions")], MaskReport::default());
    }
    // Fetch: an indexed query in PostgreSQL, or a scan of the embedded log off the async workers.
    let records = state.audit.source().query(&q).await.map_err(|e| {
        tracing::error!(error = %e, "audit query failed");
        ApiError::unavailable("audit_unavailable", "the audit trail could not be read")
    })?;
    // Respond.
    let body = serde_json::to_vec(&serde_json::json!({ "records": records }))
        .map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, body))
}

fn parse_query(raw: Option<&str>) -> Result<AuditQuery, ApiError> {
    let mut m = Map::new();
    for (k, v) in query_pairs(raw, &PARAMS)? {
        let value = if k == "limit" {
            let n = v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad_request("bad_parameter", "`limit` must be a positive integer")
            })?;
            Value::from(n)
        } else {
            Value::String(v)
        };
        if m.insert(k.clone(), value).is_some() {
            return Err(ApiError::bad_request("bad_parameter", format!("`{k}` given more than once")));
        }
    }
    serde_json::from_value(Value::Object(m)).map_err(|e| ApiError::bad_request("bad_parameter", e.to_string()))
}

/// `GET /v1/audit/verify`: the whole chain and every checkpoint signature checked now, against
/// the gateway's own signing key, with the latest signed sequence number and how many records
/// follow it (protected by the chain alone). What the console shows as the trail's status. An
/// auditor who keeps the public key apart from the gateway runs `tracegate audit verify
/// --public-key` instead: a gateway whose key was replaced would vouch for itself here.
pub async fn verify(State(state): State<Arc<AppState>>, ConnectInfo(client): ConnectInfo<SocketAddr>, caller: Result<Caller, ApiError>) -> Response {
    let mut audit = Audited::begin("GET", "/v1/audit/verify", Some(Action::Audit), Some(client));
    let outcome = check(&state, &mut audit, caller).await;
    finish(&state, audit, outcome).await
}

async fn check(state: &AppState, audit: &mut Audited, caller: Result<Caller, ApiError>) -> Result<Reply, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    // Decide.
    let roles = roles_for_action(&state.policy, &who, Action::Audit)?;
    if let Some(role) = roles.first() {
        audit.served(role, vec![role.rule("actions")], MaskReport::default());
    }
    // Fetch and check.
    let report = state.audit.source().verify(std::slice::from_ref(state.audit.public_key())).await.map_err(|e| {
        tracing::error!(error = %e, "audit verification could not read the trail");
        ApiError::unavailable("audit_unavailable", "the audit trail could not be read")
    })?;
    // Respond.
    let body = serde_json::to_vec(&serde_json::json!({ "ok": report.ok(), "report": report }))
        .map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, body))
}

/// `GET /v1/audit/checkpoint`: the newest signed checkpoint of the trail — its sequence, the
/// head hash it vouches for, its time and signer key id — and whether its signature verifies
/// against this gateway's key. What the audit explorer shows beside the chain's verification
/// (`/v1/audit/verify`), which says whether the chain up to it holds. Reading it signs nothing.
pub async fn checkpoint(State(state): State<Arc<AppState>>, ConnectInfo(client): ConnectInfo<SocketAddr>, caller: Result<Caller, ApiError>) -> Response {
    let mut audit = Audited::begin("GET", "/v1/audit/checkpoint", Some(Action::Audit), Some(client));
    let outcome = latest_checkpoint(&state, &mut audit, caller).await;
    finish(&state, audit, outcome).await
}

async fn latest_checkpoint(state: &AppState, audit: &mut Audited, caller: Result<Caller, ApiError>) -> Result<Reply, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    // Decide.
    let roles = roles_for_action(&state.policy, &who, Action::Audit)?;
    if let Some(role) = roles.first() {
        audit.served(role, vec![role.rule("actions")], MaskReport::default());
    }
    // Fetch.
    let latest = state.audit.source().latest_checkpoint().await.map_err(|e| {
        tracing::error!(error = %e, "reading the latest audit checkpoint failed");
        ApiError::unavailable("audit_unavailable", "the audit trail could not be read")
    })?;
    // Respond.
    let key = state.audit.public_key();
    let body = serde_json::json!({
        "checkpoint": latest,
        "signature_valid": latest.as_ref().map(|c| c.verify(key)),
        "gateway_key_id": key.key_id(),
    });
    let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, bytes).header("cache-control", "no-store"))
}

/// `GET /v1/audit/{request_id}/replay`: a recorded read reproduced (see [`crate::replay`]), for
/// roles with the `audit` action, and recorded itself (naming the trace and whether the body was
/// shown). The answer always says whether the reproduced body matches the recorded digest;
/// the body itself was served to someone else, so it is included only when the caller's own
/// read of that same version, under today's policy and without approval, covers it
/// ([`crate::replay::covers`]). Otherwise `body_withheld` says why, and nothing of the body is
/// sent — an auditor who may not read traces learns that the trail holds, not what it held.
pub async fn replay(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(request_id): Path<String>,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/audit/{request_id}/replay", Some(Action::Audit), Some(client));
    let outcome = reproduce(&state, &mut audit, request_id, caller).await;
    finish(&state, audit, outcome).await
}

async fn reproduce(state: &AppState, audit: &mut Audited, request_id: String, caller: Result<Caller, ApiError>) -> Result<Reply, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    // Decide.
    let roles = roles_for_action(&state.policy, &who, Action::Audit)?;
    if let Some(role) = roles.first() {
        audit.served(role, vec![role.rule("actions")], MaskReport::default());
    }
    // Fetch the record, then replay it with the gateway's own credential.
    let source = state.audit.source();
    let unreadable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "replay could not read the audit trail");
        ApiError::unavailable("audit_unavailable", "the audit trail could not be read")
    };
    let record = crate::replay::find(&source, &request_id)
        .await
        .map_err(|e| unreadable(&e))?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no request record for `{request_id}`")))?;
    let r = crate::replay::replay(&record, &source, state.store.as_ref(), &state.mask_key, state.max_read_bytes)
        .await
        .map_err(|e| match e {
        ReplayError::Audit(e) => unreadable(&e),
        ReplayError::Store(e) => ApiError::from(e),
        e => ApiError::internal("replay_failed", e.to_string()),
    })?;
    if let Some(t) = &r.trace_id {
        audit.request().trace_ids.push(t.to_string());
    }
    // Who sees the body: only a caller whose own view of that version holds all of it.
    let (body, withheld) = match (&r.body, &r.trace_id, &record.entry.object_version) {
        (Some(shown), Some(tid), Some(version)) => match own_view(state, &who, tid, version).await? {
            Ok(own) if crate::replay::covers(&own, shown) => (Some(shown.clone()), None),
            Ok(_) => (None, Some("the body holds more than your own read of this trace would show you")),
            Err(why) => (None, Some(why)),
        },
        _ => (None, None),
    };
    audit.entry.event = Some(serde_json::json!({
        "replayed": request_id, "seq": record.seq, "result": r.outcome.code(), "body_shown": body.is_some(),
    }));
    // Respond.
    let e = &record.entry;
    let answer = serde_json::json!({
        "request_id": e.request_id,
        "seq": record.seq,
        "result": r.outcome.code(),
        "detail": r.detail,
        "trace_id": r.trace_id.as_ref().map(ToString::to_string),
        "object_version": e.object_version,
        "policy_version": e.policy_version,
        "role": e.role,
        "fields": e.request.as_ref().map(|q| &q.fields),
        "recorded_sha256": e.body_sha256,
        "replayed_sha256": r.digest,
        "body": body,
        "body_withheld": withheld,
    });
    let bytes = serde_json::to_vec(&answer).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, bytes).header("cache-control", "no-store"))
}

/// What `who` is served from `version` of `tid` under the current policy with no `fields=`, or
/// why they are served nothing without asking (no read role, row scope, approval). Rendered on
/// the same bounded path as a read ([`crate::budget`]).
async fn own_view(state: &AppState, who: &Principal, tid: &TraceId, version: &str) -> Result<Result<Value, &'static str>, ApiError> {
    let stored = match state.store.get_version(tid, version).await {
        Ok(s) => s,
        Err(tracegate_store::StoreError::TooLarge { .. }) => return Ok(Err("the trace is larger than this gateway's read limit")),
        Err(e) => return Err(e.into()),
    };
    let len = stored.bytes.len();
    let (policy, who, tid, key) = (state.policy.clone(), who.clone(), tid.clone(), state.mask_key.clone());
    crate::budget::run(len, move || {
        let Ok(doc) = tracegate_core::pipeline::parse_stored(&stored.bytes) else {
            return Err("the stored version is not valid JSON");
        };
        let meta = TraceMeta::extract(tid, &doc);
        let candidates = match decide_read_gated(&policy, &who, &meta, &ReadRequest::default(), SystemTime::now()) {
            Ok(ReadDecision::Serve(c)) => c,
            Ok(ReadDecision::Approval(_)) => return Err("your roles read this trace only after an approval"),
            Err(_) => return Err("none of your roles reads this trace"),
        };
        project_and_mask(&candidates, doc, None, &key).map(|served| served.body).map_err(|_| "none of your roles reads this trace")
    })
    .await
    .ok_or_else(|| ApiError::internal("internal", "projection task failed"))
}
