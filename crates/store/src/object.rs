//! A [`TraceStore`] over the `object_store` crate: a local directory, or any S3-compatible
//! bucket (also GCS and Azure) by configuration — `ObjectTraceStore::open("s3://bucket/prefix")`.
//! Credentials and endpoints come from the standard environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, web identity
//! tokens, …), never from the config file.
//!
//! Layout: the current version of a trace is the object `<id>.json` (one read serves it); every
//! version ever written is also kept, immutable and content-addressed, as
//! `versions/<id>/<sha256 hex>.json`, created with `PutMode::Create` so it is never
//! overwritten. Replay reads the exact version it recorded.
//!
//! Conditional writes compare and swap the current version. On buckets the swap is the
//! object store's own conditional put (`If-Match` on the ETag read, `If-None-Match: *` for a
//! new trace), so replicas sharing a bucket cannot overwrite each other silently. The local
//! filesystem has no conditional update, so there the check and the swap run under a per-trace
//! lock; one gateway process owns an embedded data directory (the audit log's file lock
//! enforces that).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tokio::sync::Mutex;
use tracegate_core::TraceId;

use crate::{content_version, StoreError, StoredTrace, TraceStore, WriteCondition};

pub(crate) const SUFFIX: &str = ".json";
const VERSIONS: &str = "versions";
/// Locks striped over trace ids: writes to one trace are serialised, writes to others rarely wait.
const LOCK_STRIPES: usize = 64;
/// The key `probe` asks about. Never written: "not found" is the answer of a healthy bucket, and
/// the name cannot collide with a trace (`.` starts no trace id) or a version.
const PROBE_KEY: &str = ".tracegate-probe";
/// Local objects up to this size are read on the calling task. A read of this much from the page
/// cache takes tens of microseconds, far less than the two thread hand-offs `object_store`'s
/// `LocalFileSystem` makes per read (`spawn_blocking` to open, again to read); larger ones still
/// go to the blocking pool so one huge trace cannot stall an async worker.
const INLINE_READ_BYTES: u64 = 1024 * 1024;

pub struct ObjectTraceStore {
    inner: Arc<dyn ObjectStore>,
    name: String,
    locks: Vec<Mutex<()>>,
    /// The backend swaps the current object conditionally itself (buckets); otherwise the lock.
    conditional: bool,
    /// The directory of a local store: reads go to the file directly (see [`INLINE_READ_BYTES`]).
    local_root: Option<std::path::PathBuf>,
    /// Largest object a read loads ([`StoreError::TooLarge`] beyond it).
    read_limit: u64,
    /// KiB of objects being read and worked on at once, and its size ([`Self::with_read_budget`]).
    budget: Option<(Arc<tokio::sync::Semaphore>, u32)>,
}

impl ObjectTraceStore {
    /// A store rooted at `dir`, created if absent. `LocalFileSystem` writes to a temporary file
    /// and renames it into place, so a crash mid-write never leaves a torn trace.
    pub fn local(dir: &std::path::Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("creating `{}`: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(backend)?;
        let root = std::fs::canonicalize(dir).map_err(|e| StoreError::Backend(format!("resolving `{}`: {e}", dir.display())))?;
        Ok(ObjectTraceStore {
            inner: Arc::new(fs),
            name: format!("local:{}", dir.display()),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            conditional: false,
            local_root: Some(root),
            read_limit: u64::MAX,
            budget: None,
        })
    }

    /// A store at `url`: `s3://bucket/prefix`, `gs://…`, `az://…`, or `file:///dir`. Bucket
    /// credentials come from the environment; the name kept for logs carries none.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &[])
    }

    /// [`ObjectTraceStore::open`] with settings that override the environment's (e.g.
    /// `("aws_endpoint", …)`), for tools and tests that must not touch process environment.
    pub fn open_with(url: &str, settings: &[(&str, &str)]) -> Result<Self, StoreError> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Self::local(std::path::Path::new(dir));
        }
        let parsed = url::Url::parse(url).map_err(|e| StoreError::Backend(format!("store url: {e}")))?;
        let bucket = parsed.host_str().unwrap_or_default().to_owned();
        let prefix = parsed.path().trim_matches('/').to_owned();
        let inner: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" | "s3a" => {
                // A gateway answers 503 quickly when the bucket is down; it does not retry for
                // minutes while callers wait.
                let retry = object_store::RetryConfig {
                    max_retries: 2,
                    retry_timeout: std::time::Duration::from_secs(10),
                    ..object_store::RetryConfig::default()
                };
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket).with_retry(retry);
                // Set as one key, not as a whole `ClientOptions`, which would replace the client
                // settings read from the environment (`AWS_ALLOW_HTTP` among them).
                let connect = object_store::aws::AmazonS3ConfigKey::Client(object_store::ClientConfigKey::ConnectTimeout);
                if b.get_config_value(&connect).is_none() {
                    b = b.with_config(connect, "3s");
                }
                for (k, v) in settings {
                    let key = k.parse::<object_store::aws::AmazonS3ConfigKey>().map_err(backend)?;
                    b = b.with_config(key, *v);
                }
                Arc::new(b.build().map_err(backend)?)
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(&bucket).build().map_err(backend)?,
            ),
            "az" | "azure" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(&bucket).build().map_err(backend)?,
            ),
            other => return Err(StoreError::Backend(format!("store url scheme `{other}` is not supported (s3, gs, az, file)"))),
        };
        let inner: Arc<dyn ObjectStore> =
            if prefix.is_empty() { inner } else { Arc::new(PrefixStore::new(inner, Path::from(prefix.as_str()))) };
        Ok(ObjectTraceStore {
            inner,
            name: format!("{}://{bucket}/{prefix}", parsed.scheme()),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            conditional: true,
            local_root: None,
            read_limit: u64::MAX,
            budget: None,
        })
    }

    /// Refuse to load objects larger than `bytes` ([`StoreError::TooLarge`]), judged from the
    /// object's size before its body is read (and enforced again while the body streams in, so a
    /// backend that under-reports cannot push past it). Every read, the one a write makes of the
    /// version it replaces included, is bounded by it. Unbounded by default.
    pub fn with_read_limit(mut self, bytes: u64) -> Self {
        self.read_limit = bytes;
        self
    }

    /// Bound the bytes of objects being read at once to about `bytes`: each read takes a share
    /// the size of the object (at least 1 KiB, at most the whole budget), judged from the size
    /// before the body is fetched, and keeps it in the [`StoredTrace`] until that is dropped. So
    /// many concurrent reads of large traces wait their turn instead of all downloading at once;
    /// a read of one object larger than the budget takes all of it and runs alone.
    pub fn with_read_budget(mut self, bytes: u64) -> Self {
        let kib = u32::try_from((bytes / 1024).max(1)).unwrap_or(u32::MAX);
        self.budget = Some((Arc::new(tokio::sync::Semaphore::new(kib as usize)), kib));
        self
    }

    /// The read budget's share for an object of `size` bytes (none without a budget).
    async fn share(&self, size: u64) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, StoreError> {
        let Some((budget, total)) = &self.budget else { return Ok(None) };
        let kib = u32::try_from(size / 1024).unwrap_or(u32::MAX).clamp(1, *total);
        // The semaphore is never closed; if it were, nothing would be read.
        budget.clone().acquire_many_owned(kib).await.map(Some).map_err(|_| StoreError::Backend("the read budget is closed".into()))
    }

    fn key(id: &TraceId) -> Path {
        Path::from(crate::object_key(id))
    }

    /// `None` when `version` is not a `sha256:` content version (so no path is built from it).
    fn version_key(id: &TraceId, version: &str) -> Option<Path> {
        let hex = version.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        Some(Path::from(format!("{VERSIONS}/{id}/{hex}{SUFFIX}")))
    }

    fn lock_for(&self, id: &TraceId) -> &Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let i = (h.finish() as usize) % self.locks.len().max(1);
        &self.locks[i.min(self.locks.len() - 1)]
    }

    async fn read(&self, path: &Path, id: &TraceId) -> Result<StoredTrace, StoreError> {
        self.read_tagged(path, id).await.map(|(t, _)| t)
    }

    /// The object and the backend's version of it (ETag), for a conditional swap.
    async fn read_tagged(&self, path: &Path, id: &TraceId) -> Result<(StoredTrace, UpdateVersion), StoreError> {
        if let Some(root) = &self.local_root {
            // A local directory never swaps conditionally (the stripe lock does), so no tag.
            let (bytes, share) = read_local(root.join(path.as_ref()), id, self.read_limit, |size| self.share(size)).await?;
            return Ok((StoredTrace::within(bytes, share), UpdateVersion { e_tag: None, version: None }));
        }
        match self.inner.get(path).await {
            Ok(r) => {
                // The size is in the response head: a too-large object is refused before its body.
                let limit = self.read_limit;
                let too_large = |size: u64| StoreError::TooLarge { id: id.clone(), size, limit };
                if r.meta.size > limit {
                    return Err(too_large(r.meta.size));
                }
                let share = self.share(r.meta.size).await?;
                let tag = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
                let mut buf = Vec::with_capacity(usize::try_from(r.meta.size).unwrap_or(0));
                let mut body = r.into_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(backend)?;
                    let len = (buf.len() + chunk.len()) as u64;
                    if len > limit {
                        return Err(too_large(len));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok((StoredTrace::within(Bytes::from(buf), share), tag))
            }
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound(id.clone())),
            Err(e) => Err(backend(e)),
        }
    }

    /// Keeps `bytes` as the immutable version object; already there is fine (same content).
    async fn keep_version(&self, id: &TraceId, version: &str, bytes: Bytes) -> Result<(), StoreError> {
        let Some(path) = Self::version_key(id, version) else {
            return Err(StoreError::Backend(format!("`{version}` is not a content version")));
        };
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.inner.put_opts(&path, PutPayload::from(bytes), opts).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}

/// Reads a local object: inline when small, on the blocking pool when not. `file` is built from
/// an object key, itself built only from a validated [`TraceId`] and a checked content version.
/// `LocalFileSystem` writes by rename, so a read sees the old bytes or the new, never a mix.
async fn read_local<F, Fut>(file: std::path::PathBuf, id: &TraceId, limit: u64, share: F) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), StoreError>
where
    F: FnOnce(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Option<tokio::sync::OwnedSemaphorePermit>, StoreError>>,
{
    use std::io::Read;
    let failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound(id.clone()),
        _ => StoreError::Backend(format!("reading `{}`: {e}", file.display())),
    };
    let f = std::fs::File::open(&file).map_err(failed)?;
    let meta = f.metadata().map_err(failed)?;
    if !meta.is_file() {
        return Err(StoreError::NotFound(id.clone()));
    }
    if meta.len() > limit {
        return Err(StoreError::TooLarge { id: id.clone(), size: meta.len(), limit });
    }
    // Reads at most one byte past the limit, so a file that grew since `metadata` is caught
    // without being loaded whole.
    let read_all = move |f: std::fs::File, len: u64| -> std::io::Result<Bytes> {
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
        f.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
        Ok(Bytes::from(buf))
    };
    let checked = |r: std::io::Result<Bytes>| -> Result<Bytes, StoreError> {
        let bytes = r.map_err(failed)?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::TooLarge { id: id.clone(), size: bytes.len() as u64, limit });
        }
        Ok(bytes)
    };
    let share = share(meta.len()).await?;
    if meta.len() <= INLINE_READ_BYTES {
        return checked(read_all(f, meta.len())).map(|b| (b, share));
    }
    let len = meta.len();
    match tokio::task::spawn_blocking(move || read_all(f, len)).await {
        Ok(r) => checked(r).map(|b| (b, share)),
        Err(e) => Err(StoreError::Backend(format!("reading `{}`: {e}", file.display()))),
    }
}

fn backend(e: object_store::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[async_trait]
impl TraceStore for ObjectTraceStore {
    async fn get(&self, id: &TraceId) -> Result<StoredTrace, StoreError> {
        self.read(&Self::key(id), id).await
    }

    async fn get_version(&self, id: &TraceId, version: &str) -> Result<StoredTrace, StoreError> {
        let Some(path) = Self::version_key(id, version) else { return Err(StoreError::NotFound(id.clone())) };
        match self.read(&path, id).await {
            Err(StoreError::NotFound(_)) => {
                // Written before versions were kept: the current object may still be it.
                let cur = self.get(id).await?;
                if cur.version == version {
                    Ok(cur)
                } else {
                    Err(StoreError::NotFound(id.clone()))
                }
            }
            other => other,
        }
    }

    async fn put(&self, id: &TraceId, bytes: Bytes, cond: &WriteCondition) -> Result<String, StoreError> {
        let version = content_version(&bytes);
        // Buckets swap conditionally on the ETag read below; the lock only serialises writers
        // of this process (and is the whole guarantee on a local directory).
        let _guard = self.lock_for(id).lock().await;
        let (current, tag) = match self.read_tagged(&Self::key(id), id).await {
            Ok((c, t)) => (Some(c), Some(t)),
            Err(StoreError::NotFound(_)) => (None, None),
            Err(e) => return Err(e),
        };
        let failed = |reason: &str| Err(StoreError::Precondition { id: id.clone(), reason: reason.to_owned() });
        match (cond, &current) {
            (WriteCondition::Absent, Some(_)) => return failed("a trace with this id exists (If-None-Match: *)"),
            (WriteCondition::Version(_), None) => return failed("no trace with this id exists (If-Match)"),
            (WriteCondition::Version(v), Some(c)) if &c.version != v => {
                return failed("the current version is not the one given in If-Match")
            }
            _ => {}
        }
        // The version being replaced stays readable for replay, even if it predates versions.
        if let Some(c) = current {
            self.keep_version(id, &c.version, c.bytes).await?;
        }
        self.keep_version(id, &version, bytes.clone()).await?;
        let mode = match (self.conditional, tag) {
            (false, _) => PutMode::Overwrite,
            (true, None) => PutMode::Create,
            (true, Some(t)) => PutMode::Update(t),
        };
        let opts = PutOptions { mode, ..PutOptions::default() };
        match self.inner.put_opts(&Self::key(id), PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(version),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                failed("another writer replaced the trace first")
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn list(&self) -> Result<Vec<TraceId>, StoreError> {
        // Current objects only: the top level, not `versions/`.
        let listing = self.inner.list_with_delimiter(None).await.map_err(backend)?;
        let mut ids: Vec<TraceId> = listing
            .objects
            .iter()
            .filter_map(|m| m.location.filename())
            .filter_map(|f| f.strip_suffix(SUFFIX))
            .filter_map(|s| TraceId::parse(s).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn list_after<'a>(&'a self, after: Option<&TraceId>) -> BoxStream<'a, Result<TraceId, StoreError>> {
        if !self.conditional {
            // A local directory has no order to list in: read its names, then sort (the default).
            return crate::sorted_list_after(self, after);
        }
        // Buckets list in key order from an offset (S3 `start-after`), a page at a time. A key
        // under a folder (`versions/…`) means the whole folder is next in the listing: it is
        // skipped by listing again from just past it (`<folder>0`, '0' being the byte after '/').
        let walk = Walk { inner: self.inner.clone(), listing: None, offset: after.map(crate::object_key), failed: false };
        Box::pin(futures::stream::unfold(walk, |mut w| async move {
            if w.failed {
                return None;
            }
            loop {
                let listing = w.listing.get_or_insert_with(|| match &w.offset {
                    Some(o) => w.inner.list_with_offset(None, &Path::from(o.as_str())),
                    None => w.inner.list(None),
                });
                match listing.next().await? {
                    Err(e) => {
                        w.failed = true;
                        return Some((Err(backend(e)), w));
                    }
                    Ok(meta) => {
                        let key = meta.location.as_ref().to_owned();
                        if let Some((folder, _)) = key.split_once('/') {
                            w.offset = Some(format!("{folder}0"));
                            w.listing = None;
                            continue;
                        }
                        let id = key.strip_suffix(SUFFIX).and_then(|s| TraceId::parse(s).ok());
                        w.offset = Some(key);
                        if let Some(id) = id {
                            return Some((Ok(id), w));
                        }
                    }
                }
            }
        }))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn probe(&self) -> Result<(), StoreError> {
        if let Some(root) = &self.local_root {
            // `LocalFileSystem` answers "not found" for a key in a directory that has gone too,
            // which is what a healthy store says: ask about the directory itself.
            return match std::fs::read_dir(root) {
                Ok(_) => Ok(()),
                Err(e) => Err(StoreError::Backend(format!("trace directory `{}`: {e}", root.display()))),
            };
        }
        match self.inner.head(&Path::from(PROBE_KEY)).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}

/// Where a bucket listing has got to.
struct Walk {
    inner: Arc<dyn ObjectStore>,
    listing: Option<BoxStream<'static, object_store::Result<object_store::ObjectMeta>>>,
    /// The last key seen: a new listing starts after it.
    offset: Option<String>,
    failed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WriteCondition;

    fn id(s: &str) -> TraceId {
        TraceId::parse(s).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[tokio::test]
    async fn put_get_list_round_trip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let s = ObjectTraceStore::local(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(s.get(&id("a")).await, Err(StoreError::NotFound(_))));
        let v = s.put(&id("a"), Bytes::from_static(b"{}"), &WriteCondition::Any).await.unwrap_or_else(|e| unreachable!("{e}"));
        let got = s.get(&id("a")).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(got.bytes.as_ref(), b"{}");
        assert_eq!(got.version, v);
        s.put(&id("b.2"), Bytes::from_static(b"[]"), &WriteCondition::Any).await.unwrap_or_else(|e| unreachable!("{e}"));
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.list().await.unwrap_or_else(|e| unreachable!("{e}")), vec![id("a"), id("b.2")]);
    }

    #[tokio::test]
    async fn every_version_stays_readable_and_writes_are_conditional() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let s = ObjectTraceStore::local(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        let a = id("t");
        let v1 = s.put(&a, Bytes::from_static(b"{\"n\":1}"), &WriteCondition::Absent).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(s.put(&a, Bytes::from_static(b"{}"), &WriteCondition::Absent).await, Err(StoreError::Precondition { .. })));
        let stale = WriteCondition::Version("sha256:".to_owned() + &"0".repeat(64));
        assert!(matches!(s.put(&a, Bytes::from_static(b"{}"), &stale).await, Err(StoreError::Precondition { .. })));
        let v2 = s.put(&a, Bytes::from_static(b"{\"n\":2}"), &WriteCondition::Version(v1.clone())).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_ne!(v1, v2);
        assert_eq!(s.get(&a).await.unwrap_or_else(|e| unreachable!("{e}")).version, v2);
        let old = s.get_version(&a, &v1).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(old.bytes.as_ref(), b"{\"n\":1}");
        assert!(matches!(s.get_version(&a, "sha256:../../etc").await, Err(StoreError::NotFound(_))));
        assert_eq!(s.list().await.unwrap_or_else(|e| unreachable!("{e}")), vec![a.clone()]);
    }

    /// Local reads skip `object_store`'s blocking pool up to `INLINE_READ_BYTES`, and use it
    /// above: both sizes read back exactly, with their content version; a missing object or a
    /// directory where the object would be is `NotFound`, never a backend error or a panic.
    #[tokio::test(flavor = "current_thread")]
    async fn local_reads_inline_and_on_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let s = ObjectTraceStore::local(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        let small = Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(1000)));
        let over = usize::try_from(INLINE_READ_BYTES).unwrap_or(usize::MAX) + 10;
        let large = Bytes::from(format!("{{\"pad\":\"{}\"}}", "y".repeat(over)));
        for (name, bytes) in [("small", small), ("large", large)] {
            let v = s.put(&id(name), bytes.clone(), &WriteCondition::Any).await.unwrap_or_else(|e| unreachable!("{e}"));
            let got = s.get(&id(name)).await.unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(got.bytes, bytes, "{name}");
            assert_eq!(got.version, v, "{name}");
            assert_eq!(got.version, content_version(&bytes), "{name}");
            let old = s.get_version(&id(name), &v).await.unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(old.bytes, bytes, "{name}");
        }
        assert!(matches!(s.get(&id("absent")).await, Err(StoreError::NotFound(_))));
        std::fs::create_dir(dir.path().join("adir.json")).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(s.get(&id("adir")).await, Err(StoreError::NotFound(_))));
        // Bytes changed behind the gateway's back are served under their own content version,
        // never under the one the gateway wrote.
        let v = s.put(&id("t"), Bytes::from_static(b"{\"a\":1}"), &WriteCondition::Any).await.unwrap_or_else(|e| unreachable!("{e}"));
        std::fs::write(dir.path().join("t.json"), b"{\"a\":2}").unwrap_or_else(|e| unreachable!("{e}"));
        let got = s.get(&id("t")).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_ne!(got.version, v);
        assert_eq!(got.version, content_version(b"{\"a\":2}"));
    }

    /// A local store whose directory is removed or replaced by a file is not ready: the probe
    /// must not take the "not found" of every key in a missing directory for a healthy store.
    #[tokio::test(flavor = "current_thread")]
    async fn the_local_probe_sees_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let root = dir.path().join("traces");
        let s = ObjectTraceStore::local(&root).unwrap_or_else(|e| unreachable!("{e}"));
        s.probe().await.unwrap_or_else(|e| unreachable!("{e}"));
        std::fs::remove_dir(&root).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(s.probe().await, Err(StoreError::Backend(_))));
        std::fs::write(&root, b"not a directory").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(s.probe().await, Err(StoreError::Backend(_))));
    }

    /// The read limit holds on both local read paths (inline and the blocking pool): a file
    /// at the limit is read whole, one byte over is refused, and the refusal is typed.
    #[tokio::test(flavor = "current_thread")]
    async fn local_reads_stop_at_the_read_limit() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        for limit in [64, INLINE_READ_BYTES + 64] {
            let s = ObjectTraceStore::local(dir.path()).unwrap_or_else(|e| unreachable!("{e}")).with_read_limit(limit);
            let pad = usize::try_from(limit).unwrap_or(usize::MAX) - 8;
            let at = Bytes::from(format!("{{\"p\":\"{}\"}}", "x".repeat(pad)));
            assert_eq!(at.len() as u64, limit);
            std::fs::write(dir.path().join("at.json"), &at).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(s.get(&id("at")).await.unwrap_or_else(|e| unreachable!("{e}")).bytes, at);
            let over = Bytes::from(format!("{{\"p\":\"{}\"}}", "x".repeat(pad + 1)));
            std::fs::write(dir.path().join("over.json"), &over).unwrap_or_else(|e| unreachable!("{e}"));
            let got = s.get(&id("over")).await;
            assert!(matches!(got, Err(StoreError::TooLarge { size, .. }) if size == limit + 1), "{limit}: {got:?}");
        }
    }

    /// A read holds its share of the read budget, sized from the object, for as long as the
    /// trace or any clone of it lives; a read that would exceed the budget waits (it does not
    /// fail and does not read), and goes on once the share is given back.
    #[tokio::test(flavor = "current_thread")]
    async fn reads_wait_for_their_share_of_the_read_budget() {
        use futures::FutureExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let s = ObjectTraceStore::local(dir.path()).unwrap_or_else(|e| unreachable!("{e}")).with_read_budget(4096);
        std::fs::write(dir.path().join("big.json"), format!("{{\"p\":\"{}\"}}", "x".repeat(5000))).unwrap_or_else(|e| unreachable!("{e}"));
        std::fs::write(dir.path().join("small.json"), b"{}").unwrap_or_else(|e| unreachable!("{e}"));
        let (big, small) = (id("big"), id("small"));
        let held = s.get(&big).now_or_never().unwrap_or_else(|| unreachable!("the budget is free")).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(s.get(&small).now_or_never().is_none(), "a 5 KB object takes the whole 4 KiB budget");
        let clone = held.clone();
        drop(held);
        assert!(s.get(&small).now_or_never().is_none(), "a clone keeps the share");
        drop(clone);
        let a = s.get(&small).now_or_never().unwrap_or_else(|| unreachable!("the share was given back"));
        let a = a.unwrap_or_else(|e| unreachable!("{e}"));
        // Small reads share the budget (1 KiB each): four at once, the fifth waits.
        let mut more: Vec<_> = (0..3).map(|_| s.get(&small).now_or_never().and_then(Result::ok)).collect();
        assert!(more.iter().all(Option::is_some));
        assert!(s.get(&small).now_or_never().is_none());
        more.clear();
        drop(a);
        assert!(s.get(&small).now_or_never().is_some());
    }

    #[tokio::test]
    async fn racing_conditional_writers_one_wins() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let s = Arc::new(ObjectTraceStore::local(dir.path()).unwrap_or_else(|e| unreachable!("{e}")));
        let a = id("race");
        let v0 = s.put(&a, Bytes::from_static(b"{}"), &WriteCondition::Any).await.unwrap_or_else(|e| unreachable!("{e}"));
        let mut tasks = Vec::new();
        for n in 0..16 {
            let (s, a, v0) = (s.clone(), a.clone(), v0.clone());
            tasks.push(tokio::spawn(async move {
                s.put(&a, Bytes::from(format!("{{\"w\":{n}}}")), &WriteCondition::Version(v0)).await.is_ok()
            }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap_or(false));
        }
        assert_eq!(wins, 1);
    }
}
