//! `GET /v1/traces/{id}`: one trace, projected to the caller's view and masked.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracegate_core::decision::roles_for_action;
use tracegate_core::pipeline::{decide_read, project_and_mask, Candidate, Served};
use tracegate_core::project::FieldRequest;
use tracegate_core::{Action, Denial, TraceId};

use super::{query_pairs, Caller};
use crate::error::ApiError;
use crate::metrics::DecisionLabel;
use crate::state::AppState;

/// Traces at least this large are projected and masked off the async workers.
const BLOCKING_THRESHOLD: usize = 256 * 1024;

pub async fn read(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    caller: Result<Caller, ApiError>,
) -> Response {
    match read_trace(state, id, query, caller).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn read_trace(
    state: Arc<AppState>,
    id: String,
    query: Option<String>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    let id = TraceId::parse(&id).map_err(|e| ApiError::bad_request("bad_trace_id", e.to_string()))?;
    let pairs = query_pairs(query.as_deref(), &["fields"])?;
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

    // Project and mask.
    let key = state.mask_key.clone();
    let big = stored.bytes.len() >= BLOCKING_THRESHOLD;
    let job = move || -> Result<Result<Served, Denial>, ApiError> {
        let doc: Value = serde_json::from_slice(&stored.bytes).map_err(|e| {
            tracing::error!(trace = %id, error = %e, "stored trace is not valid JSON");
            ApiError::internal("trace_corrupt", format!("stored trace `{id}` is not valid JSON"))
        })?;
        let candidates: Vec<Candidate<'_>> = admitted
            .iter()
            .filter_map(|(name, rules)| policy.role(name).map(|role| Candidate { role, rules: rules.clone() }))
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

    // Respond.
    let body = serde_json::to_vec(&served.body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&served.role) {
        h.insert("x-tracegate-role", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state.policy.version.0) {
        h.insert("x-tracegate-policy-version", v);
    }
    resp.extensions_mut().insert(DecisionLabel("allow"));
    Ok(resp)
}
