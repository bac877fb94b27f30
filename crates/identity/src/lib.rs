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

mod cache;
mod claims;
mod config;
pub mod dev;
mod error;
mod keys;
mod remote;
mod token;

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tracegate_core::{AuthMethod, Principal};

pub use config::{DevIssuerConfig, IdentityConfig, OidcIssuerConfig, SigningAlgorithm, MAX_CLOCK_SKEW};
pub use error::{AuthError, IdentityError};

use crate::dev::DevIssuer;
use crate::keys::{KeySet, Selection};
use crate::remote::{Refresh, RemoteKeys};

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
        if issuers.is_empty() {
            return Err(IdentityError::Config {
                field: "identity".into(),
                reason: "no issuer is configured: add `[[identity.oidc]]` or `[identity.dev]`".into(),
            });
        }
        Ok(Authenticator {
            inner: Arc::new(Inner {
                cache: cache::TokenCache::default(),
                issuers,
                groups_claim: cfg.groups_claim.clone(),
                skew_secs: cfg.clock_skew.as_secs(),
                max_token_bytes: cfg.max_token_bytes,
            }),
        })
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
        if bearer_token.len() <= inner.max_token_bytes {
            if let Some(p) = inner.cache.get(bearer_token) {
                return Ok(p);
            }
        }
        let peeked = token::peek(bearer_token, inner.max_token_bytes)?;
        let alg = keys::asymmetric_alg(&peeked.alg).ok_or_else(|| AuthError::alg_not_allowed(&peeked.alg))?;
        let iss = match peeked.claims.get("iss") {
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(AuthError::InvalidClaim { claim: "iss" }),
            None => return Err(AuthError::MissingClaim { claim: "iss" }),
        };
        let issuer = inner.issuers.iter().find(|i| &i.issuer == iss).ok_or(AuthError::UnknownIssuer)?;
        if !issuer.algorithms.contains(&alg) {
            return Err(AuthError::alg_not_allowed(&peeked.alg));
        }
        let typ_ok = peeked.typ.as_deref().is_some_and(|t| issuer.token_types.iter().any(|a| a.eq_ignore_ascii_case(t)));
        if !typ_ok {
            return Err(AuthError::WrongTokenType);
        }
        let kid = peeked.kid.as_deref();
        let verified = match &issuer.keys {
            KeySource::Local(set) => verify(bearer_token, pick(set, kid, alg)?, alg, issuer, inner.skew_secs),
            KeySource::Remote(remote) => {
                let mut snap = remote.keys().await?;
                let selection = snap.keys.select(kid, alg);
                if matches!(selection, Selection::UnknownKid | Selection::NoMatchingKey) {
                    // Perhaps the issuer rotated its keys: look once more (rate-limited).
                    if let Refresh::Updated(newer) = remote.refresh_after_miss(&snap).await? {
                        snap = newer;
                    }
                }
                verify(bearer_token, pick(&snap.keys, kid, alg)?, alg, issuer, inner.skew_secs)
            }
        };
        let claims = verified.map_err(|e| match e {
            // The library reports a registered claim of the wrong type (`"exp": "soon"`) as
            // missing; claims checks run after the signature, so the payload is genuine here.
            AuthError::MissingClaim { claim } if peeked.claims.contains_key(claim) => AuthError::InvalidClaim { claim },
            other => other,
        })?;
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(AuthError::InvalidClaim { claim: "sub" }),
            None => return Err(AuthError::MissingClaim { claim: "sub" }),
        };
        let principal = Principal {
            subject,
            issuer: issuer.issuer.clone(),
            groups: claims::groups(&claims, &inner.groups_claim),
            claims: claims::string_claims(&claims),
            auth_method: issuer.method,
        };
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            inner.cache.insert(bearer_token, &principal, exp);
        }
        Ok(principal)
    }
}

/// The one key this token may be checked with, or why there is none.
fn pick<'a>(set: &'a KeySet, kid: Option<&str>, alg: Algorithm) -> Result<&'a jsonwebtoken::DecodingKey, AuthError> {
    match set.select(kid, alg) {
        Selection::Found(k) => Ok(&k.key),
        Selection::UnknownKid => Err(AuthError::UnknownKeyId),
        Selection::NoMatchingKey => Err(AuthError::NoMatchingKey),
        Selection::Mismatch => Err(AuthError::KeyMismatch),
    }
}

/// Signature first, then the registered claims; returns the verified claims.
fn verify(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
    issuer: &Issuer,
    skew_secs: u64,
) -> Result<Map<String, Value>, AuthError> {
    let mut v = Validation::new(alg);
    v.leeway = skew_secs;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[&issuer.issuer]);
    v.set_audience(&[&issuer.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, &v) {
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
