//! SAML one-time-use state in PostgreSQL (migration 0202), shared by every replica: the
//! [`ReplayCache`] of redeemed assertion ids and the [`RequestStore`] of pending AuthnRequests.
//!
//! Without these, each replica remembered only what it had seen itself, so a captured
//! `SAMLResponse` posted to a second replica was accepted again. Here, remembering an assertion
//! is one `INSERT … ON CONFLICT … DO UPDATE … WHERE expired`: of any number of concurrent
//! calls for one id, across any number of replicas, exactly one gets a row back. Redeeming an
//! AuthnRequest is one `DELETE … RETURNING`, so it succeeds once. Keys are SHA-256 digests of
//! the ids (an id is attacker-influenced text; the digest is always a valid `bytea`). Any
//! database error is an error, and the caller refuses the sign-in (503): never waved through.

use std::time::SystemTime;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use sqlx::{PgPool, Row};
use tracegate_identity::saml::{
    PendingRequest, ReplayCache, ReplayCacheError, RequestStore, MAX_PENDING_REQUESTS,
};

use crate::expiry::{ns, time, Sweep};

fn unavailable(e: sqlx::Error) -> ReplayCacheError {
    ReplayCacheError::Unavailable(e.to_string())
}

fn digest(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// Redeemed assertion ids in `saml_used_assertions`.
#[derive(Debug)]
pub struct PgReplayCache {
    pool: PgPool,
    sweep: Sweep,
}

impl PgReplayCache {
    /// Over a migrated pool.
    pub fn new(pool: PgPool) -> PgReplayCache {
        PgReplayCache {
            pool,
            sweep: Sweep::new("saml_used_assertions"),
        }
    }

    /// Deletes every expired id now (the store also does this by itself, once a minute).
    pub async fn sweep(&self) -> Result<u64, ReplayCacheError> {
        self.sweep.now(&self.pool).await.map_err(unavailable)
    }
}

#[async_trait]
impl ReplayCache for PgReplayCache {
    async fn check_and_remember(
        &self,
        id: &str,
        not_on_or_after: SystemTime,
    ) -> Result<bool, ReplayCacheError> {
        self.sweep.maybe(&self.pool).await;
        // A row comes back when the id is new, or when its earlier use has expired (then it is
        // remembered afresh); a live earlier use leaves the row alone and returns nothing.
        let row = sqlx::query(
            "INSERT INTO saml_used_assertions (key, expires_at_ns) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET expires_at_ns = EXCLUDED.expires_at_ns \
             WHERE saml_used_assertions.expires_at_ns <= $3 \
             RETURNING 1 AS fresh",
        )
        .bind(digest(id))
        .bind(ns(not_on_or_after))
        .bind(ns(SystemTime::now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.is_some())
    }
}

/// Pending AuthnRequests in `saml_pending_requests`.
#[derive(Debug)]
pub struct PgRequests {
    pool: PgPool,
    sweep: Sweep,
    max_pending: i64,
}

impl PgRequests {
    /// Over a migrated pool, at most [`MAX_PENDING_REQUESTS`] live requests.
    pub fn new(pool: PgPool) -> PgRequests {
        PgRequests::with_capacity(pool, MAX_PENDING_REQUESTS)
    }

    pub fn with_capacity(pool: PgPool, max_pending: usize) -> PgRequests {
        PgRequests {
            pool,
            sweep: Sweep::new("saml_pending_requests"),
            max_pending: i64::try_from(max_pending).unwrap_or(i64::MAX),
        }
    }

    /// Deletes every expired request now.
    pub async fn sweep(&self) -> Result<u64, ReplayCacheError> {
        self.sweep.now(&self.pool).await.map_err(unavailable)
    }
}

#[async_trait]
impl RequestStore for PgRequests {
    async fn insert(&self, id: &str, request: PendingRequest) -> Result<bool, ReplayCacheError> {
        self.sweep.maybe(&self.pool).await;
        // The cap bounds what unauthenticated `/saml/login` floods can write; replicas racing
        // at the limit may overshoot it by a few rows, which is harmless.
        let inserted = sqlx::query(
            "INSERT INTO saml_pending_requests (id_hash, expires_at_ns, binding) \
             SELECT $1, $2, $3 \
             WHERE (SELECT count(*) FROM saml_pending_requests WHERE expires_at_ns > $4) < $5 \
             ON CONFLICT (id_hash) DO NOTHING",
        )
        .bind(digest(id))
        .bind(ns(request.until))
        .bind(request.binding.map(|b| b.to_vec()))
        .bind(ns(SystemTime::now()))
        .bind(self.max_pending)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn take(&self, id: &str) -> Result<Option<PendingRequest>, ReplayCacheError> {
        let row = sqlx::query(
            "DELETE FROM saml_pending_requests WHERE id_hash = $1 RETURNING expires_at_ns, binding",
        )
        .bind(digest(id))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let until = time(row.try_get("expires_at_ns").map_err(unavailable)?);
        let binding: Option<Vec<u8>> = row.try_get("binding").map_err(unavailable)?;
        let binding = match binding {
            None => None,
            Some(b) => Some(<[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
                ReplayCacheError::Unavailable("a stored binding is not 32 bytes".into())
            })?),
        };
        Ok((until > SystemTime::now()).then_some(PendingRequest { until, binding }))
    }
}
