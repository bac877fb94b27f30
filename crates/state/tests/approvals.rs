//! Access requests on PostgreSQL: the same storage suite the file log runs
//! (`tracegate_approvals::conformance`), with two store handles over two connection pools —
//! two replicas — racing every check, including a one-time grant used through both at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tracegate_approvals::conformance::{self, Pair};
use tracegate_approvals::ApprovalStore;
use tracegate_state::approvals::PgApprovals;
use tracegate_state::testing::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_storage_suite_holds_across_two_replicas() {
    let Some(db) = TestDb::create().await else { return };
    let a = Arc::new(ApprovalStore::new(Box::new(PgApprovals::new(db.pool().await))));
    let b = Arc::new(ApprovalStore::new(Box::new(PgApprovals::new(db.pool().await))));
    assert_eq!(a.describe(), "postgresql");
    conformance::run_all(&Pair { a, b }, "pg").await;
}

/// An opening whose requester's lock stays taken — by an opening through another replica — is
/// told to retry (`Busy`, which the gateway answers `429`) instead of holding its pool connection
/// for as long as the other holds the lock. Another requester is never behind it, and once the
/// lock is free the same opening goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_behind_a_held_requester_lock_is_busy_not_stuck() {
    use tracegate_approvals::{Backend, Scope, StoreError};
    use tracegate_core::approval::Party;
    use tracegate_state::approvals::LOCK_CLASS;

    let Some(db) = TestDb::create().await else { return };
    let backend = PgApprovals::new(db.pool().await);
    let party = |s: &str| Party { subject: s.into(), issuer: "https://idp.example".into(), person: None };
    let (rita, sam) = (party("rita"), party("sam"));
    // The other replica's opening: rita's lock, held in an open transaction.
    let other = db.pool().await;
    let mut held = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_CLASS + 1)
        .bind("https://idp.example\nrita")
        .execute(&mut *held)
        .await
        .unwrap();
    // Bounded by the test only so that a missing lock timeout fails instead of hanging.
    let bounded = |f| tokio::time::timeout(std::time::Duration::from_secs(60), f);
    match bounded(backend.begin(Scope::Requester(&rita))).await.expect("the opening waited without bound") {
        Err(StoreError::Busy { requester, .. }) => assert_eq!(requester, "rita"),
        Err(e) => panic!("expected Busy, got {e}"),
        Ok(_) => panic!("an opening went through while its requester's lock was held elsewhere"),
    }
    drop(bounded(backend.begin(Scope::Requester(&sam))).await.unwrap().unwrap());
    held.rollback().await.unwrap();
    drop(bounded(backend.begin(Scope::Requester(&rita))).await.unwrap().unwrap());
}
