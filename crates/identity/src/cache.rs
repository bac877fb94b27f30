//! Tokens already verified, so a client that reuses its token costs one hash lookup instead of a
//! signature check and claim validation on every request.
//!
//! Keyed by the SHA-256 of the whole token: any changed byte is a different key, so a tampered
//! token can never hit an entry. An entry lives until the token's `exp` (without clock skew:
//! stricter than the first check) and never longer than [`MAX_ENTRY_LIFE`], which bounds how long
//! a token is trusted without a fresh signature check. Each entry remembers which issuer and
//! which key (by its material, not its `kid`) verified it, so that a hit counts only while that
//! key is still published: a key withdrawn from the JWKS stops vouching for cached tokens at the
//! next key re-check. Only successes are cached; a refused token is checked again every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tracegate_core::Principal;

use crate::keys::KeyId;

/// Longest an entry is trusted without checking the signature again.
pub const MAX_ENTRY_LIFE: Duration = Duration::from_secs(300);
/// Most entries kept; past this, expired entries are dropped, then everything.
const CAPACITY: usize = 16_384;

#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    principal: Principal,
    /// Seconds since the epoch.
    until: u64,
    issuer: usize,
    key: KeyId,
}

/// A cached verification: who, and what vouched for it.
pub(crate) struct Hit {
    pub principal: Principal,
    /// Index of the issuer in the authenticator's list.
    pub issuer: usize,
    /// The key that verified the token.
    pub key: KeyId,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    pub(crate) fn get(&self, token: &str) -> Option<Hit> {
        let k = key(token);
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&k) {
            Some(e) if now_secs() < e.until => {
                Some(Hit { principal: e.principal.clone(), issuer: e.issuer, key: e.key })
            }
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    pub(crate) fn remove(&self, token: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(token));
    }

    /// Remembers a token verified by `key` of issuer number `issuer` until `exp` (seconds since
    /// the epoch), capped.
    pub(crate) fn insert(&self, token: &str, principal: &Principal, exp: u64, issuer: usize, key_id: KeyId) {
        let now = now_secs();
        let until = exp.min(now + MAX_ENTRY_LIFE.as_secs());
        if until <= now {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, e| e.until > now);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key(token), Entry { principal: principal.clone(), until, issuer, key: key_id });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracegate_core::AuthMethod;

    fn p() -> Principal {
        Principal {
            subject: "s".into(),
            issuer: "i".into(),
            groups: vec![],
            claims: Default::default(),
            auth_method: AuthMethod::Dev,
            person: None,
            credential: Default::default(),
        }
    }

    #[test]
    fn hits_only_the_same_token_until_it_expires() {
        let c = TokenCache::default();
        c.insert("a.b.c", &p(), now_secs() + 60, 1, [7; 32]);
        let hit = c.get("a.b.c").unwrap();
        assert_eq!((hit.principal.subject.as_str(), hit.issuer, hit.key), ("s", 1, [7; 32]));
        assert!(c.get("a.b.d").is_none());
        c.insert("x.y.z", &p(), now_secs().saturating_sub(1), 0, [0; 32]);
        assert!(c.get("x.y.z").is_none(), "expired tokens are never cached");
        c.remove("a.b.c");
        assert!(c.get("a.b.c").is_none());
    }
}
