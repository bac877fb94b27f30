//! The access-request store: one front, [`ApprovalStore`], over pluggable [`Backend`]s — the
//! embedded file log ([`crate::file`]) or a shared database (the PostgreSQL backend lives in
//! `tracegate-state`, which implements these traits).
//!
//! Every change runs in three steps inside one exclusive section of the backend (a [`Txn`]):
//! **prepare** (load the request under the section's lock, compute the transition with the pure
//! state machine of [`tracegate_core::approval`], and the request as it would stand after it),
//! **record** (hand that preview to the caller's [`Recorder`] — the gateway writes the audit
//! record there), then **commit** (make the event durable, tell the listener). So a change is on
//! the audit trail before it takes effect: if the hook fails, nothing is written and the caller
//! gets [`StoreError::Unrecorded`]. Because the section is held across all three, two approvers
//! racing see one after the other, an approval racing expiry loses if the deadline passed
//! first, and of two requests racing for a one-time grant exactly one gets it — and only the
//! winner's change is ever recorded. This holds across processes exactly as far as the
//! backend's section does: one process for the file log, every replica for a database that
//! takes row locks.
//!
//! The rules are applied here, once, for every backend: backends only load, lock and write.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tracegate_core::approval::{AccessRequest, Actor, ApprovalError, Change, Event, Fingerprint, Party, RequestShape, Status, Terms};

pub use crate::file::LOG_FILE;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("access request `{0}` not found")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] ApprovalError),
    #[error("approvals log `{path}`: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("approvals directory `{0}` is in use by another gateway process")]
    Locked(std::path::PathBuf),
    #[error("approvals log `{path}` line {line} is not a valid event: {reason}")]
    Corrupt { path: std::path::PathBuf, line: usize, reason: String },
    /// A shared backend (a database) failed or is unreachable; the change, if any, was not made.
    #[error("approvals backend `{backend}`: {reason}")]
    Backend { backend: String, reason: String },
    /// The [`Recorder`] refused or failed: the change was not made.
    #[error("the change was not made: {0}")]
    Unrecorded(String),
    /// The requester already has `limit` pending requests; the oldest ends within `retry_after`.
    #[error("`{requester}` already has {limit} pending access requests")]
    TooManyPending { requester: String, limit: usize, retry_after: Duration },
    /// The requester's section stayed taken (other openings, e.g. through other replicas) past
    /// the backend's bound on waiting: nothing was changed; try again after `retry_after`.
    #[error("the access requests of `{requester}` are busy")]
    Busy { requester: String, retry_after: Duration },
}

impl StoreError {
    /// The store itself failed (disk, database), as opposed to refusing the change: after a
    /// successful record this means a change the trail names did not take effect.
    pub fn is_store_failure(&self) -> bool {
        matches!(self, StoreError::Io { .. } | StoreError::Backend { .. })
    }
}

/// Told about every change before it is made durable, with the request as it will stand,
/// inside the backend's exclusive section. `Err` means the change must not happen (e.g. its
/// audit record could not be written); the message is kept in [`StoreError::Unrecorded`].
/// Every mutating method takes one, so no change can be made without passing through it.
///
/// Any `FnMut(&Committed) -> Result<(), String> + Send` is a recorder (tests, tools); the gateway
/// implements it to write audit records asynchronously.
#[async_trait]
pub trait Recorder: Send {
    async fn record(&mut self, c: &Committed) -> Result<(), String>;
}

#[async_trait]
impl<F> Recorder for F
where
    F: FnMut(&Committed) -> Result<(), String> + Send,
{
    async fn record(&mut self, c: &Committed) -> Result<(), String> {
        self(c)
    }
}

/// The hook every mutating method takes.
pub type Record<'a> = &'a mut dyn Recorder;

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

/// Called with every event once it is durable, with the request as it now stands, by the
/// process that made the change. It must not block (queue and return).
pub type Listener = Arc<dyn Fn(&Event, &AccessRequest) + Send + Sync>;

/// What an exclusive section must serialise against.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Changes to one existing request.
    Request(&'a str),
    /// Opening a request for this requester: the duplicate check and the pending cap must see
    /// every other opening by the same requester.
    Requester(&'a Party),
}

/// Where access requests are kept. Reads outside a [`Txn`] see committed state and lock nothing.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Starts an exclusive section covering `scope`: until it commits or is dropped, no other
    /// section of any handle on the same state covers it.
    async fn begin(&self, scope: Scope<'_>) -> Result<Box<dyn Txn>, StoreError>;

    /// Takes the right to sweep expiries, held until the guard is dropped; `None` when another
    /// handle holds it (it is sweeping: this one need not).
    async fn sweep_lock(&self) -> Result<Option<Box<dyn Send>>, StoreError>;

    async fn get(&self, id: &str) -> Result<Option<AccessRequest>, StoreError>;
    /// Every request ever opened for exactly `fingerprint`.
    async fn with_fingerprint(&self, fingerprint: &Fingerprint) -> Result<Vec<AccessRequest>, StoreError>;
    async fn all(&self) -> Result<Vec<AccessRequest>, StoreError>;
    /// Requests whose recorded status time may have closed by `now` (a superset is fine: each
    /// is re-judged under its lock).
    async fn due(&self, now: SystemTime) -> Result<Vec<AccessRequest>, StoreError>;

    /// Names the backend in logs and errors (never a credential).
    fn describe(&self) -> String;
}

/// One exclusive section. Dropped without [`Txn::commit`]: nothing it wrote takes effect (for
/// backends that can take a write back) or it never wrote (the file backend writes on commit).
#[async_trait]
pub trait Txn: Send {
    /// The request as it stands, locked for this section.
    async fn request(&mut self, id: &str) -> Result<Option<AccessRequest>, StoreError>;
    /// Requests of `requester` (pending or not; the caller judges), inside the section.
    async fn of_requester(&mut self, requester: &Party) -> Result<Vec<AccessRequest>, StoreError>;
    /// Makes `event` durable, with `after` the request as it stands once applied, and ends the
    /// section. On error nothing took effect, as far as the backend can tell.
    async fn commit(self: Box<Self>, event: &Event, after: &AccessRequest) -> Result<(), StoreError>;
}

/// The store. Cheap to share behind an `Arc`.
pub struct ApprovalStore {
    backend: Box<dyn Backend>,
    listener: Option<Listener>,
}

impl fmt::Debug for ApprovalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalStore").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl ApprovalStore {
    /// The embedded default: the file log in `dir` (see [`crate::file::FileBackend::open`]).
    pub fn open(dir: &std::path::Path) -> Result<ApprovalStore, StoreError> {
        Ok(ApprovalStore::new(Box::new(crate::file::FileBackend::open(dir)?)))
    }

    /// Over any backend.
    pub fn new(backend: Box<dyn Backend>) -> ApprovalStore {
        ApprovalStore { backend, listener: None }
    }

    /// Sets the function told about every durable event (notifications, metrics).
    pub fn set_listener(&mut self, listener: Listener) {
        self.listener = Some(listener);
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Opens an access request for `shape`, or returns the one already pending for exactly that
    /// shape: asking twice does not page approvers twice. A requester with `max_pending` requests
    /// already pending gets [`StoreError::TooManyPending`] instead of a new one (checked inside
    /// the requester's section, so concurrent asks — through any replica — cannot overshoot).
    pub async fn open_request(
        &self,
        shape: RequestShape,
        terms: Terms,
        now: SystemTime,
        max_pending: usize,
        record: Record<'_>,
    ) -> Result<Opened, StoreError> {
        let mut txn = self.backend.begin(Scope::Requester(&shape.requester)).await?;
        let fp = shape.fingerprint();
        let mine = txn.of_requester(&shape.requester).await?;
        if let Some(r) = mine.iter().find(|r| r.fingerprint == fp && r.status_at(now) == Status::Pending) {
            return Ok(Opened::Pending(r.clone()));
        }
        let mut pending: Vec<SystemTime> = mine
            .iter()
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
        Ok(Opened::Created(self.commit(txn, None, event, record).await?))
    }

    /// The request pending for exactly `fingerprint`, if any (read-only).
    pub async fn pending_for(&self, fingerprint: &Fingerprint, now: SystemTime) -> Result<Option<AccessRequest>, StoreError> {
        Ok(self.backend.with_fingerprint(fingerprint).await?.into_iter().find(|r| r.status_at(now) == Status::Pending))
    }

    /// The active grant for exactly `fingerprint`, if any (read-only: nothing is used).
    pub async fn find_grant(&self, fingerprint: &Fingerprint, now: SystemTime) -> Result<Option<AccessRequest>, StoreError> {
        Ok(self
            .backend
            .with_fingerprint(fingerprint)
            .await?
            .into_iter()
            .filter(|r| r.status_at(now) == Status::Approved)
            .max_by_key(|r| r.grant_until))
    }

    /// Records one request served under grant `id`. For a one-time grant, exactly one of any
    /// number of concurrent callers succeeds; the others get `grant_not_active`.
    pub async fn use_grant(&self, id: &str, fingerprint: &Fingerprint, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.use_grant(fingerprint, now), record).await
    }

    pub async fn approve(&self, id: &str, actor: &Actor, comment: Option<&str>, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.approve(actor, comment, now), record).await
    }

    pub async fn deny(&self, id: &str, actor: &Actor, comment: Option<&str>, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.deny(actor, comment, now), record).await
    }

    pub async fn revoke(&self, id: &str, actor: &Actor, comment: Option<&str>, now: SystemTime, record: Record<'_>) -> Result<Committed, StoreError> {
        self.transition(id, |r| r.revoke(actor, comment, now), record).await
    }

    /// One request as it stands at `now` (an expiry not yet recorded shows as expired).
    pub async fn get(&self, id: &str, now: SystemTime) -> Result<Option<AccessRequest>, StoreError> {
        Ok(self.backend.get(id).await?.map(|r| as_of(&r, now)))
    }

    /// All requests as they stand at `now`, newest first. Callers filter by visibility.
    pub async fn list(&self, now: SystemTime) -> Result<Vec<AccessRequest>, StoreError> {
        let mut all: Vec<AccessRequest> = self.backend.all().await?.iter().map(|r| as_of(r, now)).collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Records every expiry time has brought, so expiries are logged, notified and audited even
    /// when nobody touches the request. Transitions never need this to be correct: they judge
    /// the status at their own `now`. Only one handle sweeps at a time (the others return at
    /// once with nothing), and each expiry is re-judged under its request's lock, so each is
    /// recorded exactly once however many replicas sweep. Stops at the first expiry that cannot
    /// be recorded (the next sweep tries again); those already recorded are returned.
    pub async fn sweep(&self, now: SystemTime, record: Record<'_>) -> Result<Vec<Committed>, StoreError> {
        let Some(_guard) = self.backend.sweep_lock().await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for candidate in self.backend.due(now).await? {
            let mut txn = self.backend.begin(Scope::Request(&candidate.id)).await?;
            let Some(r) = txn.request(&candidate.id).await? else { continue };
            let Some(event) = r.expire_due(now) else { continue };
            out.push(self.commit(txn, Some(r), event, record).await?);
        }
        Ok(out)
    }

    async fn transition(
        &self,
        id: &str,
        f: impl FnOnce(&AccessRequest) -> Result<Event, ApprovalError> + Send,
        record: Record<'_>,
    ) -> Result<Committed, StoreError> {
        let mut txn = self.backend.begin(Scope::Request(id)).await?;
        let r = txn.request(id).await?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        let event = f(&r)?;
        self.commit(txn, Some(r), event, record).await
    }

    /// Prepares `event` (the request as it will stand), hands it to `record`, and only if that
    /// succeeds makes it durable, then tells the listener.
    async fn commit(&self, txn: Box<dyn Txn>, before: Option<AccessRequest>, event: Event, record: Record<'_>) -> Result<Committed, StoreError> {
        // Prepare: the request as it will stand, without touching the stored state.
        let after = match (&event.change, before) {
            (Change::Created { request }, _) => (**request).clone(),
            (_, Some(mut r)) => {
                r.apply(&event);
                r
            }
            (_, None) => return Err(StoreError::NotFound(event.request_id.clone())),
        };
        let committed = Committed { event, request: after };
        // Record: on the audit trail before it takes effect.
        record.record(&committed).await.map_err(StoreError::Unrecorded)?;
        txn.commit(&committed.event, &committed.request).await?;
        if let Some(listener) = &self.listener {
            listener(&committed.event, &committed.request);
        }
        Ok(committed)
    }
}

/// A copy showing the status time has brought (without recording it).
fn as_of(r: &AccessRequest, now: SystemTime) -> AccessRequest {
    let mut r = r.clone();
    r.status = r.status_at(now);
    r
}
