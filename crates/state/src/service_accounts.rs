//! Service accounts in PostgreSQL: the [`ServiceAccountStore`] replicas share.
//!
//! The table holds the events of `tracegate_identity::service_accounts` (migration 0201), and
//! each replica replays them into the same [`Accounts`] the embedded log gives. Every
//! [`snapshot`](ServiceAccountStore::snapshot) — every service-account request — asks the
//! database for events after the last one seen (one indexed round trip, usually empty), so a
//! revocation through any replica is refused by every replica on its next request; nothing is
//! cached beyond what the database has confirmed is current. Writers take a transaction-scoped
//! advisory lock, decide against the events as they stand under it, insert, and commit.
//! Key-use touches take the lock only if it is free (best effort, like the file store).

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Row};
use tokio::sync::Mutex;
use tracegate_identity::service_accounts::{Accounts, Change, Decide, Event, ServiceAccountError, ServiceAccountStore, Time};

/// Advisory-lock class and key of service-account writers. A class of its own: approvals use
/// [`LOCK_CLASS`](crate::approvals::LOCK_CLASS) for the sweep and `LOCK_CLASS + 1` for openings
/// per requester (keyed by a hash that can be any `i32`, 0 included), so sharing either class
/// would make some requester's openings and key changes wait on each other.
const LOCK: (i32, i32) = (crate::approvals::LOCK_CLASS + 2, 0);

/// The shared store over a migrated pool.
#[derive(Debug)]
pub struct PgServiceAccounts {
    pool: PgPool,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    seq: i64,
    state: Arc<Accounts>,
}

impl PgServiceAccounts {
    pub fn new(pool: PgPool) -> PgServiceAccounts {
        PgServiceAccounts { pool, seen: Mutex::new(Seen::default()) }
    }
}

fn err(e: impl std::fmt::Display) -> ServiceAccountError {
    ServiceAccountError::Store { path: "postgresql:service_account_events".into(), reason: e.to_string() }
}

/// Applies every event after `seen.seq`, read through `conn`.
async fn catch_up<'c, E>(conn: E, seen: &mut Seen) -> Result<(), ServiceAccountError>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let rows = sqlx::query("SELECT seq, event::text AS event FROM service_account_events WHERE seq > $1 ORDER BY seq")
        .bind(seen.seq)
        .fetch_all(conn)
        .await
        .map_err(err)?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut state = (*seen.state).clone();
    let mut seq = seen.seq;
    for row in rows {
        seq = row.try_get("seq").map_err(err)?;
        let text: String = row.try_get("event").map_err(err)?;
        // A row that does not parse makes the store unusable (fail closed), as in the file log.
        let event: Event = serde_json::from_str(&text).map_err(|e| err(format!("event {seq} is invalid: {e}")))?;
        state.apply(&event);
    }
    seen.seq = seq;
    seen.state = Arc::new(state);
    Ok(())
}

#[async_trait]
impl ServiceAccountStore for PgServiceAccounts {
    async fn snapshot(&self) -> Result<Arc<Accounts>, ServiceAccountError> {
        let mut seen = self.seen.lock().await;
        catch_up(&self.pool, &mut seen).await?;
        Ok(seen.state.clone())
    }

    async fn commit(&self, mut decide: Decide) -> Result<Arc<Accounts>, ServiceAccountError> {
        let mut seen = self.seen.lock().await;
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)").bind(LOCK.0).bind(LOCK.1).execute(&mut *tx).await.map_err(err)?;
        // Decide against the events as they stand under the lock: another replica may have written.
        catch_up(&mut *tx, &mut seen).await?;
        let events = decide(&seen.state)?;
        for e in &events {
            let text = serde_json::to_string(e).map_err(err)?;
            sqlx::query("INSERT INTO service_account_events (event) VALUES ($1::jsonb)").bind(text).execute(&mut *tx).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        catch_up(&self.pool, &mut seen).await?;
        Ok(seen.state.clone())
    }

    async fn touch(&self, key_id: &str, at: SystemTime) {
        let event = Event { at: Time(at), change: Change::Used { key_id: key_id.to_owned() } };
        let done: Result<(), ServiceAccountError> = async {
            let text = serde_json::to_string(&event).map_err(err)?;
            let mut tx = self.pool.begin().await.map_err(err)?;
            let free: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)").bind(LOCK.0).bind(LOCK.1).fetch_one(&mut *tx).await.map_err(err)?;
            if free {
                sqlx::query("INSERT INTO service_account_events (event) VALUES ($1::jsonb)").bind(text).execute(&mut *tx).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = done {
            tracing::debug!(error = %e, "recording a service-account key's use failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_lock_has_a_class_no_approval_lock_uses() {
        let approvals = [crate::approvals::LOCK_CLASS, crate::approvals::LOCK_CLASS + 1];
        assert!(!approvals.contains(&LOCK.0));
    }
}
