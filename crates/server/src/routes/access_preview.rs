//! `GET /v1/access-requests/{id}/reveals`: what granting a request would reveal — the view of
//! the role it asks for (fields allowed and denied, which detectors each masking operator
//! covers, `off` being what is shown unmasked), decided from the policy alone, never from the
//! trace. For whoever may see the request (its requester and its approvers; 404 for anyone
//! else, like the request itself). The approvals inbox shows it on each card.
//!
//! The request records who asked but not their groups, so what the requester sees *without* the
//! grant is not computed here (see docs/console.md, "Not built yet").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tracegate_core::approval::Actor;

use super::Caller;
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn reveals(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("GET", "/v1/access-requests/{id}/reveals", None, Some(client));
    audit.entry.approval_id = Some(id.clone());
    let outcome = async {
        // Authenticate.
        let Caller(who) = caller?;
        audit.principal(&state, &who);
        // Only those who may see a request learn what it would reveal.
        let r = super::approvals::visible(&state, &id, &Actor::from(&who), SystemTime::now()).await?;
        // Respond: the role's view under the policy in force, which is what a grant serves.
        let views = state.policy.effective_views();
        let view = views["roles"].get(&r.shape.role).cloned().unwrap_or(serde_json::Value::Null);
        let body = serde_json::json!({
            "access_request": r.id,
            "role": r.shape.role,
            "view": view,
            "policy_version": state.policy.version,
            "requested_under": r.shape.policy_version,
        });
        let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
        Ok(Reply::json(StatusCode::OK, bytes))
    }
    .await;
    finish(&state, audit, outcome).await
}
