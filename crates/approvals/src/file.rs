//! The embedded approvals backend: an append-only JSON Lines event log, fsync'd before any
//! change is acknowledged, replayed at open.
//!
//! The exclusive section of [`Backend::begin`] is one async lock over the whole store,
//! whatever the scope, held from prepare through record to the fsync: simple, and ample for
//! one process. The fsync runs on a blocking thread; no async worker waits on the disk.
//!
//! **Architecture Invariant:** one gateway process per approvals directory (a file lock for
//! the store's lifetime; the log is never re-read). Replicas sharing state use a shared
//! database backend.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracegate_core::approval::{AccessRequest, Change, Event, Fingerprint, Party};

use crate::store::{Backend, Scope, StoreError, Txn};

/// The log file inside the approvals directory.
pub const LOG_FILE: &str = "access-requests.jsonl";

/// The file log and the state it replays to.
pub struct FileBackend {
    path: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    log: Arc<File>,
    /// Bytes of the log that hold whole, acknowledged events.
    len: u64,
    /// A write failed: no further changes until restart.
    failed: bool,
    requests: BTreeMap<String, AccessRequest>,
}

impl std::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBackend").field("path", &self.path).finish_non_exhaustive()
    }
}

impl FileBackend {
    /// Opens (creating if needed) the store in `dir` and replays its log.
    ///
    /// A last line cut short by a crash mid-write is dropped with a warning (its change was never
    /// acknowledged); any other bad line is an error: a log that cannot be trusted is not served.
    pub fn open(dir: &Path) -> Result<FileBackend, StoreError> {
        let io = |source| StoreError::Io { path: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(LOG_FILE);
        let mut requests: BTreeMap<String, AccessRequest> = BTreeMap::new();
        let mut good_len: u64 = 0;
        let mut torn = false;
        if path.exists() {
            let file = File::open(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
            let mut lines = BufReader::new(file).split(b'\n').enumerate().peekable();
            while let Some((i, line)) = lines.next() {
                let line = line.map_err(|source| StoreError::Io { path: path.clone(), source })?;
                let last = lines.peek().is_none();
                match serde_json::from_slice::<Event>(&line) {
                    Ok(e) => {
                        replay(&mut requests, e);
                        good_len += line.len() as u64 + 1;
                    }
                    Err(_) if line.is_empty() => good_len += 1,
                    Err(err) if last => {
                        tracing::warn!(path = %path.display(), line = i + 1, error = %err, "dropping a torn last line of the approvals log");
                        torn = true;
                    }
                    Err(err) => {
                        return Err(StoreError::Corrupt { path: path.clone(), line: i + 1, reason: err.to_string() });
                    }
                }
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| StoreError::Io { path: path.clone(), source })?;
        // One writer per log: a second gateway on the same directory would interleave
        // decisions it never saw.
        match log.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.to_owned())),
            Err(std::fs::TryLockError::Error(source)) => return Err(StoreError::Io { path: path.clone(), source }),
        }
        if torn {
            // Cut the torn tail so the next event starts on a line of its own.
            log.set_len(good_len).map_err(|source| StoreError::Io { path: path.clone(), source })?;
            log.sync_all().map_err(|source| StoreError::Io { path: path.clone(), source })?;
        }
        let mut len = log.metadata().map_err(|source| StoreError::Io { path: path.clone(), source })?.len();
        if !torn && good_len == len + 1 {
            // The last event is whole but its newline never made it: finish the line.
            let mut f = &log;
            f.write_all(b"\n").and_then(|()| log.sync_data()).map_err(|source| StoreError::Io { path: path.clone(), source })?;
            len += 1;
        }
        tracing::info!(path = %path.display(), requests = requests.len(), "approvals store open");
        let inner = Inner { log: Arc::new(log), len, failed: false, requests };
        Ok(FileBackend { path, inner: Arc::new(Mutex::new(inner)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, AccessRequest>) -> T) -> T {
        f(&self.inner.lock().await.requests)
    }
}

#[async_trait]
impl Backend for FileBackend {
    async fn begin(&self, _scope: Scope<'_>) -> Result<Box<dyn Txn>, StoreError> {
        let guard = self.inner.clone().lock_owned().await;
        Ok(Box::new(FileTxn { path: self.path.clone(), guard }))
    }

    async fn sweep_lock(&self) -> Result<Option<Box<dyn Send>>, StoreError> {
        // One process: every expiry is re-judged under the store lock anyway.
        Ok(Some(Box::new(())))
    }

    async fn get(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        Ok(self.read(|m| m.get(id).cloned()).await)
    }

    async fn with_fingerprint(&self, fingerprint: &Fingerprint) -> Result<Vec<AccessRequest>, StoreError> {
        Ok(self.read(|m| m.values().filter(|r| r.fingerprint == *fingerprint).cloned().collect()).await)
    }

    async fn all(&self) -> Result<Vec<AccessRequest>, StoreError> {
        Ok(self.read(|m| m.values().cloned().collect()).await)
    }

    async fn due(&self, now: SystemTime) -> Result<Vec<AccessRequest>, StoreError> {
        Ok(self.read(|m| m.values().filter(|r| r.expire_due(now).is_some()).cloned().collect()).await)
    }

    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }
}

struct FileTxn {
    path: PathBuf,
    guard: OwnedMutexGuard<Inner>,
}

#[async_trait]
impl Txn for FileTxn {
    async fn request(&mut self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        Ok(self.guard.requests.get(id).cloned())
    }

    async fn of_requester(&mut self, requester: &Party) -> Result<Vec<AccessRequest>, StoreError> {
        Ok(self
            .guard
            .requests
            .values()
            .filter(|r| r.shape.requester.subject == requester.subject && r.shape.requester.issuer == requester.issuer)
            .cloned()
            .collect())
    }

    /// Appends and fsyncs `event`, then applies it in memory. Nothing changes in memory unless
    /// the event is durable.
    async fn commit(mut self: Box<Self>, event: &Event, _after: &AccessRequest) -> Result<(), StoreError> {
        let path = self.path.clone();
        let io = |source| StoreError::Io { path: path.clone(), source };
        if self.guard.failed {
            return Err(io(std::io::Error::other("an earlier write failed; restart the gateway to recover the log")));
        }
        let mut line = serde_json::to_vec(event).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let (log, len, n) = (self.guard.log.clone(), self.guard.len, line.len() as u64);
        let written = tokio::task::spawn_blocking(move || {
            let mut f = &*log;
            let out = f.write_all(&line).and_then(|()| log.sync_data());
            if out.is_err() {
                // Whether the event reached the disk is unknown: take back what may have been
                // written, so memory and log can never disagree silently. Replay at the next
                // start is the source of truth.
                let _ = log.set_len(len).and_then(|()| log.sync_data());
            }
            out
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("the approvals writer thread failed: {e}"))));
        if let Err(e) = written {
            self.guard.failed = true;
            tracing::error!(path = %self.path.display(), error = %e, "approvals log write failed; refusing further changes");
            return Err(io(e));
        }
        self.guard.len += n;
        replay(&mut self.guard.requests, event.clone());
        Ok(())
    }
}

fn replay(requests: &mut BTreeMap<String, AccessRequest>, e: Event) {
    match e.change {
        Change::Created { request } => {
            requests.insert(request.id.clone(), *request);
        }
        _ => {
            if let Some(r) = requests.get_mut(&e.request_id) {
                r.apply(&e);
            }
        }
    }
}
