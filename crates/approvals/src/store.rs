//! The embedded access-request store: an append-only JSON Lines event log, fsync'd before any
//! change is acknowledged, replayed at open.
//!
//! Every change runs under one lock in three steps: **prepare** (load the request, compute the
//! transition with the pure state machine, and the request as it would stand after it), **record**
//! (hand that preview to the caller's [`Record`] hook — the gateway writes the audit record there),
//! then **commit** (append and fsync the event, apply it in memory, tell the listener). So a change
//! is on the audit trail before it takes effect: if the hook fails, nothing is logged or applied
//! and the caller gets [`StoreError::Unrecorded`]. Because the lock is held across all three, two
//! approvers racing see one after the other, an approval racing expiry loses if the deadline
//! passed first, and of two requests racing for a one-time grant exactly one gets it — and only
//! the winner's change is ever recorded. If the append fails after the hook succeeded, nothing
//! changes and the caller gets the error (the gateway then records that the change failed).
//!
//! **Architecture Invariant:** one gateway process per approvals directory. Replicas sharing
//! state need a shared database backend.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tracegate_core::approval::{AccessRequest, Actor, ApprovalError, Change, Event, Fingerprint, RequestShape, Status, Terms};

/// The log file inside the approvals directory.
pub const LOG_FILE: &str = "access-requests.jsonl";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("access request `{0}` not found")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] ApprovalError),
    #[error("approvals log `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("approvals directory `{0}` is in use by another gateway process")]
    Locked(PathBuf),
    #[error("approvals log `{path}` line {line} is not a valid event: {reason}")]
    Corrupt { path: PathBuf, line: usize, reason: String },
    /// The [`Record`] hook refused or failed: the change was not made.
    #[error("the change was not made: {0}")]
    Unrecorded(String),
    /// The requester already has `limit` pending requests; the oldest ends within `retry_after`.
    #[error("`{requester}` already has {limit} pending access requests")]
    TooManyPending { requester: String, limit: usize, retry_after: Duration },
}

/// Called under the store lock with every change before it is made durable, with the request as
/// it will stand. `Err` means the change must not happen (e.g. its audit record could not be
/// written); the message is kept in [`StoreError::Unrecorded`]. Every mutating method takes one,
/// so no change can be made without passing through it.
pub type Record<'a> = &'a mut dyn FnMut(&Committed) -> Result<(), String>;

/// A change made durable: the event and the request as it now stands.
#[derive(Debug, Clone)]
pub struct Committed {
    pub event: Event,
    pub request: AccessRequest,
}

/// What [`ApprovalStore::open_request`] did.
#[derive(Debug, Clone)]
pub enum Opened {
    /// A new request, now pending.
    Created(Committed),
    /// The same request was already pending; nothing changed.
    Pending(AccessRequest),
}

impl Opened {
    pub fn request(&self) -> &AccessRequest {
        match self {
            Opened::Created(c) => &c.request,
            Opened::Pending(r) => r,
        }
    }
}

/// Called with every event once it is durable, with the request as it now stands. Runs under
/// the store lock so events arrive in log order: it must not block (queue and return).
pub type Listener = Arc<dyn Fn(&Event, &AccessRequest) + Send + Sync>;

/// The store. Cheap to share behind an `Arc`; every method is synchronous and may fsync, so
/// async callers run it on a blocking thread.
pub struct ApprovalStore {
    path: PathBuf,
    inner: Mutex<Inner>,
    listener: Option<Listener>,
}

struct Inner {
    log: File,
    /// Bytes of the log that hold whole, acknowledged events.
    len: u64,
    /// A write failed: no further changes until restart.
    failed: bool,
    requests: BTreeMap<String, AccessRequest>,
}

impl std::fmt::Debug for ApprovalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ApprovalStore {
    /// Opens (creating if needed) the store in `dir` and replays its log.
    ///
    /// A last line cut short by a crash mid-write is dropped with a warning (its change was never
    /// acknowledged); any other bad line is an error: a log that cannot be trusted is not served.
    pub fn open(dir: &Path) -> Result<ApprovalStore, StoreError> {
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
        Ok(ApprovalStore { path, inner: Mutex::new(Inner { log, len, failed: false, requests }), listener: None })
    }

    /// Sets the function told about every durable event (notifications, audit, metrics).
    pub fn set_listener(&mut self, listener: Listener) {
        self.listener = Some(listener);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens an access request for `shape`, or returns the one already pending for exactly that
    /// shape: asking twice does not page approvers twice. A requester with `max_pending` requests
    /// already pending gets [`StoreError::TooManyPending`] instead of a new one (checked under the
    /// lock, so concurrent asks cannot overshoot).
    pub fn open_request(
        &self,
        shape: RequestShape,
        terms: Terms,
        now: SystemTime,
        max_pending: usize,
        record: Record<'_>,
    ) -> Result<Opened, StoreError> {
        let mut inner = self.lock();
        let fp = shape.fingerprint();
        let existing = inner.requests.values().find(|r| r.fingerprint == fp && r.status_at(now) == Status::Pending);
        if let Some(r) = existing {
            return Ok(Opened::Pending(r.clone()));
        }
        let mut pending: Vec<SystemTime> = inner
            .requests
            .values()
            .filter(|r| r.shape.requester == shape.requester && r.status_at(now) == Status::Pending)
            .map(|r| r.pending_until)
            .collect();
        if pending.len() >= max_pending {
            pending.sort();
            let first_free = pending.get(pending.len() - max_pending).copied().unwrap_or(now);
            return Err(StoreError::TooManyPending {
                requester: shape.requester.subject.clone(),
                limit: max_pending,
                retry_after: first_free.duration_since(now).unwrap_or_default(),
            });
        }
        let id = format!("ar_{}", uuid::Uuid::new_v4().simple());
        let event = AccessRequest::open(id, shape, terms, now)?;
        Ok(Opened::Created(self.commit(&mut inner, event, record)?))
    }

    /// The request pending for exactly `fingerprint`, if any (read-only).
    pub fn pending_for(&self, fingerprint: &Fingerprint, now: SystemTime) -> Option<AccessRequest> {
        self.lock().requests.values().find(|r| r.fingerprint == *fingerprint && r.status_at(now) == Status::Pending).cloned()
    }

    /// The active grant for exactly `fingerprint`, if any (read-only: nothing is used).
    pub fn find_grant(&self, fingerprint: &Fingerprint, now: SystemTime) -> Option<AccessRequest> {
        let inner = self.lock();
        inner
            .requests
            .values()
            .filter(|r| r.fingerprint == *fingerprint && r.status_at(now) == Status::Approved)
            .max_by_key(|r| r.grant_until)
            .cloned()
    }

    /// Records one request served under grant `id`. For a one-time grant, exactly one of any
    /// number of concurrent callers succeeds; the others get `grant_not_active`.
    pub fn use_grant(&self, id: &str, fingerprint: &Fingerprint, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.use_grant(fingerprint, now), record)
    }

    pub fn approve(&self, id: &str, actor: &Actor, comment: Option<&str>, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.approve(actor, comment, now), record)
    }

    pub fn deny(&self, id: &str, actor: &Actor, comment: Option<&str>, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.deny(actor, comment, now), record)
    }

    pub fn revoke(&self, id: &str, actor: &Actor, comment: Option<&str>, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.revoke(actor, comment, now), record)
    }

    /// One request as it stands at `now` (an expiry not yet recorded shows as expired).
    pub fn get(&self, id: &str, now: SystemTime) -> Option<AccessRequest> {
        self.lock().requests.get(id).map(|r| as_of(r, now))
    }

    /// All requests as they stand at `now`, newest first. Callers filter by visibility.
    pub fn list(&self, now: SystemTime) -> Vec<AccessRequest> {
        let mut all: Vec<AccessRequest> = self.lock().requests.values().map(|r| as_of(r, now)).collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        all
    }

    /// Records every expiry time has brought, so expiries are logged, notified and audited even
    /// when nobody touches the request. Transitions never need this to be correct: they judge
    /// the status at their own `now`. Stops at the first expiry that cannot be recorded (the
    /// next sweep tries again); those already recorded are returned.
    pub fn sweep(&self, now: SystemTime, record: Record<'_>) -> Result<Vec<Committed>, StoreError> {
        let mut inner = self.lock();
        let due: Vec<Event> = inner.requests.values().filter_map(|r| r.expire_due(now)).collect();
        let mut out = Vec::with_capacity(due.len());
        for e in due {
            out.push(self.commit(&mut inner, e, record)?);
        }
        Ok(out)
    }

    fn transition(
        &self,
        id: &str,
        f: impl FnOnce(&AccessRequest) -> Result<Event, ApprovalError>,
        record: Record<'_>,
    ) -> Result<Committed, StoreError> {
        let mut inner = self.lock();
        let r = inner.requests.get(id).ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        let event = f(r)?;
        self.commit(&mut inner, event, record)
    }

    /// Prepares `event` (the request as it will stand), hands it to `record`, and only if that
    /// succeeds appends and fsyncs it, then applies it and tells the listener. Nothing changes in
    /// memory unless the event is recorded and durable.
    fn commit(&self, inner: &mut Inner, event: Event, record: Record<'_>) -> Result<Committed, StoreError> {
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        if inner.failed {
            return Err(io(std::io::Error::other("an earlier write failed; restart the gateway to recover the log")));
        }
        // Prepare: the request as it will stand, without touching the live state.
        let preview = match &event.change {
            Change::Created { request } => (**request).clone(),
            _ => {
                let mut r = inner.requests.get(&event.request_id).cloned().ok_or_else(|| StoreError::NotFound(event.request_id.clone()))?;
                r.apply(&event);
                r
            }
        };
        // Record: on the audit trail before it takes effect.
        record(&Committed { event: event.clone(), request: preview }).map_err(StoreError::Unrecorded)?;
        let mut line = serde_json::to_vec(&event).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        if let Err(e) = inner.log.write_all(&line).and_then(|()| inner.log.sync_data()) {
            // Whether the event reached the disk is unknown: take back what may have been
            // written and refuse further writes, so memory and log can never disagree silently.
            // Replay at the next start is the source of truth.
            let len = inner.len;
            let _ = inner.log.set_len(len).and_then(|()| inner.log.sync_data());
            inner.failed = true;
            tracing::error!(path = %self.path.display(), error = %e, "approvals log write failed; refusing further changes");
            return Err(io(e));
        }
        inner.len += line.len() as u64;
        let id = event.request_id.clone();
        replay(&mut inner.requests, event.clone());
        let request = inner.requests.get(&id).cloned().ok_or(StoreError::NotFound(id))?;
        if let Some(listener) = &self.listener {
            listener(&event, &request);
        }
        Ok(Committed { event, request })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change: the log is written
        // before memory, and memory only by `replay`. So the data behind a poisoned lock is sound.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// A copy showing the status time has brought (without recording it).
fn as_of(r: &AccessRequest, now: SystemTime) -> AccessRequest {
    let mut r = r.clone();
    r.status = r.status_at(now);
    r
}
