//! `GET /v1/traces/{id}`: one trace, projected to the caller's view and masked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use tracegate_core::decision::roles_for_action;
use tracegate_core::pipeline::{decide_read, project_and_mask, Candidate, Served};
use tracegate_core::project::FieldRequest;
use tracegate_core::{Action, Denial, TraceId};

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
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/traces/{id}", Some(Action::Read), Some(client));
    let outcome = read_trace(&state, &mut audit, id, query, caller).await;
    finish(&state, audit, outcome).await
}

async fn read_trace(
    state: &Arc<AppState>,
    audit: &mut Audited,
    id: String,
    query: Option<String>,
    caller: Result<Caller, ApiError>,
) -> Result<Reply, ApiError> {
    audit.request().trace_ids.push(id.clone());
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let id = TraceId::parse(&id).map_err(|e| ApiError::bad_request("bad_trace_id", e.to_string()))?;
    let pairs = query_pairs(query.as_deref(), &["fields"])?;
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
    let admitted: Vec<(String, Vec<String>)> =
        decide_read(&policy, &who, &meta, now)?.into_iter().map(|c| (c.role.name.clone(), c.rules)).collect();

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

    // Respond.
    let body = serde_json::to_vec(&served.body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, body)
        .header("x-tracegate-role", &served.role)
        .header("x-tracegate-policy-version", &policy.version.0))
}
