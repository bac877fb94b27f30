//! Shared state of scaled-out tracegate replicas, in PostgreSQL: the configuration section, the
//! connection pool, and the embedded schema migrations every replica and `tracegate migrate` run.
//!
//! **Architecture Invariant:** only this crate and the backends built on it (the audit trail, the
//! metadata index, approvals, service accounts, SAML one-time use, browser sessions) speak SQL; the core stays pure. With no `[state]` section nothing
//! here is used and the gateway keeps its embedded files, exactly as before.
//!
//! **API Boundary:** [`StateConfig`], [`connect`], [`migrate`], [`StateError`], and the re-exported
//! [`sqlx`] (so every crate uses the same version and the same pool type, [`PgPool`]).
//!
//! Migrations live in `crates/state/migrations`, one file per version; versions 0100–0199 belong
//! to the audit trail and the metadata index, 0200–0299 to approvals, service accounts, identity
//! (0202: SAML one-time use, pending sign-ins, sessions) and rate limits. Queries are built at run time (`sqlx::query`), never checked against a database at
//! build time, so building needs no PostgreSQL.

use std::time::Duration;

use serde::Deserialize;
pub use sqlx;
pub use sqlx::PgPool;
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgConnection;

pub mod approvals;
mod expiry;
#[cfg(feature = "saml")]
pub mod saml;
pub mod service_accounts;
pub mod sessions;
pub mod warm;
#[cfg(feature = "test-support")]
pub mod testing;

/// The migrations embedded in this binary, applied in version order.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Environment variable that overrides `[state] url` (so a secret store can inject a URL with a
/// password without writing it into the config file).
pub const URL_ENV: &str = "TRACEGATE_STATE_URL";

/// `[state]` of `tracegate.toml`: where replicas keep what they share. Absent: the embedded
/// default (local files) is used.
///
/// ```toml
/// [state]
/// url = "postgres://tracegate@db.internal/tracegate"
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full…]`. Prefer giving the
    /// password through `PGPASSWORD` or `TRACEGATE_STATE_URL` rather than in this file.
    pub url: Option<String>,
    /// Most connections this replica opens. Default 16.
    pub max_connections: Option<u32>,
    /// How long to wait for a connection before failing the operation (fail closed), humantime.
    /// Default `5s`.
    pub acquire_timeout: Option<String>,
    /// Run pending migrations at start-up. Default `true`; set `false` when migrations are applied
    /// by `tracegate migrate` from a deploy job, and replicas then refuse a schema they do not match.
    pub migrate_on_start: Option<bool>,
}

/// Shows the URL without its password, so a config printed while debugging leaks nothing.
impl std::fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

/// `scheme://user:PASSWORD@host/…` → `scheme://user:***@host/…`; anything else unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl StateConfig {
    /// The URL to use: `TRACEGATE_STATE_URL` when set and not empty, else `url`.
    pub fn effective_url(&self) -> Option<String> {
        match std::env::var(URL_ENV) {
            Ok(u) if !u.trim().is_empty() => Some(u),
            _ => self.url.clone(),
        }
    }

    pub fn migrate_on_start(&self) -> bool {
        self.migrate_on_start.unwrap_or(true)
    }

    fn acquire_timeout(&self) -> Result<Duration, StateError> {
        match &self.acquire_timeout {
            None => Ok(Duration::from_secs(5)),
            Some(s) => humantime::parse_duration(s).map_err(|e| StateError::Config(format!("[state] acquire_timeout: `{s}` is not a duration: {e}"))),
        }
    }
}

/// Why shared state could not be used. Messages never contain the URL's password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The `[state]` section is not usable.
    #[error("state configuration: {0}")]
    Config(String),
    /// PostgreSQL could not be reached or refused the connection.
    #[error("postgresql at `{target}` is unreachable: {source}")]
    Connect { target: String, source: sqlx::Error },
    /// A statement failed (including connection loss mid-way).
    #[error("postgresql: {0}")]
    Database(#[from] sqlx::Error),
    /// The database has a migration applied that this binary does not know: it was migrated by a
    /// newer tracegate. Running against it could misread or corrupt shared state.
    #[error("the database schema is newer than this binary (migration {version} is applied but unknown here); upgrade tracegate or roll the schema back")]
    SchemaNewer { version: i64 },
    /// An applied migration differs from the embedded one with the same version.
    #[error("migration {version} in the database differs from the one built into this binary")]
    SchemaModified { version: i64 },
    /// This binary knows migrations the database lacks and start-up migration is off.
    #[error("the database schema is older than this binary (migration {version} is not applied); run `tracegate migrate`")]
    SchemaOlder { version: i64 },
    /// Running the migrations failed.
    #[error("migrating the database failed: {0}")]
    Migrate(String),
}

impl StateError {
    /// True when the failure is the database being unreachable or dropping connections, as
    /// opposed to a bad statement or bad data: the gateway answers 503 and retries later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StateError::Connect { .. } => true,
            StateError::Database(e) => is_unavailable(e),
            _ => false,
        }
    }
}

/// Whether a `sqlx` error means "PostgreSQL is not there right now".
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed)
        || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

/// Opens the pool for `url`. Connections are opened lazily and re-opened after PostgreSQL comes
/// back, so a replica recovers without a restart; the first connection is made here so a wrong
/// URL fails start-up rather than the first request.
pub async fn connect(cfg: &StateConfig) -> Result<PgPool, StateError> {
    let url = cfg.effective_url().ok_or_else(|| StateError::Config("[state] needs `url` (or TRACEGATE_STATE_URL)".into()))?;
    let opts: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| StateError::Config(format!("[state] url is not a postgres url: {}", redact_error(&e))))?;
    let target = describe(&opts);
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections.unwrap_or(16).max(1))
        .acquire_timeout(cfg.acquire_timeout()?)
        // A connection broken while PostgreSQL was away is found out before use, not by a request.
        .test_before_acquire(true)
        .connect_with(opts)
        .await
        .map_err(|source| StateError::Connect { target, source })?;
    Ok(pool)
}

/// `user@host:port/database`, never the password.
pub fn describe(opts: &PgConnectOptions) -> String {
    format!("{}@{}:{}/{}", opts.get_username(), opts.get_host(), opts.get_port(), opts.get_database().unwrap_or(""))
}

/// Applies every embedded migration not yet applied (concurrent replicas serialise on sqlx's
/// advisory lock), refusing a database migrated by a newer binary. Returns the versions applied.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, StateError> {
    // One connection holds sqlx's migration lock (a session advisory lock, re-entrant) across
    // reading what is applied and applying the rest, so the versions reported are exactly the
    // ones this call applied even when replicas start together.
    let mut conn = pool.acquire().await?;
    conn.lock().await.map_err(map_migrate)?;
    let result: Result<Vec<i64>, StateError> = async {
        check_not_newer(&mut conn).await?;
        let before = applied(&mut conn).await?;
        MIGRATOR.run(&mut *conn).await.map_err(map_migrate)?;
        let after = applied(&mut conn).await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }
    .await;
    let unlocked = conn.unlock().await.map_err(map_migrate);
    let applied = result?;
    unlocked?;
    Ok(applied)
}

/// Checks that the database has exactly this binary's schema, without changing it: for replicas
/// started with `migrate_on_start = false`.
pub async fn check_current(pool: &PgPool) -> Result<(), StateError> {
    let mut conn = pool.acquire().await?;
    check_not_newer(&mut conn).await?;
    let have = applied(&mut conn).await?;
    if let Some(m) = MIGRATOR.iter().find(|m| !have.contains(&m.version)) {
        return Err(StateError::SchemaOlder { version: m.version });
    }
    Ok(())
}

/// Opens the pool and brings the schema to this binary's version (or checks it, per config).
pub async fn open(cfg: &StateConfig) -> Result<PgPool, StateError> {
    let pool = connect(cfg).await?;
    if cfg.migrate_on_start() {
        let applied = migrate(&pool).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "state: migrations applied");
        }
    } else {
        check_current(&pool).await?;
    }
    Ok(pool)
}

/// The highest migration version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn check_not_newer(conn: &mut PgConnection) -> Result<(), StateError> {
    for v in applied(conn).await? {
        if !MIGRATOR.iter().any(|m| m.version == v) {
            return Err(StateError::SchemaNewer { version: v });
        }
    }
    Ok(())
}

/// Versions recorded in `_sqlx_migrations` (empty before the first migration).
async fn applied(conn: &mut PgConnection) -> Result<Vec<i64>, StateError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version").fetch_all(&mut *conn).await?)
}

fn map_migrate(e: MigrateError) -> StateError {
    match e {
        MigrateError::VersionMissing(v) => StateError::SchemaNewer { version: v },
        MigrateError::VersionMismatch(v) => StateError::SchemaModified { version: v },
        MigrateError::Execute(e) if is_unavailable(&e) => StateError::Database(e),
        other => StateError::Migrate(other.to_string()),
    }
}

/// A URL parse error can quote the URL; keep only its kind.
fn redact_error(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "invalid connection string",
        _ => "unreadable",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_unknown_keys_and_parses_timeouts() {
        let c: StateConfig = serde_json::from_str(r#"{"url":"postgres://x@h/db","acquire_timeout":"250ms"}"#).unwrap();
        assert_eq!(c.acquire_timeout().unwrap(), Duration::from_millis(250));
        assert!(serde_json::from_str::<StateConfig>(r#"{"urll":"postgres://x"}"#).is_err());
        let bad = StateConfig { acquire_timeout: Some("soon".into()), ..StateConfig::default() };
        assert!(bad.acquire_timeout().is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = StateConfig { url: Some("postgres://tg:s3cr%40t@db:5432/tracegate".into()), ..StateConfig::default() };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr") && shown.contains("postgres://tg:***@db:5432/tracegate"), "{shown}");
        assert_eq!(redact_url("postgres://tg@db/x"), "postgres://tg@db/x");
    }

    #[test]
    fn migration_versions_are_in_owned_ranges() {
        for m in MIGRATOR.iter() {
            assert!((100..300).contains(&m.version), "migration {} is outside 0100-0299", m.version);
        }
    }
}
