//! One-time use: assertion ids already redeemed ([`ReplayCache`]) and AuthnRequest ids still
//! waiting for their response ([`PendingRequests`]).
//!
//! The trait is kept to one call so a shared implementation (PostgreSQL, issue 10) is an
//! `INSERT … ON CONFLICT DO NOTHING` away; the embedded one serves a single gateway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// The replay cache could not answer; the assertion is refused (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayCacheError {
    #[error("the replay cache is full")]
    Full,
    #[error("the replay cache is unavailable: {0}")]
    Unavailable(String),
}

/// Where redeemed assertion ids are remembered until they expire.
pub trait ReplayCache: Send + Sync {
    /// Remembers `id` until `not_on_or_after`. `Ok(true)` the first time an id is seen, `Ok(false)`
    /// when it was already redeemed and has not expired. Must be atomic: of two concurrent calls
    /// with one id, exactly one gets `Ok(true)`.
    fn check_and_remember(&self, id: &str, not_on_or_after: SystemTime) -> Result<bool, ReplayCacheError>;
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

impl ReplayCache for MemoryReplayCache {
    fn check_and_remember(&self, id: &str, not_on_or_after: SystemTime) -> Result<bool, ReplayCacheError> {
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

/// AuthnRequest ids this gateway issued and has not yet seen answered. Each is redeemable once,
/// until it expires.
#[derive(Debug)]
pub(crate) struct PendingRequests {
    ids: Mutex<HashMap<String, SystemTime>>,
    max_entries: usize,
}

impl PendingRequests {
    pub(crate) fn new(max_entries: usize) -> PendingRequests {
        PendingRequests { ids: Mutex::new(HashMap::new()), max_entries }
    }

    /// Records a new request id; `false` if too many requests are pending (a flood of logins).
    pub(crate) fn insert(&self, id: &str, until: SystemTime) -> bool {
        let Ok(mut ids) = self.ids.lock() else { return false };
        if ids.len() >= self.max_entries {
            let now = SystemTime::now();
            ids.retain(|_, t| *t > now);
            if ids.len() >= self.max_entries {
                return false;
            }
        }
        ids.insert(id.to_owned(), until);
        true
    }

    /// Redeems `id`: `true` exactly once, for a pending, unexpired id.
    pub(crate) fn take(&self, id: &str) -> bool {
        self.ids.lock().is_ok_and(|mut ids| ids.remove(id).is_some_and(|t| t > SystemTime::now()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_id_is_redeemed_once_until_it_expires() {
        let c = MemoryReplayCache::default();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(c.check_and_remember("a", later).unwrap());
        assert!(!c.check_and_remember("a", later).unwrap());
        assert!(c.check_and_remember("b", later).unwrap());
        // An expired entry no longer blocks (the assertion itself is expired by then).
        assert!(c.check_and_remember("old", SystemTime::now() - Duration::from_secs(1)).unwrap());
        assert!(c.check_and_remember("old", later).unwrap());
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting() {
        let c = MemoryReplayCache::with_capacity(2);
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(c.check_and_remember("a", later).unwrap());
        assert!(c.check_and_remember("b", later).unwrap());
        assert_eq!(c.check_and_remember("c", later), Err(ReplayCacheError::Full));
        assert!(!c.check_and_remember("a", later).unwrap());
    }

    #[test]
    fn pending_requests_are_taken_once() {
        let p = PendingRequests::new(2);
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(p.insert("r1", later));
        assert!(p.take("r1"));
        assert!(!p.take("r1"));
        assert!(p.insert("r2", SystemTime::now() - Duration::from_secs(1)));
        assert!(!p.take("r2"), "an expired request is not redeemable");
        assert!(p.insert("a", later) && p.insert("b", later));
        assert!(!p.insert("c", later), "a full table refuses new requests");
    }
}
