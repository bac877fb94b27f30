//! One-time use: assertion ids already redeemed ([`ReplayCache`]) and AuthnRequest ids still
//! waiting for their response ([`RequestStore`]).
//!
//! Both are traits so replicas can share them: a replay cache kept per process fails open the
//! moment a captured response is posted to a second replica, so with `[state]` the gateway uses
//! the PostgreSQL implementations in `tracegate-state` (insert-if-absent with expiry, one-time
//! take with `DELETE … RETURNING`). The embedded ones here serve a single gateway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

/// A one-time-use store could not answer; the sign-in is refused (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayCacheError {
    #[error("the replay cache is full")]
    Full,
    #[error("the replay cache is unavailable: {0}")]
    Unavailable(String),
}

/// Where redeemed assertion ids are remembered until they expire.
#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// Remembers `id` until `not_on_or_after`. `Ok(true)` the first time an id is seen, `Ok(false)`
    /// when it was already redeemed and has not expired. Must be atomic across every gateway
    /// sharing the cache: of two concurrent calls with one id, exactly one gets `Ok(true)`.
    async fn check_and_remember(&self, id: &str, not_on_or_after: SystemTime) -> Result<bool, ReplayCacheError>;
}

/// An AuthnRequest this gateway issued, as remembered until its response comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Past this, the request is no longer redeemable.
    pub until: SystemTime,
    /// SHA-256 of the browser-binding cookie when the sign-in was started for a browser session
    /// (`/saml/login?browser=1`); `None` for a sign-in that ends in a gateway token.
    pub binding: Option<[u8; 32]>,
}

/// AuthnRequest ids issued and not yet answered. Each is redeemable once, until it expires, by
/// whichever gateway sharing the store receives the response.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Records a new request id; `Ok(false)` if too many requests are pending (a flood of logins).
    async fn insert(&self, id: &str, request: PendingRequest) -> Result<bool, ReplayCacheError>;
    /// Redeems `id`: `Some` exactly once (across every gateway sharing the store), for a pending,
    /// unexpired id.
    async fn take(&self, id: &str) -> Result<Option<PendingRequest>, ReplayCacheError>;
}

/// In-process replay cache, bounded: expired ids are dropped when it fills, and when it is full
/// of live ids it refuses (rather than forgetting one that could then be replayed).
#[derive(Debug)]
pub struct MemoryReplayCache {
    ids: Mutex<HashMap<String, SystemTime>>,
    max_entries: usize,
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        MemoryReplayCache::with_capacity(100_000)
    }
}

impl MemoryReplayCache {
    pub fn with_capacity(max_entries: usize) -> MemoryReplayCache {
        MemoryReplayCache { ids: Mutex::new(HashMap::new()), max_entries }
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn check_and_remember(&self, id: &str, not_on_or_after: SystemTime) -> Result<bool, ReplayCacheError> {
        let mut ids = self.ids.lock().map_err(|_| ReplayCacheError::Unavailable("lock poisoned".into()))?;
        let now = SystemTime::now();
        if let Some(until) = ids.get(id) {
            if *until > now {
                return Ok(false);
            }
        }
        if ids.len() >= self.max_entries {
            ids.retain(|_, until| *until > now);
            if ids.len() >= self.max_entries {
                return Err(ReplayCacheError::Full);
            }
        }
        ids.insert(id.to_owned(), not_on_or_after);
        Ok(true)
    }
}

/// In-process pending AuthnRequests, bounded like [`MemoryReplayCache`].
#[derive(Debug)]
pub struct MemoryRequests {
    ids: Mutex<HashMap<String, PendingRequest>>,
    max_entries: usize,
}

impl Default for MemoryRequests {
    fn default() -> Self {
        MemoryRequests::new(super::MAX_PENDING_REQUESTS)
    }
}

impl MemoryRequests {
    pub fn new(max_entries: usize) -> MemoryRequests {
        MemoryRequests { ids: Mutex::new(HashMap::new()), max_entries }
    }
}

#[async_trait]
impl RequestStore for MemoryRequests {
    async fn insert(&self, id: &str, request: PendingRequest) -> Result<bool, ReplayCacheError> {
        let mut ids = self.ids.lock().map_err(|_| ReplayCacheError::Unavailable("lock poisoned".into()))?;
        if ids.len() >= self.max_entries {
            let now = SystemTime::now();
            ids.retain(|_, r| r.until > now);
            if ids.len() >= self.max_entries {
                return Ok(false);
            }
        }
        ids.insert(id.to_owned(), request);
        Ok(true)
    }

    async fn take(&self, id: &str) -> Result<Option<PendingRequest>, ReplayCacheError> {
        let mut ids = self.ids.lock().map_err(|_| ReplayCacheError::Unavailable("lock poisoned".into()))?;
        Ok(ids.remove(id).filter(|r| r.until > SystemTime::now()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn an_id_is_redeemed_once_until_it_expires() {
        let c = MemoryReplayCache::default();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(block(c.check_and_remember("a", later)).unwrap());
        assert!(!block(c.check_and_remember("a", later)).unwrap());
        assert!(block(c.check_and_remember("b", later)).unwrap());
        // An expired entry no longer blocks (the assertion itself is expired by then).
        assert!(block(c.check_and_remember("old", SystemTime::now() - Duration::from_secs(1))).unwrap());
        assert!(block(c.check_and_remember("old", later)).unwrap());
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting() {
        let c = MemoryReplayCache::with_capacity(2);
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(block(c.check_and_remember("a", later)).unwrap());
        assert!(block(c.check_and_remember("b", later)).unwrap());
        assert_eq!(block(c.check_and_remember("c", later)), Err(ReplayCacheError::Full));
        assert!(!block(c.check_and_remember("a", later)).unwrap());
    }

    #[test]
    fn pending_requests_are_taken_once() {
        let p = MemoryRequests::new(2);
        let later = PendingRequest { until: SystemTime::now() + Duration::from_secs(60), binding: None };
        let past = PendingRequest { until: SystemTime::now() - Duration::from_secs(1), binding: Some([7; 32]) };
        assert!(block(p.insert("r1", later.clone())).unwrap());
        assert_eq!(block(p.take("r1")).unwrap(), Some(later.clone()));
        assert_eq!(block(p.take("r1")).unwrap(), None);
        assert!(block(p.insert("r2", past)).unwrap());
        assert_eq!(block(p.take("r2")).unwrap(), None, "an expired request is not redeemable");
        assert!(block(p.insert("a", later.clone())).unwrap() && block(p.insert("b", later.clone())).unwrap());
        assert!(!block(p.insert("c", later)).unwrap(), "a full table refuses new requests");
    }
}
