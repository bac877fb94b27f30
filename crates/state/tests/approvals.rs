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
