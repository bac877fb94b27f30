//! Browser sign-in: the OpenID Connect authorization code flow with PKCE (RFC 7636, `S256`)
//! against one configured `[[identity.oidc]]` issuer, for people in a browser.
//!
//! [`BrowserSignIn::begin`] makes a fresh `state`, `nonce` and PKCE verifier, keeps them server
//! side (in a [`SignInStore`], keyed by a hash of `state`, for `login_timeout`) together with the hash of a
//! random *binding* value that the gateway sets as a short-lived cookie, and returns the URL of
//! the issuer's authorization endpoint (from its discovery document). [`BrowserSignIn::complete`]
//! takes the callback's parameters and the binding cookie: the `state` must name a pending
//! sign-in (it is consumed, so a replayed callback finds nothing), started by this same browser
//! (the binding matches: a victim cannot be made to finish an attacker's sign-in), not older than
//! `login_timeout`, and an `iss` parameter, when present, must be the issuer (RFC 9207 mix-up
//! defence). The code is exchanged at the token endpoint with the verifier and HTTP basic client
//! authentication, and the ID token is checked by [`Authenticator::verify_id_token`] — the same
//! key machinery and group mapping as bearer tokens, plus nonce, `azp` and `at_hash`.
//!
//! What comes out is a [`Principal`]; starting a session for it is the caller's business (see
//! [`crate::sessions`]), so another sign-in (SAML) can end in the same session code.
//!
//! Pending sign-ins live in this process ([`MemorySignIns`]) in the embedded default; with
//! `[state]` they are in PostgreSQL (`tracegate-state`), so the callback may reach any replica,
//! and a `state` is still consumed exactly once across all of them. The client secret is read once at start-up and never appears in a response, a log
//! line or a `Debug` output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tracegate_core::Principal;

use crate::config::{check_idp_url, duration_text, is_loopback, OidcIssuerConfig};
use crate::error::{AuthError, IdentityError};
use crate::Authenticator;

/// At most this many sign-ins may be pending at once: a flood of `/auth/login` requests costs
/// bounded memory (and is refused with 503 past it) instead of exhausting the gateway.
pub const MAX_PENDING: usize = 10_000;
/// Largest token-endpoint answer read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;

/// `[identity.browser]`: browser sign-in through an OIDC issuer.
///
/// ```toml
/// [identity.browser]
/// issuer = "https://idp.example.com/realms/main"   # one of the [[identity.oidc]] issuers
/// client_id = "tracegate-console"
/// client_secret_file = "/run/secrets/tracegate-oidc-client"   # or client_secret_env
/// redirect_url = "https://tracegate.example.com/auth/callback"
/// session_lifetime = "8h"
/// idle_timeout = "30m"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserConfig {
    /// The issuer people sign in with: must be one of the `[[identity.oidc]]` issuers, whose
    /// discovery document names the authorization and token endpoints and whose keys verify the
    /// ID tokens.
    pub issuer: String,
    /// The gateway's client id at the issuer (a confidential client with the
    /// `authorization_code` grant). ID tokens must name it in `aud`.
    pub client_id: String,
    /// A file holding the client secret (surrounding whitespace is trimmed). Relative to the
    /// config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret; takes precedence over
    /// `client_secret_file`. One of the two is required; the secret never goes in this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// The gateway's callback as the browser reaches it, registered at the issuer:
    /// `https://<gateway>/auth/callback` (plain `http` only on a loopback address).
    pub redirect_url: String,
    /// Scopes asked for; must include `openid`. Default `["openid"]`; add what the issuer needs
    /// to put the groups claim in the ID token (e.g. `groups`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// A session's absolute lifetime from sign-in (default `"8h"`): past it, sign in again.
    #[serde(default = "default_lifetime", with = "duration_text")]
    pub session_lifetime: Duration,
    /// A session unused for this long ends (default `"30m"`, at most `session_lifetime`).
    #[serde(default = "default_idle", with = "duration_text")]
    pub idle_timeout: Duration,
    /// How long a started sign-in may take before its callback is refused (default `"10m"`).
    #[serde(default = "default_login_timeout", with = "duration_text")]
    pub login_timeout: Duration,
    /// The session cookie's name (default `tracegate_session`). With `Secure` cookies,
    /// `__Host-tracegate_session` additionally pins the cookie to this exact host.
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// Mark cookies `Secure` (sent over https only). Default: true, unless `redirect_url` is
    /// plain http on a loopback address (a local try-out), where it cannot be true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_cookie: Option<bool>,
    /// Where the browser is sent after signing in (a path on the gateway; default
    /// `/v1/whoami`).
    #[serde(default = "default_after_login")]
    pub after_login: String,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}
fn default_lifetime() -> Duration {
    Duration::from_secs(8 * 3600)
}
fn default_idle() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_login_timeout() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_cookie_name() -> String {
    "tracegate_session".into()
}
fn default_after_login() -> String {
    "/v1/whoami".into()
}

impl BrowserConfig {
    /// Checks what the types cannot; `oidc` are the configured issuers.
    pub(crate) fn validate(&self, oidc: &[OidcIssuerConfig]) -> Result<(), IdentityError> {
        let bad = |f: &str, reason: String| Err(IdentityError::Config { field: format!("identity.browser.{f}"), reason });
        if !oidc.iter().any(|o| o.issuer == self.issuer) {
            return bad("issuer", format!("`{}` is not one of the `[[identity.oidc]]` issuers", self.issuer));
        }
        if self.client_id.trim().is_empty() {
            return bad("client_id", "must not be empty".into());
        }
        if self.client_secret_env.is_none() && self.client_secret_file.is_none() {
            return bad("client_secret_file", "give `client_secret_file` or `client_secret_env`".into());
        }
        let redirect = match check_idp_url(&self.redirect_url) {
            Ok(u) => u,
            Err(reason) => return bad("redirect_url", reason),
        };
        if redirect.path() != "/auth/callback" {
            return bad("redirect_url", "must end in the gateway's callback path `/auth/callback`".into());
        }
        if self.secure_cookie == Some(true) && redirect.scheme() == "http" {
            return bad("secure_cookie", "a `Secure` cookie is never sent back over a plain http `redirect_url`".into());
        }
        if self.secure_cookie == Some(false) && !(redirect.scheme() == "http" && is_loopback(&redirect)) {
            return bad("secure_cookie", "may be false only for a plain http loopback `redirect_url`".into());
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return bad("scopes", "must include `openid`".into());
        }
        if self.scopes.iter().any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')) {
            return bad("scopes", "scope names are non-empty printable ASCII without spaces".into());
        }
        if self.session_lifetime.is_zero() || self.session_lifetime > Duration::from_secs(30 * 24 * 3600) {
            return bad("session_lifetime", "must be between 1s and 30d".into());
        }
        if self.idle_timeout.is_zero() || self.idle_timeout > self.session_lifetime {
            return bad("idle_timeout", "must be positive and at most `session_lifetime`".into());
        }
        if self.login_timeout.is_zero() || self.login_timeout > Duration::from_secs(3600) {
            return bad("login_timeout", "must be between 1s and 1h".into());
        }
        let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if self.cookie_name.is_empty() || !self.cookie_name.bytes().all(token_char) {
            return bad("cookie_name", "must be a cookie name token (letters, digits, `-`, `_`, ...)".into());
        }
        if self.cookie_name.starts_with("__Host-") && !self.secure() {
            return bad("cookie_name", "a `__Host-` cookie must be `Secure`".into());
        }
        if !self.after_login.starts_with('/') || self.after_login.starts_with("//") || self.after_login.contains('\\') {
            return bad("after_login", "must be a path on the gateway, such as `/console/`".into());
        }
        Ok(())
    }

    /// Whether cookies are marked `Secure` (see `secure_cookie`).
    pub fn secure(&self) -> bool {
        self.secure_cookie.unwrap_or_else(|| {
            check_idp_url(&self.redirect_url).map_or(true, |u| !(u.scheme() == "http" && is_loopback(&u)))
        })
    }

    /// The origin browsers send in `Origin` for requests from the gateway's own pages
    /// (`https://tracegate.example.com`), from `redirect_url`.
    pub fn origin(&self) -> String {
        match reqwest::Url::parse(&self.redirect_url) {
            Ok(u) => u.origin().ascii_serialization(),
            Err(_) => String::new(),
        }
    }
}

/// The client secret: kept out of `Debug` and never serialised.
struct ClientSecret(String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// A sign-in started and not yet finished, as kept server side (keyed by SHA-256 of `state`).
/// The nonce and PKCE verifier are secrets of the sign-in: a shared store keeps them only until
/// the callback (or `expires`).
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub nonce: String,
    pub verifier: String,
    /// SHA-256 of the binding cookie's value.
    pub binding: [u8; 32],
    /// `started + login_timeout`: the callback is refused from then on.
    pub expires: SystemTime,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn").field("expires", &self.expires).finish_non_exhaustive()
    }
}

/// Where pending sign-ins are kept. Both calls are atomic across every gateway sharing the
/// store: a `state` is taken at most once.
#[async_trait]
pub trait SignInStore: Send + Sync {
    /// Adds a pending sign-in; `Ok(false)` when too many are pending.
    async fn insert(&self, key: [u8; 32], pending: PendingSignIn) -> Result<bool, SignInError>;
    /// Removes and returns the sign-in `key` names, if any (expired or not: the caller says why
    /// it is refused).
    async fn take(&self, key: &[u8; 32]) -> Result<Option<PendingSignIn>, SignInError>;
}

/// The embedded store: pending sign-ins in this process, at most [`MAX_PENDING`].
#[derive(Debug, Default)]
pub struct MemorySignIns {
    pending: Mutex<HashMap<[u8; 32], PendingSignIn>>,
}

#[async_trait]
impl SignInStore for MemorySignIns {
    async fn insert(&self, key: [u8; 32], pending: PendingSignIn) -> Result<bool, SignInError> {
        let mut map = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_PENDING {
            let now = SystemTime::now();
            map.retain(|_, p| p.expires > now);
        }
        if map.len() >= MAX_PENDING {
            return Ok(false);
        }
        map.insert(key, pending);
        Ok(true)
    }

    async fn take(&self, key: &[u8; 32]) -> Result<Option<PendingSignIn>, SignInError> {
        Ok(self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key))
    }
}

/// What [`BrowserSignIn::begin`] hands the HTTP edge.
#[derive(Debug)]
pub struct LoginStart {
    /// The authorization request: where to redirect the browser.
    pub location: String,
    /// The value of the short-lived binding cookie to set on the browser.
    pub binding: String,
}

/// The parameters of a callback (`/auth/callback?...`), as received.
#[derive(Debug, Default, Clone)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

/// Why a sign-in was refused. Messages never carry the client secret, the code or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    #[error("the callback has no `state`")]
    MissingState,
    /// Unknown, already used (a replayed callback), or from another gateway process.
    #[error("the callback's `state` names no pending sign-in (unknown, already used, or expired)")]
    UnknownState,
    #[error("the sign-in took longer than the login timeout; start again")]
    LoginTimedOut,
    /// The binding cookie is missing or belongs to another browser's sign-in.
    #[error("this sign-in was not started by this browser")]
    BrowserMismatch,
    #[error("the callback has no `code`")]
    MissingCode,
    #[error("the callback's `iss` is not the configured issuer")]
    WrongIssuer,
    /// The issuer answered the authorization request with an error (`error=`), e.g. the person
    /// declined.
    #[error("the identity provider refused the sign-in: `{0}`")]
    Refused(String),
    /// The token endpoint refused the code (used before, expired, or the PKCE verifier does not
    /// match its challenge).
    #[error("the identity provider refused the code exchange: `{0}`")]
    CodeRejected(String),
    #[error("the identity provider's token endpoint cannot be reached or answered nonsense")]
    TokenEndpoint,
    #[error("too many sign-ins are in progress; try again shortly")]
    Busy,
    /// The store of pending sign-ins cannot be read or written: refused (fail closed).
    #[error("the store of pending sign-ins is unavailable")]
    StoreUnavailable,
    /// The ID token did not verify.
    #[error("the ID token is refused: {0}")]
    IdToken(AuthError),
}

impl SignInError {
    /// The HTTP status: 400 for a callback that does not fit, 401 when the IdP or its ID token
    /// says no, 502/503 when the IdP cannot be used.
    pub fn status(&self) -> u16 {
        match self {
            SignInError::TokenEndpoint => 502,
            SignInError::Busy | SignInError::StoreUnavailable => 503,
            SignInError::IdToken(e) => e.status(),
            SignInError::Refused(_) | SignInError::CodeRejected(_) => 401,
            _ => 400,
        }
    }

    /// A stable code for the error body, metrics and audit.
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::MissingState => "missing_state",
            SignInError::UnknownState => "unknown_state",
            SignInError::LoginTimedOut => "login_timed_out",
            SignInError::BrowserMismatch => "login_browser_mismatch",
            SignInError::MissingCode => "missing_code",
            SignInError::WrongIssuer => "wrong_issuer",
            SignInError::Refused(_) => "idp_refused",
            SignInError::CodeRejected(_) => "code_rejected",
            SignInError::TokenEndpoint => "token_endpoint_unavailable",
            SignInError::Busy => "too_many_sign_ins",
            SignInError::StoreUnavailable => "sign_in_store_unavailable",
            SignInError::IdToken(e) => e.code(),
        }
    }
}

/// The browser sign-in of one gateway: configuration, client secret and pending sign-ins.
pub struct BrowserSignIn {
    cfg: BrowserConfig,
    secret: ClientSecret,
    auth: Authenticator,
    pending: Arc<dyn SignInStore>,
}

impl std::fmt::Debug for BrowserSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserSignIn").field("issuer", &self.cfg.issuer).field("client_id", &self.cfg.client_id).finish()
    }
}

impl BrowserSignIn {
    /// Reads the client secret (from `client_secret_env`, else `client_secret_file` relative to
    /// `base_dir`). No network: endpoints come from discovery when the first sign-in starts.
    /// `pending` keeps started sign-ins ([`MemorySignIns`], or a shared store).
    pub fn new(
        cfg: &BrowserConfig,
        auth: Authenticator,
        base_dir: &Path,
        pending: Arc<dyn SignInStore>,
    ) -> Result<BrowserSignIn, IdentityError> {
        let bad = |f: &str, reason: String| IdentityError::Config { field: format!("identity.browser.{f}"), reason };
        let secret = match (&cfg.client_secret_env, &cfg.client_secret_file) {
            (Some(var), _) => std::env::var(var).map_err(|_| bad("client_secret_env", format!("`{var}` is not set")))?,
            (None, Some(file)) => {
                let path = base_dir.join(file);
                std::fs::read_to_string(&path)
                    .map_err(|e| bad("client_secret_file", format!("cannot read `{}`: {e}", path.display())))?
            }
            (None, None) => return Err(bad("client_secret_file", "give `client_secret_file` or `client_secret_env`".into())),
        };
        let secret = secret.trim().to_owned();
        if secret.is_empty() {
            return Err(bad("client_secret_file", "the client secret is empty".into()));
        }
        Ok(BrowserSignIn { cfg: cfg.clone(), secret: ClientSecret(secret), auth, pending })
    }

    pub fn config(&self) -> &BrowserConfig {
        &self.cfg
    }

    /// Starts a sign-in: the authorization request URL and the binding cookie's value.
    pub async fn begin(&self) -> Result<LoginStart, SignInError> {
        let endpoints = self.auth.endpoints(&self.cfg.issuer).await.map_err(SignInError::IdToken)?;
        let state = random_token()?;
        let nonce = random_token()?;
        let verifier = random_token()?;
        let binding = random_token()?;
        let challenge = b64(&Sha256::digest(verifier.as_bytes()));
        let pending = PendingSignIn {
            nonce: nonce.clone(),
            verifier,
            binding: sha256(&binding),
            expires: SystemTime::now() + self.cfg.login_timeout,
        };
        if !self.pending.insert(sha256(&state), pending).await? {
            return Err(SignInError::Busy);
        }
        let mut url = endpoints.authorization;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &self.cfg.redirect_url)
            .append_pair("scope", &self.cfg.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(LoginStart { location: url.into(), binding })
    }

    /// Finishes a sign-in from its callback and the binding cookie; returns who signed in.
    pub async fn complete(&self, cb: &Callback, binding: Option<&str>) -> Result<Principal, SignInError> {
        let state = cb.state.as_deref().filter(|s| !s.is_empty()).ok_or(SignInError::MissingState)?;
        // Consumed whatever happens next: a state is good for one attempt.
        let pending = self.pending.take(&sha256(state)).await?.ok_or(SignInError::UnknownState)?;
        let bound = binding.is_some_and(|b| binding_matches(&pending.binding, b));
        if !bound {
            return Err(SignInError::BrowserMismatch);
        }
        if SystemTime::now() >= pending.expires {
            return Err(SignInError::LoginTimedOut);
        }
        if let Some(error) = &cb.error {
            return Err(SignInError::Refused(sanitize(error)));
        }
        if cb.iss.as_deref().is_some_and(|iss| iss != self.cfg.issuer) {
            return Err(SignInError::WrongIssuer);
        }
        let code = cb.code.as_deref().filter(|c| !c.is_empty()).ok_or(SignInError::MissingCode)?;
        let (id_token, access_token) = self.exchange(code, &pending.verifier).await?;
        self.auth
            .verify_id_token(&self.cfg.issuer, &id_token, &self.cfg.client_id, &pending.nonce, access_token.as_deref())
            .await
            .map_err(SignInError::IdToken)
    }

    /// The code for tokens at the token endpoint, authenticated with the client secret (HTTP
    /// basic, RFC 6749 §2.3.1: id and secret form-encoded first). Returns the ID token and the
    /// access token, if any.
    async fn exchange(&self, code: &str, verifier: &str) -> Result<(String, Option<String>), SignInError> {
        let endpoints = self.auth.endpoints(&self.cfg.issuer).await.map_err(SignInError::IdToken)?;
        let client = self.auth.idp_client(&self.cfg.issuer).ok_or(SignInError::TokenEndpoint)?;
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", enc(&self.cfg.client_id), enc(&self.secret.0)));
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.cfg.redirect_url)
            .append_pair("code_verifier", verifier)
            .finish();
        let mut resp = client
            .post(endpoints.token)
            .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the token endpoint cannot be reached");
                SignInError::TokenEndpoint
            })?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| SignInError::TokenEndpoint)? {
            if bytes.len() + chunk.len() > MAX_TOKEN_RESPONSE_BYTES {
                return Err(SignInError::TokenEndpoint);
            }
            bytes.extend_from_slice(&chunk);
        }
        let doc: Value = serde_json::from_slice(&bytes).map_err(|_| SignInError::TokenEndpoint)?;
        if status.is_client_error() {
            let error = doc.get("error").and_then(Value::as_str).unwrap_or("invalid_request");
            return Err(SignInError::CodeRejected(sanitize(error)));
        }
        if !status.is_success() {
            return Err(SignInError::TokenEndpoint);
        }
        let id_token = doc.get("id_token").and_then(Value::as_str).ok_or(SignInError::TokenEndpoint)?;
        let access = doc.get("access_token").and_then(Value::as_str).map(str::to_owned);
        Ok((id_token.to_owned(), access))
    }
}

/// 32 random bytes, base64url: a `state`, `nonce`, PKCE verifier (43 characters, RFC 7636 §4.1),
/// binding, session id or CSRF token.
pub fn random_token() -> Result<String, SignInError> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| SignInError::Busy)?;
    Ok(b64(&bytes))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether a binding cookie's value is the one whose SHA-256 a started sign-in kept, compared
/// in constant time.
pub fn binding_matches(expected: &[u8; 32], presented: &str) -> bool {
    crate::constant_time_eq(&sha256(presented), expected)
}

/// An IdP-provided error code, made safe to echo (OAuth error codes are short ASCII words).
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cfg() -> BrowserConfig {
        toml::from_str(
            r#"
            issuer = "https://idp.example.com"
            client_id = "tg"
            client_secret_env = "X"
            redirect_url = "https://tg.example.com/auth/callback"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_bounds() {
        let oidc = vec![OidcIssuerConfig::new("https://idp.example.com", "tracegate")];
        let c = cfg();
        c.validate(&oidc).unwrap();
        assert!(c.secure());
        assert_eq!(c.origin(), "https://tg.example.com");
        assert!(c.validate(&[]).is_err(), "an issuer that is not configured is refused");
        let mut c2 = c.clone();
        c2.secure_cookie = Some(false);
        assert!(c2.validate(&oidc).is_err(), "insecure cookies only on a loopback http redirect");
        let mut c3 = c.clone();
        c3.idle_timeout = Duration::from_secs(9 * 3600);
        assert!(c3.validate(&oidc).is_err(), "idle timeout beyond the lifetime");
        let mut c4 = c.clone();
        c4.scopes = vec!["groups".into()];
        assert!(c4.validate(&oidc).is_err(), "openid is required");
        let mut c5 = c.clone();
        c5.redirect_url = "http://tg.example.com/auth/callback".into();
        assert!(c5.validate(&oidc).is_err(), "plain http beyond loopback");
        let mut c6 = c;
        c6.redirect_url = "http://127.0.0.1:8080/auth/callback".into();
        c6.validate(&oidc).unwrap();
        assert!(!c6.secure());
        c6.after_login = "//evil.example/".into();
        assert!(c6.validate(&oidc).is_err(), "an open redirect after sign-in");
    }

    #[test]
    fn secret_is_not_debug_printed() {
        assert_eq!(format!("{:?}", ClientSecret("hunter2".into())), "ClientSecret(<redacted>)");
    }

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }
}
