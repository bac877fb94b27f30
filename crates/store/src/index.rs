//! The metadata index search runs on. Embedded: in memory, rebuilt by scanning the store at
//! start-up and kept current on every write through the gateway. With `[state]`, the index is
//! the shared PostgreSQL table of [`crate::pg_index`] instead.

use std::collections::HashMap;
use std::sync::RwLock;

use tracegate_core::{TraceId, TraceMeta};

use crate::{StoreError, TraceStore};

/// The metadata of stored bytes. A trace that is not valid JSON is indexed with its id only (it
/// stays readable by roles without row scope) and logged.
/// The metadata of what `store.get(id)` returned, for indexing: a trace too large to read is
/// indexed by id only (as one that is not JSON is), so one oversized object does not stop a
/// rebuild or a start-up; reading it stays refused. `None` when it is gone.
pub(crate) fn meta_of_read(id: TraceId, got: Result<crate::StoredTrace, StoreError>) -> Result<Option<TraceMeta>, StoreError> {
    match got {
        Ok(stored) => Ok(Some(meta_of_bytes(id, &stored.bytes))),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(StoreError::TooLarge { size, limit, .. }) => {
            tracing::warn!(trace = %id, size, limit, "trace is larger than the read limit; indexed by id only");
            Ok(Some(TraceMeta::extract(id, &serde_json::Value::Null)))
        }
        Err(e) => Err(e),
    }
}

pub fn meta_of_bytes(id: TraceId, bytes: &[u8]) -> TraceMeta {
    match serde_json::from_slice(bytes) {
        Ok(doc) => TraceMeta::extract(id, &doc),
        Err(e) => {
            tracing::warn!(trace = %id, error = %e, "trace is not valid JSON; indexed by id only");
            TraceMeta::extract(id, &serde_json::Value::Null)
        }
    }
}

#[derive(Default)]
pub struct TraceIndex {
    by_id: RwLock<HashMap<TraceId, TraceMeta>>,
}

impl TraceIndex {
    /// Reads every trace once and indexes its metadata. A trace that is not valid JSON, or too
    /// large to read, is indexed with its id only and logged.
    pub async fn rebuild(store: &dyn TraceStore) -> Result<TraceIndex, StoreError> {
        let index = TraceIndex::default();
        for id in store.list().await? {
            let got = store.get(&id).await;
            if let Some(meta) = meta_of_read(id, got)? {
                index.upsert(meta);
            }
        }
        Ok(index)
    }

    pub fn upsert(&self, meta: TraceMeta) {
        let mut map = self.by_id.write().unwrap_or_else(|p| p.into_inner());
        map.insert(meta.trace_id.clone(), meta);
    }

    pub fn get(&self, id: &TraceId) -> Option<TraceMeta> {
        self.by_id.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_id.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` over every indexed trace under one read lock.
    pub fn with_all<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &TraceMeta>) -> R) -> R {
        let map = self.by_id.read().unwrap_or_else(|p| p.into_inner());
        f(&mut map.values())
    }
}
