//! Time as the shared tables hold it, and the sweep of expired rows.
//!
//! Times are nanoseconds since the Unix epoch in `bigint` columns, so deadlines compare exactly
//! as the in-process code compares `SystemTime`s. Rows with an `expires_at_ns` are deleted by
//! [`Sweep`], at most once a minute per replica: correctness never depends on it (every read
//! checks the expiry itself), it only keeps the tables small.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sqlx::PgPool;

/// How often one replica sweeps one table.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Nanoseconds since the epoch (saturating: the schema cannot hold times past 2262).
pub(crate) fn ns(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The `SystemTime` of a stored nanosecond count (times before the epoch read as the epoch).
pub(crate) fn time(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Deletes the expired rows of one table (`expires_at_ns` column), now and then.
#[derive(Debug)]
pub(crate) struct Sweep {
    table: &'static str,
    last: Mutex<Option<Instant>>,
}

impl Sweep {
    pub(crate) const fn new(table: &'static str) -> Sweep {
        Sweep {
            table,
            last: Mutex::new(None),
        }
    }

    /// Sweeps if this replica has not swept the table within [`SWEEP_EVERY`]. A failure is
    /// logged and otherwise ignored (see the module header).
    pub(crate) async fn maybe(&self, pool: &PgPool) {
        {
            let mut last = self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self.now(pool).await {
            tracing::debug!(table = self.table, error = %e, "sweeping expired rows failed");
        }
    }

    /// Deletes every row that has expired; how many.
    pub(crate) async fn now(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let sql = format!("DELETE FROM {} WHERE expires_at_ns <= $1", self.table);
        Ok(sqlx::query(&sql)
            .bind(ns(SystemTime::now()))
            .execute(pool)
            .await?
            .rows_affected())
    }
}
