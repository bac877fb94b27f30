//! Phase 1, authenticate: a bearer token or a browser session cookie in, a [`Principal`] out,
//! or 401 — then the caller's request budget is spent (429 when it is used up). The token goes
//! no further than this file.
//! A service account's principal names policy roles; they become the groups that reach exactly
//! those roles here, so everything after sees a principal like any other.
//!
//! A session cookie is just another way to the same principal: same limits, same rules, same
//! audit record (with `credential: session`). Two things differ, both because a browser sends a
//! cookie on its own: every state-changing request (anything but `GET`/`HEAD`/`OPTIONS`) made
//! with a cookie must carry the session's `X-CSRF-Token`, and must not come from another site
//! (`Origin`, when sent, is the gateway's own; `Sec-Fetch-Site`, when sent, is `same-origin`).
//! And any request to the API (`/v1/…`, every method, `GET` included) made with a cookie and
//! `Sec-Fetch-Site: cross-site` is refused (403 `cross_site_request`): `SameSite=Lax` still sends
//! the cookie on a top-level cross-site `GET` navigation, so without this a link an attacker gets
//! a signed-in approver to click could open an access request in their name or spend their
//! one-time grant (the attacker never sees the body, but the side effect happens). Only `/v1`
//! is covered, so the console's HTML stays reachable from a link; and a `GET` of `after_login`
//! itself is exempt, because the browser arrives there at the end of a redirect chain through
//! the IdP, which makes it `cross-site` too (the default, `/v1/whoami`, only reads). A request without `Sec-Fetch-Site` (browsers before 2020–2023, curl,
//! SDKs) keeps the rules above: the header cannot be forged by a page, only omitted by an old
//! browser, and refusing its absence would lock out every non-browser cookie client.
//! A request with both an `Authorization` header and the session cookie is refused (400
//! `ambiguous_credentials`) rather than one silently winning: the two may name different
//! principals, and whichever one the gateway chose, the caller or the audit trail could be
//! reading it the other way.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use tracegate_core::{AuthMethod, Principal};

use crate::error::ApiError;
use crate::state::AppState;

/// The header a cookie-authenticated state change must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller of a request, within its rate limit.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (principal, csrf) = identify(&parts.headers, state).await?;
        if let Some(expected) = csrf {
            let checked = check_cross_site(&parts.method, parts.uri.path(), &parts.headers, state)
                .and_then(|()| check_csrf(&parts.method, &parts.headers, state, &expected));
            if let Err(mut e) = checked {
                e.who = Some(Box::new(principal));
                return Err(e);
            }
        }
        if let Err(mut e) = state.limits.check_request(&principal).await {
            e.who = Some(Box::new(principal));
            return Err(e);
        }
        Ok(Caller(principal))
    }
}

/// Who the credential in `headers` names, without spending any budget: the audit layer uses it
/// to name the caller of a request no handler recorded.
pub(crate) async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Principal, ApiError> {
    identify(headers, state).await.map(|(p, _)| p)
}

/// The caller, and the session's CSRF token when the credential was a session cookie.
async fn identify(headers: &HeaderMap, state: &AppState) -> Result<(Principal, Option<String>), ApiError> {
    let unauthorized = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "missing_token", msg.to_owned());
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let bearer = values.next();
    let session = match &state.browser {
        Some(b) => super::browser::cookie(headers, &b.cookie)
            .map_err(|()| ApiError::bad_request("ambiguous_credentials", "the session cookie is sent more than once"))?
            .map(|id| (b, id)),
        None => None,
    };
    let value = match (bearer, session) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "ambiguous_credentials",
                "both an `Authorization` header and a session cookie were sent; send one",
            ))
        }
        (None, Some((browser, id))) => {
            let active = browser.sessions.authenticate(id).await?;
            return Ok((active.principal, Some(active.csrf_token)));
        }
        (Some(v), None) => v,
        (None, None) => {
            return Err(unauthorized("an `Authorization: Bearer <token>` header (or a browser session) is required"))
        }
    };
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
        return super::service_accounts::scope(&state.policy, principal).map(|p| (p, None));
    }
    Ok((principal, None))
}

/// The cross-site rule for an API request made with a session cookie (see the module header).
fn check_cross_site(method: &Method, path: &str, headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    let landing = matches!(*method, Method::GET | Method::HEAD)
        && state.browser.as_ref().is_some_and(|b| b.after_login.split('?').next() == Some(path));
    let api = (path == "/v1" || path.starts_with("/v1/")) && !landing;
    let cross_site = headers.get_all("sec-fetch-site").iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if api && cross_site {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "an API request made with a session cookie must not come from another site",
        ));
    }
    Ok(())
}

/// The CSRF rule for a request made with a session cookie (see the module header).
fn check_csrf(method: &Method, headers: &HeaderMap, state: &AppState, expected: &str) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refuse = |msg: &str| ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", msg.to_owned());
    let origin = state.browser.as_ref().and_then(|b| b.expected_origin(headers)).unwrap_or_default();
    if let Some(sent) = headers.get(header::ORIGIN) {
        if sent.as_bytes() != origin.as_bytes() {
            return Err(refuse("the request comes from another origin"));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return Err(refuse("the request comes from another site"));
        }
    }
    let mut tokens = headers.get_all(CSRF_HEADER).iter();
    let token = tokens.next().ok_or_else(|| refuse("a state change made with a session cookie needs the `X-CSRF-Token` header"))?;
    if tokens.next().is_some() || !tracegate_identity::sessions::csrf_matches(expected, token.as_bytes()) {
        return Err(refuse("the `X-CSRF-Token` header does not match the session"));
    }
    Ok(())
}
