//! Connections kept warm between statements.
//!
//! Why: sqlx's pool (0.8) pings a connection when it is taken (`test_before_acquire`) and
//! again when it is given back, so a one-statement query through the pool is three round trips
//! and three messages for PostgreSQL to answer. On the request path — the metadata lookup of
//! every read, the audit writer's batches — that doubled the database's work per request. A
//! [`Warm`] keeps a few connections that just answered and hands them out again without either
//! ping while they are fresh; one idle for [`KEEP`] or more goes back to the pool, whose checks
//! then apply as before.
//!
//! The price: a kept connection the database dropped since its last use (a restart within
//! [`KEEP`]) is found out by the statement itself. Idempotent reads run once more on a
//! connection from the pool ([`Warm::fresh`]); writes fail and their caller fails closed, as it
//! would for any connection lost mid-statement.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

/// How long a connection stays warm after it last answered.
pub const KEEP: Duration = Duration::from_secs(1);

/// Up to `max` connections of `pool` that just answered.
#[derive(Debug)]
pub struct Warm {
    pool: PgPool,
    max: usize,
    kept: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
}

/// A connection taken from a [`Warm`]: `kept` when it skipped the pool's checks.
#[derive(Debug)]
pub struct Taken {
    pub conn: PoolConnection<Postgres>,
    pub kept: bool,
}

impl Warm {
    pub fn new(pool: PgPool, max: usize) -> Warm {
        Warm { pool, max, kept: Mutex::new(Vec::with_capacity(max)) }
    }

    /// The connection that answered most recently if it is still warm, else one from the pool.
    /// Connections gone cold go back to the pool here.
    pub async fn take(&self) -> Result<Taken, sqlx::Error> {
        let warm = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            kept.retain(|(_, used)| used.elapsed() < KEEP);
            kept.pop()
        };
        match warm {
            Some((conn, _)) => Ok(Taken { conn, kept: true }),
            None => self.fresh().await,
        }
    }

    /// A connection from the pool, checked by it.
    pub async fn fresh(&self) -> Result<Taken, sqlx::Error> {
        Ok(Taken { conn: self.pool.acquire().await?, kept: false })
    }

    /// Keeps a connection that has just answered. Only after a success: a failed one is dropped
    /// instead, and the pool's release check closes it if it is broken.
    pub fn keep(&self, taken: Taken) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < self.max {
            kept.push((taken.conn, Instant::now()));
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
