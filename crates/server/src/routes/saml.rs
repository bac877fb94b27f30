//! The SAML service provider's routes (`[identity.saml]`; 404 without it):
//! `GET /saml/metadata` (this SP's metadata), `GET /saml/login` (SP-initiated: a 303 to the
//! IdP with a fresh one-time AuthnRequest), and `POST /saml/acs` (HTTP-POST binding: the
//! IdP's response in, a short-lived gateway token or a browser session out). Every one is
//! recorded; the ACS's record names the SAML subject and issuer it signed in.
//!
//! **Token or session.** What the ACS answers is decided when the sign-in starts, never by
//! the POST (whose `RelayState` anyone can write): `GET /saml/login?browser=1` (with
//! `[identity.browser]` configured) records in the pending AuthnRequest the hash of a binding
//! cookie it sets on the browser, and the response to that request starts a session — for that
//! browser only, so an attacker cannot finish their own sign-in in a victim's browser (login
//! CSRF) — and answers 303 to `after_login` with the same session cookie as OIDC sign-in. Every
//! other response (`/saml/login` without `browser=1`, IdP-initiated) gets the token JSON.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use tracegate_identity::browser::{binding_matches, random_token, sha256, SignInError};
use tracegate_identity::saml::{SamlError, ServiceProvider};

use crate::audit::{finish, Audited, Reply};
use crate::error::ApiError;
use crate::state::AppState;

impl From<SamlError> for ApiError {
    fn from(e: SamlError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        ApiError::new(status, e.code(), e.to_string())
    }
}

fn provider(state: &AppState) -> Result<&ServiceProvider, ApiError> {
    state.auth.saml().ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_route", "SAML sign-in is not configured"))
}

pub async fn metadata(State(state): State<Arc<AppState>>, ConnectInfo(client): ConnectInfo<SocketAddr>) -> Response {
    let audit = Audited::begin("GET", "/saml/metadata", None, Some(client));
    let outcome = provider(&state).map(|sp| {
        let mut reply = Reply::json(StatusCode::OK, sp.metadata_xml().into_bytes());
        reply.headers = vec![(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"))];
        reply
    });
    finish(&state, audit, outcome).await
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Response {
    let audit = Audited::begin("GET", "/saml/login", None, Some(client));
    let outcome = begin(&state, query.as_deref()).await;
    finish(&state, audit, outcome).await
}

async fn begin(state: &AppState, query: Option<&str>) -> Result<Reply, ApiError> {
    let sp = provider(state)?;
    let mut for_browser = false;
    for (_, v) in super::query_pairs(query, &["browser"])? {
        for_browser = match v.as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(ApiError::bad_request("bad_request", "`browser` is `1` or `0`")),
        };
    }
    // A browser sign-in: a fresh binding value, its hash kept with the AuthnRequest.
    let binding = match for_browser {
        false => None,
        true => {
            // Browser sessions from SAML need `[identity.browser]`'s cookie settings, never the
            // development sign-in's loopback-only ones.
            let browser = state.browser.as_ref().filter(|b| b.signin.is_some()).ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, "no_route", "browser sign-in is not configured (`[identity.browser]`)")
            })?;
            let value = random_token().map_err(ApiError::from)?;
            Some((browser, value))
        }
    };
    let login = sp.begin_login("", binding.as_ref().map(|(_, v)| sha256(v))).await?;
    let mut reply = Reply::json(StatusCode::SEE_OTHER, Vec::new())
        .header("location", &login.redirect_url)
        .header("cache-control", "no-store");
    if let Some((browser, value)) = &binding {
        reply = reply.header("set-cookie", &browser.saml_binding_header(value, sp.request_ttl().as_secs().max(1)));
    }
    Ok(reply)
}

pub async fn acs(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut audit = Audited::begin("POST", "/saml/acs", None, Some(client));
    let outcome = consume(&state, &mut audit, &headers, body).await;
    finish(&state, audit, outcome).await
}

async fn consume(state: &AppState, audit: &mut Audited, headers: &HeaderMap, body: Body) -> Result<Reply, ApiError> {
    let sp = provider(state)?;
    // Authenticate: the form, capped before it is read (base64 and form-encoding inflate the
    // document: 4/3, then at most 3 bytes per character).
    let limit = sp.config().max_response_bytes;
    let cap = (limit.div_ceil(3) * 4 + 1024) * 3;
    let bytes = axum::body::to_bytes(body, cap)
        .await
        .map_err(|_| ApiError::from(SamlError::TooLarge { limit }))?;
    let mut saml_response = None;
    for (k, v) in form_urlencoded::parse(&bytes) {
        match k.as_ref() {
            "SAMLResponse" if saml_response.is_none() => saml_response = Some(v.into_owned()),
            "SAMLResponse" => return Err(ApiError::bad_request("bad_request", "`SAMLResponse` is given twice")),
            _ => {}
        }
    }
    let saml_response = saml_response.ok_or_else(|| ApiError::bad_request("bad_request", "the form has no `SAMLResponse`"))?;
    let verified = sp.consume(&saml_response).await?;
    let principal = state.auth.saml_principal(&verified);
    audit.principal(state, &principal);
    if let Some(expected) = verified.browser_binding {
        // Started for a browser session: only the browser that started it gets one.
        let browser = state.browser.as_ref().ok_or_else(|| ApiError::from(SignInError::BrowserMismatch))?;
        let sent = super::browser::cookie(headers, &browser.saml_cookie)
            .map_err(|()| ApiError::bad_request("login_browser_mismatch", "the SAML login cookie is sent more than once"))?;
        if !sent.is_some_and(|v| binding_matches(&expected, v)) {
            return Err(SignInError::BrowserMismatch.into());
        }
        let clear = browser.saml_binding_header("", 0);
        return browser.signed_in(principal, Some(&clear)).await;
    }
    // Respond: the gateway token, checked on every later request like any bearer token.
    let token = sp.mint(&verified).map_err(|e| {
        tracing::error!(error = %e, "minting a gateway token failed");
        ApiError::internal("internal", "the gateway token could not be minted")
    })?;
    let body = serde_json::json!({
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_in": token.expires_in,
        "subject": principal.subject,
        "issuer": principal.issuer,
        "groups": principal.groups,
    });
    let bytes = serde_json::to_vec(&body).map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
    Ok(Reply::json(StatusCode::OK, bytes).header("cache-control", "no-store"))
}
