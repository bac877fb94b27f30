//! Access requests in PostgreSQL: the [`Backend`] that lets replicas share approvals.
//!
//! Each exclusive section is a transaction. A change to one request locks its row
//! (`SELECT … FOR UPDATE`), so two replicas deciding, using or expiring the same request take
//! turns and the second sees the first's result — a one-time grant is used exactly once. Opening
//! a request takes a transaction-scoped advisory lock on the requester, so the duplicate check
//! and the pending cap see every concurrent opening by the same person. The sweep takes a
//! session-level advisory lock with `pg_try_advisory_lock`: one replica sweeps, the others skip
//! that tick. The gateway's audit hook runs inside the transaction, after the lock and before
//! the write, so the trail has every change before it takes effect.
//!
//! Advisory-lock keys use class [`LOCK_CLASS`] (two-int form), so they cannot collide with other
//! users of advisory locks in the same database.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::{Acquire, PgPool, Postgres, Row, Transaction};
use tracegate_approvals::{Backend, Scope, StoreError, Txn};
use tracegate_core::approval::{AccessRequest, Event, Fingerprint, Party, Status};

use crate::expiry::ns;

/// The advisory-lock class of approvals (`pg_advisory_xact_lock(LOCK_CLASS, key)`).
pub const LOCK_CLASS: i32 = 0x7467_0200;
/// How long an opening waits for its requester's lock before it is told to retry.
pub const REQUESTER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// [`REQUESTER_LOCK_WAIT`] for this transaction only (advisory-lock waits obey `lock_timeout`).
const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '2s'";
/// SQLSTATE of a lock wait that ran past `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";
/// The key, within [`LOCK_CLASS`], of the expiry sweep.
const SWEEP_KEY: i32 = 0;

/// Access requests in the `access_requests` table (migration 0200).
#[derive(Debug, Clone)]
pub struct PgApprovals {
    pool: PgPool,
}

impl PgApprovals {
    /// Over a migrated pool.
    pub fn new(pool: PgPool) -> PgApprovals {
        PgApprovals { pool }
    }
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Backend { backend: "postgresql".into(), reason: e.to_string() }
}

fn corrupt(id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { backend: "postgresql".into(), reason: format!("access request `{id}` is not readable: {e}") }
}


/// When time alone would close `r`, as the state machine judges it; `None` once closed.
fn due_at(r: &AccessRequest) -> Option<i64> {
    match r.status {
        Status::Pending => Some(ns(r.pending_until)),
        // An approved request without a deadline is already expired (see `status_at`).
        Status::Approved => Some(r.grant_until.map_or(i64::MIN, ns)),
        _ => None,
    }
}

fn parse(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<AccessRequest>, StoreError> {
    rows.into_iter()
        .map(|row| {
            let id: String = row.try_get("id").map_err(db)?;
            let body: String = row.try_get("body").map_err(db)?;
            serde_json::from_str(&body).map_err(|e| corrupt(&id, e))
        })
        .collect()
}

const SELECT: &str = "SELECT id, body::text AS body FROM access_requests";

#[async_trait]
impl Backend for PgApprovals {
    async fn begin(&self, scope: Scope<'_>) -> Result<Box<dyn Txn>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if let Scope::Requester(p) = scope {
            // Waiting holds this pool connection, so the wait is bounded: a requester whose
            // section stays taken (openings through other replicas) is told to retry (`Busy`),
            // never left holding capacity the replica's other callers need.
            sqlx::query(LOCK_WAIT).execute(&mut *tx).await.map_err(db)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(LOCK_CLASS + 1)
                .bind(format!("{}\n{}", p.issuer, p.subject))
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
                        StoreError::Busy { requester: p.subject.clone(), retry_after: REQUESTER_LOCK_WAIT }
                    }
                    _ => db(e),
                })?;
        }
        Ok(Box::new(PgTxn { tx }))
    }

    async fn sweep_lock(&self) -> Result<Option<Box<dyn Send>>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(SWEEP_KEY)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        if !got {
            return Ok(None);
        }
        // The lock lives as long as this session. The guard closes the session when dropped —
        // whatever way the sweep ends, even cancelled — so the lock never outlives the sweep on
        // a pooled connection.
        Ok(Some(Box::new(SweepGuard(Some(conn.detach())))))
    }

    async fn get(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE id = $1")).bind(id).fetch_all(&self.pool).await.map_err(db)?;
        Ok(parse(rows)?.pop())
    }

    async fn with_fingerprint(&self, fingerprint: &Fingerprint) -> Result<Vec<AccessRequest>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE fingerprint = $1")).bind(&fingerprint.0).fetch_all(&self.pool).await.map_err(db)?;
        parse(rows)
    }

    async fn all(&self) -> Result<Vec<AccessRequest>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT} ORDER BY created_at_ns DESC, id")).fetch_all(&self.pool).await.map_err(db)?;
        parse(rows)
    }

    async fn due(&self, now: SystemTime) -> Result<Vec<AccessRequest>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE due_at_ns IS NOT NULL AND due_at_ns <= $1 ORDER BY due_at_ns"))
            .bind(ns(now))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        parse(rows)
    }

    fn describe(&self) -> String {
        "postgresql".into()
    }
}

/// Holds the session that holds the sweep lock; closing it releases the lock.
struct SweepGuard(Option<sqlx::PgConnection>);

impl Drop for SweepGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Close politely when a runtime is there; dropping the socket releases it too.
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move {
                    let _ = sqlx::Connection::close(conn).await;
                });
            }
        }
    }
}

struct PgTxn {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl Txn for PgTxn {
    async fn request(&mut self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let conn = self.tx.acquire().await.map_err(db)?;
        let rows = sqlx::query(&format!("{SELECT} WHERE id = $1 FOR UPDATE")).bind(id).fetch_all(conn).await.map_err(db)?;
        Ok(parse(rows)?.pop())
    }

    async fn of_requester(&mut self, requester: &Party) -> Result<Vec<AccessRequest>, StoreError> {
        let conn = self.tx.acquire().await.map_err(db)?;
        let rows = sqlx::query(&format!("{SELECT} WHERE requester_issuer = $1 AND requester_subject = $2"))
            .bind(&requester.issuer)
            .bind(&requester.subject)
            .fetch_all(conn)
            .await
            .map_err(db)?;
        parse(rows)
    }

    async fn commit(mut self: Box<Self>, event: &Event, after: &AccessRequest) -> Result<(), StoreError> {
        let body = serde_json::to_string(after).map_err(|e| corrupt(&after.id, e))?;
        let ev = serde_json::to_string(event).map_err(|e| corrupt(&after.id, e))?;
        sqlx::query(
            "INSERT INTO access_requests (id, fingerprint, requester_issuer, requester_subject, status, created_at_ns, due_at_ns, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) \
             ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, due_at_ns = EXCLUDED.due_at_ns, body = EXCLUDED.body",
        )
        .bind(&after.id)
        .bind(&after.fingerprint.0)
        .bind(&after.shape.requester.issuer)
        .bind(&after.shape.requester.subject)
        .bind(after.status.as_str())
        .bind(ns(after.created_at))
        .bind(due_at(after))
        .bind(body)
        .execute(&mut *self.tx)
        .await
        .map_err(db)?;
        sqlx::query("INSERT INTO access_request_events (request_id, at_ns, event) VALUES ($1, $2, $3::jsonb)")
            .bind(&after.id)
            .bind(ns(event.at))
            .bind(ev)
            .execute(&mut *self.tx)
            .await
            .map_err(db)?;
        self.tx.commit().await.map_err(db)
    }
}
