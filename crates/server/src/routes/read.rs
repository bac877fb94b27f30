//! `GET /v1/traces/{id}`: one trace, projected to the caller's view and masked — or, when the
//! role's approval rule gates the read, `202` and an access request until a grant covers it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tracegate_core::decision::roles_for_action;
use tracegate_core::approval::MAX_PURPOSE_LEN;
use tracegate_core::pipeline::{decide_read_gated, project_and_mask, Candidate, ReadDecision, ReadRequest, Served};
use tracegate_core::project::FieldRequest;
use tracegate_core::{Action, Denial, TraceId};

use super::approvals::{self, GateOutcome};
use super::{query_pairs, Caller};
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

/// Traces at least this large are projected and masked off the async workers.
const BLOCKING_THRESHOLD: usize = 256 * 1024;

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
    let pairs = query_pairs(query.as_deref(), &["fields", "purpose"])?;
    let purpose = purpose_of(&pairs, headers)?;
    audit.request().purpose = purpose.clone();
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k == "fields").collect();
    audit.request().fields = pairs.iter().map(|(_, v)| v.clone()).collect();
    let fields = if pairs.is_empty() {
        None
    } else {
        let exprs = pairs.iter().map(|(_, v)| v.as_str());
        Some(FieldRequest::parse_all(exprs).map_err(|e| ApiError::bad_request("bad_field", e.to_string()))?)
    };

    // Decide, before anything is fetched. Callers who may not read at all learn nothing about
    // which traces exist.
    let policy = state.policy.clone();
    roles_for_action(&policy, &who, Action::Read)?;
    let meta = state
        .index
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("trace `{id}` not found")))?;
    let now = SystemTime::now();
    let ask = ReadRequest { fields: fields.as_deref(), purpose: purpose.as_deref() };
    let (admitted, grant): (Vec<(String, Vec<String>)>, _) = match decide_read_gated(&policy, &who, &meta, &ask, now)? {
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

    // Fetch, with the gateway's own credential.
    let stored = state.store.get(&id).await?;
    audit.entry.object_version = Some(stored.version.clone());

    // Project and mask.
    let key = state.mask_key.clone();
    let big = stored.bytes.len() >= BLOCKING_THRESHOLD;
    let job_policy = policy.clone();
    let job = move || -> Result<Result<Served, Denial>, ApiError> {
        let doc: Value = serde_json::from_slice(&stored.bytes).map_err(|e| {
            tracing::error!(trace = %id, error = %e, "stored trace is not valid JSON");
            ApiError::internal("trace_corrupt", format!("stored trace `{id}` is not valid JSON"))
        })?;
        let candidates: Vec<Candidate<'_>> = admitted
            .iter()
            .filter_map(|(name, rules)| job_policy.role(name).map(|role| Candidate { role, rules: rules.clone() }))
            .collect();
        Ok(project_and_mask(&candidates, doc, fields.as_deref(), &key))
    };
    let served = if big {
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| ApiError::internal("internal", "projection task failed"))??
    } else {
        job()?
    }?;
    if let Some(role) = policy.role(&served.role) {
        audit.served(role, served.rules.clone(), &served.masks);
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

    // Respond.
    let body = serde_json::to_vec(&served.body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    let mut reply = Reply::json(StatusCode::OK, body)
        .header("x-tracegate-role", &served.role)
        .header("x-tracegate-policy-version", &policy.version.0);
    if let Some(grant) = &grant {
        reply = reply.header("x-tracegate-access-request", &grant.id);
    }
    Ok(reply)
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
