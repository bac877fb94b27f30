//! Browser sessions and pending OIDC sign-ins in PostgreSQL (migration 0202), shared by every
//! replica: a session started through one replica authenticates on all of them, and a logout
//! through any replica ends it everywhere on the next request (every use reads the row; nothing
//! is cached). Only the SHA-256 of a session id is stored, as in the embedded store; the
//! lifetime and idle rules stay in `tracegate_identity::sessions::Sessions`, which reads
//! `expires_at_ns` and `last_seen_ns` from here.
//!
//! Every database error is [`SessionError::Unavailable`] / [`SignInError::StoreUnavailable`]
//! (503): a session that cannot be checked is refused, never waved through.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::{PgPool, Row};
use tracegate_identity::browser::{PendingSignIn, SignInError, SignInStore, MAX_PENDING};
use tracegate_identity::sessions::{
    SessionError, SessionKey, SessionRecord, SessionStore, MAX_SESSIONS,
};

use crate::expiry::{ns, time, Sweep};

fn session_db(e: impl std::fmt::Display) -> SessionError {
    tracing::error!(error = %e, "the shared session store failed; refusing session cookies");
    SessionError::Unavailable
}

fn sign_in_db(e: impl std::fmt::Display) -> SignInError {
    tracing::error!(error = %e, "the shared sign-in store failed; refusing the sign-in");
    SignInError::StoreUnavailable
}

/// Sessions in `browser_sessions`.
#[derive(Debug)]
pub struct PgSessions {
    pool: PgPool,
    sweep: Sweep,
}

impl PgSessions {
    /// Over a migrated pool.
    pub fn new(pool: PgPool) -> PgSessions {
        PgSessions {
            pool,
            sweep: Sweep::new("browser_sessions"),
        }
    }
}

#[async_trait]
impl SessionStore for PgSessions {
    async fn insert(&self, key: SessionKey, record: SessionRecord) -> Result<(), SessionError> {
        self.sweep.maybe(&self.pool).await;
        let principal = serde_json::to_string(&record.principal).map_err(session_db)?;
        let inserted = sqlx::query(
            "INSERT INTO browser_sessions (key, principal, csrf_token, created_at_ns, last_seen_ns, expires_at_ns) \
             SELECT $1, $2::jsonb, $3, $4, $5, $6 \
             WHERE (SELECT count(*) FROM browser_sessions WHERE expires_at_ns > $7) < $8",
        )
        .bind(key.to_vec())
        .bind(principal)
        .bind(&record.csrf_token)
        .bind(ns(record.created))
        .bind(ns(record.last_seen))
        .bind(ns(record.expires))
        .bind(ns(SystemTime::now()))
        .bind(i64::try_from(MAX_SESSIONS).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(session_db)?
        .rows_affected();
        if inserted == 1 {
            Ok(())
        } else {
            Err(SessionError::Full)
        }
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<SessionRecord>, SessionError> {
        let row = sqlx::query(
            "SELECT principal::text AS principal, csrf_token, created_at_ns, last_seen_ns, expires_at_ns \
             FROM browser_sessions WHERE key = $1",
        )
        .bind(key.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(session_db)?;
        let Some(row) = row else { return Ok(None) };
        let principal: String = row.try_get("principal").map_err(session_db)?;
        Ok(Some(SessionRecord {
            // A row that does not parse is refused (503), not treated as signed out.
            principal: serde_json::from_str(&principal).map_err(session_db)?,
            csrf_token: row.try_get("csrf_token").map_err(session_db)?,
            created: time(row.try_get("created_at_ns").map_err(session_db)?),
            last_seen: time(row.try_get("last_seen_ns").map_err(session_db)?),
            expires: time(row.try_get("expires_at_ns").map_err(session_db)?),
        }))
    }

    async fn touch(&self, key: &SessionKey, at: SystemTime) -> Result<(), SessionError> {
        sqlx::query(
            "UPDATE browser_sessions SET last_seen_ns = GREATEST(last_seen_ns, $2) WHERE key = $1",
        )
        .bind(key.to_vec())
        .bind(ns(at))
        .execute(&self.pool)
        .await
        .map_err(session_db)?;
        Ok(())
    }

    async fn remove(&self, key: &SessionKey) -> Result<bool, SessionError> {
        let n = sqlx::query("DELETE FROM browser_sessions WHERE key = $1")
            .bind(key.to_vec())
            .execute(&self.pool)
            .await
            .map_err(session_db)?
            .rows_affected();
        Ok(n > 0)
    }
}

/// Pending OIDC sign-ins in `oidc_pending_sign_ins`: the callback may reach any replica, and a
/// `state` is taken once across all of them (`DELETE … RETURNING`).
#[derive(Debug)]
pub struct PgSignIns {
    pool: PgPool,
    sweep: Sweep,
}

impl PgSignIns {
    /// Over a migrated pool.
    pub fn new(pool: PgPool) -> PgSignIns {
        PgSignIns {
            pool,
            sweep: Sweep::new("oidc_pending_sign_ins"),
        }
    }
}

#[async_trait]
impl SignInStore for PgSignIns {
    async fn insert(&self, key: [u8; 32], p: PendingSignIn) -> Result<bool, SignInError> {
        self.sweep.maybe(&self.pool).await;
        let n = sqlx::query(
            "INSERT INTO oidc_pending_sign_ins (state_hash, nonce, verifier, binding, expires_at_ns) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE (SELECT count(*) FROM oidc_pending_sign_ins WHERE expires_at_ns > $6) < $7 \
             ON CONFLICT (state_hash) DO NOTHING",
        )
        .bind(key.to_vec())
        .bind(&p.nonce)
        .bind(&p.verifier)
        .bind(p.binding.to_vec())
        .bind(ns(p.expires))
        .bind(ns(SystemTime::now()))
        .bind(i64::try_from(MAX_PENDING).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(sign_in_db)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn take(&self, key: &[u8; 32]) -> Result<Option<PendingSignIn>, SignInError> {
        let row = sqlx::query(
            "DELETE FROM oidc_pending_sign_ins WHERE state_hash = $1 RETURNING nonce, verifier, binding, expires_at_ns",
        )
        .bind(key.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(sign_in_db)?;
        let Some(row) = row else { return Ok(None) };
        let binding: Vec<u8> = row.try_get("binding").map_err(sign_in_db)?;
        Ok(Some(PendingSignIn {
            nonce: row.try_get("nonce").map_err(sign_in_db)?,
            verifier: row.try_get("verifier").map_err(sign_in_db)?,
            binding: <[u8; 32]>::try_from(binding.as_slice())
                .map_err(|_| sign_in_db("a stored binding is not 32 bytes"))?,
            expires: time(row.try_get("expires_at_ns").map_err(sign_in_db)?),
        }))
    }
}
