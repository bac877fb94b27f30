//! Phase 1 of a request, authenticate: a bearer token in, a [`Principal`] out — or a typed
//! refusal. The core never sees a token; this crate never decides what a principal may do.
//!
//! Every token, from an OIDC issuer or from the dev issuer, takes the same path:
//! 1. size cap, three base64url parts, JSON header and payload;
//! 2. `alg` must be asymmetric (never `none`, never HMAC) and allowed for the issuer;
//! 3. the unverified `iss` picks the issuer — only to choose keys;
//! 4. the key is chosen by `kid` (an unknown `kid` triggers one rate-limited key refresh) and must
//!    fit `alg`;
//! 5. signature, then `iss`, `aud`, `exp` (required), `nbf` (if present) with the configured skew,
//!    and a non-empty `sub`;
//! 6. groups come from the configured claim path; string claims are kept for row scope.
//!
//! Header and payload that repeat a member name are refused at step 1 (see `token`). A token
//! verified once is cached with the identity of the key that verified it; a hit is honoured only
//! while that key is still in its issuer's current (re-checked) set. Service-account keys
//! (`tgsa_…`, see [`service_accounts`]) take their own path: looked up in the shared store on
//! every request, never cached.

mod cache;
mod claims;
mod config;
pub mod dev;
pub mod browser;
pub mod sessions;
mod error;
mod keys;
mod remote;
#[cfg(feature = "saml")]
pub mod saml;
pub mod service_accounts;
mod token;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tracegate_core::{AuthMethod, Principal};

pub use config::{
    AccountRef, DevIssuerConfig, IdentityConfig, OidcIssuerConfig, ServiceAccountsConfig, SigningAlgorithm,
    MAX_CLOCK_SKEW,
};
pub use error::{AuthError, IdentityError};
pub use remote::Endpoints;

use crate::dev::DevIssuer;
use crate::keys::{KeySet, Selection, VerifyingKey};
use crate::remote::{Refresh, RemoteKeys};
use crate::service_accounts::ServiceAccounts;

/// How fresh one issuer's keys are, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IssuerHealth {
    pub issuer: String,
    pub state: KeyState,
    /// Seconds since the keys were last fetched successfully; `None` if never (or local).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_age_secs: Option<u64>,
    /// `jwks_max_age`, in seconds: past it, the keys are no longer used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// Why the last fetch failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Where an issuer's keys stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// The dev issuer's own key: always current.
    Local,
    /// No token has needed them yet (or every fetch so far failed).
    NotFetched,
    /// Fetched, and the last fetch succeeded.
    Fresh,
    /// The last refresh failed; the keys fetched before are still used (younger than max age).
    Stale,
    /// The keys could not be refreshed within `jwks_max_age`: this issuer's tokens are refused.
    Expired,
}

/// Checks bearer tokens against the configured issuers. Cheap to clone; clones share the key
/// caches.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    cache: cache::TokenCache,
    issuers: Vec<Issuer>,
    groups_claim: String,
    skew_secs: u64,
    max_token_bytes: usize,
    /// `[identity.persons]` inverted: (issuer, subject) to person.
    persons: HashMap<(String, String), String>,
    service_accounts: Option<ServiceAccounts>,
    #[cfg(feature = "saml")]
    saml: Option<saml::ServiceProvider>,
}

/// One trusted issuer and where its keys come from.
struct Issuer {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    /// Accepted header `typ` values, lowercase.
    token_types: Vec<String>,
    keys: KeySource,
    method: AuthMethod,
}

enum KeySource {
    /// The dev issuer's own key: nothing to fetch.
    Local(KeySet),
    Remote(Box<RemoteKeys>),
}

impl Issuer {
    fn health(&self) -> IssuerHealth {
        match &self.keys {
            KeySource::Remote(r) => r.health(),
            KeySource::Local(_) => IssuerHealth {
                issuer: self.issuer.clone(),
                state: KeyState::Local,
                key_age_secs: None,
                max_age_secs: None,
                last_error: None,
            },
        }
    }
}

/// Where the authenticator keeps what replicas must share. [`Backends::default`] is the embedded
/// default: service accounts in their `[identity.service_accounts] path` file, SAML one-time-use
/// state in this process. With `[state]` the server passes the PostgreSQL stores of
/// `tracegate-state`, so no local copy is ever opened.
#[derive(Default)]
pub struct Backends {
    /// The service-account store; `None`: the embedded file named by the config.
    pub service_accounts: Option<Box<dyn service_accounts::ServiceAccountStore>>,
    /// Redeemed SAML assertion ids; `None`: in this process.
    #[cfg(feature = "saml")]
    pub saml_replay: Option<Arc<dyn saml::ReplayCache>>,
    /// Pending SAML AuthnRequests; `None`: in this process.
    #[cfg(feature = "saml")]
    pub saml_requests: Option<Arc<dyn saml::RequestStore>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").field("service_accounts", &self.service_accounts.is_some()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.issuers().collect();
        f.debug_struct("Authenticator").field("issuers", &issuers).finish()
    }
}

impl Authenticator {
    /// Builds the authenticator from `[identity]`. `base_dir` is the config file's directory
    /// (relative key paths are read from there). No network here: an issuer's discovery
    /// document and keys are fetched when its first token arrives, so the gateway starts even
    /// while the IdP is down (and refuses its tokens with 503 until it is back).
    pub fn new(cfg: &IdentityConfig, base_dir: &Path) -> Result<Authenticator, IdentityError> {
        Authenticator::with_backends(cfg, base_dir, Backends::default())
    }

    /// [`Authenticator::new`] over the given stores (see [`Backends`]): what a replica sharing
    /// `[state]` uses, so every replica sees one set of service accounts and one SAML
    /// replay cache.
    pub fn with_backends(cfg: &IdentityConfig, base_dir: &Path, backends: Backends) -> Result<Authenticator, IdentityError> {
        cfg.validate()?;
        let mut issuers = Vec::new();
        for o in &cfg.oidc {
            issuers.push(Issuer {
                issuer: o.issuer.clone(),
                audience: o.audience.clone(),
                algorithms: o.algorithms.iter().map(|a| a.algorithm()).collect(),
                token_types: o.token_types.iter().map(|t| t.to_ascii_lowercase()).collect(),
                keys: KeySource::Remote(Box::new(RemoteKeys::new(o)?)),
                method: AuthMethod::Oidc,
            });
        }
        if let Some(d) = &cfg.dev {
            let dev = DevIssuer::load(d, base_dir)?;
            issuers.push(Issuer {
                issuer: d.issuer.clone(),
                audience: d.audience.clone(),
                algorithms: vec![Algorithm::EdDSA],
                token_types: config::default_token_types(),
                keys: KeySource::Local(dev.key_set()?),
                method: AuthMethod::Dev,
            });
        }
        // SAML: its gateway tokens are issued as the IdP's entity id and checked here like
        // the dev issuer's, against the gateway's own key.
        #[cfg(feature = "saml")]
        let saml = match &cfg.saml {
            Some(s) => {
                let replay = backends.saml_replay.unwrap_or_else(|| Arc::new(saml::MemoryReplayCache::default()));
                let requests = backends.saml_requests.unwrap_or_else(|| Arc::new(saml::MemoryRequests::default()));
                let sp = saml::ServiceProvider::load(s, base_dir, &cfg.groups_claim, replay, requests)?;
                issuers.push(Issuer {
                    issuer: s.idp_entity_id.clone(),
                    audience: s.sp_entity_id.clone(),
                    algorithms: vec![Algorithm::EdDSA],
                    token_types: config::default_token_types(),
                    keys: KeySource::Local(sp.key_set()?),
                    method: AuthMethod::Saml,
                });
                Some(sp)
            }
            None => None,
        };
        let service_accounts = match (&cfg.service_accounts, backends.service_accounts) {
            (Some(sa), Some(store)) => Some(ServiceAccounts::with_store(sa.clone(), store)),
            (Some(sa), None) => Some(ServiceAccounts::open(sa, base_dir)?),
            (None, _) => None,
        };
        if issuers.is_empty() && service_accounts.is_none() {
            return Err(IdentityError::Config {
                field: "identity".into(),
                reason: "no issuer is configured: add `[[identity.oidc]]` or `[identity.dev]`".into(),
            });
        }
        let persons = cfg
            .persons
            .iter()
            .flat_map(|(person, accounts)| {
                accounts.iter().map(move |a| ((a.issuer.clone(), a.subject.clone()), person.clone()))
            })
            .collect();
        Ok(Authenticator {
            inner: Arc::new(Inner {
                cache: cache::TokenCache::default(),
                issuers,
                groups_claim: cfg.groups_claim.clone(),
                skew_secs: cfg.clock_skew.as_secs(),
                max_token_bytes: cfg.max_token_bytes,
                persons,
                service_accounts,
                #[cfg(feature = "saml")]
                saml,
            }),
        })
    }

    /// The service accounts, when `[identity.service_accounts]` is configured.
    pub fn service_accounts(&self) -> Option<&ServiceAccounts> {
        self.inner.service_accounts.as_ref()
    }

    /// The SAML service provider, when `[identity.saml]` is configured.
    #[cfg(feature = "saml")]
    pub fn saml(&self) -> Option<&saml::ServiceProvider> {
        self.inner.saml.as_ref()
    }

    /// The principal a verified SAML assertion proves, with its `[identity.persons]` link: what
    /// a browser session built from an assertion should hold (the same principal its gateway
    /// token authenticates as).
    #[cfg(feature = "saml")]
    pub fn saml_principal(&self, verified: &saml::Verified) -> Principal {
        let mut p = verified.principal();
        p.person = self.inner.persons.get(&(p.issuer.clone(), p.subject.clone())).cloned();
        p
    }

    /// Whether a development issuer is configured (it must not serve beyond loopback unless
    /// the config allows it; see [`DevIssuerConfig::check_listen`]).
    pub fn has_dev_issuer(&self) -> bool {
        self.inner.issuers.iter().any(|i| i.method == AuthMethod::Dev)
    }

    /// The freshness of every issuer's keys, in configuration order.
    pub fn health(&self) -> Vec<IssuerHealth> {
        self.inner.issuers.iter().map(Issuer::health).collect()
    }

    /// The configured issuer names, for start-up logs.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.inner.issuers.iter().map(|i| i.issuer.as_str())
    }

    /// How many times `issuer`'s keys were fetched (or tried); `None` for an unknown or local
    /// issuer. For tests and diagnostics.
    pub async fn key_fetches(&self, issuer: &str) -> Option<u64> {
        match &self.inner.issuers.iter().find(|i| i.issuer == issuer)?.keys {
            KeySource::Remote(r) => Some(r.fetches().await),
            KeySource::Local(_) => None,
        }
    }

    /// Checks `bearer_token` (the part after `Bearer `) and returns who presented it.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        if bearer_token.len() > inner.max_token_bytes {
            return Err(AuthError::TooLarge { limit: inner.max_token_bytes });
        }
        if bearer_token.starts_with(service_accounts::KEY_PREFIX) {
            let accounts = inner.service_accounts.as_ref().ok_or(AuthError::ServiceAccountKey)?;
            let mut p = accounts.authenticate(bearer_token).await?;
            p.person = inner.persons.get(&(p.issuer.clone(), p.subject.clone())).cloned();
            return Ok(p);
        }
        if let Some(hit) = inner.cache.get(bearer_token) {
            if self.still_trusted(&hit).await? {
                return Ok(hit.principal);
            }
            // Its key left the issuer's set: check the token again from scratch (and refuse it,
            // unless another published key verifies it).
            inner.cache.remove(bearer_token);
        }
        let (claims, issuer_index, key_id) = self.verify_signed(bearer_token, Expect::AccessToken).await?;
        let issuer = inner.issuers.get(issuer_index).ok_or(AuthError::UnknownIssuer)?;
        let principal = self.principal_from(issuer, &claims)?;
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            inner.cache.insert(bearer_token, &principal, exp, issuer_index, key_id);
        }
        Ok(principal)
    }

    /// The principal a verified token names: `sub` (required, non-empty), groups from the
    /// configured claim, string claims for row scope, and the linked person.
    fn principal_from(&self, issuer: &Issuer, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(AuthError::InvalidClaim { claim: "sub" }),
            None => return Err(AuthError::MissingClaim { claim: "sub" }),
        };
        Ok(Principal {
            person: inner.persons.get(&(issuer.issuer.clone(), subject.clone())).cloned(),
            credential: Default::default(),
            subject,
            issuer: issuer.issuer.clone(),
            groups: claims::groups(claims, &inner.groups_claim),
            claims: claims::string_claims(claims),
            auth_method: issuer.method,
        })
    }

    /// Checks an OpenID Connect ID token received from `issuer`'s token endpoint at the end of a
    /// browser sign-in, with the same key machinery as bearer tokens (discovery, JWKS, rotation,
    /// max age) and the ID-token rules of OpenID Connect Core §3.1.3.7: the expected `iss`; `aud`
    /// containing `client_id` (and `azp` equal to it when present, required when there are several
    /// audiences); `exp`/`nbf` with the configured skew; the `nonce` sent with the authorization
    /// request; and, when the token endpoint also returned an access token and the ID token
    /// carries `at_hash`, that hash. An access token (`typ: at+jwt`) is refused here, as an ID
    /// token is refused as a bearer token. The principal's groups come from the same claim as
    /// for bearer tokens, so they reach the same roles.
    pub async fn verify_id_token(
        &self,
        issuer: &str,
        id_token: &str,
        client_id: &str,
        nonce: &str,
        access_token: Option<&str>,
    ) -> Result<Principal, AuthError> {
        if id_token.len() > self.inner.max_token_bytes {
            return Err(AuthError::TooLarge { limit: self.inner.max_token_bytes });
        }
        let (claims, issuer_index, _) =
            self.verify_signed(id_token, Expect::IdToken { issuer, client_id }).await?;
        let found = self.inner.issuers.get(issuer_index).ok_or(AuthError::UnknownIssuer)?;
        // The nonce binds this ID token to the sign-in this browser started (replay defence).
        match claims.get("nonce") {
            Some(Value::String(n)) if constant_time_eq(n.as_bytes(), nonce.as_bytes()) => {}
            Some(Value::String(_)) => return Err(AuthError::NonceMismatch),
            Some(_) => return Err(AuthError::InvalidClaim { claim: "nonce" }),
            None => return Err(AuthError::MissingClaim { claim: "nonce" }),
        }
        let several_audiences = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
        match claims.get("azp") {
            Some(Value::String(azp)) if azp == client_id => {}
            Some(_) => return Err(AuthError::WrongAuthorizedParty),
            None if several_audiences => return Err(AuthError::WrongAuthorizedParty),
            None => {}
        }
        if let (Some(at), Some(hash)) = (access_token, claims.get("at_hash")) {
            let alg = token::peek(id_token, self.inner.max_token_bytes)?.alg;
            let expected = token_hash(&alg, at);
            if hash.as_str() != Some(expected.as_str()) {
                return Err(AuthError::AccessTokenHashMismatch);
            }
        }
        let mut principal = self.principal_from(found, &claims)?;
        // Protocol values of the sign-in itself, not attributes of the person.
        for name in ["nonce", "at_hash", "c_hash", "sid", "azp"] {
            principal.claims.remove(name);
        }
        Ok(principal)
    }

    /// Steps 1 to 5 of the module header for one token: header, algorithm, issuer, key, signature
    /// and registered claims. Returns the verified claims, the issuer's index and the key's id.
    async fn verify_signed(
        &self,
        jwt: &str,
        expect: Expect<'_>,
    ) -> Result<(Map<String, Value>, usize, keys::KeyId), AuthError> {
        let inner = &*self.inner;
        let peeked = token::peek(jwt, inner.max_token_bytes)?;
        let alg = keys::asymmetric_alg(&peeked.alg).ok_or_else(|| AuthError::alg_not_allowed(&peeked.alg))?;
        let iss = match peeked.claims.get("iss") {
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(AuthError::InvalidClaim { claim: "iss" }),
            None => return Err(AuthError::MissingClaim { claim: "iss" }),
        };
        if let Expect::IdToken { issuer, .. } = expect {
            if iss != issuer {
                return Err(AuthError::WrongIssuer);
            }
        }
        let (issuer_index, issuer) =
            inner.issuers.iter().enumerate().find(|(_, i)| &i.issuer == iss).ok_or(AuthError::UnknownIssuer)?;
        if !issuer.algorithms.contains(&alg) {
            return Err(AuthError::alg_not_allowed(&peeked.alg));
        }
        let (typ_ok, audience) = match expect {
            Expect::AccessToken => (
                peeked.typ.as_deref().is_some_and(|t| issuer.token_types.iter().any(|a| a.eq_ignore_ascii_case(t))),
                issuer.audience.as_str(),
            ),
            // ID tokens are untyped or `JWT` (OpenID Connect Core §16.14 / RFC 7519 §5.1).
            Expect::IdToken { client_id, .. } => {
                (peeked.typ.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("jwt")), client_id)
            }
        };
        if !typ_ok {
            return Err(AuthError::WrongTokenType);
        }
        let kid = peeked.kid.as_deref();
        let (verified, key_id) = match &issuer.keys {
            KeySource::Local(set) => {
                let key = pick(set, kid, alg)?;
                (verify(jwt, key, alg, &issuer.issuer, audience, inner.skew_secs), key.id)
            }
            KeySource::Remote(remote) => {
                let mut snap = remote.keys().await?;
                let selection = snap.keys.select(kid, alg);
                if matches!(selection, Selection::UnknownKid | Selection::NoMatchingKey) {
                    // Perhaps the issuer rotated its keys: look once more (rate-limited). If the
                    // issuer cannot be reached, the set in hand decides.
                    if let Ok(Refresh::Updated(newer)) = remote.refresh_after_miss(&snap).await {
                        snap = newer;
                    }
                }
                let key = pick(&snap.keys, kid, alg)?;
                (verify(jwt, key, alg, &issuer.issuer, audience, inner.skew_secs), key.id)
            }
        };
        let claims = verified.map_err(|e| match e {
            // The library reports a registered claim of the wrong type (`"exp": "soon"`) as
            // missing; claims checks run after the signature, so the payload is genuine here.
            AuthError::MissingClaim { claim } if peeked.claims.contains_key(claim) => AuthError::InvalidClaim { claim },
            other => other,
        })?;
        Ok((claims, issuer_index, key_id))
    }

    /// Where `issuer`'s authorization and token endpoints are, from its discovery document
    /// (fetched with its keys, by the same client and with the same checks).
    pub async fn endpoints(&self, issuer: &str) -> Result<Endpoints, AuthError> {
        let found = self.inner.issuers.iter().find(|i| i.issuer == issuer).ok_or(AuthError::UnknownIssuer)?;
        match &found.keys {
            KeySource::Remote(remote) => remote.endpoints().await,
            KeySource::Local(_) => Err(AuthError::UnknownIssuer),
        }
    }

    /// The HTTP client used to reach `issuer` (timeouts, no redirects), for its token endpoint.
    pub(crate) fn idp_client(&self, issuer: &str) -> Option<reqwest::Client> {
        match &self.inner.issuers.iter().find(|i| i.issuer == issuer)?.keys {
            KeySource::Remote(remote) => Some(remote.client().clone()),
            KeySource::Local(_) => None,
        }
    }

    /// A cached verification stands while the key that made it is in its issuer's current set
    /// (re-checked every `jwks_refresh_interval`); keys past their max age fail it closed.
    async fn still_trusted(&self, hit: &cache::Hit) -> Result<bool, AuthError> {
        let Some(issuer) = self.inner.issuers.get(hit.issuer) else { return Ok(false) };
        match &issuer.keys {
            KeySource::Local(set) => Ok(set.contains(&hit.key)),
            KeySource::Remote(remote) => Ok(remote.keys().await?.keys.contains(&hit.key)),
        }
    }
}

/// What kind of token [`Authenticator::verify_signed`] is checking.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// A bearer access token: the issuer's configured audience and token types.
    AccessToken,
    /// An ID token from `issuer`, for the browser sign-in client `client_id`.
    IdToken { issuer: &'a str, client_id: &'a str },
}

/// `at_hash` (OpenID Connect Core §3.1.3.6): the left half of the hash of `value`, with the hash
/// of the ID token's algorithm (SHA-512 for EdDSA), base64url without padding.
fn token_hash(alg: &str, value: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest: Vec<u8> = if alg.ends_with("384") {
        sha2::Sha384::digest(value.as_bytes()).to_vec()
    } else if alg.ends_with("512") || alg.eq_ignore_ascii_case("eddsa") {
        sha2::Sha512::digest(value.as_bytes()).to_vec()
    } else {
        sha2::Sha256::digest(value.as_bytes()).to_vec()
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// Byte equality whose time does not depend on where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// The one key this token may be checked with, or why there is none.
fn pick<'a>(set: &'a KeySet, kid: Option<&str>, alg: Algorithm) -> Result<&'a VerifyingKey, AuthError> {
    match set.select(kid, alg) {
        Selection::Found(k) => Ok(k),
        Selection::UnknownKid => Err(AuthError::UnknownKeyId),
        Selection::NoMatchingKey => Err(AuthError::NoMatchingKey),
        Selection::Mismatch => Err(AuthError::KeyMismatch),
    }
}

/// Signature first, then the registered claims; returns the verified claims.
fn verify(
    token: &str,
    key: &VerifyingKey,
    alg: Algorithm,
    issuer: &str,
    audience: &str,
    skew_secs: u64,
) -> Result<Map<String, Value>, AuthError> {
    let mut v = Validation::new(alg);
    v.leeway = skew_secs;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.into_kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim { claim: registered(&c) },
            ErrorKind::InvalidClaimFormat(c) => AuthError::InvalidClaim { claim: registered(&c) },
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => AuthError::KeyMismatch,
            ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) => {
                AuthError::BadSignature
            }
            ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                AuthError::Malformed { reason: "the token cannot be decoded" }
            }
            // Anything else the library may add: refused, as a signature failure.
            _ => AuthError::BadSignature,
        }),
    }
}

/// The static name of a registered claim reported by the JWT library.
fn registered(name: &str) -> &'static str {
    match name {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "unknown",
    }
}
