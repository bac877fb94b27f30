//! Browser sessions: an opaque random id in a cookie, standing for a [`Principal`] that signed
//! in interactively (OIDC now, SAML through the same [`Sessions::start`]).
//!
//! The id is 32 random bytes; the store keeps only its SHA-256, so a copy of the store (or of a
//! future shared table) does not hand out live sessions. Each record holds the principal, when
//! it was created and last used, its absolute expiry, and the session's CSRF token. A session
//! ends at `session_lifetime` after sign-in, after `idle_timeout` without use, or at logout
//! ([`Sessions::revoke`]); an ended session is removed and its cookie refused from then on.
//!
//! [`SessionStore`] is deliberately small (insert, get, touch, remove). With `[state]` the
//! gateway uses the PostgreSQL store of `tracegate-state`, so a session started through one
//! replica authenticates on every replica and a logout through any of them ends it everywhere
//! at once. The embedded [`MemoryStore`] keeps sessions in this process: they do not survive a
//! restart (everyone signs in again, which fails safe) and are not shared between replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tracegate_core::{Credential, Principal};

use crate::browser::{random_token, sha256};

/// A store never holds more sessions than this; past it, new sign-ins are refused (503) until
/// old sessions end, rather than letting sign-in floods exhaust memory.
pub const MAX_SESSIONS: usize = 100_000;

/// The SHA-256 of a session id: what stores key on.
pub type SessionKey = [u8; 32];

/// One session, server side.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// Who signed in, exactly as the sign-in produced it.
    pub principal: Principal,
    pub created: SystemTime,
    pub last_seen: SystemTime,
    /// `created + session_lifetime`: the session ends then, however busy.
    pub expires: SystemTime,
    /// What state-changing requests must carry in `X-CSRF-Token`.
    pub csrf_token: String,
}

/// Why a session cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Unknown, revoked (logged out), or ended earlier.
    #[error("the session is not valid (signed out, or unknown); sign in again")]
    Unknown,
    #[error("the session has reached its lifetime; sign in again")]
    Expired,
    #[error("the session was idle for longer than the idle timeout; sign in again")]
    Idle,
    #[error("too many sessions are open; try again later")]
    Full,
    /// The store cannot be read or written: refused, never waved through.
    #[error("the session store is unavailable")]
    Unavailable,
}

impl SessionError {
    /// 401 for a session that cannot be used, 503 when the store cannot answer.
    pub fn status(&self) -> u16 {
        match self {
            SessionError::Full | SessionError::Unavailable => 503,
            _ => 401,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            SessionError::Unknown => "session_invalid",
            SessionError::Expired => "session_expired",
            SessionError::Idle => "session_idle",
            SessionError::Full => "too_many_sessions",
            SessionError::Unavailable => "sessions_unavailable",
        }
    }
}

/// Where sessions are kept. Every method is one atomic step with respect to other callers
/// (other replicas included, for a shared store).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Adds a session; [`SessionError::Full`] when the store is at capacity.
    async fn insert(&self, key: SessionKey, record: SessionRecord) -> Result<(), SessionError>;
    /// The session, if it exists.
    async fn get(&self, key: &SessionKey) -> Result<Option<SessionRecord>, SessionError>;
    /// Records a use at `at` (never moving `last_seen` backwards).
    async fn touch(&self, key: &SessionKey, at: SystemTime) -> Result<(), SessionError>;
    /// Ends a session; whether it existed.
    async fn remove(&self, key: &SessionKey) -> Result<bool, SessionError>;
}

/// The embedded store: in this process's memory (see the module header).
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<SessionKey, SessionRecord>>,
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(&self, key: SessionKey, record: SessionRecord) -> Result<(), SessionError> {
        let mut map = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            let now = SystemTime::now();
            map.retain(|_, r| r.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            return Err(SessionError::Full);
        }
        map.insert(key, record);
        Ok(())
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<SessionRecord>, SessionError> {
        Ok(self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned())
    }

    async fn touch(&self, key: &SessionKey, at: SystemTime) -> Result<(), SessionError> {
        if let Some(r) = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(key) {
            r.last_seen = r.last_seen.max(at);
        }
        Ok(())
    }

    async fn remove(&self, key: &SessionKey) -> Result<bool, SessionError> {
        Ok(self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key).is_some())
    }
}

/// A session just started: what goes to the browser.
#[derive(Debug, Clone)]
pub struct Started {
    /// The cookie's value (the session id). Shown once; the store keeps only its hash.
    pub id: String,
    pub csrf_token: String,
    /// Seconds until the absolute expiry, for the cookie's `Max-Age`.
    pub max_age_secs: u64,
}

/// A session in use: its principal (with `credential: session`) and CSRF token.
#[derive(Debug, Clone)]
pub struct Active {
    pub principal: Principal,
    pub csrf_token: String,
}

/// Sessions under one lifetime and idle timeout, over a [`SessionStore`].
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    lifetime: Duration,
    idle: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("lifetime", &self.lifetime).field("idle", &self.idle).finish()
    }
}

impl Sessions {
    pub fn new(store: Arc<dyn SessionStore>, lifetime: Duration, idle: Duration) -> Sessions {
        Sessions { store, lifetime, idle }
    }

    /// Starts a session for `principal`, however it signed in (the one seam every interactive
    /// sign-in ends in). The principal is kept as is; on every use it comes back marked
    /// `credential: session`.
    pub async fn start(&self, mut principal: Principal) -> Result<Started, SessionError> {
        let id = format!("tgs_{}", random_token().map_err(|_| SessionError::Unavailable)?);
        let csrf_token = random_token().map_err(|_| SessionError::Unavailable)?;
        principal.credential = Credential::Bearer;
        let now = SystemTime::now();
        let record = SessionRecord {
            principal,
            created: now,
            last_seen: now,
            expires: now + self.lifetime,
            csrf_token: csrf_token.clone(),
        };
        self.store.insert(sha256(&id), record).await?;
        Ok(Started { id, csrf_token, max_age_secs: self.lifetime.as_secs() })
    }

    /// The session a cookie names, if it is still good; records the use. An ended session is
    /// removed on the spot.
    pub async fn authenticate(&self, id: &str) -> Result<Active, SessionError> {
        // Not one of ours (or absurdly long): no lookup at all.
        if !id.starts_with("tgs_") || id.len() > 100 {
            return Err(SessionError::Unknown);
        }
        let key = sha256(id);
        let record = self.store.get(&key).await?.ok_or(SessionError::Unknown)?;
        let now = SystemTime::now();
        let ended = if now >= record.expires {
            Some(SessionError::Expired)
        } else if now.duration_since(record.last_seen).unwrap_or_default() >= self.idle {
            Some(SessionError::Idle)
        } else {
            None
        };
        if let Some(why) = ended {
            self.store.remove(&key).await?;
            return Err(why);
        }
        self.store.touch(&key, now).await?;
        let mut principal = record.principal;
        principal.credential = Credential::Session;
        Ok(Active { principal, csrf_token: record.csrf_token })
    }

    /// Ends the session (logout). Whether it existed.
    pub async fn revoke(&self, id: &str) -> Result<bool, SessionError> {
        self.store.remove(&sha256(id)).await
    }
}

/// Whether a presented CSRF token is the session's, compared in constant time.
pub fn csrf_matches(expected: &str, presented: &[u8]) -> bool {
    crate::constant_time_eq(expected.as_bytes(), presented)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn who() -> Principal {
        Principal {
            subject: "sam".into(),
            issuer: "https://idp".into(),
            groups: vec!["support".into()],
            claims: Default::default(),
            auth_method: tracegate_core::AuthMethod::Oidc,
            person: None,
            credential: Default::default(),
        }
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn only_a_hash_of_the_id_is_stored_and_uses_are_marked_session() {
        let store = Arc::new(MemoryStore::default());
        let s = Sessions::new(store.clone(), Duration::from_secs(60), Duration::from_secs(30));
        let started = block(s.start(who())).unwrap();
        let keys: Vec<SessionKey> = store.sessions.lock().unwrap().keys().copied().collect();
        assert_eq!(keys, vec![sha256(&started.id)]);
        assert!(!format!("{:?}", store.sessions.lock().unwrap()).contains(&started.id));
        let active = block(s.authenticate(&started.id)).unwrap();
        assert_eq!(active.principal.credential, Credential::Session);
        assert_eq!(active.principal.subject, "sam");
        assert_eq!(active.csrf_token, started.csrf_token);
        assert_eq!(block(s.authenticate("tgs_forged")).unwrap_err(), SessionError::Unknown);
        assert_eq!(block(s.authenticate(&started.id[..started.id.len() - 1])).unwrap_err(), SessionError::Unknown);
    }

    #[test]
    fn lifetime_idle_and_revocation_end_a_session() {
        let store = Arc::new(MemoryStore::default());
        let s = Sessions::new(store.clone(), Duration::from_secs(60), Duration::from_secs(30));
        let a = block(s.start(who())).unwrap();
        let key = sha256(&a.id);
        // Idle: last seen 31 s ago.
        store.sessions.lock().unwrap().get_mut(&key).unwrap().last_seen -= Duration::from_secs(31);
        assert_eq!(block(s.authenticate(&a.id)).unwrap_err(), SessionError::Idle);
        assert_eq!(block(s.authenticate(&a.id)).unwrap_err(), SessionError::Unknown, "an idle session is gone");
        // Absolute: in use, but past its expiry.
        let b = block(s.start(who())).unwrap();
        store.sessions.lock().unwrap().get_mut(&sha256(&b.id)).unwrap().expires = SystemTime::now();
        assert_eq!(block(s.authenticate(&b.id)).unwrap_err(), SessionError::Expired);
        let c = block(s.start(who())).unwrap();
        assert!(block(s.revoke(&c.id)).unwrap());
        assert_eq!(block(s.authenticate(&c.id)).unwrap_err(), SessionError::Unknown);
        assert!(!block(s.revoke(&c.id)).unwrap());
    }
}
