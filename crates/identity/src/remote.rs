//! An OIDC issuer's keys, fetched from its discovery document's `jwks_uri` on first use and
//! cached. Refreshes happen when the cache is older than `jwks_refresh_interval`, or when a token
//! names an unknown key id (rotation) — at most once per `jwks_min_refresh_interval`, and
//! concurrent callers share one fetch.
//!
//! When the issuer cannot be reached, the keys last fetched stay usable until they are
//! `jwks_max_age` old (stale while unreachable); past that, its tokens are refused with 401
//! `issuer_keys_stale`. While a usable set exists no request waits for a fetch another request
//! is already making, so a blackholed IdP costs one `request_timeout` to one request per retry,
//! not to all of them. Never fetched at all: 503 `issuer_unavailable`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{check_idp_url, OidcIssuerConfig};
use crate::error::{AuthError, IdentityError};
use crate::keys::KeySet;

/// Largest discovery document or key set read; anything bigger is not a real IdP's answer.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// After a failed fetch, the next attempt waits at most this long (or the refresh interval, if
/// shorter), so an IdP back from an outage is noticed quickly without being hammered.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// Where an issuer's browser sign-in endpoints are, from its discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `authorization_endpoint`: where the browser is sent to sign in.
    pub authorization: reqwest::Url,
    /// `token_endpoint`: where the gateway exchanges the code.
    pub token: reqwest::Url,
}

/// A key set and when it was fetched.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub keys: KeySet,
    /// The sign-in endpoints named by the same discovery document, when it names both.
    pub endpoints: Option<Endpoints>,
    pub fetched_at: Instant,
    /// Increments with every successful fetch: lets a waiter see that someone else refreshed.
    pub generation: u64,
}

/// The remote key source of one issuer.
pub(crate) struct RemoteKeys {
    issuer: String,
    discovery_url: reqwest::Url,
    client: reqwest::Client,
    min_refresh: Duration,
    refresh_every: Duration,
    max_age: Duration,
    /// The last fetch's failure, if the last fetch failed: for `/healthz`.
    failure: Mutex<Option<String>>,
    /// What requests read; replaced whole after each successful fetch.
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Held for the duration of a fetch: concurrent refreshes wait here and reuse the result.
    fetch: tokio::sync::Mutex<FetchState>,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_failed: bool,
    generation: u64,
    /// Number of fetch attempts: observable by tests through [`RemoteKeys::fetches`].
    attempts: u64,
}

/// The result of asking for a refresh.
pub(crate) enum Refresh {
    /// A newer key set is available (fetched now or by a concurrent caller).
    Updated(Arc<Snapshot>),
    /// Too soon after the last fetch; nothing changed.
    RateLimited,
}

impl RemoteKeys {
    /// No network here: the first fetch happens on the first token from this issuer.
    pub fn new(cfg: &OidcIssuerConfig) -> Result<RemoteKeys, IdentityError> {
        let discovery = match &cfg.discovery_url {
            Some(url) => url.clone(),
            None => format!("{}/.well-known/openid-configuration", cfg.issuer.trim_end_matches('/')),
        };
        let discovery_url = check_idp_url(&discovery)
            .map_err(|reason| IdentityError::Config { field: "identity.oidc.discovery_url".into(), reason })?;
        let client = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout)
            // A redirect could lead off the vetted origin (or to plain http): not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tracegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IdentityError::HttpClient(e.to_string()))?;
        Ok(RemoteKeys {
            issuer: cfg.issuer.clone(),
            discovery_url,
            client,
            min_refresh: cfg.jwks_min_refresh_interval,
            refresh_every: cfg.jwks_refresh_interval,
            max_age: cfg.jwks_max_age,
            failure: Mutex::new(None),
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    /// The client that reaches this issuer (timeouts, no redirects followed).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The sign-in endpoints of the current discovery document (fetched like the keys: the
    /// same freshness, outage and max-age rules).
    pub async fn endpoints(&self) -> Result<Endpoints, AuthError> {
        self.keys().await?.endpoints.clone().ok_or_else(|| self.unavailable())
    }

    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        // A poisoned lock only means a writer panicked mid-assignment of an `Option<Arc>`, which
        // cannot leave it half-written: the value inside is still whole.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn unavailable(&self) -> AuthError {
        AuthError::IssuerUnavailable { issuer: self.issuer.clone() }
    }

    /// The keys to check a token with: the cached set while it is fresh, else a fetched one;
    /// while the issuer cannot be reached, the cached set until it is `jwks_max_age` old.
    pub async fn keys(&self) -> Result<Arc<Snapshot>, AuthError> {
        let seen = self.snapshot();
        let usable = seen.as_ref().filter(|s| s.fetched_at.elapsed() < self.max_age).cloned();
        if let Some(snap) = &usable {
            if snap.fetched_at.elapsed() < self.refresh_every {
                return Ok(snap.clone());
            }
        }
        // Due for a re-check. With a usable set in hand, nobody waits for someone else's fetch.
        let outcome = self.refresh(seen.as_ref().map(|s| s.generation), usable.is_none()).await;
        match (outcome, usable) {
            (Ok(Refresh::Updated(snap)), _) => Ok(snap),
            (Ok(Refresh::RateLimited), Some(snap)) => Ok(snap),
            (Ok(Refresh::RateLimited), None) => Err(self.not_refreshed(seen.is_some())),
            (Err(_), Some(snap)) => Ok(snap),
            (Err(e), None) => Err(if seen.is_some() { self.not_refreshed(true) } else { e }),
        }
    }

    /// The refusal once keys are past their age (or were never fetched).
    fn not_refreshed(&self, had_keys: bool) -> AuthError {
        if had_keys {
            AuthError::KeysStale { issuer: self.issuer.clone() }
        } else {
            self.unavailable()
        }
    }

    /// The freshness of this issuer's keys, for `/healthz`.
    pub fn health(&self) -> crate::IssuerHealth {
        let snap = self.snapshot();
        let age = snap.as_ref().map(|s| s.fetched_at.elapsed());
        let last_error = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let state = match age {
            None => crate::KeyState::NotFetched,
            Some(a) if a >= self.max_age => crate::KeyState::Expired,
            Some(_) if last_error.is_some() => crate::KeyState::Stale,
            Some(_) => crate::KeyState::Fresh,
        };
        crate::IssuerHealth {
            issuer: self.issuer.clone(),
            state,
            key_age_secs: age.map(|a| a.as_secs()),
            max_age_secs: Some(self.max_age.as_secs()),
            last_error,
        }
    }

    /// A refresh because a token named a key not in the set `seen` (rotation, or a forgery).
    pub async fn refresh_after_miss(&self, seen: &Snapshot) -> Result<Refresh, AuthError> {
        self.refresh(Some(seen.generation), true).await
    }

    /// Fetches discovery and keys unless someone else just did, or the last attempt was too
    /// recent. `seen` is the generation the caller found wanting (`None`: it found nothing).
    /// Without `wait`, a fetch already in progress counts as a failure to this caller (who
    /// then uses the set it has).
    async fn refresh(&self, seen: Option<u64>, wait: bool) -> Result<Refresh, AuthError> {
        let mut state = if wait {
            self.fetch.lock().await
        } else {
            self.fetch.try_lock().map_err(|_| self.unavailable())?
        };
        if let Some(snap) = self.snapshot() {
            if Some(snap.generation) != seen && snap.fetched_at.elapsed() < self.refresh_every {
                return Ok(Refresh::Updated(snap));
            }
        }
        if let Some(last) = state.last_attempt {
            let wait = if state.last_failed { self.min_refresh.min(FAILURE_BACKOFF) } else { self.min_refresh };
            if last.elapsed() < wait {
                return if state.last_failed { Err(self.unavailable()) } else { Ok(Refresh::RateLimited) };
            }
        }
        state.last_attempt = Some(Instant::now());
        state.attempts += 1;
        match self.fetch_keys().await {
            Ok((keys, endpoints)) => {
                state.last_failed = false;
                *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                state.generation += 1;
                let snap = Arc::new(Snapshot { keys, endpoints, fetched_at: Instant::now(), generation: state.generation });
                match self.current.write() {
                    Ok(mut guard) => *guard = Some(snap.clone()),
                    Err(poisoned) => *poisoned.into_inner() = Some(snap.clone()),
                }
                tracing::info!(issuer = %self.issuer, keys = snap.keys.keys.len(), "fetched the issuer's signing keys");
                Ok(Refresh::Updated(snap))
            }
            Err(why) => {
                state.last_failed = true;
                *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why.clone());
                tracing::warn!(issuer = %self.issuer, error = %why, "cannot fetch the issuer's signing keys");
                Err(self.unavailable())
            }
        }
    }

    /// How many times the keys were fetched (or tried): for tests and diagnostics.
    pub async fn fetches(&self) -> u64 {
        self.fetch.lock().await.attempts
    }

    /// Discovery, its `issuer` check, then the key set at its `jwks_uri`; also the sign-in
    /// endpoints, vetted like every IdP URL (https, or http on loopback).
    async fn fetch_keys(&self) -> Result<(KeySet, Option<Endpoints>), String> {
        let discovery = self.get_json(self.discovery_url.clone()).await.map_err(|e| format!("discovery: {e}"))?;
        // OpenID Connect Discovery §4.3: the document must name the issuer we asked about, or
        // another issuer's keys could be taken for this one's.
        if discovery.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("the discovery document names another issuer".into());
        }
        let jwks_uri =
            discovery.get("jwks_uri").and_then(Value::as_str).ok_or("the discovery document has no `jwks_uri`")?;
        let jwks_url = check_idp_url(jwks_uri)?;
        let doc = self.get_json(jwks_url).await.map_err(|e| format!("jwks: {e}"))?;
        let keys = KeySet::from_jwks(&doc)?;
        if keys.keys.is_empty() {
            return Err("the key set holds no usable signing key".into());
        }
        let url = |name: &str| discovery.get(name).and_then(Value::as_str).map(check_idp_url);
        let endpoints = match (url("authorization_endpoint"), url("token_endpoint")) {
            (Some(Ok(authorization)), Some(Ok(token))) => Some(Endpoints { authorization, token }),
            (Some(Err(e)), _) | (_, Some(Err(e))) => return Err(format!("discovery: {e}")),
            _ => None,
        };
        Ok((keys, endpoints))
    }

    /// A JSON document, bounded in size.
    async fn get_json(&self, url: reqwest::Url) -> Result<Value, String> {
        let mut resp = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("http status {}", resp.status()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err("document too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err("document too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("not json: {e}"))
    }
}
