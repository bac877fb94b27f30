//! A [`TraceStore`] over the `object_store` crate: a local directory today, an S3-compatible
//! bucket by configuration later. Each trace is the object `<id>.json`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracegate_core::TraceId;

use crate::{StoreError, StoredTrace, TraceStore};

const SUFFIX: &str = ".json";

pub struct ObjectTraceStore {
    inner: Arc<dyn ObjectStore>,
    name: String,
}

impl ObjectTraceStore {
    /// A store rooted at `dir`, created if absent. `LocalFileSystem` writes to a temporary file
    /// and renames it into place, so a crash mid-write never leaves a torn trace.
    pub fn local(dir: &std::path::Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("creating `{}`: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(backend)?;
        Ok(ObjectTraceStore { inner: Arc::new(fs), name: format!("local:{}", dir.display()) })
    }

    fn key(id: &TraceId) -> Path {
        Path::from(format!("{id}{SUFFIX}"))
    }
}

fn backend(e: object_store::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[async_trait]
impl TraceStore for ObjectTraceStore {
    async fn get(&self, id: &TraceId) -> Result<StoredTrace, StoreError> {
        match self.inner.get(&Self::key(id)).await {
            Ok(r) => Ok(StoredTrace::new(r.bytes().await.map_err(backend)?)),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound(id.clone())),
            Err(e) => Err(backend(e)),
        }
    }

    async fn put(&self, id: &TraceId, bytes: Bytes) -> Result<String, StoreError> {
        let version = crate::content_version(&bytes);
        self.inner.put(&Self::key(id), PutPayload::from(bytes)).await.map_err(backend)?;
        Ok(version)
    }

    async fn list(&self) -> Result<Vec<TraceId>, StoreError> {
        let metas: Vec<_> = self.inner.list(None).try_collect().await.map_err(backend)?;
        let mut ids: Vec<TraceId> = metas
            .iter()
            .filter_map(|m| m.location.filename())
            .filter_map(|f| f.strip_suffix(SUFFIX))
            .filter_map(|s| TraceId::parse(s).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TraceId {
        TraceId::parse(s).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[tokio::test]
    async fn put_get_list_round_trip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let s = ObjectTraceStore::local(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(s.get(&id("a")).await, Err(StoreError::NotFound(_))));
        let v = s.put(&id("a"), Bytes::from_static(b"{}")).await.unwrap_or_else(|e| unreachable!("{e}"));
        let got = s.get(&id("a")).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(got.bytes.as_ref(), b"{}");
        assert_eq!(got.version, v);
        s.put(&id("b.2"), Bytes::from_static(b"[]")).await.unwrap_or_else(|e| unreachable!("{e}"));
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.list().await.unwrap_or_else(|e| unreachable!("{e}")), vec![id("a"), id("b.2")]);
    }
}
