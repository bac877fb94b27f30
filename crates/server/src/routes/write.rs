//! `PUT /v1/traces/{id}`: store a trace (writers only), validated, size-limited, and masked by
//! the writer's role before it is stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use tracegate_core::decision::roles_for_action;
use tracegate_core::pipeline::decide_write;
use tracegate_core::{Action, TraceId, TraceMeta};

use super::Caller;
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn write(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Response {
    let mut audit = Audited::begin("PUT", "/v1/traces/{id}", Some(Action::Write), Some(client));
    let outcome = store_trace(&state, &mut audit, id, caller, body).await;
    finish(&state, audit, outcome).await
}

async fn store_trace(
    state: &AppState,
    audit: &mut Audited,
    id: String,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Result<Reply, ApiError> {
    audit.request().trace_ids.push(id.clone());
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let id = TraceId::parse(&id).map_err(|e| ApiError::bad_request("bad_trace_id", e.to_string()))?;
    // Decide who may write at all before reading a byte of the body.
    roles_for_action(&state.policy, &who, Action::Write)?;
    let max = state.max_trace_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("trace body exceeds the limit of {max} bytes"))
    })?;
    let mut doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}")))?;
    if !doc.is_object() {
        return Err(ApiError::bad_request("invalid_trace", "a trace must be a JSON object"));
    }
    let meta = TraceMeta::extract(id.clone(), &doc);
    let granted = decide_write(&state.policy, &who, &meta, SystemTime::now())?;
    // Mask before storing: what the writer's role masks never reaches the store. Untouched
    // documents are stored byte for byte.
    let masks = granted.role.masking.apply(&mut doc, &state.mask_key);
    let bytes = if masks.total() == 0 {
        bytes
    } else {
        serde_json::to_vec(&doc).map_err(|_| ApiError::internal("internal", "serialising the masked trace failed"))?.into()
    };
    audit.served(granted.role, granted.rules.clone(), &masks);
    let role = granted.role.name.clone();
    // Store, then index: a crash in between leaves the trace findable after the next rebuild.
    let version = state.store.put(&id, bytes).await?;
    audit.entry.object_version = Some(version.clone());
    state.index.upsert(meta);
    let body = serde_json::to_vec(&serde_json::json!({ "trace_id": id, "version": version, "role": role, "masked": masks.total() }))
        .map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::CREATED, body))
}
