//! Phase 1, authenticate: a bearer token in, a [`Principal`] out, or 401 — then the caller's
//! request budget is spent (429 when it is used up). The token goes no further than this file.
//! A service account's principal names policy roles; they become the groups that reach exactly
//! those roles here, so everything after sees a principal like any other.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use tracegate_core::{AuthMethod, Principal};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a request, within its rate limit.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let principal = authenticate(&parts.headers, state).await?;
        if let Err(mut e) = state.limits.check_request(&principal).await {
            e.who = Some(Box::new(principal));
            return Err(e);
        }
        Ok(Caller(principal))
    }
}

/// Who the bearer token in `headers` names, without spending any budget: the audit layer uses it
/// to name the caller of a request no handler recorded.
pub(crate) async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Principal, ApiError> {
    let unauthorized = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "missing_token", msg.to_owned());
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or_else(|| unauthorized("an `Authorization: Bearer <token>` header is required"))?;
    if values.next().is_some() {
        return Err(unauthorized("more than one `Authorization` header"));
    }
    let value = value.to_str().map_err(|_| unauthorized("the `Authorization` header is not ASCII"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(unauthorized("the `Authorization` header must use the `Bearer` scheme")),
    };
    let principal = state.auth.authenticate(token).await?;
    if principal.auth_method == AuthMethod::ServiceAccount {
        return super::service_accounts::scope(&state.policy, principal);
    }
    Ok(principal)
}
