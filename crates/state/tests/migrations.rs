//! The embedded migrations against a real PostgreSQL: they apply, re-running is a no-op, two
//! replicas migrating at once do not conflict, and a schema newer than the binary is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tracegate_state::sqlx;
use tracegate_state::testing::TestDb;
use tracegate_state::{check_current, migrate, StateConfig, StateError};

#[tokio::test]
async fn migrations_apply_once_and_concurrently() {
    let Some(db) = TestDb::create().await else { return };
    let (a, b) = (db.raw_pool().await, db.raw_pool().await);
    let (ra, rb) = tokio::join!(migrate(&a), migrate(&b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let known: Vec<i64> = tracegate_state::MIGRATOR.iter().map(|m| m.version).collect();
    let mut all = ra.clone();
    all.extend(rb.iter().copied());
    all.sort_unstable();
    assert_eq!(all, known, "each migration applied exactly once between the two replicas");
    assert!(migrate(&a).await.unwrap().is_empty(), "re-running applies nothing");
    check_current(&a).await.unwrap();
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = TestDb::create().await else { return };
    let pool = db.pool().await;
    // A later tracegate applied migration 9999 this binary has never heard of.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let err = migrate(&pool).await.unwrap_err();
    assert!(matches!(err, StateError::SchemaNewer { version: 9999 }), "{err}");
    assert!(err.to_string().contains("newer than this binary"));
    let err = tracegate_state::open(&db.config()).await.unwrap_err();
    assert!(matches!(err, StateError::SchemaNewer { version: 9999 }), "{err}");
    let err = check_current(&pool).await.unwrap_err();
    assert!(matches!(err, StateError::SchemaNewer { .. }));
}

#[tokio::test]
async fn an_unmigrated_database_is_refused_when_start_up_migration_is_off() {
    let Some(db) = TestDb::create().await else { return };
    if tracegate_state::latest_version() == 0 {
        return;
    }
    let cfg = StateConfig { migrate_on_start: Some(false), ..db.config() };
    let err = tracegate_state::open(&cfg).await.unwrap_err();
    assert!(matches!(err, StateError::SchemaOlder { .. }), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error_without_the_password() {
    let cfg = StateConfig {
        url: Some("postgres://tracegate:s3cret-pw@127.0.0.1:1/tracegate".into()),
        acquire_timeout: Some("2s".into()),
        ..StateConfig::default()
    };
    let err = tracegate_state::connect(&cfg).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
}
