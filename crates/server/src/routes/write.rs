//! `PUT /v1/traces/{id}`: store a trace (writers only), validated, size-limited, and masked by
//! the writer's role before it is stored.
//!
//! A write may only create a trace in the writer's row scope, or replace one whose *current*
//! version is in it: claiming one's own tenant in a new body does not reach another tenant's
//! trace. Every write is a new immutable version (the old ones stay readable for replay).
//! `If-None-Match: *` creates only; `If-Match: <version>` replaces only the version the writer
//! saw; either fails with 412 otherwise. Unconditional writes are made conditional on the
//! version the row-scope decision looked at, so a concurrent write cannot slip in between.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tracegate_core::decision::roles_for_action;
use tracegate_core::pipeline::decide_write;
use tracegate_core::{Action, TraceId, TraceMeta};
use tracegate_store::{StoreError, WriteCondition};

use super::Caller;
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn write(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Response {
    let mut audit = Audited::begin("PUT", "/v1/traces/{id}", Some(Action::Write), Some(client));
    let outcome = store_trace(&state, &mut audit, id, &headers, caller, body).await;
    finish(&state, audit, outcome).await
}

async fn store_trace(
    state: &AppState,
    audit: &mut Audited,
    id: String,
    headers: &HeaderMap,
    caller: Result<Caller, ApiError>,
    body: Body,
) -> Result<Reply, ApiError> {
    audit.request().trace_ids.push(id.clone());
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let id = TraceId::parse(&id).map_err(|e| ApiError::bad_request("bad_trace_id", e.to_string()))?;
    let asked = condition(headers)?;
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
    let depth = tracegate_core::jsonpath::size_of(&doc).1;
    if depth > MAX_WRITE_DEPTH {
        return Err(ApiError::bad_request("too_deep", format!("a trace may nest at most {MAX_WRITE_DEPTH} levels")));
    }
    if tracegate_core::embedded::decode_tree(&mut doc.clone()).withheld > 0 {
        return Err(ApiError::bad_request(
            "too_deep",
            format!(
                "the trace nests JSON documents in strings deeper than {} layers (or {} levels), which no policy could inspect",
                tracegate_core::embedded::MAX_LAYERS,
                tracegate_core::embedded::MAX_NESTING
            ),
        ));
    }
    let meta = TraceMeta::extract(id.clone(), &doc);
    // The trace this write would replace, if any: its row scope must admit the writer too. Only
    // its version and metadata are kept: the bytes (and the share of the read budget they hold)
    // are let go here, because the store's `put` reads the current version again under a share
    // of its own, and a write holding one share while waiting for another could wait forever.
    let (current, current_meta) = match state.store.get(&id).await {
        Ok(c) => {
            let meta = serde_json::from_slice::<Value>(&c.bytes)
                .map(|d| TraceMeta::extract(id.clone(), &d))
                .unwrap_or_else(|_| TraceMeta::extract(id.clone(), &Value::Null));
            (Some(c.version), Some(meta))
        }
        Err(StoreError::NotFound(_)) => (None, None),
        Err(e) => return Err(e.into()),
    };
    let granted = decide_write(&state.policy, &who, &meta, current_meta.as_ref(), SystemTime::now())?;
    // The writer's own condition, judged against what is there; then the store is told to
    // replace exactly that, so a concurrent write in between fails instead of being lost.
    let failed = |reason: &str| ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", format!("trace `{id}`: {reason}"));
    match (&asked, &current) {
        (WriteCondition::Absent, Some(_)) => return Err(failed("a trace with this id exists (If-None-Match: *)")),
        (WriteCondition::Version(_), None) => return Err(failed("no trace with this id exists (If-Match)")),
        (WriteCondition::Version(v), Some(c)) if c != v => {
            return Err(failed("the current version is not the one given in If-Match"))
        }
        _ => {}
    }
    let exact = match &current {
        Some(c) => WriteCondition::Version(c.clone()),
        None => WriteCondition::Absent,
    };
    // Mask before storing: what the writer's role masks never reaches the store. Untouched
    // documents are stored byte for byte.
    let masks = granted.role.masking.apply(&mut doc, &state.mask_key);
    let bytes = if masks.total() == 0 {
        bytes
    } else {
        serde_json::to_vec(&doc).map_err(|_| ApiError::internal("internal", "serialising the masked trace failed"))?.into()
    };
    let masked = masks.total();
    audit.served(granted.role, granted.rules.clone(), masks);
    let role = granted.role.name.clone();
    // Store, then index, then (in `finish`) audit: the index row is committed before the write's
    // audit record, which is written before the response. A crash or an index failure in
    // between leaves a stored trace that `tracegate index rebuild` finds; an index failure fails
    // the write with 503, recorded as such.
    let version = match state.store.put(&id, bytes, &exact).await {
        Ok(v) => v,
        Err(StoreError::Precondition { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "write_conflict",
                format!("trace `{id}` was written concurrently; read its current state and retry"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    audit.entry.object_version = Some(version.clone());
    state.index.upsert(meta).await?;
    let body = serde_json::to_vec(&serde_json::json!({ "trace_id": id, "version": version, "role": role, "masked": masked }))
        .map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::CREATED, body).header("etag", &format!("\"{version}\"")))
}

/// Deepest nesting a written trace may have (serde_json's parser stops at 128 anyway).
const MAX_WRITE_DEPTH: u64 = 128;

/// The writer's condition from `If-None-Match: *` or `If-Match: "<version>"`.
fn condition(headers: &HeaderMap) -> Result<WriteCondition, ApiError> {
    let one = |name: &str| -> Result<Option<String>, ApiError> {
        let mut all = headers.get_all(name).iter();
        let Some(v) = all.next() else { return Ok(None) };
        if all.next().is_some() {
            return Err(ApiError::bad_request("bad_condition", format!("`{name}` given more than once")));
        }
        let v = v.to_str().map_err(|_| ApiError::bad_request("bad_condition", format!("`{name}` is not ASCII")))?;
        Ok(Some(v.trim().to_owned()))
    };
    match (one("if-none-match")?, one("if-match")?) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("bad_condition", "send `If-None-Match` or `If-Match`, not both")),
        (Some(v), None) if v == "*" => Ok(WriteCondition::Absent),
        (Some(_), None) => Err(ApiError::bad_request("bad_condition", "only `If-None-Match: *` is supported on writes")),
        (None, Some(v)) => {
            let v = v.trim_start_matches("W/").trim_matches('"');
            if !v.starts_with("sha256:") {
                return Err(ApiError::bad_request("bad_condition", "`If-Match` takes a version as returned by a write (`\"sha256:…\"`)"));
            }
            Ok(WriteCondition::Version(v.to_owned()))
        }
        (None, None) => Ok(WriteCondition::Any),
    }
}
