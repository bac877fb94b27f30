//! `GET /v1/audit`: the audit trail, for roles with the `audit` action. Reading the trail is
//! itself recorded.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};
use tracegate_audit::AuditQuery;
use tracegate_core::decision::roles_for_action;
use tracegate_core::mask::MaskReport;
use tracegate_core::Action;

use super::{query_pairs, Caller};
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
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
        audit.served(role, vec![role.rule("actions")], &MaskReport::default());
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
