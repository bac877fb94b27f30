//! An OIDC issuer's keys, fetched from its discovery document's `jwks_uri` on first use and
//! cached. Refreshes happen when the cache is older than `jwks_max_age`, or when a token names an
//! unknown key id (rotation) — at most once per `jwks_min_refresh_interval`, and concurrent
//! callers share one fetch. When the issuer cannot be reached the gateway fails closed (503).

use std::sync::{Arc, RwLock};
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

/// A key set and when it was fetched.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub keys: KeySet,
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
    max_age: Duration,
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
            max_age: cfg.jwks_max_age,
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
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

    /// The keys to check a token with: the cached set while it is fresh, else a fetched one.
    pub async fn keys(&self) -> Result<Arc<Snapshot>, AuthError> {
        let seen = self.snapshot();
        if let Some(snap) = &seen {
            if snap.fetched_at.elapsed() < self.max_age {
                return Ok(snap.clone());
            }
        }
        match self.refresh(seen.as_ref().map(|s| s.generation)).await? {
            Refresh::Updated(snap) => Ok(snap),
            // Rate limited after a success means a fresh-enough set exists (max_age >= interval).
            Refresh::RateLimited => self.snapshot().ok_or_else(|| self.unavailable()),
        }
    }

    /// A refresh because a token named a key not in the set `seen` (rotation, or a forgery).
    pub async fn refresh_after_miss(&self, seen: &Snapshot) -> Result<Refresh, AuthError> {
        self.refresh(Some(seen.generation)).await
    }

    /// Fetches discovery and keys unless someone else just did, or the last attempt was too
    /// recent. `seen` is the generation the caller found wanting (`None`: it found nothing).
    async fn refresh(&self, seen: Option<u64>) -> Result<Refresh, AuthError> {
        let mut state = self.fetch.lock().await;
        if let Some(snap) = self.snapshot() {
            if Some(snap.generation) != seen && snap.fetched_at.elapsed() < self.max_age {
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
            Ok(keys) => {
                state.last_failed = false;
                state.generation += 1;
                let snap = Arc::new(Snapshot { keys, fetched_at: Instant::now(), generation: state.generation });
                match self.current.write() {
                    Ok(mut guard) => *guard = Some(snap.clone()),
                    Err(poisoned) => *poisoned.into_inner() = Some(snap.clone()),
                }
                tracing::info!(issuer = %self.issuer, keys = snap.keys.keys.len(), "fetched the issuer's signing keys");
                Ok(Refresh::Updated(snap))
            }
            Err(why) => {
                state.last_failed = true;
                tracing::warn!(issuer = %self.issuer, error = %why, "cannot fetch the issuer's signing keys");
                Err(self.unavailable())
            }
        }
    }

    /// How many times the keys were fetched (or tried): for tests and diagnostics.
    pub async fn fetches(&self) -> u64 {
        self.fetch.lock().await.attempts
    }

    /// Discovery, its `issuer` check, then the key set at its `jwks_uri`.
    async fn fetch_keys(&self) -> Result<KeySet, String> {
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
        Ok(keys)
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
