//! The audit trail in PostgreSQL: one hash chain for every replica, with the record format,
//! chain hashing ([`crate::chain`]) and checkpoint signatures ([`crate::checkpoint`]) of the file
//! log, verified by the same [`crate::verify::Verifier`].
//!
//! Ordering: one sequence, kept in the single `audit_head` row. A batch sealed after the head
//! this replica last committed goes in as one statement that moves the head only if it is still
//! that head and inserts the rows only if it moved (one round trip; the usual case for a replica
//! writing alone or most of the time). When the head has moved, another replica appended, and the
//! batch (and the next ones, until a locked batch finds the head where this replica left it) takes
//! a transaction that locks the row (`SELECT … FOR UPDATE`), seals its records after
//! the head it finds, inserts them, moves the head and commits. Either way two replicas appending
//! at once queue on that row's lock and each re-checks the row after the other committed, so the
//! chain never forks; a seq gap or a second record at a seq is impossible because `seq` is the
//! primary key and only the head's mover writes. A record is acknowledged only after
//! `COMMIT` returned, so it is durable (per the server's `synchronous_commit`) before the response
//! is released. Group commit: each process has one writer task that drains every append queued
//! while the previous transaction ran into the next, so one round-trip serves many records.
//!
//! Fail closed, and recover: when a transaction fails (PostgreSQL unreachable, connections
//! killed), every record of that batch gets an error (the gateway answers 503) and nothing is
//! acknowledged. Unlike the file log there is no local state to distrust afterwards — the head is
//! re-read under the lock by every transaction — so the next batch simply tries again, and the
//! gateway recovers without a restart once PostgreSQL is back.
//!
//! Checkpoints: after a commit that leaves at least `checkpoint_every_records` unsigned records,
//! or when `checkpoint_interval` has passed, the writer signs the head *it committed* and stores
//! the checkpoint line in `audit_checkpoints`. Every replica may sign (with the shared key, or
//! each with its own key given to verifiers): each signs a real (seq, hash) pair of the one chain.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracegate_core::PolicyVersion;
use tracegate_state::sqlx::{self, QueryBuilder, Row};
use tracegate_state::warm::Warm;
use tracegate_state::PgPool;

use crate::chain::Prepared;
use crate::checkpoint::{Checkpoint, PublicKey, SigningKey};
use crate::error::AuditError;
use crate::log::{Head, PruneReport};
use crate::query::AuditQuery;
use crate::record::{Entry, Record, Sealed, Timestamp};
use crate::verify::{Verifier, VerifyReport};

/// Names of the tables, for [`crate::Problem::file`].
pub const RECORDS_TABLE: &str = "audit_records";
pub const CHECKPOINTS_TABLE: &str = "audit_checkpoints";

/// Rows read per round-trip by verify and export.
const PAGE: i64 = 2000;

/// How the PostgreSQL trail runs (the same knobs as the file log's, where they apply).
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub checkpoint_every_records: u64,
    pub checkpoint_interval: Duration,
    /// Most records in one transaction.
    pub max_batch: usize,
}

/// How a replica's batches went in ([`PgAuditLog::append_paths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendPaths {
    pub one_statement: u64,
    pub locked: u64,
    /// One-statement attempts that found the head moved by another replica.
    pub conflicts: u64,
}

/// The columns `GET /v1/audit` filters on, copied out of the entry on the caller's task.
#[derive(Debug)]
struct Columns {
    time: String,
    kind: String,
    request_id: String,
    subject: Option<String>,
    decision: Option<String>,
    trace_ids: String,
}

impl Columns {
    fn of(e: &Entry) -> Columns {
        let name = |v: Result<Value, serde_json::Error>| v.ok().and_then(|v| v.as_str().map(str::to_owned));
        Columns {
            time: e.time.to_string(),
            kind: name(serde_json::to_value(e.kind)).unwrap_or_default(),
            request_id: e.request_id.clone(),
            subject: e.principal.as_ref().map(|p| p.subject.clone()),
            decision: e.decision.map(|d| d.as_str().to_owned()),
            trace_ids: serde_json::to_string(&e.request.as_ref().map(|r| r.trace_ids.clone()).unwrap_or_default())
                .unwrap_or_else(|_| "[]".into()),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, AuditError>>;

enum Msg {
    Append(Prepared, Columns, Reply<Sealed>),
    Prune(std::time::SystemTime, std::path::PathBuf, Reply<PruneReport>),
    Checkpoint(Reply<Option<Checkpoint>>),
    Shutdown(Reply<()>),
}

#[derive(Debug, Default)]
struct Shared {
    /// Why the last transaction failed; cleared by the next one that commits (or a good probe).
    failure: Mutex<Option<String>>,
    /// The head this process last committed or saw.
    head: Mutex<Option<Head>>,
    /// Batches committed by one statement, and by the locked transaction; one-statement
    /// attempts that found the head moved (and wrote nothing).
    one_statement: AtomicU64,
    locked: AtomicU64,
    conflicts: AtomicU64,
}

impl Shared {
    fn set_failure(&self, why: Option<String>) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = why;
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Handle to the PostgreSQL trail of this replica. Cheap to share behind an `Arc`.
pub struct PgAuditLog {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    pool: PgPool,
    public_key: PublicKey,
}

impl std::fmt::Debug for PgAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditLog").field("head", &self.head()).finish()
    }
}

impl PgAuditLog {
    /// Starts this replica's writer on a migrated pool. Must run inside a tokio runtime.
    pub async fn open(pool: PgPool, opts: PgOptions, key: SigningKey) -> Result<PgAuditLog, AuditError> {
        let signed: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM audit_checkpoints").fetch_one(&pool).await.map_err(db)?;
        let head = read_head(&pool).await?;
        let shared = Arc::new(Shared { head: Mutex::new(Some(head)), ..Shared::default() });
        let public_key = key.public_key().clone();
        let (tx, rx) = mpsc::channel(opts.max_batch.max(1) * 4);
        let writer = Writer {
            pool: pool.clone(),
            shared: shared.clone(),
            key,
            signed_seq: signed.map_or(0, |s| u64::try_from(s).unwrap_or(0)),
            last_ckpt: Instant::now(),
            opts: PgOptions { max_batch: opts.max_batch.max(1), checkpoint_every_records: opts.checkpoint_every_records.max(1), ..opts },
            warm: Warm::new(pool.clone(), 1),
            contended: false,
        };
        tokio::spawn(writer.run(rx));
        Ok(PgAuditLog { tx, shared, pool, public_key })
    }

    /// Appends one record; returns once its transaction committed. Any error means it did not
    /// (or may not have): fail the request with 503 and release nothing.
    pub async fn append(&self, entry: &Entry) -> Result<Sealed, AuditError> {
        let prepared = Prepared::new(entry)?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Append(prepared, Columns::of(entry), reply)).await.map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Batches this replica committed so far: by one statement after the head it knew, and by
    /// the transaction that locks the head (another replica had appended since).
    pub fn append_paths(&self) -> AppendPaths {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AppendPaths { one_statement: n(&self.shared.one_statement), locked: n(&self.shared.locked), conflicts: n(&self.shared.conflicts) }
    }

    /// Signs a checkpoint of the committed head now. `None` when nothing is unsigned.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Checkpoint(reply)).await.map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Exports records older than `before` (always keeping the newest) verbatim to `export`
    /// (which must not exist), then in one transaction — holding the chain head, so appends from
    /// every replica wait — signs an anchor naming the first kept record and the export's
    /// SHA-256, and deletes what was exported; the shortened chain verifies from the anchor, as
    /// the file log's does. Then records the prune on the trail itself.
    pub async fn prune(&self, before: std::time::SystemTime, export: std::path::PathBuf) -> Result<PruneReport, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Prune(before, export, reply)).await.map_err(|_| AuditError::Closed)?;
        let report = rx.await.map_err(|_| AuditError::Closed)??;
        if report.pruned > 0 {
            let entry = Entry::system(serde_json::json!({
                "type": "pruned",
                "pruned": report.pruned,
                "first_seq": report.first_seq,
                "export_file": report.anchor.as_ref().and_then(|a| a.anchor.as_ref()).map(|a| a.export_file.clone()),
            }));
            self.append(&entry).await?;
        }
        Ok(report)
    }

    /// Signs a final checkpoint and stops the writer; later appends fail with `Closed`.
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Shutdown(reply)).await.map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// The head this replica last committed or read (another replica may be ahead).
    pub fn head(&self) -> Head {
        self.shared.head.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or(Head { seq: 0, hash: crate::GENESIS_HASH.into() })
    }

    /// Why the last append failed, while it has not been followed by a success.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Probes PostgreSQL (a read of the head) and returns why the trail cannot be written, if it
    /// cannot. A good probe clears an earlier failure, so `/healthz` recovers with the database
    /// even while no traffic arrives to prove it.
    pub async fn probe(&self) -> Result<(), String> {
        match read_head(&self.pool).await {
            Ok(_) => {
                self.shared.set_failure(None);
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                self.shared.set_failure(Some(why.clone()));
                Err(why)
            }
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

struct Writer {
    pool: PgPool,
    shared: Arc<Shared>,
    key: SigningKey,
    /// Highest seq this replica knows to be signed.
    signed_seq: u64,
    last_ckpt: Instant,
    opts: PgOptions,
    /// The connection of the last batch, while it is warm ([`Writer::write`]).
    warm: Warm,
    /// Another replica is appending too: the one-statement path found the head moved, and no
    /// locked batch since found it where this replica left it. Batches go straight to the lock
    /// meanwhile, instead of spending a round trip on a statement that would write nothing.
    contended: bool,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut pending: Option<Msg> = None;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => {
                    let wait = self.opts.checkpoint_interval.saturating_sub(self.last_ckpt.elapsed()).max(Duration::from_millis(1));
                    match tokio::time::timeout(wait, rx.recv()).await {
                        Ok(Some(m)) => m,
                        Ok(None) => {
                            let _ = self.checkpoint().await;
                            return;
                        }
                        Err(_) => {
                            if let Err(e) = self.checkpoint().await {
                                tracing::error!(error = %e, "audit trail: timed checkpoint failed");
                            }
                            self.last_ckpt = Instant::now();
                            continue;
                        }
                    }
                }
            };
            match msg {
                Msg::Append(p, c, reply) => {
                    let mut batch = vec![(p, c, reply)];
                    while batch.len() < self.opts.max_batch {
                        match rx.try_recv() {
                            Ok(Msg::Append(p, c, r)) => batch.push((p, c, r)),
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(batch).await;
                }
                Msg::Checkpoint(reply) => {
                    let _ = reply.send(self.checkpoint().await);
                }
                Msg::Prune(before, export, reply) => {
                    let _ = reply.send(self.prune(before, &export).await);
                }
                Msg::Shutdown(reply) => {
                    let _ = reply.send(self.checkpoint().await.map(|_| ()));
                    return;
                }
            }
        }
    }

    /// Writes one batch in one transaction and answers every appender of it.
    async fn commit(&mut self, batch: Vec<(Prepared, Columns, Reply<Sealed>)>) {
        let (items, replies): (Vec<(Prepared, Columns)>, Vec<Reply<Sealed>>) = batch.into_iter().map(|(p, c, r)| ((p, c), r)).unzip();
        match self.write(&items).await {
            Ok((sealed, head)) => {
                self.shared.set_failure(None);
                *self.shared.head.lock().unwrap_or_else(PoisonError::into_inner) = Some(head.clone());
                for (s, r) in sealed.into_iter().zip(replies) {
                    let _ = r.send(Ok(s));
                }
                if head.seq.saturating_sub(self.signed_seq) >= self.opts.checkpoint_every_records
                    || (head.seq > self.signed_seq && self.last_ckpt.elapsed() >= self.opts.checkpoint_interval)
                {
                    if let Err(e) = self.sign(&head).await {
                        tracing::error!(error = %e, "audit trail: checkpoint failed");
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, records = replies.len(), "audit trail: transaction failed; the batch is refused");
                self.shared.set_failure(Some(why.clone()));
                for r in replies {
                    let _ = r.send(Err(AuditError::Database(why.clone())));
                }
            }
        }
    }

    /// Writes one batch; `Ok` only once it committed.
    ///
    /// When the head is still the one this replica last committed, the batch is one statement
    /// ([`append_after`]); otherwise (another replica appended since, or this one's last
    /// commit failed) the transaction that locks the head ([`append_locked`]). The batch
    /// runs on the connection the writer kept warm from its last batch ([`tracegate_state::warm`]).
    async fn write(&mut self, items: &[(Prepared, Columns)]) -> Result<(Vec<Sealed>, Head), AuditError> {
        let mut taken = self.warm.take().await.map_err(db)?;
        let conn = &mut *taken.conn;
        let known = self.shared.head.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let fast = match &known {
            Some(head) if !self.contended => {
                let fast = append_after(conn, head, items).await?;
                if fast.is_none() {
                    self.shared.conflicts.fetch_add(1, Ordering::Relaxed);
                    self.contended = true;
                }
                fast
            }
            _ => None,
        };
        let done = match fast {
            Some(done) => {
                self.shared.one_statement.fetch_add(1, Ordering::Relaxed);
                done
            }
            None => {
                let (sealed, head, found) = append_locked(conn, items).await?;
                self.shared.locked.fetch_add(1, Ordering::Relaxed);
                // The head was still ours: nobody else appended since, so the next batch
                // tries the one statement again.
                if known.as_ref() == Some(&found) {
                    self.contended = false;
                }
                (sealed, head)
            }
        };
        // Kept only after a success: a connection that failed goes back to the pool, whose
        // release check closes it if it is broken. A write is never retried: it may have
        // committed before the connection broke.
        self.warm.keep(taken);
        Ok(done)
    }

    async fn prune(&mut self, before: std::time::SystemTime, export: &std::path::Path) -> Result<PruneReport, AuditError> {
        use sha2::Digest;
        let before_ms = before.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.pool.begin().await.map_err(db)?;
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await.map_err(db)?;
        let head = Head { seq: u64::try_from(row.try_get::<i64, _>(0).map_err(db)?).unwrap_or(0), hash: row.try_get(1).map_err(db)? };
        // The first record kept: the oldest not older than `before`, or else the newest.
        let first: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, prev_hash FROM audit_records WHERE seq = (SELECT COALESCE(
                 min(seq) FILTER (WHERE time >= to_timestamp($1::double precision / 1000)), max(seq)) FROM audit_records)",
        )
        .bind(before_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let none = PruneReport { pruned: 0, first_seq: None, export: None, anchor: None };
        let Some((first_seq, prev_hash)) = first else { return Ok(none) };
        let pruned: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE seq < $1").bind(first_seq).fetch_one(&mut *tx).await.map_err(db)?;
        if pruned == 0 {
            return Ok(none);
        }
        // 1. The export, durable before anything is removed.
        let io = |source: std::io::Error| AuditError::Io { path: export.to_owned(), source };
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(export).map_err(io)?;
        let mut hasher = sha2::Sha256::new();
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query("SELECT seq, line FROM audit_records WHERE seq < $1 AND seq > $2 ORDER BY seq LIMIT $3")
                .bind(first_seq)
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let (seq, line): (i64, String) = (row.try_get(0).map_err(db)?, row.try_get(1).map_err(db)?);
                after = seq;
                for part in [line.as_bytes(), b"\n"] {
                    hasher.update(part);
                    out.write_all(part).map_err(io)?;
                }
            }
        }
        out.sync_all().map_err(io)?;
        if let Some(parent) = export.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::log::sync_dir(parent)?;
        }
        // 2. The signed anchor and the cut, in the transaction that holds the head.
        let info = crate::checkpoint::AnchorInfo {
            first_seq: u64::try_from(first_seq).unwrap_or(0),
            prev_hash,
            pruned: u64::try_from(pruned).unwrap_or(0),
            export_file: export.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            export_sha256: hex::encode(hasher.finalize()),
        };
        let c = self.key.sign(head.seq, &head.hash, Timestamp::now(), Some(info))?;
        let mut line = c.line()?;
        line.pop();
        let line = String::from_utf8(line).map_err(|_| AuditError::Serialize("checkpoint is not utf-8".into()))?;
        sqlx::query("INSERT INTO audit_checkpoints (seq, key_id, line) VALUES ($1, $2, $3)")
            .bind(i64::try_from(head.seq).unwrap_or(i64::MAX))
            .bind(&c.key_id)
            .bind(&line)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM audit_records WHERE seq < $1").bind(first_seq).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.signed_seq = self.signed_seq.max(head.seq);
        Ok(PruneReport { pruned: u64::try_from(pruned).unwrap_or(0), first_seq: u64::try_from(first_seq).ok(), export: Some(export.to_owned()), anchor: Some(c) })
    }

    /// Signs the committed head (read from the database) unless it is already signed.
    async fn checkpoint(&mut self) -> Result<Option<Checkpoint>, AuditError> {
        let head = read_head(&self.pool).await?;
        let signed: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM audit_checkpoints").fetch_one(&self.pool).await.map_err(db)?;
        self.signed_seq = self.signed_seq.max(signed.map_or(0, |s| u64::try_from(s).unwrap_or(0)));
        self.last_ckpt = Instant::now();
        if head.seq == 0 || head.seq <= self.signed_seq {
            return Ok(None);
        }
        self.sign(&head).await.map(Some)
    }

    async fn sign(&mut self, head: &Head) -> Result<Checkpoint, AuditError> {
        let c = self.key.sign(head.seq, &head.hash, Timestamp::now(), None)?;
        let mut line = c.line()?;
        line.pop();
        let line = String::from_utf8(line).map_err(|_| AuditError::Serialize("checkpoint is not utf-8".into()))?;
        sqlx::query("INSERT INTO audit_checkpoints (seq, key_id, line) VALUES ($1, $2, $3)")
            .bind(i64::try_from(head.seq).unwrap_or(i64::MAX))
            .bind(&c.key_id)
            .bind(&line)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        self.signed_seq = self.signed_seq.max(head.seq);
        self.last_ckpt = Instant::now();
        Ok(c)
    }
}

/// A batch sealed after a head: the columns to insert, the receipts, and the head it leaves.
struct SealedBatch {
    seqs: Vec<i64>,
    prevs: Vec<String>,
    hashes: Vec<String>,
    lines: Vec<String>,
    sealed: Vec<Sealed>,
    head: Head,
}

fn seal(items: &[(Prepared, Columns)], after: &Head) -> Result<SealedBatch, AuditError> {
    let n = items.len();
    let mut b = SealedBatch {
        seqs: Vec::with_capacity(n),
        prevs: Vec::with_capacity(n),
        hashes: Vec::with_capacity(n),
        lines: Vec::with_capacity(n),
        sealed: Vec::with_capacity(n),
        head: after.clone(),
    };
    for (p, _) in items {
        let seq = b.head.seq + 1;
        let (mut line, hash) = p.seal(seq, &b.head.hash);
        line.pop(); // the trailing '\n' of the file format
        let line = String::from_utf8(line).map_err(|_| AuditError::Serialize("canonical form is not utf-8".into()))?;
        b.seqs.push(i64::try_from(seq).map_err(|_| AuditError::Database("seq overflow".into()))?);
        b.prevs.push(std::mem::replace(&mut b.head, Head { seq, hash: hash.clone() }).hash);
        b.hashes.push(hash.clone());
        b.lines.push(line);
        b.sealed.push(Sealed { seq, hash });
    }
    Ok(b)
}

/// The batch's rows, from `UNNEST` of the arrays bound as `$1`..`$10` ([`bind_rows`]).
const ROWS: &str = "INSERT INTO audit_records (seq, prev_hash, hash, time, kind, request_id, subject, decision, trace_ids, line)
     SELECT s, p, h, t::timestamptz, k, r, sub, d, ARRAY(SELECT jsonb_array_elements_text(tids::jsonb)), l
     FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
          AS u(s, p, h, t, k, r, sub, d, tids, l)";

fn bind_rows<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    b: &'q SealedBatch,
    items: &[(Prepared, Columns)],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let col = |f: fn(&Columns) -> Option<String>| items.iter().map(|(_, c)| f(c)).collect::<Vec<_>>();
    q.bind(&b.seqs)
        .bind(&b.prevs)
        .bind(&b.hashes)
        .bind(col(|c| Some(c.time.clone())))
        .bind(col(|c| Some(c.kind.clone())))
        .bind(col(|c| Some(c.request_id.clone())))
        .bind(col(|c| c.subject.clone()))
        .bind(col(|c| c.decision.clone()))
        .bind(col(|c| Some(c.trace_ids.clone())))
        .bind(&b.lines)
}

/// One statement, one round trip: the batch sealed after `known`, inserted only if the head
/// still is `known`, in the same statement that moves it. `None` (nothing written) when the
/// head has moved: another replica appended, and the caller takes the locked path.
///
/// Why this cannot fork the chain: the head row is updated only where it still holds the
/// (seq, hash) the batch was sealed after, and the rows go in only if that update happened, in
/// one statement, so one transaction. A concurrent append holds the row's lock until it commits;
/// this update waits for it and then re-checks its condition against the committed row, which
/// no longer matches. Seqs only grow, so a stale head never matches again.
async fn append_after(conn: &mut sqlx::PgConnection, known: &Head, items: &[(Prepared, Columns)]) -> Result<Option<(Vec<Sealed>, Head)>, AuditError> {
    let b = seal(items, known)?;
    let sql = format!(
        "WITH moved AS (UPDATE audit_head SET seq = $11, hash = $12 WHERE id = 1 AND seq = $13 AND hash = $14 RETURNING 1),
              written AS ({ROWS} WHERE EXISTS (SELECT 1 FROM moved) RETURNING 1)
         SELECT count(*) FROM written"
    );
    let written: i64 = bind_rows(sqlx::query(&sql), &b, items)
        .bind(i64::try_from(b.head.seq).unwrap_or(i64::MAX))
        .bind(&b.head.hash)
        .bind(i64::try_from(known.seq).unwrap_or(i64::MAX))
        .bind(&known.hash)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    match usize::try_from(written) {
        Ok(0) => Ok(None),
        Ok(n) if n == items.len() => Ok(Some((b.sealed, b.head))),
        _ => Err(AuditError::Database(format!("audit trail: {written} of {} records written", items.len()))),
    }
}

/// The batch in a transaction that locks the head row first, so it always goes in after
/// whatever head is committed. Also returns the head it found.
async fn append_locked(conn: &mut sqlx::PgConnection, items: &[(Prepared, Columns)]) -> Result<(Vec<Sealed>, Head, Head), AuditError> {
    use sqlx::Acquire;
    let mut tx = conn.begin().await.map_err(db)?;
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await.map_err(db)?;
    let seq: i64 = row.try_get(0).map_err(db)?;
    let head = Head { seq: u64::try_from(seq).map_err(|_| AuditError::Database("audit_head.seq is negative".into()))?, hash: row.try_get(1).map_err(db)? };
    let b = seal(items, &head)?;
    bind_rows(sqlx::query(ROWS), &b, items).execute(&mut *tx).await.map_err(db)?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(i64::try_from(b.head.seq).unwrap_or(i64::MAX))
        .bind(&b.head.hash)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok((b.sealed, b.head, head))
}

async fn read_head(pool: &PgPool) -> Result<Head, AuditError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(pool).await.map_err(db)?;
    let seq: i64 = row.try_get(0).map_err(db)?;
    Ok(Head { seq: u64::try_from(seq).unwrap_or(0), hash: row.try_get(1).map_err(db)? })
}

pub(crate) fn db(e: sqlx::Error) -> AuditError {
    AuditError::Database(e.to_string())
}

// ---- reading: query, export, verify, policies ---------------------------------------------

/// `WHERE` clauses for the filters of `q` (only those given, so each can use its index).
fn push_filters<'a>(b: &mut QueryBuilder<'a, sqlx::Postgres>, q: &'a AuditQuery) {
    b.push(" WHERE true");
    if let Some(s) = &q.since {
        b.push(" AND time >= ").push_bind(s.to_string()).push("::timestamptz");
    }
    if let Some(u) = &q.until {
        b.push(" AND time < ").push_bind(u.to_string()).push("::timestamptz");
    }
    if let Some(s) = &q.subject {
        b.push(" AND subject = ").push_bind(s.as_str());
    }
    if let Some(r) = &q.request_id {
        b.push(" AND request_id = ").push_bind(r.as_str());
    }
    if let Some(t) = &q.trace_id {
        b.push(" AND trace_ids @> ARRAY[").push_bind(t.as_str()).push("::text]");
    }
    if let Some(d) = q.decision {
        b.push(" AND decision = ").push_bind(d.as_str());
    }
    if let Some(k) = q.kind {
        b.push(" AND kind = ").push_bind(match k {
            crate::Kind::Request => "request",
            crate::Kind::Approval => "approval",
            crate::Kind::System => "system",
        });
    }
}

fn parse(seq: i64, line: &str) -> Result<Record, AuditError> {
    serde_json::from_str(line).map_err(|e| AuditError::Database(format!("audit record seq {seq} is not a record: {e}")))
}

/// The newest records matching `q`, newest first: an indexed SQL query, then `q.matches` on the
/// parsed records as a check (a record whose copied columns disagree with its content is left out,
/// and `verify` reports it).
pub async fn query(pool: &PgPool, q: &AuditQuery) -> Result<Vec<Record>, AuditError> {
    let mut b = QueryBuilder::new("SELECT seq, line FROM audit_records");
    push_filters(&mut b, q);
    b.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::try_from(q.effective_limit()).unwrap_or(1000));
    let rows = b.build().fetch_all(pool).await.map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (seq, line): (i64, String) = (row.try_get(0).map_err(db)?, row.try_get(1).map_err(db)?);
        let r = parse(seq, &line)?;
        if q.matches(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Every matching record, oldest first, verbatim (one canonical JSON line each, as the file log
/// stores them, so the export verifies as a chain segment). Streams in pages.
pub async fn export(pool: &PgPool, q: &AuditQuery, out: &mut (dyn Write + Send)) -> Result<u64, AuditError> {
    let mut after = 0i64;
    let mut n = 0;
    loop {
        let mut b = QueryBuilder::new("SELECT seq, line FROM audit_records");
        push_filters(&mut b, q);
        b.push(" AND seq > ").push_bind(after).push(" ORDER BY seq LIMIT ").push_bind(PAGE);
        let rows = b.build().fetch_all(pool).await.map_err(db)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let (seq, line): (i64, String) = (row.try_get(0).map_err(db)?, row.try_get(1).map_err(db)?);
            after = seq;
            if !q.matches(&parse(seq, &line)?) {
                continue;
            }
            out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")).map_err(AuditError::io(std::path::Path::new("<export>")))?;
            n += 1;
        }
    }
    out.flush().map_err(AuditError::io(std::path::Path::new("<export>")))?;
    Ok(n)
}

/// The newest checkpoint row, as stored (see [`crate::AuditSource::latest_checkpoint`]).
pub async fn latest_checkpoint(pool: &PgPool) -> Result<Option<Checkpoint>, AuditError> {
    let line: Option<String> =
        sqlx::query_scalar("SELECT line FROM audit_checkpoints ORDER BY id DESC LIMIT 1").fetch_optional(pool).await.map_err(db)?;
    match line {
        None => Ok(None),
        Some(l) => serde_json::from_str(&l)
            .map(Some)
            .map_err(|e| AuditError::Corrupt { path: CHECKPOINTS_TABLE.into(), what: format!("newest checkpoint does not parse: {e}") }),
    }
}

/// Verifies the trail in the database: every checkpoint signature, then the chain in seq order,
/// by the same rules as the file log. Problems locate records by `seq` (as `line`) and
/// checkpoints by their row id.
pub async fn verify(pool: &PgPool, keys: &[PublicKey]) -> Result<VerifyReport, AuditError> {
    let mut v = Verifier::new(keys, RECORDS_TABLE, CHECKPOINTS_TABLE);
    let rows = sqlx::query("SELECT id, line FROM audit_checkpoints ORDER BY id").fetch_all(pool).await.map_err(db)?;
    for row in rows {
        let (id, line): (i64, String) = (row.try_get(0).map_err(db)?, row.try_get(1).map_err(db)?);
        v.checkpoint(u64::try_from(id).unwrap_or(0), line.as_bytes());
    }
    let mut chain = v.into_chain();
    let mut columns: Vec<crate::verify::Problem> = Vec::new();
    let mut after = i64::MIN;
    'pages: loop {
        let rows = sqlx::query(
            "SELECT seq, line, prev_hash, hash, (extract(epoch FROM time) * 1000)::bigint, kind, request_id, subject, decision, trace_ids
             FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(pool)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let (seq, line): (i64, String) = (row.try_get(0).map_err(db)?, row.try_get(1).map_err(db)?);
            after = seq;
            chain.record(u64::try_from(seq).unwrap_or(0), line.as_bytes());
            if chain.broken() {
                break 'pages;
            }
            if let Some(what) = columns_differ(&row, &line)? {
                let seq = u64::try_from(seq).unwrap_or(0);
                columns.push(crate::verify::Problem {
                    kind: crate::ProblemKind::ColumnMismatch,
                    file: RECORDS_TABLE,
                    line: seq,
                    seq: Some(seq),
                    detail: format!("the `{what}` column does not match the hashed record"),
                });
            }
        }
    }
    let mut report = chain.finish();
    // A record already reported (edited, out of place) is not also blamed for its columns.
    columns.retain(|c| !report.problems.iter().any(|p| p.seq == c.seq));
    report.problems.extend(columns);
    Ok(report)
}

/// Which copied column of a row (hashed and linked already) says something other than its line,
/// if any. The line is the truth: the columns only serve `GET /v1/audit`'s filters.
fn columns_differ(row: &sqlx::postgres::PgRow, line: &str) -> Result<Option<&'static str>, AuditError> {
    let Ok(v) = serde_json::from_str::<Value>(line) else { return Ok(None) };
    let text = |i: usize| -> Result<Option<String>, AuditError> { row.try_get(i).map_err(db) };
    let field = |path: &[&str]| path.iter().try_fold(&v, |at, k| at.get(k)).and_then(Value::as_str).map(str::to_owned);
    let time_ms: Option<i64> = row.try_get(4).map_err(db)?;
    let line_ms = field(&["time"])
        .and_then(|t| Timestamp::parse(&t).ok())
        .and_then(|t| t.system().duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok());
    let ids: Vec<String> = row.try_get(9).map_err(db)?;
    let line_ids: Vec<String> = v
        .get("request")
        .and_then(|r| r.get("trace_ids"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let checks: [(&'static str, bool); 8] = [
        ("prev_hash", text(2)? != field(&["prev_hash"])),
        ("hash", text(3)? != field(&["hash"])),
        ("time", time_ms != line_ms),
        ("kind", text(5)? != field(&["kind"])),
        ("request_id", text(6)? != field(&["request_id"])),
        ("subject", text(7)? != field(&["principal", "subject"])),
        ("decision", text(8)? != field(&["decision"])),
        ("trace_ids", ids != line_ids),
    ];
    Ok(checks.into_iter().find(|(_, differs)| *differs).map(|(name, _)| name))
}

/// Archives a policy text (idempotent) so replay from any replica can re-apply it.
pub async fn put_policy(pool: &PgPool, text: &str) -> Result<PolicyVersion, AuditError> {
    let version = PolicyVersion::of(text.as_bytes());
    sqlx::query("INSERT INTO audit_policies (version, text) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING")
        .bind(&version.0)
        .bind(text)
        .execute(pool)
        .await
        .map_err(db)?;
    // Idempotent, but not blindly: what is stored under the name must still be what it says.
    get_policy(pool, &version).await?;
    Ok(version)
}

/// The text of an archived policy version, checked against its hash.
pub async fn get_policy(pool: &PgPool, version: &PolicyVersion) -> Result<String, AuditError> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT text FROM audit_policies WHERE version = $1").bind(&version.0).fetch_optional(pool).await.map_err(db)?;
    let text = text.ok_or_else(|| AuditError::PolicyNotFound(version.0.clone()))?;
    if PolicyVersion::of(text.as_bytes()) != *version {
        return Err(AuditError::PolicyTampered(version.0.clone()));
    }
    Ok(text)
}

/// Every archived version, sorted.
pub async fn list_policies(pool: &PgPool) -> Result<Vec<PolicyVersion>, AuditError> {
    let v: Vec<String> = sqlx::query_scalar("SELECT version FROM audit_policies ORDER BY version").fetch_all(pool).await.map_err(db)?;
    Ok(v.into_iter().map(PolicyVersion).collect())
}
