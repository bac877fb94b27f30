//! Browser sign-in routes and the session cookie: `GET /auth/login` (starts the OIDC code flow),
//! `GET /auth/callback` (finishes it and starts a session), `POST /auth/logout` (CSRF-checked;
//! ends the session server side). Each is recorded like every other request; the callback's
//! record names who signed in.
//!
//! The cookies: the session cookie (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless the
//! gateway is tried out on plain-http loopback, `Max-Age` = the session lifetime), and a
//! short-lived login cookie that binds a started sign-in to the browser that started it
//! (`Path=/auth/callback`, removed by the callback). `SameSite=Lax` is what lets both come back
//! on the top-level redirect from the identity provider while staying off cross-site
//! subrequests and form POSTs; the CSRF check in [`super::authenticate`] covers the rest.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use tracegate_identity::browser::{BrowserSignIn, Callback, MemorySignIns, SignInError, SignInStore};
use tracegate_identity::sessions::{MemoryStore, SessionError, SessionStore, Sessions};
use tracegate_identity::{Authenticator, IdentityConfig};

use super::Caller;
use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

/// Browser sign-in and its sessions, when `[identity.browser]` or the console's development
/// sign-in (`[console] dev_identities`, see [`super::dev_login`]) is configured.
#[derive(Debug)]
pub struct Browser {
    /// The OIDC code flow; `None` when only the development sign-in starts sessions.
    pub signin: Option<BrowserSignIn>,
    pub sessions: Sessions,
    /// The session cookie's name.
    pub cookie: String,
    /// The login-binding cookie's name.
    pub login_cookie: String,
    /// The SAML sign-in's binding cookie's name (`/saml/login?browser=1` to `/saml/acs`).
    pub saml_cookie: String,
    pub secure: bool,
    /// The gateway's own origin, as browsers send it in `Origin`. `None` with the development
    /// sign-in alone: the gateway then only answers on loopback, and its origin is the loopback
    /// `Host` the request names ([`super::dev_login::loopback_origin`]).
    pub origin: Option<String>,
    /// Where a signed-in browser is sent: `[identity.browser] after_login`, or the console
    /// when only the development sign-in starts sessions.
    pub after_login: String,
    /// The development sign-in, when configured.
    pub dev: Option<super::dev_login::DevSignIn>,
}

/// Session lifetime and idle timeout when only the development sign-in starts sessions.
const DEV_SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(8 * 3600);
const DEV_SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// Where the development sign-in alone sends a signed-in browser.
const DEV_AFTER_LOGIN: &str = "/console/";

impl Browser {
    /// `None` with neither `[identity.browser]` nor a development sign-in. Sessions and pending
    /// sign-ins are in the shared database with `[state]` (`db`), so any replica serves any
    /// step; in this process without. The development sign-in alone makes the same choice.
    pub fn from_config(
        cfg: &IdentityConfig,
        auth: &Authenticator,
        base_dir: &std::path::Path,
        db: Option<&tracegate_state::PgPool>,
        dev: Option<super::dev_login::DevSignIn>,
    ) -> Result<Option<Browser>, String> {
        let (pending, store): (Arc<dyn SignInStore>, Arc<dyn SessionStore>) = match db {
            Some(pool) => (
                Arc::new(tracegate_state::sessions::PgSignIns::new(pool.clone())),
                Arc::new(tracegate_state::sessions::PgSessions::new(pool.clone())),
            ),
            None => (Arc::new(MemorySignIns::default()), Arc::new(MemoryStore::default())),
        };
        let Some(b) = &cfg.browser else {
            return Ok(dev.map(|dev| Browser {
                signin: None,
                sessions: Sessions::new(store, DEV_SESSION_LIFETIME, DEV_SESSION_IDLE),
                cookie: "tracegate_session".into(),
                login_cookie: "tracegate_session_login".into(),
                saml_cookie: "tracegate_session_saml".into(),
                secure: false,
                origin: None,
                after_login: DEV_AFTER_LOGIN.into(),
                dev: Some(dev),
            }));
        };
        let signin = BrowserSignIn::new(b, auth.clone(), base_dir, pending).map_err(|e| e.to_string())?;
        let sessions = Sessions::new(store, b.session_lifetime, b.idle_timeout);
        Ok(Some(Browser {
            signin: Some(signin),
            sessions,
            cookie: b.cookie_name.clone(),
            login_cookie: format!("{}_login", b.cookie_name.trim_start_matches("__Host-")),
            saml_cookie: format!("{}_saml", b.cookie_name.trim_start_matches("__Host-")),
            secure: b.secure(),
            origin: Some(b.origin()),
            after_login: b.after_login.clone(),
            dev,
        }))
    }

    /// The origin a same-site request to this gateway carries (see [`Browser::origin`]).
    pub(crate) fn expected_origin(&self, headers: &HeaderMap) -> Option<String> {
        self.origin.clone().or_else(|| super::dev_login::loopback_origin(headers))
    }

    /// A `Set-Cookie` value. Cookie values here are base64url tokens: nothing to escape.
    pub(crate) fn cookie_header(&self, name: &str, value: &str, path: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
    }

    /// The SAML sign-in's binding cookie. The IdP returns the browser with a cross-site form
    /// POST, on which `SameSite=Lax` cookies are not sent, so this one is `SameSite=None`
    /// (which browsers accept only with `Secure`). On a plain-http loopback try-out it stays
    /// `Lax`: that works when the IdP is on the same site (e.g. also on localhost).
    pub(crate) fn saml_binding_header(&self, value: &str, max_age: u64) -> String {
        let name = &self.saml_cookie;
        if self.secure {
            format!("{name}={value}; Path=/saml/acs; Max-Age={max_age}; HttpOnly; SameSite=None; Secure")
        } else {
            format!("{name}={value}; Path=/saml/acs; Max-Age={max_age}; HttpOnly; SameSite=Lax")
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, if exactly one is sent (two
/// cookies of one name — e.g. one planted by a sibling subdomain — are refused as ambiguous by
/// the caller's lookup failing).
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut found = None;
    for v in headers.get_all(header::COOKIE) {
        let Ok(text) = v.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=') {
                if k == name {
                    if found.is_some() {
                        return Err(());
                    }
                    found = Some(val.trim_matches('"'));
                }
            }
        }
    }
    Ok(found)
}

/// The CSRF token of the session the request's cookie names (`None` without one).
pub(crate) async fn session_csrf(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let browser = state.browser.as_ref()?;
    let id = cookie(headers, &browser.cookie).ok().flatten()?;
    browser.sessions.authenticate(id).await.ok().map(|a| a.csrf_token)
}

fn not_configured() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "browser sign-in is not configured")
}

/// `GET /auth/login`: a fresh sign-in; 303 to the issuer's authorization endpoint.
pub async fn login(State(state): State<Arc<AppState>>, ConnectInfo(client): ConnectInfo<SocketAddr>) -> Response {
    let audit = Audited::begin("GET", "/auth/login", None, Some(client));
    let outcome = start(&state).await;
    finish(&state, audit, outcome).await
}

async fn start(state: &AppState) -> Result<Reply, ApiError> {
    let browser = state.browser.as_ref().ok_or_else(not_configured)?;
    let signin = browser.signin.as_ref().ok_or_else(not_configured)?;
    let begun = signin.begin().await?;
    let max_age = signin.config().login_timeout.as_secs().max(1);
    let binding = browser.cookie_header(&browser.login_cookie, &begun.binding, "/auth/callback", max_age);
    Ok(Reply::json(StatusCode::SEE_OTHER, b"{}".to_vec())
        .header("location", &begun.location)
        .header("set-cookie", &binding)
        .header("cache-control", "no-store"))
}

/// `GET /auth/callback`: the issuer's redirect back; on success a session starts and the browser
/// goes on to `after_login`.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut audit = Audited::begin("GET", "/auth/callback", None, Some(client));
    let outcome = complete(&state, &mut audit, query.as_deref(), &headers).await;
    finish(&state, audit, outcome).await
}

async fn complete(state: &AppState, audit: &mut Audited, query: Option<&str>, headers: &HeaderMap) -> Result<Reply, ApiError> {
    let browser = state.browser.as_ref().ok_or_else(not_configured)?;
    let signin = browser.signin.as_ref().ok_or_else(not_configured)?;
    let mut cb = Callback::default();
    let allowed = ["code", "state", "iss", "error", "error_description", "error_uri", "session_state"];
    for (k, v) in super::query_pairs(query, &allowed)? {
        let slot = match k.as_str() {
            "code" => &mut cb.code,
            "state" => &mut cb.state,
            "iss" => &mut cb.iss,
            "error" => &mut cb.error,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(ApiError::bad_request("bad_request", format!("`{k}` is given twice")));
        }
    }
    let binding = cookie(headers, &browser.login_cookie).map_err(|()| {
        ApiError::bad_request("login_browser_mismatch", "the login cookie is sent more than once")
    })?;
    let principal = signin.complete(&cb, binding).await?;
    // The principal is recorded as it signed in, before the session exists: a session that
    // could not be stored still leaves the sign-in on the trail.
    audit.principal(state, &principal);
    let clear = browser.cookie_header(&browser.login_cookie, "", "/auth/callback", 0);
    browser.signed_in(principal, Some(&clear)).await
}

impl Browser {
    /// The end of every interactive sign-in (OIDC callback, SAML ACS, development sign-in): a
    /// session for `principal`, its cookie, and a 303 to `after_login`. `clear` removes the
    /// sign-in's own binding cookie, if it has one.
    pub(crate) async fn signed_in(&self, principal: tracegate_core::Principal, clear: Option<&str>) -> Result<Reply, ApiError> {
        let started = self.sessions.start(principal).await?;
        let session = self.cookie_header(&self.cookie, &started.id, "/", started.max_age_secs);
        let reply = Reply::json(StatusCode::SEE_OTHER, b"{}".to_vec())
            .header("location", &self.after_login)
            .header("set-cookie", &session)
            .header("cache-control", "no-store");
        Ok(match clear {
            Some(clear) => reply.header("set-cookie", clear),
            None => reply,
        })
    }
}

/// `POST /auth/logout`: ends the caller's session (CSRF-checked like every state change made
/// with a cookie) and clears the cookie. A bearer caller has no session to end: 400.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
) -> Response {
    let mut audit = Audited::begin("POST", "/auth/logout", None, Some(client));
    let outcome = end(&state, &mut audit, &headers, caller).await;
    finish(&state, audit, outcome).await
}

async fn end(state: &AppState, audit: &mut Audited, headers: &HeaderMap, caller: Result<Caller, ApiError>) -> Result<Reply, ApiError> {
    let browser = state.browser.as_ref().ok_or_else(not_configured)?;
    let Caller(who) = caller?;
    audit.principal(state, &who);
    let id = match cookie(headers, &browser.cookie) {
        Ok(Some(id)) if who.credential == tracegate_core::Credential::Session => id,
        _ => return Err(ApiError::bad_request("not_a_session", "only a browser session can sign out; revoke tokens at the IdP")),
    };
    browser.sessions.revoke(id).await?;
    let clear = browser.cookie_header(&browser.cookie, "", "/", 0);
    Ok(Reply::json(StatusCode::OK, br#"{"signed_out":true}"#.to_vec()).header("set-cookie", &clear))
}
