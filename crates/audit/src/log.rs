//! The embedded append-only log: JSON Lines in one file, with group commit.
//!
//! Appenders send their prepared record and a oneshot over a channel. One writer thread owns the
//! chain: it waits for a free sync worker, drains everything queued (up to `max_batch`), assigns
//! seqs, seals and writes the batch with one `write`, and hands it to that worker, which calls
//! `fdatasync` and only then acknowledges each appender. So a record acknowledged is a record on
//! disk, and many concurrent requests share one flush. With `sync_threads` > 1 several flushes
//! overlap (each covers every batch written before it started), which cuts latency on devices
//! that complete a lone flush slowly; with 1 it is classic group commit. Under load the writer
//! keeps a batch open for `flush_delay` before writing it, so each flush covers more records
//! ([`LogOptions::flush_delay`]); a lone caller is never kept waiting.
//!
//! Fail closed: when a write or `fsync` fails, the whole batch gets an error (the server answers
//! 503 and releases no data) and the log refuses every later record until it is reopened — after a
//! failed `fsync` the page cache can no longer be trusted to reflect the disk. The writer tries to
//! cut the file back to the last acknowledged byte so no unacknowledged record survives.
//!
//! Crash recovery: only unacknowledged writes can be cut short by a crash. On open the chain is
//! verified forward from the last signed record; a torn final line, or complete lines after a
//! damaged one (a power loss on a file system that persists appends out of order), are saved
//! under `recovered/`, truncated, and the truncation recorded as a `system` record, so the chain
//! resumes and `verify` passes. Damage at or before the last signed record, or a log shorter than
//! a signed checkpoint, is not a crash artefact: open refuses and points at `audit verify`.
//!
//! The directory is locked (`LOCK`, advisory `flock`) so two processes never fork the chain.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::chain::{check_line, Prepared};
use crate::checkpoint::{AnchorInfo, Checkpoint, PublicKey, SigningKey};
use crate::error::AuditError;
use crate::journal::{self, Journal, Placed, JOURNAL_FILE};
use crate::record::{Entry, Sealed, Timestamp, GENESIS_HASH};
use crate::reserve::Reservation;

/// The log file inside the audit directory.
pub const LOG_FILE: &str = "audit.jsonl";
/// Signed checkpoints and prune anchors.
pub const CHECKPOINT_FILE: &str = "checkpoints.jsonl";
/// Held with an exclusive advisory lock by the one process writing the directory.
pub const LOCK_FILE: &str = "LOCK";
/// Torn tails cut off during recovery are kept here for forensics.
pub const RECOVERED_DIR: &str = "recovered";

/// How the log runs; see [`crate::AuditConfig`] for the user-facing knobs.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub dir: PathBuf,
    pub checkpoint_every_records: u64,
    pub checkpoint_interval: Duration,
    pub max_batch: usize,
    /// Batches whose `fdatasync` may be in flight at once (1 = classic group commit). Several
    /// overlapping flushes cut latency on devices that complete a lone flush slowly.
    pub sync_threads: usize,
    /// Under load (a batch dispatched within the last ten of these, and records overlapping: the
    /// last batch held several, or one is being flushed), how long the writer waits for more
    /// records to join a batch before writing it; zero never waits.
    pub flush_delay: Duration,
    /// Make batches durable in the flush journal ([`crate::journal`]) rather than by flushing
    /// `audit.jsonl` itself each time.
    pub journal: bool,
}

/// The last record of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// 0 when the log is empty.
    pub seq: u64,
    pub hash: String,
}

/// What recovery found and did when the log was opened after an unclean stop.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// `torn_tail` (a partial last line) or `damaged_tail` (unsigned records after a damaged
    /// line, as a power loss can leave on file systems that do not persist appends in order).
    pub reason: &'static str,
    /// Bytes removed from the end of `audit.jsonl` (never acknowledged).
    pub torn_bytes: u64,
    /// Where those bytes were saved.
    pub saved_as: Option<PathBuf>,
    /// Bytes of a torn final line removed from `checkpoints.jsonl`.
    pub torn_checkpoint_bytes: u64,
    /// Acknowledged records the log had lost and the flush journal held, appended back.
    pub replayed: u64,
    /// The `system` record that documents the recovery in the chain.
    pub record: Option<Sealed>,
}

/// The outcome of [`AuditLog::prune`].
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Records removed (0: nothing was old enough, no file written).
    pub pruned: u64,
    /// First seq left in the log.
    pub first_seq: Option<u64>,
    pub export: Option<PathBuf>,
    /// The signed anchor that lets the shortened log verify.
    pub anchor: Option<Checkpoint>,
}

type Reply<T> = oneshot::Sender<Result<T, AuditError>>;

enum Msg {
    Append(Prepared, Reply<Sealed>),
    Checkpoint(Reply<Option<Checkpoint>>),
    Prune { before: SystemTime, export: PathBuf, reply: Reply<PruneReport> },
    Shutdown(Reply<()>),
}

/// State the writer, the sync workers and the handle share.
struct Shared {
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    /// The durable head: every record up to it has been covered by a successful `fdatasync`.
    durable: Mutex<Durable>,
    /// Flushes by the sync workers that acknowledged records.
    flushes: AtomicU64,
    /// Batches handed to sync workers and not yet flushed.
    in_flight: AtomicUsize,
    /// With the flush journal: the head `audit.jsonl` itself holds durably, and the journal
    /// mark it covers, from the last background flush of the log ([`Writer::request_log_sync`]).
    log_synced: Mutex<Option<(Durable, u64)>>,
    /// A background flush of the log is with a sync worker.
    log_sync_in_flight: AtomicBool,
}

#[derive(Debug, Clone)]
struct Durable {
    seq: u64,
    hash: String,
    /// Bytes of the log up to and including that record.
    len: u64,
}

impl Shared {
    fn fail(&self, msg: String) {
        let mut f = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if f.is_none() {
            tracing::error!(error = %msg, "audit log failed; refusing records until reopened");
            *f = Some(msg);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let f = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        Some(f.clone().unwrap_or_else(|| "audit log failed".into()))
    }

    fn durable(&self) -> Durable {
        self.durable.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A flush that started after `d` was written completed: everything up to `d` is durable.
    fn advance(&self, d: &Durable) {
        let mut cur = self.durable.lock().unwrap_or_else(PoisonError::into_inner);
        if d.seq > cur.seq {
            *cur = d.clone();
        }
    }
}

/// Handle to the running log. Cheap to share behind an `Arc`; dropping the last handle stops the
/// writer after a final checkpoint, but call [`AuditLog::shutdown`] to know it succeeded.
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    dir: PathBuf,
    public_key: PublicKey,
    recovery: Option<Recovery>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.dir).field("head", &self.head()).finish()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log in `opts.dir`, recovers a torn tail, and starts the
    /// writer thread. Blocking: call at startup, or from `spawn_blocking`.
    pub fn open(opts: LogOptions, key: SigningKey) -> Result<AuditLog, AuditError> {
        let dir = opts.dir.clone();
        fs::create_dir_all(&dir).map_err(AuditError::io(&dir))?;
        check_key_outside(&dir, key.path())?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(AuditError::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(AuditError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(AuditError::Io { path: lock_path, source: e }),
        }

        let log_path = dir.join(LOG_FILE);
        let ckpt_path = dir.join(CHECKPOINT_FILE);
        let mut log = open_append(&log_path)?;
        let mut ckpts = open_append(&ckpt_path)?;
        sync_dir(&dir)?;

        let ckpt_tail = read_tail(&mut ckpts, &ckpt_path)?;
        if !ckpt_tail.torn.is_empty() {
            ckpts.set_len(ckpt_tail.good_len).and_then(|()| ckpts.sync_data()).map_err(AuditError::io(&ckpt_path))?;
        }
        let last_ckpt: Option<Checkpoint> = match &ckpt_tail.last {
            None => None,
            Some(line) => Some(serde_json::from_slice(line).map_err(|e| AuditError::Corrupt {
                path: ckpt_path.clone(),
                what: format!("last checkpoint is not readable: {e}"),
            })?),
        };

        // Find where the chain ends: verify forward from the last signed record (a few records
        // after a clean stop). The first line that does not parse, hash or link after it is an
        // unacknowledged write a crash cut short or left a hole in (some file systems persist a
        // later block of an unflushed append before an earlier one), and is cut from there on.
        // Damage to the signed record itself is not a crash artefact: open refuses.
        let file_len = log.metadata().map_err(AuditError::io(&log_path))?.len();
        let (head, keep_len, clean_end) = chain_end(&mut log, &log_path, file_len, last_ckpt.as_ref())?;
        let reason = if clean_end { "torn_tail" } else { "damaged_tail" };
        let mut recovery = None;
        let mut saved_as = None;
        let mut cut = Vec::new();
        if keep_len < file_len {
            log.seek(SeekFrom::Start(keep_len)).and_then(|_| log.read_to_end(&mut cut)).map_err(AuditError::io(&log_path))?;
            saved_as = Some(save_torn(&dir, &cut)?);
            log.set_len(keep_len).and_then(|()| log.sync_data()).map_err(AuditError::io(&log_path))?;
        }

        // Records acknowledged from the journal that the log lost (a power loss before the log
        // was flushed) continue the chain; then the journal is reused, or removed when off.
        let journal_path = dir.join(JOURNAL_FILE);
        let (head, replayed) = journal::replay(&journal_path, &mut log, &head).map_err(AuditError::io(&journal_path))?;
        let keep_len = keep_len + replayed.bytes;
        // The journal's frames are the only durable copy of records the last run acknowledged
        // but the log may hold only in the page cache (after a kill, not a power loss): make
        // the log durable before the first lap overwrites them or the journal is removed.
        if replayed.found {
            log.sync_data().map_err(AuditError::io(&log_path))?;
        }
        if replayed.records > 0 {
            tracing::warn!(records = replayed.records, "audit log: appended acknowledged records from the flush journal after an unclean stop");
        }
        let journal = if opts.journal {
            Some(Journal::open(&journal_path, journal::RING).map_err(AuditError::io(&journal_path))?)
        } else {
            match fs::remove_file(&journal_path) {
                Ok(()) => sync_dir(&dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(AuditError::Io { path: journal_path, source: e }),
            }
            None
        };

        let mut ckpt_signed_seq = 0;
        if let Some(c) = &last_ckpt {
            if c.seq > head.seq {
                return Err(AuditError::Corrupt {
                    path: log_path,
                    what: format!("the log ends at seq {} but a checkpoint signs seq {}: signed records are missing", head.seq, c.seq),
                });
            }
            if c.seq == head.seq && c.hash != head.hash {
                return Err(AuditError::Corrupt { path: log_path, what: format!("last record (seq {}) differs from its signed checkpoint", c.seq) });
            }
            ckpt_signed_seq = c.seq;
        }
        if !cut.is_empty() || !ckpt_tail.torn.is_empty() || replayed.records > 0 {
            recovery = Some(Recovery {
                reason: if !cut.is_empty() {
                    reason
                } else if ckpt_tail.torn.is_empty() {
                    "journal_replay"
                } else {
                    "torn_tail"
                },
                torn_bytes: cut.len() as u64,
                saved_as: saved_as.clone(),
                torn_checkpoint_bytes: ckpt_tail.torn.len() as u64,
                replayed: replayed.records,
                record: None,
            });
        }

        let shared = Arc::new(Shared {
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            durable: Mutex::new(Durable { seq: head.seq, hash: head.hash.clone(), len: keep_len }),
            flushes: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            log_synced: Mutex::new(None),
            log_sync_in_flight: AtomicBool::new(false),
        });
        let public_key = key.public_key().clone();
        let sync_threads = opts.sync_threads.max(1);
        let (token_tx, token_rx) = mpsc::channel::<usize>();
        let (work_txs, work_rxs): (Vec<_>, Vec<_>) = (0..sync_threads).map(|_| mpsc::channel::<Pending>()).unzip();
        let mut writer = Writer {
            log_path,
            ckpt_path,
            dir: dir.clone(),
            log,
            len: keep_len,
            ckpts,
            next_seq: head.seq + 1,
            head_hash: head.hash.clone(),
            key,
            signed_seq: ckpt_signed_seq,
            last_ckpt: Instant::now(),
            shared: shared.clone(),
            opts,
            generation: 0,
            work: Some(work_txs),
            tokens: token_rx,
            token_tx: token_tx.clone(),
            sync_threads,
            truncated_after_failure: false,
            reserved: Reservation::default(),
            journal,
            last_dispatch: None,
            last_batch: 0,
            _lock: lock,
        };
        if let Some(r) = &mut recovery {
            let entry = Entry::system(json!({
                "type": "recovered",
                "reason": r.reason,
                "torn_bytes": r.torn_bytes,
                "torn_sha256": hex::encode(Sha256::digest(&cut)),
                "saved_as": r.saved_as.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
                "torn_checkpoint_bytes": r.torn_checkpoint_bytes,
                "replayed": r.replayed,
            }));
            let sealed = writer.write_synced(&[&Prepared::new(&entry)?])?;
            r.record = sealed.into_iter().next();
            tracing::warn!(torn_bytes = r.torn_bytes, "audit log recovered a torn tail after an unclean stop");
        }

        for (i, work_rx) in work_rxs.into_iter().enumerate() {
            let (path, tokens, shared) = (writer.log_path.clone(), token_tx.clone(), shared.clone());
            let journal_path = writer.journal.as_ref().map(|j| j.path().to_owned());
            let _ = tokens.send(i);
            std::thread::Builder::new()
                .name(format!("tracegate-audit-sync-{i}"))
                .spawn(move || {
                    crate::sched::batch();
                    sync_worker(i, &path, journal_path.as_deref(), &work_rx, &tokens, &shared)
                })
                .map_err(AuditError::io(&dir))?;
        }
        drop(token_tx);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tracegate-audit-writer".into())
            .spawn(move || {
                crate::sched::batch();
                writer.run(rx)
            })
            .map_err(AuditError::io(&dir))?;
        Ok(AuditLog { tx, shared, dir, public_key, recovery })
    }

    /// Appends one record and returns once it is on disk (after `fdatasync`). Any error means
    /// it is not: fail the request with 503 and release nothing.
    pub async fn append(&self, entry: &Entry) -> Result<Sealed, AuditError> {
        let prepared = Prepared::new(entry)?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Append(prepared, reply)).map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Signs a checkpoint of the current head now (e.g. before an operator copies the log).
    /// `None` when the log is empty.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Checkpoint(reply)).map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Exports the records older than `before` (the longest such prefix of the chain, always
    /// keeping the newest record) verbatim to `export` (which must not exist), signs an anchor
    /// naming the cut, then removes them from the log. Appends wait while this runs.
    pub async fn prune(&self, before: SystemTime, export: PathBuf) -> Result<PruneReport, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Prune { before, export, reply }).map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Signs a final checkpoint, closes the files and releases the directory lock. Later appends
    /// fail with [`AuditError::Closed`].
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Shutdown(reply)).map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// The chain head as of the last durable batch.
    pub fn head(&self) -> Head {
        let d = self.shared.durable();
        Head { seq: d.seq, hash: d.hash }
    }

    /// How many flushes (`fdatasync`) have acknowledged appended records since the log was
    /// opened: records appended ÷ this is the group-commit batch size.
    pub fn flushes(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// True once a write failed: the gateway should report not-ready and refuse requests.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// What recovery did on open, if the last stop was unclean.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key verifiers need; publish it (it is also in `<signing_key>.pub`).
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

/// A written batch waiting for a flush; the sync worker that flushes it acknowledges it.
struct Pending {
    replies: Vec<Reply<Sealed>>,
    sealed: Vec<Sealed>,
    /// The durable head once this batch is flushed.
    end: Durable,
    /// Which file the batch is in (bumped when prune swaps the file).
    generation: u64,
    /// Which file makes it durable.
    flush: Flush,
    /// A background flush of the log (no records of its own): on success, `end` and this
    /// journal mark become [`Shared::log_synced`].
    log_sync: Option<u64>,
}

/// The file whose `fdatasync` makes a batch durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    Log,
    Journal,
}

/// Owns the log file: assigns seqs, seals and writes batches in chain order, and hands each
/// written batch to a sync worker. It takes a free worker's token *before* draining the queue,
/// so while every worker is flushing, arrivals pile up into the next, larger batch.
struct Writer {
    dir: PathBuf,
    log_path: PathBuf,
    ckpt_path: PathBuf,
    log: File,
    /// Bytes of `log` written (durable or in flight).
    len: u64,
    ckpts: File,
    /// Seq the next record gets; `head_hash` is the hash of the last written record.
    next_seq: u64,
    head_hash: String,
    key: SigningKey,
    /// Highest seq a checkpoint has signed.
    signed_seq: u64,
    last_ckpt: Instant,
    shared: Arc<Shared>,
    opts: LogOptions,
    generation: u64,
    /// Each sync worker's own queue: a worker waits on its channel alone, so handing it a batch
    /// wakes only it (with one queue shared under a mutex, every hand-off also woke the next
    /// idle worker to take the lock: per request more `futex` calls than anything else made).
    work: Option<Vec<mpsc::Sender<Pending>>>,
    /// One token per idle sync worker: its index in `work`.
    tokens: mpsc::Receiver<usize>,
    token_tx: mpsc::Sender<usize>,
    sync_threads: usize,
    truncated_after_failure: bool,
    /// Blocks reserved past the end of `log` ([`crate::reserve`]).
    reserved: Reservation,
    /// Where batches become durable, when on ([`LogOptions::journal`]).
    journal: Option<Journal>,
    /// When the last batch went to a sync worker, and how many records it held
    /// ([`LogOptions::flush_delay`]).
    last_dispatch: Option<Instant>,
    last_batch: usize,
    _lock: File,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut pending = None;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => {
                    let wait = self.opts.checkpoint_interval.saturating_sub(self.last_ckpt.elapsed());
                    match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                        Ok(m) => m,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.timed_checkpoint();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            if let Err(e) = self.stop() {
                                tracing::error!(error = %e, "audit log: final checkpoint failed");
                            }
                            return;
                        }
                    }
                }
            };
            match msg {
                Msg::Append(p, reply) => {
                    // Wait for a free sync worker first: whatever arrives meanwhile joins the batch.
                    let token = self.tokens.recv().ok();
                    let mut batch = vec![(p, reply)];
                    // Under load, let more records join before paying for a flush: on a virtual
                    // disk a flush costs ~150 µs of CPU, and a loaded gateway otherwise flushed
                    // for every three requests. Load means a batch went out lately and records
                    // overlap (the last batch held several, or one is still being flushed): a
                    // lone caller appending one record at a time never waits.
                    let delay = self.opts.flush_delay;
                    let recent = self.last_dispatch.is_some_and(|t| t.elapsed() < delay.saturating_mul(10));
                    let overlap = self.last_batch > 1 || self.shared.in_flight.load(Ordering::Acquire) > 0;
                    if !delay.is_zero() && recent && overlap {
                        // Asleep, not waiting on the channel: a receiver blocked in `recv`
                        // is woken by every send, so waiting there cost a wake-up and a
                        // context switch per record that joined. Records queue meanwhile
                        // and are drained below.
                        std::thread::sleep(delay);
                    }
                    while pending.is_none() && batch.len() < self.opts.max_batch {
                        match rx.try_recv() {
                            Ok(Msg::Append(p, r)) => batch.push((p, r)),
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if let Some(worker) = token {
                        self.dispatch(batch, worker);
                    } else {
                        self.shared.fail("audit sync workers stopped".into());
                        nack(batch.into_iter().map(|(_, r)| r), "audit sync workers stopped");
                    }
                    self.after_failure();
                    if self.due_for_checkpoint() {
                        if let Err(e) = self.due_checkpoint() {
                            tracing::error!(error = %e, "audit log: checkpoint failed");
                        }
                    }
                }
                Msg::Checkpoint(reply) => {
                    let held = self.quiesce();
                    let _ = reply.send(self.checkpoint());
                    self.release(held);
                }
                Msg::Prune { before, export, reply } => {
                    let held = self.quiesce();
                    let r = self.prune(before, &export);
                    self.release(held);
                    let _ = reply.send(r);
                }
                Msg::Shutdown(reply) => {
                    let r = self.stop();
                    drop(self);
                    let _ = reply.send(r);
                    return;
                }
            }
        }
    }

    /// Seals and writes `batch`, then hands it to sync worker `worker` (whose token we hold).
    fn dispatch(&mut self, batch: Vec<(Prepared, Reply<Sealed>)>, worker: usize) {
        let (prepared, replies): (Vec<Prepared>, Vec<Reply<Sealed>>) = batch.into_iter().unzip();
        if let Some(f) = self.shared.failure() {
            nack(replies.into_iter(), &f);
            self.release([worker]);
            return;
        }
        let refs: Vec<&Prepared> = prepared.iter().collect();
        let (sealed, flush) = match self.write(&refs) {
            Ok(s) => s,
            Err(msg) => {
                nack(replies.into_iter(), &msg);
                self.release([worker]);
                return;
            }
        };
        let end = Durable { seq: self.next_seq - 1, hash: self.head_hash.clone(), len: self.len };
        self.last_dispatch = Some(Instant::now());
        self.last_batch = replies.len();
        let job = Pending { replies, sealed, end, generation: self.generation, flush, log_sync: None };
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let unsent = match self.work.as_ref().and_then(|w| w.get(worker)) {
            Some(w) => w.send(job).err().map(|mpsc::SendError(job)| job),
            None => Some(job),
        };
        if let Some(job) = unsent {
            self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.shared.fail("audit sync workers stopped".into());
            nack(job.replies.into_iter(), "audit sync workers stopped");
            self.release([worker]);
        }
    }

    /// Appends sealed lines to the file and frames them in the journal (page cache only), and
    /// says which file to flush. On error the partial write is cut off, the log fails, and
    /// `Err` says why.
    fn write(&mut self, batch: &[&Prepared]) -> Result<(Vec<Sealed>, Flush), String> {
        let mut buf = Vec::with_capacity(batch.len() * 768);
        let mut sealed = Vec::with_capacity(batch.len());
        let mut seq = self.next_seq;
        let mut prev = self.head_hash.clone();
        for p in batch {
            let (line, hash) = p.seal(seq, &prev);
            buf.extend_from_slice(&line);
            sealed.push(Sealed { seq, hash: hash.clone() });
            prev = hash;
            seq += 1;
        }
        self.reserved.ahead(&self.log, self.len, buf.len() as u64);
        match self.log.write_all(&buf) {
            Ok(()) => {
                self.len += buf.len() as u64;
                let first = self.next_seq;
                self.next_seq = seq;
                self.head_hash = prev;
                let flush = self.journal_frame(&buf, first, seq - 1)?;
                Ok((sealed, flush))
            }
            Err(e) => {
                let msg = format!("writing `{}` failed: {e}", self.log_path.display());
                // Cut off the partial write; earlier batches (maybe in flight) are untouched.
                let _ = self.log.set_len(self.len);
                self.reserved.reset(self.len, false);
                self.shared.fail(msg.clone());
                Err(msg)
            }
        }
    }

    /// Frames lines just appended to the log in the journal, flushing the log first when the
    /// ring would otherwise overwrite a frame it does not hold durably yet.
    fn journal_frame(&mut self, lines: &[u8], first: u64, last: u64) -> Result<Flush, String> {
        if self.journal.is_none() {
            return Ok(Flush::Log);
        }
        if let Some((_, mark)) = self.shared.log_synced.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            if let Some(j) = self.journal.as_mut() {
                j.log_synced_to(*mark);
            }
        }
        if self.journal.as_ref().is_some_and(|j| j.unsynced() > journal::RING / 4) {
            self.request_log_sync();
        }
        let mut placed = self.journal.as_mut().map_or(Ok(Placed::TooLarge), |j| j.write(lines, first, last));
        if let Ok(Placed::Unsynced) = placed {
            self.sync_log().map_err(|e| match e {
                AuditError::Failed(msg) => msg,
                other => other.to_string(),
            })?;
            placed = self.journal.as_mut().map_or(Ok(Placed::TooLarge), |j| j.write(lines, first, last));
        }
        let Some(journal) = self.journal.as_ref() else { return Ok(Flush::Log) };
        match placed {
            Ok(Placed::Journal) => Ok(Flush::Journal),
            Ok(Placed::TooLarge | Placed::Unsynced) => Ok(Flush::Log),
            Err(e) => {
                // The lines are in the log (unflushed): the log fails, and after_failure cuts
                // them off again.
                let msg = format!("writing `{}` failed: {e}", journal.path().display());
                self.shared.fail(msg.clone());
                Err(msg)
            }
        }
    }

    /// With the flush journal: hands a flush of the log itself to a free sync worker, if one is
    /// free and none is already flushing the log, so checkpoints can sign and the ring can come
    /// round without the writer ever waiting for the log's (larger) flush.
    fn request_log_sync(&mut self) {
        let Some(journal) = self.journal.as_ref() else { return };
        if self.shared.log_sync_in_flight.load(Ordering::Acquire) {
            return;
        }
        let Ok(worker) = self.tokens.try_recv() else { return };
        let end = Durable { seq: self.next_seq - 1, hash: self.head_hash.clone(), len: self.len };
        let job = Pending {
            replies: Vec::new(),
            sealed: Vec::new(),
            end,
            generation: self.generation,
            flush: Flush::Log,
            log_sync: Some(journal.mark()),
        };
        self.shared.log_sync_in_flight.store(true, Ordering::Release);
        let sent = self.work.as_ref().and_then(|w| w.get(worker)).is_some_and(|w| w.send(job).is_ok());
        if !sent {
            self.shared.log_sync_in_flight.store(false, Ordering::Release);
            self.release([worker]);
        }
    }

    /// Flushes the log itself, inline: before an explicit, final or prune checkpoint, and when
    /// the ring would otherwise overwrite a frame the log does not hold durably.
    fn sync_log(&mut self) -> Result<(), AuditError> {
        if let Err(e) = self.log.sync_data() {
            let msg = format!("flushing `{}` failed: {e}", self.log_path.display());
            self.shared.fail(msg.clone());
            return Err(AuditError::Failed(msg));
        }
        if let Some(j) = self.journal.as_mut() {
            j.log_synced();
        }
        Ok(())
    }

    /// Writes and flushes inline (recovery and prune records, while no worker is in flight).
    fn write_synced(&mut self, batch: &[&Prepared]) -> Result<Vec<Sealed>, AuditError> {
        if let Some(f) = self.shared.failure() {
            return Err(AuditError::Failed(f));
        }
        let (sealed, _) = self.write(batch).map_err(AuditError::Failed)?;
        self.sync_log()?;
        self.shared.advance(&Durable { seq: self.next_seq - 1, hash: self.head_hash.clone(), len: self.len });
        Ok(sealed)
    }

    /// Waits until no flush is in flight; returns the tokens it now holds.
    fn quiesce(&mut self) -> Vec<usize> {
        let mut held = Vec::with_capacity(self.sync_threads);
        while held.len() < self.sync_threads {
            match self.tokens.recv() {
                Ok(t) => held.push(t),
                Err(_) => break,
            }
        }
        held
    }

    /// Gives tokens back to the pool (the channel workers return theirs on).
    fn release(&mut self, held: impl IntoIterator<Item = usize>) {
        for t in held {
            let _ = self.token_tx.send(t);
        }
    }

    /// Once the log has failed: wait for in-flight flushes, then cut the file back to the
    /// durable head so no unacknowledged record survives (best effort; recovery copes if not).
    fn after_failure(&mut self) {
        if self.truncated_after_failure || self.shared.failure().is_none() {
            return;
        }
        let held = self.quiesce();
        let durable = self.shared.durable();
        let _ = self.log.set_len(durable.len).and_then(|()| self.log.sync_data());
        self.reserved.reset(durable.len, false);
        if let Some(j) = self.journal.as_mut() {
            let _ = j.erase_after(durable.seq);
        }
        self.truncated_after_failure = true;
        self.release(held);
    }

    /// Checkpoints sign the durable head, so "every N records" counts durable records.
    fn due_for_checkpoint(&self) -> bool {
        let durable = self.shared.durable().seq;
        durable > self.signed_seq
            && (durable - self.signed_seq >= self.opts.checkpoint_every_records || self.last_ckpt.elapsed() >= self.opts.checkpoint_interval)
    }

    fn timed_checkpoint(&mut self) {
        if self.next_seq - 1 == self.signed_seq {
            self.last_ckpt = Instant::now();
        } else if let Err(e) = self.due_checkpoint() {
            tracing::error!(error = %e, "audit log: timed checkpoint failed");
        }
    }

    /// Waits for every flush, signs a final checkpoint, stops the workers.
    fn stop(&mut self) -> Result<(), AuditError> {
        let held = self.quiesce();
        let r = if self.next_seq - 1 > self.signed_seq { self.checkpoint().map(|_| ()) } else { Ok(()) };
        self.work = None;
        self.release(held);
        r
    }

    /// A checkpoint that came due (by count or time). Without the journal it signs the durable
    /// head at once. With it, it signs the head the last background flush made durable in the
    /// log itself, once every record up to it is acknowledged (a record not yet acknowledged
    /// may still be cut back after a failure, and a signature must never pass the log's end);
    /// when there is nothing new to sign that way, it asks for a flush and signs next time.
    fn due_checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        if self.journal.is_none() {
            return self.checkpoint();
        }
        if let Some(f) = self.shared.failure() {
            return Err(AuditError::Failed(f));
        }
        let synced = self.shared.log_synced.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|(d, _)| d.clone());
        match synced {
            Some(d) if d.seq > self.signed_seq && d.seq <= self.shared.durable().seq => self.sign(&d, None),
            _ => {
                self.request_log_sync();
                Ok(None)
            }
        }
    }

    /// Signs the durable head and appends it to `checkpoints.jsonl`, synced. A failure fails the
    /// log: a gateway that cannot sign would keep serving behind an unanchored chain.
    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        self.write_checkpoint(None)
    }

    fn write_checkpoint(&mut self, anchor: Option<AnchorInfo>) -> Result<Option<Checkpoint>, AuditError> {
        if let Some(f) = self.shared.failure() {
            return Err(AuditError::Failed(f));
        }
        let head = self.shared.durable();
        if head.seq == 0 || (head.seq == self.signed_seq && anchor.is_none()) {
            self.last_ckpt = Instant::now();
            return Ok(None);
        }
        // Durable in the journal is not enough for a signature: a checkpoint must never sign a
        // record the log itself could still lose (then the log would verify short of it).
        if self.journal.is_some() {
            self.sync_log()?;
        }
        self.sign(&head, anchor)
    }

    /// Signs `head` (durable in the log itself) and appends it to `checkpoints.jsonl`, synced.
    fn sign(&mut self, head: &Durable, anchor: Option<AnchorInfo>) -> Result<Option<Checkpoint>, AuditError> {
        let c = self.key.sign(head.seq, &head.hash, Timestamp::now(), anchor)?;
        let line = c.line()?;
        if let Err(e) = self.ckpts.write_all(&line).and_then(|()| self.ckpts.sync_data()) {
            let msg = format!("writing `{}` failed: {e}", self.ckpt_path.display());
            self.shared.fail(msg.clone());
            return Err(AuditError::Failed(msg));
        }
        self.signed_seq = head.seq;
        self.last_ckpt = Instant::now();
        Ok(Some(c))
    }

    /// Runs with no flush in flight (the caller quiesced).
    fn prune(&mut self, before: SystemTime, export: &Path) -> Result<PruneReport, AuditError> {
        if let Some(f) = self.shared.failure() {
            return Err(AuditError::Failed(f));
        }
        #[derive(Deserialize)]
        struct Lite {
            seq: u64,
            prev_hash: String,
            time: Timestamp,
        }
        let last_seq = self.next_seq.saturating_sub(1);
        let reader = File::open(&self.log_path).map_err(AuditError::io(&self.log_path))?;
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        let (mut cut, mut pruned, mut first) = (0u64, 0u64, None);
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(AuditError::io(&self.log_path))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            let lite: Lite = serde_json::from_slice(&line).map_err(|e| AuditError::Corrupt {
                path: self.log_path.clone(),
                what: format!("record {} of the log is unreadable: {e}", pruned + 1),
            })?;
            if lite.time.system() < before && lite.seq < last_seq {
                pruned += 1;
                cut += n as u64;
                continue;
            }
            first = Some((lite.seq, lite.prev_hash));
            break;
        }
        let Some((first_seq, prev_hash)) = first.filter(|_| pruned > 0) else {
            return Ok(PruneReport { pruned: 0, first_seq: None, export: None, anchor: None });
        };

        // 1. The export, durable before anything is removed.
        let export_sha256 = {
            let mut out = OpenOptions::new().write(true).create_new(true).open(export).map_err(AuditError::io(export))?;
            let mut src = File::open(&self.log_path).map_err(AuditError::io(&self.log_path))?.take(cut);
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = src.read(&mut buf).map_err(AuditError::io(&self.log_path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(AuditError::io(export))?;
            }
            out.sync_all().map_err(AuditError::io(export))?;
            if let Some(parent) = export.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            hex::encode(hasher.finalize())
        };
        // 2. The signed anchor: from here on, a log starting at `first_seq` verifies.
        let info = AnchorInfo {
            first_seq,
            prev_hash,
            pruned,
            export_file: export.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            export_sha256,
        };
        let anchor = self.write_checkpoint(Some(info))?;
        // 3. Rewrite the retained tail and swap it in atomically. Failing here leaves the old
        //    file in place (still valid with the anchor), but the log stops, to be safe.
        if let Err(e) = self.swap_in_tail(cut) {
            self.shared.fail(e.to_string());
            return Err(e);
        }
        let entry = Entry::system(json!({
            "type": "pruned",
            "pruned": pruned,
            "first_seq": first_seq,
            "export_file": anchor.as_ref().and_then(|a| a.anchor.as_ref()).map(|a| a.export_file.clone()),
        }));
        self.write_synced(&[&Prepared::new(&entry)?])?;
        Ok(PruneReport { pruned, first_seq: Some(first_seq), export: Some(export.to_owned()), anchor })
    }

    fn swap_in_tail(&mut self, cut: u64) -> Result<(), AuditError> {
        let tmp = self.dir.join(format!("{LOG_FILE}.prune-tmp"));
        {
            let mut src = File::open(&self.log_path).map_err(AuditError::io(&self.log_path))?;
            src.seek(SeekFrom::Start(cut)).map_err(AuditError::io(&self.log_path))?;
            let mut out = File::create(&tmp).map_err(AuditError::io(&tmp))?;
            io::copy(&mut src.take(self.len - cut), &mut out).map_err(AuditError::io(&tmp))?;
            out.sync_all().map_err(AuditError::io(&tmp))?;
        }
        fs::rename(&tmp, &self.log_path).map_err(AuditError::io(&self.log_path))?;
        sync_dir(&self.dir)?;
        self.log = open_append(&self.log_path)?;
        self.len -= cut;
        self.reserved.reset(self.len, true);
        if let Some(j) = self.journal.as_mut() {
            j.log_synced(); // the new file was flushed whole before the rename
        }
        self.generation += 1;
        let mut d = self.shared.durable.lock().unwrap_or_else(PoisonError::into_inner);
        d.len = self.len;
        Ok(())
    }
}


/// A sync worker: flushes written batches and acknowledges them. Each worker opens the log
/// itself, so a writeback error is reported to every worker's next flush (an error seen through
/// one open file description is not seen again through the same one).
fn sync_worker(
    me: usize,
    path: &Path,
    journal_path: Option<&Path>,
    work: &mpsc::Receiver<Pending>,
    tokens: &mpsc::Sender<usize>,
    shared: &Shared,
) {
    let mut file: Option<(u64, File)> = None;
    let mut journal: Option<File> = None;
    loop {
        let Ok(job) = work.recv() else { return };
        let (flushed, flushed_path) = match (job.flush, journal_path) {
            (Flush::Journal, Some(jp)) => {
                let r = match &journal {
                    Some(f) => f.sync_data(),
                    None => File::open(jp).and_then(|f| {
                        let r = f.sync_data();
                        journal = Some(f);
                        r
                    }),
                };
                (r, jp)
            }
            _ => {
                let r = match &file {
                    Some((generation, f)) if *generation == job.generation => f.sync_data(),
                    _ => File::open(path).and_then(|f| {
                        let r = f.sync_data();
                        file = Some((job.generation, f));
                        r
                    }),
                };
                (r, path)
            }
        };
        if let Some(mark) = job.log_sync {
            if flushed.is_ok() {
                *shared.log_synced.lock().unwrap_or_else(PoisonError::into_inner) = Some((job.end, mark));
            }
            shared.log_sync_in_flight.store(false, Ordering::Release);
            if let Err(e) = flushed {
                shared.fail(format!("flushing `{}` failed: {e}", flushed_path.display()));
            }
            let _ = tokens.send(me);
            continue;
        }
        // Before any reply: a caller acknowledged must not find its own batch still in flight.
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        match (flushed, shared.failure()) {
            (Ok(()), None) => {
                shared.advance(&job.end);
                shared.flushes.fetch_add(1, Ordering::Relaxed);
                for (s, reply) in job.sealed.into_iter().zip(job.replies) {
                    let _ = reply.send(Ok(s));
                }
            }
            (Ok(()), Some(f)) => nack(job.replies.into_iter(), &f),
            (Err(e), _) => {
                let msg = format!("flushing `{}` failed: {e}", flushed_path.display());
                shared.fail(msg.clone());
                nack(job.replies.into_iter(), &msg);
            }
        }
        let _ = tokens.send(me);
    }
}

fn nack(replies: impl Iterator<Item = Reply<Sealed>>, msg: &str) {
    for reply in replies {
        let _ = reply.send(Err(AuditError::Failed(msg.to_owned())));
    }
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new().read(true).append(true).create(true).open(path).map_err(AuditError::io(path))
}

/// The verified end of the chain: its head, the byte length to keep, and whether everything after
/// that length is a single torn line (`true`) rather than damaged complete lines (`false`).
fn chain_end(f: &mut File, path: &Path, len: u64, signed: Option<&Checkpoint>) -> Result<(Head, u64, bool), AuditError> {
    let corrupt = |what: String| AuditError::Corrupt { path: path.to_owned(), what };
    let start = match signed {
        None => 0,
        Some(c) => offset_of_seq(f, path, len, c.seq)?.ok_or_else(|| {
            corrupt(format!("a checkpoint signs seq {} but the log holds no such record: signed records are missing", c.seq))
        })?,
    };
    f.seek(SeekFrom::Start(start)).map_err(AuditError::io(path))?;
    let mut reader = BufReader::new((&mut *f).take(len.saturating_sub(start)));
    let mut line = Vec::new();
    let mut keep = start;
    let mut prev: Option<(u64, String)> = None;
    let mut clean = true;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(AuditError::io(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let good = check_line(&line[..n - 1]).ok().filter(|c| {
            c.intact() && prev.as_ref().is_none_or(|(seq, hash)| c.seq == seq + 1 && &c.prev_hash == hash)
        });
        if prev.is_none() {
            if let Some(ck) = signed {
                if !good.as_ref().is_some_and(|c| c.seq == ck.seq && c.hash == ck.hash) {
                    return Err(corrupt(format!("record seq {} differs from its signed checkpoint", ck.seq)));
                }
            }
        }
        match good {
            Some(c) => {
                prev = Some((c.seq, c.hash));
                keep += n as u64;
            }
            None => {
                clean = false;
                break;
            }
        }
    }
    let head = prev.map_or_else(|| Head { seq: 0, hash: GENESIS_HASH.to_owned() }, |(seq, hash)| Head { seq, hash });
    Ok((head, keep, clean))
}

/// Byte offset of the line holding record `seq`, found by reading backwards from the end (the
/// signed record is near the end, so this reads little).
fn offset_of_seq(f: &mut File, path: &Path, len: u64, seq: u64) -> Result<Option<u64>, AuditError> {
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
    }
    const CHUNK: u64 = 256 * 1024;
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(start - from).unwrap_or(0)];
        f.seek(SeekFrom::Start(from)).and_then(|_| f.read_exact(&mut chunk)).map_err(AuditError::io(path))?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        start = from;
        // Complete lines begin after the first newline (or at the file start).
        let first = if start == 0 { 0 } else { buf.iter().position(|&b| b == b'\n').map_or(buf.len(), |i| i + 1) };
        let mut at = first;
        let mut reached = false;
        while let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') {
            if let Ok(s) = serde_json::from_slice::<Seq>(&buf[at..at + nl]) {
                if s.seq == seq {
                    return Ok(Some(start + at as u64));
                }
                if s.seq < seq {
                    reached = true;
                }
            }
            at += nl + 1;
        }
        if reached {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Makes a file creation or rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(AuditError::io(dir))
}

fn check_key_outside(dir: &Path, key: &Path) -> Result<(), AuditError> {
    let dir = fs::canonicalize(dir).map_err(AuditError::io(dir))?;
    let key_abs = fs::canonicalize(key).map_err(AuditError::io(key))?;
    if key_abs.starts_with(&dir) {
        return Err(AuditError::Invalid(format!(
            "the audit signing key `{}` must be kept outside the audit directory `{}`",
            key.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn save_torn(dir: &Path, torn: &[u8]) -> Result<PathBuf, AuditError> {
    let rdir = dir.join(RECOVERED_DIR);
    fs::create_dir_all(&rdir).map_err(AuditError::io(&rdir))?;
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let path = rdir.join(format!("torn-{ms}.bin"));
    let mut f = OpenOptions::new().write(true).create_new(true).open(&path).map_err(AuditError::io(&path))?;
    f.write_all(torn).and_then(|()| f.sync_all()).map_err(AuditError::io(&path))?;
    sync_dir(&rdir)?;
    Ok(path)
}

/// The end of a JSON Lines file: bytes up to the last `\n`, the last complete line, and what
/// follows it (a torn write).
pub(crate) struct Tail {
    pub good_len: u64,
    pub last: Option<Vec<u8>>,
    pub torn: Vec<u8>,
}

/// Reads backwards in chunks until the last complete line is found, so opening a large log
/// costs what its last record costs.
pub(crate) fn read_tail(f: &mut File, path: &Path) -> Result<Tail, AuditError> {
    const CHUNK: u64 = 64 * 1024;
    let len = f.metadata().map_err(AuditError::io(path))?.len();
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    while start > 0 && tail.iter().filter(|&&b| b == b'\n').count() < 2 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(start - from).unwrap_or(0)];
        f.seek(SeekFrom::Start(from)).and_then(|_| f.read_exact(&mut chunk)).map_err(AuditError::io(path))?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = from;
    }
    let Some(last_nl) = tail.iter().rposition(|&b| b == b'\n') else {
        return Ok(Tail { good_len: start, last: None, torn: tail });
    };
    let torn = tail[last_nl + 1..].to_vec();
    let line_start = tail[..last_nl].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Ok(Tail { good_len: start + last_nl as u64 + 1, last: Some(tail[line_start..last_nl].to_vec()), torn })
}
