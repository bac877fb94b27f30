//! Test support (feature `test-support`): a fresh PostgreSQL database per test, on the machine's
//! server at 127.0.0.1:5432, dropped when the handle goes.
//!
//! Each [`TestDb`] gets `tracegate_test_<random>`, so concurrent test runs and tests never see
//! each other's rows. Connects with trust auth as `$PGUSER`, the OS user, `postgres` or `root`
//! (first that works). When PostgreSQL is unreachable, [`TestDb::create`] returns `None` and
//! prints why (the test skips) — unless `TRACEGATE_REQUIRE_PEERS` is set, as `scripts/test.sh`
//! sets it, when it panics so CI never silently skips.

#![allow(clippy::panic, clippy::expect_used, reason = "test support: a missing required peer must fail the test")]

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

use crate::{PgPool, StateConfig};

/// Host and port of the test server; `TRACEGATE_TEST_PG` overrides (`host:port`).
fn server() -> String {
    std::env::var("TRACEGATE_TEST_PG").unwrap_or_else(|_| "127.0.0.1:5432".into())
}

/// A throwaway database. Dropping it drops the database (best effort, forcing out connections).
#[derive(Debug)]
pub struct TestDb {
    /// `postgres://user@host:port/tracegate_test_<random>`.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates the database, or `None` (with the reason printed) when PostgreSQL is not
    /// reachable and peers are not required.
    pub async fn create() -> Option<TestDb> {
        let server = server();
        let mut users: Vec<String> = Vec::new();
        for v in ["PGUSER", "USER"] {
            if let Ok(u) = std::env::var(v) {
                users.push(u);
            }
        }
        users.extend(["postgres".to_owned(), "root".to_owned()]);
        let mut last_err = String::new();
        for user in users {
            let admin_url = format!("postgres://{user}@{server}/postgres");
            match PgConnection::connect(&admin_url).await {
                Ok(mut conn) => {
                    let name = format!("tracegate_test_{}", uuid::Uuid::new_v4().simple());
                    if let Err(e) = sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await {
                        last_err = format!("as `{user}`: create database: {e}");
                        continue;
                    }
                    let _ = conn.close().await;
                    let url = format!("postgres://{user}@{server}/{name}");
                    return Some(TestDb { url, name, admin_url });
                }
                Err(e) => last_err = format!("as `{user}`: {e}"),
            }
        }
        let why = format!("postgresql at {server} is not usable ({last_err})");
        if std::env::var_os("TRACEGATE_REQUIRE_PEERS").is_some() {
            panic!("{why}; TRACEGATE_REQUIRE_PEERS is set, so this fails rather than skips");
        }
        eprintln!("skipping: {why}");
        None
    }

    /// A `[state]` section pointing at this database.
    pub fn config(&self) -> StateConfig {
        StateConfig { url: Some(self.url.clone()), ..StateConfig::default() }
    }

    /// A migrated pool on this database (a new pool each call: two calls are two replicas).
    pub async fn pool(&self) -> PgPool {
        crate::open(&self.config()).await.expect("open the test database")
    }

    /// A pool with no migrations run.
    pub async fn raw_pool(&self) -> PgPool {
        PgPoolOptions::new().max_connections(4).connect(&self.url).await.expect("connect to the test database")
    }

    /// Terminates every backend connected to this database (simulates PostgreSQL going away for
    /// the pools using it, without stopping the machine's server).
    pub async fn terminate_connections(&self) {
        let mut conn = PgConnection::connect(&self.admin_url).await.expect("admin connection");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(&self.name)
            .execute(&mut conn)
            .await
            .expect("terminate backends");
        let _ = conn.close().await;
    }

    /// Forbids (`false`) or allows new connections to this database, so a test can keep
    /// PostgreSQL "down" for this database for as long as it needs.
    pub async fn allow_connections(&self, allow: bool) {
        let mut conn = PgConnection::connect(&self.admin_url).await.expect("admin connection");
        sqlx::query(&format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {allow}", self.name))
            .execute(&mut conn)
            .await
            .expect("alter database");
        let _ = conn.close().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
