//! The embedded append-only log: JSON Lines in one file, with group commit.
//!
//! An append canonicalises and seals its record (seq, chain hash, line) on the caller's own task,
//! under one short mutex that also queues the line in a shared buffer, then awaits its flush. A
//! sync thread takes everything queued, writes it with one `write`, calls `fdatasync`, and only
//! then acknowledges each record it covered; while it flushes, arrivals pile up into the next
//! batch. So a record acknowledged is a record on disk, a request costs no thread hop of its own
//! (one wake-up of a sync thread per batch, one of the request's task per record), and many
//! concurrent requests share one flush. With `sync_threads` > 1, an idle thread starts the next
//! flush while others are still in flight (each covers every batch written before it started),
//! which cuts latency on devices that complete a lone flush slowly; with 1 it is classic group
//! commit. Sealing happens in seq order under the lock, and a sync thread holds the append
//! handle from taking a batch until it is written, so batches reach the file in chain order.
//!
//! Fail closed: when a write or `fsync` fails, every record waiting gets an error (the server
//! answers 503 and releases no data) and the log refuses every later record until it is reopened
//! — after a failed `fsync` the page cache can no longer be trusted to reflect the disk. The file
//! is cut back to the last acknowledged byte so no unacknowledged record survives.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::chain::{check_line, Prepared};
use crate::checkpoint::{AnchorInfo, Checkpoint, PublicKey, SigningKey};
use crate::error::AuditError;
use crate::record::{Entry, Sealed, Timestamp, GENESIS_HASH};

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
    /// Batches whose `fdatasync` may be in flight at once (1 = classic group commit). Several
    /// overlapping flushes cut latency on devices that complete a lone flush slowly.
    pub sync_threads: usize,
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

/// How an appender learns its record's fate: `Ok` once a flush covered it, `Err` if the log failed.
type Reply = oneshot::Sender<Result<Sealed, AuditError>>;

/// An appender waiting for the flush that covers its record.
struct Waiter {
    seq: u64,
    sealed: Sealed,
    reply: Reply,
}

#[derive(Debug, Clone)]
struct Durable {
    seq: u64,
    hash: String,
    /// Bytes of the log up to and including that record.
    len: u64,
}

/// The chain and everything not yet durable, behind one short mutex. Appenders hold it only to
/// seal a record and copy its line into `buf`; a sync thread holds it only to take `buf` or to
/// acknowledge a flush. No system call is made under it on the append path.
struct State {
    /// Sealed lines not written to the file yet: the next flush writes them with one `write`.
    buf: Vec<u8>,
    /// Seq the next record gets; `head_hash` is the hash of the last sealed record.
    next_seq: u64,
    head_hash: String,
    /// Bytes of the log including `buf`.
    len: u64,
    /// The durable head: every record up to it has been covered by a successful `fdatasync`.
    durable: Durable,
    /// Appenders waiting for a flush, in seq order (sealing and queueing happen under one lock).
    waiters: VecDeque<Waiter>,
    failure: Option<String>,
    /// Set by shutdown: later appends get [`AuditError::Closed`].
    closed: bool,
    /// Tells the sync threads to exit.
    stopping: bool,
    /// Sync threads waiting for work; an appender wakes one only if some are and `buf` was empty.
    idle: usize,
    /// Which file the log is (bumped when prune swaps the file in), so sync threads reopen it.
    generation: u64,
    /// Highest seq a checkpoint has signed, and when the last checkpoint was considered.
    signed_seq: u64,
    last_ckpt: Instant,
    /// Highest seq a sync thread has undertaken to sign (≥ `signed_seq` once signed). Claimed
    /// under the lock that advances the durable head, so checkpoints land every
    /// `checkpoint_every_records` however the flushes interleave.
    claimed_seq: u64,
}

/// The checkpoint side: one signer at a time. Lock order: `signer`, then `log`, then `state`.
struct Signer {
    key: SigningKey,
    ckpts: File,
}

/// What the handle and the sync threads share.
struct Inner {
    state: Mutex<State>,
    /// Signalled when `buf` gets its first record while a sync thread is idle, and at shutdown.
    work: Condvar,
    /// Mirrors `state.failure.is_some()` for lock-free readers.
    failed: AtomicBool,
    /// The append handle. A sync thread holds it from taking a batch out of `state` until the
    /// batch is written, so batches reach the file in chain order even when several sync threads
    /// flush at once. Locked before `state`, never while holding it.
    log: Mutex<File>,
    signer: Mutex<Signer>,
    /// One prune at a time.
    pruning: Mutex<()>,
    /// The directory lock, released at shutdown.
    dir_lock: Mutex<Option<File>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    dir: PathBuf,
    log_path: PathBuf,
    ckpt_path: PathBuf,
    opts: LogOptions,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Handle to the running log. Cheap to share behind an `Arc`; dropping it stops the sync threads
/// after a final checkpoint, but call [`AuditLog::shutdown`] to know it succeeded.
pub struct AuditLog {
    inner: Arc<Inner>,
    public_key: PublicKey,
    recovery: Option<Recovery>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.inner.dir).field("head", &self.head()).finish()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if !lock(&self.inner.state).closed {
            if let Err(e) = self.inner.stop() {
                tracing::error!(error = %e, "audit log: final checkpoint failed");
            }
        }
    }
}

impl AuditLog {
    /// Opens (creating if needed) the log in `opts.dir`, recovers a torn tail, and starts the
    /// sync threads. Blocking: call at startup, or from `spawn_blocking`.
    pub fn open(opts: LogOptions, key: SigningKey) -> Result<AuditLog, AuditError> {
        let dir = opts.dir.clone();
        fs::create_dir_all(&dir).map_err(AuditError::io(&dir))?;
        check_key_outside(&dir, key.path())?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(AuditError::io(&lock_path))?;
        match lock_file.try_lock() {
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
        if !cut.is_empty() || !ckpt_tail.torn.is_empty() {
            recovery = Some(Recovery {
                reason: if cut.is_empty() { "torn_tail" } else { reason },
                torn_bytes: cut.len() as u64,
                saved_as: saved_as.clone(),
                torn_checkpoint_bytes: ckpt_tail.torn.len() as u64,
                record: None,
            });
        }

        let public_key = key.public_key().clone();
        let sync_threads = opts.sync_threads.max(1);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                buf: Vec::new(),
                next_seq: head.seq + 1,
                head_hash: head.hash.clone(),
                len: keep_len,
                durable: Durable { seq: head.seq, hash: head.hash.clone(), len: keep_len },
                waiters: VecDeque::new(),
                failure: None,
                closed: false,
                stopping: false,
                idle: 0,
                generation: 0,
                signed_seq: ckpt_signed_seq,
                last_ckpt: Instant::now(),
                claimed_seq: ckpt_signed_seq,
            }),
            work: Condvar::new(),
            failed: AtomicBool::new(false),
            log: Mutex::new(log),
            signer: Mutex::new(Signer { key, ckpts }),
            pruning: Mutex::new(()),
            dir_lock: Mutex::new(Some(lock_file)),
            threads: Mutex::new(Vec::new()),
            dir: dir.clone(),
            log_path,
            ckpt_path,
            opts,
        });
        if let Some(r) = &mut recovery {
            let entry = Entry::system(json!({
                "type": "recovered",
                "reason": r.reason,
                "torn_bytes": r.torn_bytes,
                "torn_sha256": hex::encode(Sha256::digest(&cut)),
                "saved_as": r.saved_as.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
                "torn_checkpoint_bytes": r.torn_checkpoint_bytes,
            }));
            r.record = Some(inner.append_inline(&Prepared::new(&entry)?)?);
            tracing::warn!(torn_bytes = r.torn_bytes, "audit log recovered a torn tail after an unclean stop");
        }

        for i in 0..sync_threads {
            let worker = inner.clone();
            let spawned = std::thread::Builder::new().name(format!("tracegate-audit-sync-{i}")).spawn(move || worker.sync_loop());
            match spawned {
                Ok(t) => lock(&inner.threads).push(t),
                Err(e) => {
                    let _ = inner.stop();
                    return Err(AuditError::Io { path: dir, source: e });
                }
            }
        }
        Ok(AuditLog { inner, public_key, recovery })
    }

    /// Appends one record and returns once it is on disk (after `fdatasync`). Any error means
    /// it is not: fail the request with 503 and release nothing.
    ///
    /// The record is canonicalised and sealed on the caller's task; only the flush happens on a
    /// sync thread, and one flush acknowledges every record queued before it started.
    pub async fn append(&self, entry: &Entry) -> Result<Sealed, AuditError> {
        let prepared = Prepared::new(entry)?;
        let rx = self.inner.enqueue(&prepared)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Flushes what is queued, then signs a checkpoint of the head (e.g. before an operator
    /// copies the log). `None` when the log is empty or the head is already signed.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner.flush_all()?;
            inner.write_checkpoint(None, None)
        })
        .await
    }

    /// Exports the records older than `before` (the longest such prefix of the chain, always
    /// keeping the newest record) verbatim to `export` (which must not exist), signs an anchor
    /// naming the cut, then removes them from the log. Appends go on while the export is written;
    /// they wait only while the retained tail's last bytes are copied and the file is swapped.
    pub async fn prune(&self, before: SystemTime, export: PathBuf) -> Result<PruneReport, AuditError> {
        let inner = self.inner.clone();
        blocking(move || inner.prune(before, &export)).await
    }

    /// Flushes what is queued, signs a final checkpoint, stops the sync threads and releases the
    /// directory lock. Later appends fail with [`AuditError::Closed`].
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let inner = self.inner.clone();
        blocking(move || inner.stop()).await
    }

    /// The chain head as of the last durable flush.
    pub fn head(&self) -> Head {
        let st = lock(&self.inner.state);
        Head { seq: st.durable.seq, hash: st.durable.hash.clone() }
    }

    /// True once a write failed: the gateway should report not-ready and refuse requests.
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    /// What recovery did on open, if the last stop was unclean.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The key verifiers need; publish it (it is also in `<signing_key>.pub`).
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

/// Runs a blocking operation of the log (flush, sign, prune) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, AuditError> + Send + 'static) -> Result<T, AuditError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| AuditError::Closed)?
}

fn ack(waiters: Vec<Waiter>) {
    for w in waiters {
        let _ = w.reply.send(Ok(w.sealed));
    }
}

fn nack(waiters: Vec<Waiter>, msg: &str) {
    for w in waiters {
        let _ = w.reply.send(Err(AuditError::Failed(msg.to_owned())));
    }
}

impl Inner {
    /// Seals `p` at the end of the chain and queues its line; `reply` (if any) hears of its flush.
    fn seal_locked(st: &mut State, p: &Prepared, reply: Option<Reply>) -> Sealed {
        let seq = st.next_seq;
        let (line, hash) = p.seal(seq, &st.head_hash);
        st.buf.extend_from_slice(&line);
        st.len += line.len() as u64;
        st.next_seq += 1;
        let sealed = Sealed { seq, hash: hash.clone() };
        st.head_hash = hash;
        if let Some(reply) = reply {
            st.waiters.push_back(Waiter { seq, sealed: sealed.clone(), reply });
        }
        sealed
    }

    /// The append path: seal and queue under the state lock, wake a sync thread if one is idle
    /// and this record starts a new batch. Nothing here blocks on I/O.
    fn enqueue(&self, p: &Prepared) -> Result<oneshot::Receiver<Result<Sealed, AuditError>>, AuditError> {
        let (reply, rx) = oneshot::channel();
        let wake = {
            let mut st = lock(&self.state);
            if st.closed {
                return Err(AuditError::Closed);
            }
            if let Some(f) = &st.failure {
                return Err(AuditError::Failed(f.clone()));
            }
            let first = st.buf.is_empty();
            Self::seal_locked(&mut st, p, Some(reply));
            first && st.idle > 0
        };
        if wake {
            self.work.notify_one();
        }
        Ok(rx)
    }

    /// A sync thread: takes what is queued, writes it with one `write`, flushes it, acknowledges
    /// it. While it flushes, later records pile up into the next batch; with several threads, an
    /// idle one starts the next flush at once (each flush covers every batch written before it
    /// started). Each thread opens the log itself, so a writeback error is reported to every
    /// thread's next flush (an error seen through one open file description is not seen again).
    fn sync_loop(&self) {
        let mut own: Option<(u64, File)> = None;
        while let Some((buf, end, generation, mut log)) = self.next_batch() {
            if self.failed.load(Ordering::Acquire) {
                continue; // the failure answered this batch's waiters
            }
            if let Err(e) = log.write_all(&buf) {
                self.failed.store(true, Ordering::Release);
                drop(log);
                self.fail(format!("writing `{}` failed: {e}", self.log_path.display()));
                continue;
            }
            drop(log);
            let flushed = match &own {
                Some((g, f)) if *g == generation => f.sync_data(),
                _ => File::open(&self.log_path).and_then(|f| {
                    let r = f.sync_data();
                    own = Some((generation, f));
                    r
                }),
            };
            match flushed {
                Ok(()) => self.durable_up_to(end),
                Err(e) => self.fail(format!("flushing `{}` failed: {e}", self.log_path.display())),
            }
        }
    }

    /// Waits for queued records (signing a timed checkpoint when one is due meanwhile) and takes
    /// them, with the append handle locked before the state lock is let go. `None`: stop.
    fn next_batch(&self) -> Option<(Vec<u8>, Durable, u64, MutexGuard<'_, File>)> {
        let mut st = lock(&self.state);
        loop {
            if st.stopping {
                return None;
            }
            if st.failure.is_none() && !st.buf.is_empty() {
                // The append handle is locked before the state (lock order `log`, then `state`),
                // so an appender never waits behind another flush's `write`: let the state go,
                // take the handle, then take whatever is queued by then.
                drop(st);
                let log = lock(&self.log);
                st = lock(&self.state);
                if st.stopping {
                    return None;
                }
                if st.failure.is_none() && !st.buf.is_empty() {
                    let buf = std::mem::take(&mut st.buf);
                    let end = Durable { seq: st.next_seq - 1, hash: st.head_hash.clone(), len: st.len };
                    return Some((buf, end, st.generation, log));
                }
                continue;
            }
            let interval = self.opts.checkpoint_interval;
            let since = st.last_ckpt.elapsed();
            if since >= interval {
                if st.failure.is_some() || st.durable.seq == st.signed_seq {
                    st.last_ckpt = Instant::now();
                    continue;
                }
                drop(st);
                if let Err(e) = self.write_checkpoint(None, None) {
                    tracing::error!(error = %e, "audit log: timed checkpoint failed");
                }
                st = lock(&self.state);
                st.last_ckpt = Instant::now();
                continue;
            }
            st.idle += 1;
            st = self.work.wait_timeout(st, (interval - since).max(Duration::from_millis(1))).unwrap_or_else(PoisonError::into_inner).0;
            st.idle -= 1;
        }
    }

    /// A flush that started after `end` was written completed: acknowledge every record up to
    /// it, then sign it if a checkpoint is due (checkpoints sign durable records, so "every N
    /// records" counts durable records).
    fn durable_up_to(&self, end: Durable) {
        let (acked, sign) = {
            let mut st = lock(&self.state);
            // After a failure nothing more is acknowledged; a stale `end` (an overlapping flush
            // finishing late, or one from before a prune flushed inline) moves nothing.
            if st.failure.is_some() || end.seq <= st.durable.seq {
                return;
            }
            let due = end.seq - st.claimed_seq >= self.opts.checkpoint_every_records
                || (end.seq > st.claimed_seq && st.last_ckpt.elapsed() >= self.opts.checkpoint_interval);
            let sign = due.then(|| end.clone());
            if due {
                st.claimed_seq = end.seq;
            }
            st.durable = end;
            (Self::covered(&mut st), sign)
        };
        ack(acked);
        if let Some(head) = sign {
            if let Err(e) = self.write_checkpoint(Some(head), None) {
                tracing::error!(error = %e, "audit log: checkpoint failed");
            }
        }
    }

    /// Takes the waiters whose records the durable head covers.
    fn covered(st: &mut State) -> Vec<Waiter> {
        let n = st.waiters.iter().take_while(|w| w.seq <= st.durable.seq).count();
        st.waiters.drain(..n).collect()
    }

    /// Fails the log: every waiter gets the error, later appends are refused, and the file is
    /// cut back to the durable head so no unacknowledged record survives (best effort; recovery
    /// copes if not). Nothing can advance the durable head once `failure` is set, so the cut
    /// never removes an acknowledged record.
    fn fail(&self, msg: String) {
        let (msg, nacked) = {
            let log = lock(&self.log);
            let mut st = lock(&self.state);
            self.fail_locked(&mut st, &log, msg)
        };
        nack(nacked, &msg);
    }

    fn fail_locked(&self, st: &mut State, log: &File, msg: String) -> (String, Vec<Waiter>) {
        if st.failure.is_none() {
            tracing::error!(error = %msg, "audit log failed; refusing records until reopened");
            st.failure = Some(msg);
        }
        self.failed.store(true, Ordering::Release);
        st.buf.clear();
        let _ = log.set_len(st.durable.len).and_then(|()| log.sync_data());
        let msg = st.failure.clone().unwrap_or_default();
        (msg, st.waiters.drain(..).collect())
    }

    /// Writes what is queued and flushes it on this thread, both locks held (so no sync thread
    /// writes meanwhile): for open, checkpoint, prune and shutdown, never the request path.
    fn flush_locked(&self, st: &mut State, log: &mut File) -> Result<(), AuditError> {
        if let Some(f) = &st.failure {
            return Err(AuditError::Failed(f.clone()));
        }
        if st.durable.seq + 1 == st.next_seq {
            return Ok(());
        }
        let buf = std::mem::take(&mut st.buf);
        let flushed = log
            .write_all(&buf)
            .map_err(|e| format!("writing `{}` failed: {e}", self.log_path.display()))
            .and_then(|()| log.sync_data().map_err(|e| format!("flushing `{}` failed: {e}", self.log_path.display())));
        match flushed {
            Ok(()) => {
                st.durable = Durable { seq: st.next_seq - 1, hash: st.head_hash.clone(), len: st.len };
                ack(Self::covered(st));
                Ok(())
            }
            Err(msg) => {
                let (msg, nacked) = self.fail_locked(st, log, msg);
                nack(nacked, &msg);
                Err(AuditError::Failed(msg))
            }
        }
    }

    /// Makes everything queued durable now.
    fn flush_all(&self) -> Result<(), AuditError> {
        let mut log = lock(&self.log);
        let mut st = lock(&self.state);
        if st.closed {
            return Err(AuditError::Closed);
        }
        self.flush_locked(&mut st, &mut log)
    }

    /// Appends and flushes one record on this thread (recovery and prune records).
    fn append_inline(&self, p: &Prepared) -> Result<Sealed, AuditError> {
        let mut log = lock(&self.log);
        let mut st = lock(&self.state);
        if let Some(f) = &st.failure {
            return Err(AuditError::Failed(f.clone()));
        }
        let sealed = Self::seal_locked(&mut st, p, None);
        self.flush_locked(&mut st, &mut log)?;
        Ok(sealed)
    }

    /// Flushes what is queued, stops the sync threads, signs a final checkpoint and releases the
    /// directory lock.
    fn stop(&self) -> Result<(), AuditError> {
        let flushed = {
            let mut log = lock(&self.log);
            let mut st = lock(&self.state);
            if st.closed {
                return Err(AuditError::Closed);
            }
            st.closed = true;
            let flushed = self.flush_locked(&mut st, &mut log);
            st.stopping = true;
            flushed
        };
        self.work.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
        let r = flushed.and_then(|()| self.write_checkpoint(None, None).map(|_| ()));
        lock(&self.dir_lock).take();
        r
    }

    /// Signs `head` (a durable record; `None`: the durable head now) and appends the checkpoint
    /// to `checkpoints.jsonl`, synced. Nothing is signed when a later record already is (or the
    /// same one, unless this is a prune anchor). A failure fails the log: a gateway that cannot
    /// sign would keep serving behind an unanchored chain.
    fn write_checkpoint(&self, head: Option<Durable>, anchor: Option<AnchorInfo>) -> Result<Option<Checkpoint>, AuditError> {
        let mut signer = lock(&self.signer);
        let head = {
            let mut st = lock(&self.state);
            if let Some(f) = &st.failure {
                return Err(AuditError::Failed(f.clone()));
            }
            let head = head.unwrap_or_else(|| st.durable.clone());
            if head.seq == 0 || head.seq < st.signed_seq || (head.seq == st.signed_seq && anchor.is_none()) {
                st.last_ckpt = Instant::now();
                return Ok(None);
            }
            st.claimed_seq = st.claimed_seq.max(head.seq);
            head
        };
        let c = signer.key.sign(head.seq, &head.hash, Timestamp::now(), anchor)?;
        let line = c.line()?;
        if let Err(e) = signer.ckpts.write_all(&line).and_then(|()| signer.ckpts.sync_data()) {
            drop(signer);
            let msg = format!("writing `{}` failed: {e}", self.ckpt_path.display());
            self.fail(msg.clone());
            return Err(AuditError::Failed(msg));
        }
        let mut st = lock(&self.state);
        st.signed_seq = st.signed_seq.max(head.seq);
        st.last_ckpt = Instant::now();
        Ok(Some(c))
    }

    /// Exports and removes the oldest records. Only durable records are considered, and the
    /// newest durable record is always kept. Appends go on while the export and most of the
    /// retained tail are copied; the state lock is held only for the last bytes and the swap.
    fn prune(&self, before: SystemTime, export: &Path) -> Result<PruneReport, AuditError> {
        let _one = lock(&self.pruning);
        let durable = {
            let mut log = lock(&self.log);
            let mut st = lock(&self.state);
            if st.closed {
                return Err(AuditError::Closed);
            }
            self.flush_locked(&mut st, &mut log)?;
            st.durable.clone()
        };
        #[derive(Deserialize)]
        struct Lite {
            seq: u64,
            prev_hash: String,
            time: Timestamp,
        }
        let reader = File::open(&self.log_path).map_err(AuditError::io(&self.log_path))?;
        let mut reader = BufReader::new(reader.take(durable.len));
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
            if lite.time.system() < before && lite.seq < durable.seq {
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
        let anchor = self.write_checkpoint(None, Some(info))?;
        // 3. Rewrite the retained tail and swap it in atomically. Failing here leaves the old
        //    file in place (still valid with the anchor), but the log stops, to be safe.
        self.swap_in_tail(cut, durable.len)?;
        let entry = Entry::system(json!({
            "type": "pruned",
            "pruned": pruned,
            "first_seq": first_seq,
            "export_file": anchor.as_ref().and_then(|a| a.anchor.as_ref()).map(|a| a.export_file.clone()),
        }));
        self.append_inline(&Prepared::new(&entry)?)?;
        Ok(PruneReport { pruned, first_seq: Some(first_seq), export: Some(export.to_owned()), anchor })
    }

    /// Copies the log from `cut` to a new file and swaps it in. Bytes up to `copied_len` (durable
    /// when prune began) are copied while appends go on; the rest under both locks.
    fn swap_in_tail(&self, cut: u64, copied_len: u64) -> Result<(), AuditError> {
        let tmp = self.dir.join(format!("{LOG_FILE}.prune-tmp"));
        let copy = |from: u64, n: u64, out: &mut File| -> Result<(), AuditError> {
            let mut src = File::open(&self.log_path).map_err(AuditError::io(&self.log_path))?;
            src.seek(SeekFrom::Start(from)).map_err(AuditError::io(&self.log_path))?;
            let copied = io::copy(&mut src.take(n), out).map_err(AuditError::io(&tmp))?;
            if copied == n {
                Ok(())
            } else {
                Err(AuditError::Corrupt { path: self.log_path.clone(), what: format!("shorter than expected while pruning ({copied} of {n} bytes)") })
            }
        };
        let mut out = File::create(&tmp).map_err(AuditError::io(&tmp))?;
        copy(cut, copied_len - cut, &mut out)?;
        let mut log = lock(&self.log);
        let mut st = lock(&self.state);
        let swapped = self.flush_locked(&mut st, &mut log).and_then(|()| {
            copy(copied_len, st.len - copied_len, &mut out)?;
            out.sync_all().map_err(AuditError::io(&tmp))?;
            fs::rename(&tmp, &self.log_path).map_err(AuditError::io(&self.log_path))?;
            sync_dir(&self.dir)?;
            *log = open_append(&self.log_path)?;
            Ok(())
        });
        match swapped {
            Ok(()) => {
                st.len -= cut;
                st.durable.len -= cut;
                st.generation += 1;
                Ok(())
            }
            Err(e) => {
                let (msg, nacked) = self.fail_locked(&mut st, &log, e.to_string());
                drop((st, log));
                nack(nacked, &msg);
                Err(e)
            }
        }
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
