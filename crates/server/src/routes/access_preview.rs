//! `GET /v1/access-requests/{id}/reveals`: what granting a request would reveal — the view of
//! the role it asks for (fields allowed and denied, which detectors each masking operator
//! covers, `off` being what is shown unmasked) and its difference from what the requester is
//! served without the grant ([`tracegate_core::view_delta`]), decided from the policy alone,
//! never from the trace. For whoever may see the request (its requester and its approvers; 404
//! for anyone else, like the request itself). The approvals inbox shows it on each card.
//!
//! The requester's current view is the role recorded in the request when it was opened, found
//! from the requester's own principal ([`tracegate_core::pipeline::current_view`]): an
//! approver's groups never enter it. A request opened before this was recorded says so
//! (`current.recorded: false`) and gets no comparison.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tracegate_core::approval::Actor;
use tracegate_core::view_delta::compare;

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
        let current_role = r.shape.current_view.as_ref().and_then(|c| c.role.as_deref());
        let current_view = current_role.and_then(|n| views["roles"].get(n).cloned()).unwrap_or(serde_json::Value::Null);
        // Compared under the policy in force, like the view itself; a role gone from it counts
        // as no view (the requester is served nothing under it).
        let reveals = match (&r.shape.current_view, state.policy.role(&r.shape.role)) {
            (Some(_), Some(granted)) => Some(compare(current_role.and_then(|n| state.policy.role(n)), granted)),
            _ => None,
        };
        let body = serde_json::json!({
            "access_request": r.id,
            "role": r.shape.role,
            "view": view,
            "current": {
                "recorded": r.shape.current_view.is_some(),
                "role": current_role,
                "view": current_view,
            },
            "reveals": reveals,
            "policy_version": state.policy.version,
            "requested_under": r.shape.policy_version,
        });
        let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
        Ok(Reply::json(StatusCode::OK, bytes))
    }
    .await;
    finish(&state, audit, outcome).await
}
