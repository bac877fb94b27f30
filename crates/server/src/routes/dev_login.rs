//! The console's development sign-in: `GET /auth/dev-login` lists the sample identities of
//! `[console] dev_identities`, `POST /auth/dev-login` (a form post from `/console/dev-login`)
//! signs the browser in as one of them, and `GET /auth/methods` tells the console which
//! sign-ins exist. For trying the gateway on one machine: it hands out any listed identity with
//! no password, so it is refused unless every one of these holds —
//!
//! - `[identity.dev]` is configured and not `allow_non_loopback` (checked at start-up: the
//!   gateway then only listens on loopback);
//! - the request comes from a loopback address and names a loopback `Host` (`127.0.0.1`,
//!   `[::1]`, `localhost`): a page on another site that rebinds its DNS name to 127.0.0.1 still
//!   sends its own name in `Host`, and is refused;
//! - the POST carries `Origin: http://<that Host>` or `Sec-Fetch-Site: same-origin` (a browser
//!   sends `Origin: null` under the console's `no-referrer` policy), and no other `Origin` or
//!   `Sec-Fetch-Site`, so another site's page cannot sign a visitor in as someone of its
//!   choosing (login CSRF).
//!
//! The identity is minted as a short-lived dev token and authenticated by the same
//! [`tracegate_identity::Authenticator`] as any bearer token, so the session's principal is
//! exactly what `tracegate token` would give; the session starts through the one seam every
//! interactive sign-in ends in ([`tracegate_identity::sessions::Sessions::start`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tracegate_identity::dev::DevIssuer;

use crate::audit::{finish, Audited, Reply};
use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// One sample identity the development sign-in offers (`[[console.dev_identities]]`).
///
/// ```toml
/// [[console.dev_identities]]
/// subject = "sam"
/// groups = ["support"]
/// claims = { tenant = "acme" }
/// note = "support engineer, tenant acme"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIdentity {
    /// The `sub` of the session's principal.
    pub subject: String,
    /// Its groups (which reach the policy's roles).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra string claims (e.g. `tenant`), as row scope reads them.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// A line for people choosing on the sign-in page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The development sign-in, built at start-up only when it may run (see the module header).
pub struct DevSignIn {
    issuer: DevIssuer,
    identities: Vec<DevIdentity>,
}

impl std::fmt::Debug for DevSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSignIn")
            .field("identities", &self.identities.len())
            .finish_non_exhaustive()
    }
}

/// Lifetime of the token a sign-in mints: it is authenticated at once and never leaves.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// Largest sign-in form read.
const MAX_FORM: usize = 4 * 1024;

impl DevSignIn {
    /// `None` without `[console] dev_identities`; an error when they are listed but the
    /// development issuer is absent or allowed beyond loopback — never a sign-in that is on
    /// where it must not be.
    pub fn from_config(cfg: &GatewayConfig) -> Result<Option<DevSignIn>, String> {
        let identities = &cfg.console.dev_identities;
        if identities.is_empty() {
            return Ok(None);
        }
        let Some(dev) = &cfg.identity.dev else {
            return Err(
                "`[console] dev_identities` needs the development issuer `[identity.dev]`".into(),
            );
        };
        if dev.allow_non_loopback {
            return Err("the development sign-in (`[console] dev_identities`) is refused with \
                `[identity.dev] allow_non_loopback`: it hands out identities without a password, so it \
                runs only on a gateway that listens on loopback"
                .into());
        }
        for (i, who) in identities.iter().enumerate() {
            if who.subject.trim().is_empty() {
                return Err(format!(
                    "`console.dev_identities[{i}].subject` must not be empty"
                ));
            }
            if identities[..i].iter().any(|o| o.subject == who.subject) {
                return Err(format!(
                    "`console.dev_identities`: subject `{}` is listed twice",
                    who.subject
                ));
            }
        }
        let issuer = DevIssuer::load(dev, &cfg.base_dir)
            .map_err(|e| e.to_string())?
            .with_groups_claim(&cfg.identity.groups_claim);
        Ok(Some(DevSignIn {
            issuer,
            identities: identities.clone(),
        }))
    }
}

/// `http://<Host>` when the request's `Host` is a loopback name or address, else `None`.
pub fn loopback_origin(headers: &HeaderMap) -> Option<String> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next()?.to_str().ok()?;
    if hosts.next().is_some() {
        return None;
    }
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| format!("http://{host}"))
}

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "the development sign-in is not configured",
    )
}

/// The development sign-in, if this request may use it: configured, from loopback, to a
/// loopback `Host`. Returns it with the origin the request's page must have.
fn usable<'a>(
    state: &'a AppState,
    client: SocketAddr,
    headers: &HeaderMap,
) -> Result<(&'a DevSignIn, String), ApiError> {
    let dev = state
        .browser
        .as_ref()
        .and_then(|b| b.dev.as_ref())
        .ok_or_else(disabled)?;
    let refuse =
        |msg: &str| ApiError::new(StatusCode::FORBIDDEN, "dev_sign_in_refused", msg.to_owned());
    if !client.ip().is_loopback() {
        return Err(refuse(
            "the development sign-in answers loopback clients only",
        ));
    }
    let origin = loopback_origin(headers).ok_or_else(|| {
        refuse(
            "the development sign-in answers only a loopback `Host` (127.0.0.1, [::1], localhost)",
        )
    })?;
    Ok((dev, origin))
}

/// `GET /auth/methods`: which sign-ins this gateway offers a browser.
pub async fn methods(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Response {
    let audit = Audited::begin("GET", "/auth/methods", None, Some(client));
    let b = state.browser.as_ref();
    let body = serde_json::json!({
        "browser": b.is_some_and(|b| b.signin.is_some()),
        "dev": b.is_some_and(|b| b.dev.is_some()),
    });
    let outcome = serde_json::to_vec(&body)
        .map(|bytes| Reply::json(StatusCode::OK, bytes))
        .map_err(|_| ApiError::internal("internal", "serialising the response failed"));
    finish(&state, audit, outcome).await
}

/// `GET /auth/dev-login`: the sample identities (what the sign-in page lists).
pub async fn identities(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let audit = Audited::begin("GET", "/auth/dev-login", None, Some(client));
    let outcome = usable(&state, client, &headers).and_then(|(dev, _)| {
        let bytes = serde_json::to_vec(&serde_json::json!({ "identities": dev.identities }))
            .map_err(|_| ApiError::internal("internal", "serialising the response failed"))?;
        Ok(Reply::json(StatusCode::OK, bytes).header("cache-control", "no-store"))
    });
    finish(&state, audit, outcome).await
}

/// `POST /auth/dev-login` with the form field `subject`: a session for that sample identity;
/// 303 to `after_login` (the console, unless `[identity.browser]` names another page).
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut audit = Audited::begin("POST", "/auth/dev-login", None, Some(client));
    let outcome = start(&state, &mut audit, client, &headers, body).await;
    finish(&state, audit, outcome).await
}

async fn start(
    state: &AppState,
    audit: &mut Audited,
    client: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Reply, ApiError> {
    let (dev, origin) = usable(state, client, headers)?;
    // Login CSRF: the form must come from this gateway's own page. The console's pages are
    // served `Referrer-Policy: no-referrer`, under which a browser's form POST says `Origin:
    // null`; `Sec-Fetch-Site: same-origin` (set by the browser, never by a page) then vouches
    // for it. Another site's form says `cross-site` or its own origin, and is refused.
    let csrf = |msg: &str| ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", msg.to_owned());
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let sent = match (origins.next(), origins.next()) {
        (_, Some(_)) => return Err(csrf("more than one `Origin` header")),
        (o, None) => o.map(|o| o.as_bytes()),
    };
    let site = headers.get("sec-fetch-site").map(|s| s.as_bytes());
    if site.is_some_and(|s| s != b"same-origin") {
        return Err(csrf("the sign-in form comes from another site"));
    }
    match sent {
        Some(o) if o == origin.as_bytes() => {}
        Some(b"null") | None if site == Some(b"same-origin") => {}
        Some(b"null") | None => {
            return Err(csrf(
                "the sign-in form must be posted from the gateway's own page",
            ))
        }
        Some(_) => return Err(csrf("the sign-in form comes from another origin")),
    }
    let form = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the sign-in form is at most {MAX_FORM} bytes"),
        )
    })?;
    let mut subject = None;
    for (k, v) in form_urlencoded::parse(&form) {
        if k != "subject" {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown form field `{k}` (expected `subject`)"),
            ));
        }
        if subject.replace(v.into_owned()).is_some() {
            return Err(ApiError::bad_request(
                "bad_request",
                "`subject` is given twice",
            ));
        }
    }
    let subject = subject.ok_or_else(|| {
        ApiError::bad_request("bad_request", "the form field `subject` is required")
    })?;
    let who = dev
        .identities
        .iter()
        .find(|i| i.subject == subject)
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_identity",
                format!("`{subject}` is not one of the sample identities"),
            )
        })?;
    let claims = who
        .claims
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let token = dev
        .issuer
        .mint(&who.subject, &who.groups, claims, TOKEN_TTL)
        .map_err(|e| ApiError::internal("internal", e.to_string()))?;
    let principal = state.auth.authenticate(&token).await?;
    audit.principal(state, &principal);
    let browser = state.browser.as_ref().ok_or_else(disabled)?;
    browser.signed_in(principal, None).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, h.parse().unwrap());
        m
    }

    #[test]
    fn only_loopback_hosts_have_a_loopback_origin() {
        for (h, o) in [
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("127.1.2.3:1", "http://127.1.2.3:1"),
            ("[::1]:9", "http://[::1]:9"),
            ("localhost:8080", "http://localhost:8080"),
            ("LOCALHOST", "http://LOCALHOST"),
        ] {
            assert_eq!(loopback_origin(&host(h)).as_deref(), Some(o), "{h}");
        }
        for h in [
            "evil.example:8080",
            "10.0.0.1:80",
            "[::2]:80",
            "localhost.evil.example",
            "127.0.0.1.evil.example:80",
            "[::1",
        ] {
            assert_eq!(loopback_origin(&host(h)), None, "{h}");
        }
        assert_eq!(loopback_origin(&HeaderMap::new()), None);
        let mut two = host("127.0.0.1:1");
        two.append(header::HOST, "127.0.0.1:2".parse().unwrap());
        assert_eq!(loopback_origin(&two), None);
    }
}
