//! `GET /v1/whoami`: who the gateway thinks the caller is, and which roles that reaches. Handy
//! when wiring an identity provider; shows no credential. Recorded like every other request.
//! For a browser session it also returns the session's CSRF token (`csrf_token`), which the
//! gateway's own pages send back in `X-CSRF-Token`: another site's page cannot read this answer
//! (same-origin policy; the gateway sends no CORS headers), so it cannot learn the token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::Caller;
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn whoami(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/whoami", None, Some(client));
    let outcome = describe(&state, &mut audit, &headers, caller).await;
    finish(&state, audit, outcome).await
}

async fn describe(
    state: &AppState,
    audit: &mut Audited,
    headers: &axum::http::HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Result<Reply, ApiError> {
    // Authenticate.
    let Caller(who) = caller?;
    audit.principal(state, &who);
    // Respond: the principal as identity saw it, and the roles its groups reach.
    let roles: Vec<&str> = state.policy.roles_for_groups(&who.groups).iter().map(|r| r.name.as_str()).collect();
    let mut body = serde_json::json!({ "principal": who, "roles": roles, "policy_version": state.policy.version });
    if who.credential == tracegate_core::Credential::Session {
        body["csrf_token"] = super::browser::session_csrf(state, headers).await.into();
    }
    let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, bytes))
}
