//! The SAML service provider's routes (`[identity.saml]`; 404 without it):
//! `GET /saml/metadata` (this SP's metadata), `GET /saml/login` (SP-initiated: a 303 to the
//! IdP with a fresh one-time AuthnRequest), and `POST /saml/acs` (HTTP-POST binding: the
//! IdP's response in, a short-lived gateway token out). Every one is recorded; the ACS's
//! record names the SAML subject and issuer it signed in.
//!
//! The ACS answers with a bearer token rather than a cookie: browser sessions are a separate
//! layer that takes the same [`tracegate_identity::saml::Verified`] (through
//! `Authenticator::saml_principal`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
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

pub async fn login(State(state): State<Arc<AppState>>, ConnectInfo(client): ConnectInfo<SocketAddr>) -> Response {
    let audit = Audited::begin("GET", "/saml/login", None, Some(client));
    let outcome = (|| {
        let login = provider(&state)?.begin_login("")?;
        let location = HeaderValue::from_str(&login.redirect_url)
            .map_err(|_| ApiError::internal("internal", "the IdP redirect is not a valid header"))?;
        let mut reply = Reply::json(StatusCode::SEE_OTHER, Vec::new());
        reply.headers = vec![(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
        Ok(reply)
    })();
    finish(&state, audit, outcome).await
}

pub async fn acs(State(state): State<Arc<AppState>>, ConnectInfo(client): ConnectInfo<SocketAddr>, body: Body) -> Response {
    let mut audit = Audited::begin("POST", "/saml/acs", None, Some(client));
    let outcome = consume(&state, &mut audit, body).await;
    finish(&state, audit, outcome).await
}

async fn consume(state: &AppState, audit: &mut Audited, body: Body) -> Result<Reply, ApiError> {
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
    let verified = sp.consume(&saml_response)?;
    let principal = state.auth.saml_principal(&verified);
    audit.principal(state, &principal);
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
