//! Tokens already verified, so a client that reuses its token costs one hash lookup instead of a
//! signature check and claim validation on every request.
//!
//! Keyed by the SHA-256 of the whole token: any changed byte is a different key, so a tampered
//! token can never hit an entry. An entry lives until the token's `exp` (without clock skew:
//! stricter than the first check) and never longer than [`MAX_ENTRY_LIFE`], which bounds how long
//! a key the issuer withdrew from its JWKS keeps working for tokens it already signed. Only
//! successes are cached; a refused token is checked again every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tracegate_core::Principal;

/// Longest an entry is trusted without checking the signature again.
pub const MAX_ENTRY_LIFE: Duration = Duration::from_secs(300);
/// Most entries kept; past this, expired entries are dropped, then everything.
const CAPACITY: usize = 16_384;

#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, u64)>>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    pub(crate) fn get(&self, token: &str) -> Option<Principal> {
        let k = key(token);
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&k) {
            Some((p, until)) if now_secs() < *until => Some(p.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token until `exp` (seconds since the epoch), capped.
    pub(crate) fn insert(&self, token: &str, principal: &Principal, exp: u64) {
        let now = now_secs();
        let until = exp.min(now + MAX_ENTRY_LIFE.as_secs());
        if until <= now {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key(token), (principal.clone(), until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracegate_core::AuthMethod;

    fn p() -> Principal {
        Principal { subject: "s".into(), issuer: "i".into(), groups: vec![], claims: Default::default(), auth_method: AuthMethod::Dev }
    }

    #[test]
    fn hits_only_the_same_token_until_it_expires() {
        let c = TokenCache::default();
        c.insert("a.b.c", &p(), now_secs() + 60);
        assert_eq!(c.get("a.b.c").map(|p| p.subject), Some("s".into()));
        assert!(c.get("a.b.d").is_none());
        c.insert("x.y.z", &p(), now_secs().saturating_sub(1));
        assert!(c.get("x.y.z").is_none(), "expired tokens are never cached");
    }
}
