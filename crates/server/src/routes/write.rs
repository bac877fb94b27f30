//! `PUT /v1/traces/{id}`: store a trace (writers only), validated and size-limited.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use tracegate_core::decision::roles_for_action;
use tracegate_core::pipeline::decide_write;
use tracegate_core::{Action, TraceId, TraceMeta};

use super::Caller;
use crate::error::ApiError;
use crate::metrics::DecisionLabel;
use crate::state::AppState;

pub async fn write(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Response {
    match store_trace(state, id, caller, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn store_trace(state: Arc<AppState>, id: String, caller: Result<Caller, ApiError>, body: Body) -> Result<Response, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    let id = TraceId::parse(&id).map_err(|e| ApiError::bad_request("bad_trace_id", e.to_string()))?;
    // Decide who may write at all before reading a byte of the body.
    roles_for_action(&state.policy, &who, Action::Write)?;
    let max = state.max_trace_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("trace body exceeds the limit of {max} bytes"))
    })?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
    })?;
    if !doc.is_object() {
        return Err(ApiError::bad_request("invalid_trace", "a trace must be a JSON object"));
    }
    let meta = TraceMeta::extract(id.clone(), &doc);
    let granted = decide_write(&state.policy, &who, &meta, SystemTime::now())?;
    let role = granted.role.name.clone();
    // Store, then index: a crash in between leaves the trace findable after the next rebuild.
    let version = state.store.put(&id, bytes).await?;
    state.index.upsert(meta);
    let mut resp = (
        StatusCode::CREATED,
        Json(serde_json::json!({ "trace_id": id, "version": version, "role": role })),
    )
        .into_response();
    resp.extensions_mut().insert(DecisionLabel("allow"));
    Ok(resp)
}
