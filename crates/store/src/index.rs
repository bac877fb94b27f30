//! The metadata index search runs on. Embedded: in memory, rebuilt by scanning the store at
//! start-up and kept current on every write through the gateway. With `[state]`, the index is
//! the shared PostgreSQL table of [`crate::pg_index`] instead.

use std::collections::HashMap;
use std::sync::RwLock;

use tracegate_core::{TraceId, TraceMeta};

use crate::{StoreError, TraceStore};

/// The metadata of stored bytes. A trace that is not valid JSON is indexed with its id only (it
/// stays readable by roles without row scope) and logged.
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
    /// Reads every trace once and indexes its metadata. A trace that is not valid JSON is
    /// indexed with its id only (it stays readable by roles without row scope) and logged.
    pub async fn rebuild(store: &dyn TraceStore) -> Result<TraceIndex, StoreError> {
        let index = TraceIndex::default();
        for id in store.list().await? {
            let stored = store.get(&id).await?;
            index.upsert(meta_of_bytes(id, &stored.bytes));
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
