//! Where traces live: the [`TraceStore`] trait, its backends, and the metadata index.
//!
//! **Architecture Invariant:** only this crate holds the trace store's credential and touches it.
//! Callers hand in a validated [`TraceId`]; no path is ever built from raw request input.

pub mod index;
pub mod object;
pub mod pg_index;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tracegate_core::TraceId;

pub use index::TraceIndex;
pub use object::ObjectTraceStore;
pub use pg_index::{MetaIndex, PgTraceIndex, RebuildProgress, RebuildReport};

/// A trace's bytes and the version they are, so audit can name exactly what was served.
#[derive(Debug, Clone)]
pub struct StoredTrace {
    pub bytes: Bytes,
    /// `sha256:<hex>` of the bytes: the same on every backend, and what replay checks against.
    pub version: String,
    /// This read's share of the store's read budget ([`ObjectTraceStore::with_read_budget`]),
    /// held until the trace (and every clone of it) is dropped: the bytes, and what is projected
    /// and masked from them, stay within the budget. Never read: holding it is the point.
    #[allow(dead_code)]
    share: Option<std::sync::Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl StoredTrace {
    pub fn new(bytes: Bytes) -> Self {
        let version = content_version(&bytes);
        StoredTrace { bytes, version, share: None }
    }

    /// Lowercase hex SHA-256 of `body` when `body` is byte for byte these stored bytes: their
    /// content version, computed once when they were read, so a response that serves a stored
    /// trace verbatim (a clean, compact trace read whole) is not hashed a second time for its
    /// audit record. `None` for any other body, which its caller must hash itself.
    pub fn digest_if_verbatim(&self, body: &[u8]) -> Option<&str> {
        if body != &self.bytes[..] {
            return None;
        }
        self.version.strip_prefix("sha256:")
    }

    /// `bytes` read under `share` of the read budget.
    pub(crate) fn within(bytes: Bytes, share: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        StoredTrace { share: share.map(std::sync::Arc::new), ..StoredTrace::new(bytes) }
    }
}

/// The content version of a trace: `sha256:<hex>` of its bytes.
pub fn content_version(bytes: &[u8]) -> String {
    const PREFIX: &[u8] = b"sha256:";
    let digest = Sha256::digest(bytes);
    // Hex written into one buffer of the final size, not through `hex::encode`'s per-char
    // iterator and a second `format!` copy: every read computes one.
    let mut out = vec![0u8; PREFIX.len() + 2 * digest.len()];
    let (head, tail) = out.split_at_mut(PREFIX.len());
    head.copy_from_slice(PREFIX);
    if hex::encode_to_slice(digest, tail).is_ok() {
        if let Ok(s) = String::from_utf8(out) {
            return s;
        }
    }
    format!("sha256:{}", hex::encode(digest))
}

/// The object key of a trace's current version: the order [`TraceStore::list_after`] walks in.
pub fn object_key(id: &TraceId) -> String {
    format!("{id}{}", object::SUFFIX)
}

/// [`TraceStore::list_after`] by sorting [`TraceStore::list`]: for stores that cannot list in
/// key order (a local directory). Holds every name, never a trace's bytes.
pub(crate) fn sorted_list_after<'a, S: TraceStore + ?Sized>(
    store: &'a S,
    after: Option<&TraceId>,
) -> futures::stream::BoxStream<'a, Result<TraceId, StoreError>> {
    let after = after.map(object_key);
    Box::pin(futures::stream::once(store.list()).flat_map(move |listed| {
        let items: Vec<Result<TraceId, StoreError>> = match listed {
            Ok(mut ids) => {
                ids.retain(|id| after.as_ref().is_none_or(|a| object_key(id) > *a));
                ids.sort_by_cached_key(object_key);
                ids.into_iter().map(Ok).collect()
            }
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(items)
    }))
}

/// A store failure. `NotFound` and `Precondition` are the caller's (404, 412); the rest are
/// the gateway's (503).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("trace `{0}` not found")]
    NotFound(TraceId),
    /// A conditional write found the trace in another state than the writer expected.
    #[error("trace `{id}`: {reason}")]
    Precondition { id: TraceId, reason: String },
    /// The stored object is larger than the store's read limit ([`ObjectTraceStore::with_read_limit`]):
    /// refused from its size, before its body is read, so one huge object cannot take the
    /// gateway's memory.
    #[error("trace `{id}` is {size} bytes, more than the read limit of {limit}")]
    TooLarge { id: TraceId, size: u64, limit: u64 },
    #[error("trace store unavailable: {0}")]
    Backend(String),
}

/// What a write expects of the trace it replaces (HTTP `If-None-Match: *` / `If-Match`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteCondition {
    /// Create or replace, whatever is there.
    #[default]
    Any,
    /// Only if no trace has this id yet.
    Absent,
    /// Only if the current version is exactly this one.
    Version(String),
}

/// The trace store the gateway alone reads and writes.
///
/// Every write makes a new immutable version; earlier versions stay readable by
/// [`TraceStore::get_version`], so a read made before an overwrite can still be replayed.
#[async_trait]
pub trait TraceStore: Send + Sync + 'static {
    /// The current version.
    async fn get(&self, id: &TraceId) -> Result<StoredTrace, StoreError>;
    /// Exactly `version` (a `sha256:` content version), current or not.
    async fn get_version(&self, id: &TraceId, version: &str) -> Result<StoredTrace, StoreError>;
    /// Stores `bytes` as the trace's new current version if `cond` holds, atomically with the
    /// check: readers see the old or the new bytes, never a mix, and of two conditional writers
    /// racing on the same version exactly one succeeds.
    async fn put(&self, id: &TraceId, bytes: Bytes, cond: &WriteCondition) -> Result<String, StoreError>;
    /// Every trace id in the store (for rebuilding the index).
    async fn list(&self) -> Result<Vec<TraceId>, StoreError>;
    /// Trace ids in the order of their object keys (`<id>.json`), strictly after `after`'s key,
    /// as the listing yields them: what `tracegate index rebuild` walks, and where an interrupted
    /// one resumes. This default sorts [`TraceStore::list`]; buckets override it to stream the
    /// listing page by page from `after` on, never holding the whole store's names.
    fn list_after<'a>(&'a self, after: Option<&TraceId>) -> futures::stream::BoxStream<'a, Result<TraceId, StoreError>> {
        sorted_list_after(self, after)
    }
    /// A short name for logs and `/healthz`, e.g. `local:/var/lib/tracegate/traces`.
    fn describe(&self) -> String;
    /// One cheap request that needs the backend to answer with the gateway's credential (a
    /// metadata read of a key that need not exist), for readiness: `Ok` if it answered.
    async fn probe(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Against the oracle, SHA-256 of the body itself, on generated bodies: equal to the stored
    /// bytes, differing in one byte anywhere, shorter, longer, empty.
    #[test]
    fn a_verbatim_digest_is_only_ever_the_digest_of_the_body() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let len = (next() % 300) as usize;
            let stored: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let trace = StoredTrace::new(Bytes::from(stored.clone()));
            let mut bodies = vec![stored.clone(), Vec::new(), [stored.as_slice(), b"x"].concat()];
            if !stored.is_empty() {
                let mut flipped = stored.clone();
                let at = (next() % len as u64) as usize;
                flipped[at] ^= 1 << (next() % 8);
                bodies.push(flipped);
                bodies.push(stored[..len - 1].to_vec());
            }
            for body in bodies {
                let oracle = hex::encode(Sha256::digest(&body));
                match trace.digest_if_verbatim(&body) {
                    Some(d) => assert_eq!(d, oracle),
                    None => assert_ne!(body, stored, "the stored bytes themselves get their version"),
                }
            }
            assert_eq!(trace.digest_if_verbatim(&stored), Some(hex::encode(Sha256::digest(&stored)).as_str()));
        }
    }
}
