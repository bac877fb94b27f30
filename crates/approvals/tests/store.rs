//! The embedded store: the shared storage suite (`tracegate_approvals::conformance`, the same
//! assertions PostgreSQL passes), then what only the file log has — durability across reopen,
//! torn tails, one process per directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tracegate_approvals::conformance::{self, approver, at, ok, shape, terms, Pair};
use tracegate_approvals::store::LOG_FILE;
use tracegate_approvals::{ApprovalStore, Committed, Opened, StoreError};
use tracegate_core::approval::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_storage_suite_passes_on_the_file_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ApprovalStore::open(dir.path()).unwrap());
    conformance::run_all(&Pair { a: store.clone(), b: store.clone() }, "t").await;
    // Everything the suite did replays to the same state.
    let live = store.list(at(10_000)).await.unwrap();
    drop(store);
    let reopened = ApprovalStore::open(dir.path()).unwrap();
    assert_eq!(reopened.list(at(10_000)).await.unwrap(), live);
}

#[tokio::test]
async fn state_survives_reopen_and_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let (id, fp) = {
        let store = ApprovalStore::open(dir.path()).unwrap();
        let Opened::Created(Committed { request: r, .. }) = store.open_request(shape("t1"), terms(1, false), at(0), 100, &mut ok).await.unwrap() else {
            panic!("a new request")
        };
        store.approve(&r.id, &approver("sam"), Some("ok"), at(2), &mut ok).await.unwrap();
        store.use_grant(&r.id, &r.fingerprint, at(3), &mut ok).await.unwrap();
        (r.id, r.fingerprint)
    };
    // A crash in the middle of a write leaves a partial line.
    let log = dir.path().join(LOG_FILE);
    let mut text = std::fs::read(&log).unwrap();
    text.extend_from_slice(br#"{"request_id":"ar_x","at":"2027"#);
    std::fs::write(&log, &text).unwrap();

    let store = ApprovalStore::open(dir.path()).unwrap();
    let r = store.get(&id, at(4)).await.unwrap().unwrap();
    assert_eq!((r.status, r.uses), (Status::Approved, 1));
    assert_eq!(r.decisions[0].comment.as_deref(), Some("ok"));
    assert_eq!(store.find_grant(&fp, at(5)).await.unwrap().map(|g| g.id), Some(id.clone()));
    // The torn tail was cut: new events land on their own line and the log replays again.
    store.revoke(&id, &approver("sam"), Some("done"), at(6), &mut ok).await.unwrap();
    drop(store);
    let store = ApprovalStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&id, at(7)).await.unwrap().unwrap().status, Status::Revoked);
    assert!(store.find_grant(&fp, at(7)).await.unwrap().is_none());
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = ApprovalStore::open(dir.path()).unwrap();
    assert!(matches!(ApprovalStore::open(dir.path()), Err(StoreError::Locked(_))));
    drop(first);
    assert!(ApprovalStore::open(dir.path()).is_ok());
}

#[tokio::test]
async fn a_last_event_missing_only_its_newline_is_kept_and_the_line_finished() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = ApprovalStore::open(dir.path()).unwrap();
        store.open_request(shape("t1"), terms(1, false), at(0), 100, &mut ok).await.unwrap().request().id.clone()
    };
    let log = dir.path().join(LOG_FILE);
    let mut text = std::fs::read(&log).unwrap();
    assert_eq!(text.pop(), Some(b'\n'));
    std::fs::write(&log, &text).unwrap();
    {
        let store = ApprovalStore::open(dir.path()).unwrap();
        store.approve(&id, &approver("sam"), None, at(1), &mut ok).await.unwrap();
    }
    let store = ApprovalStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&id, at(2)).await.unwrap().unwrap().status, Status::Approved);
}

#[tokio::test]
async fn a_corrupt_line_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ApprovalStore::open(dir.path()).unwrap();
        let r = store.open_request(shape("t1"), terms(1, false), at(0), 100, &mut ok).await.unwrap().request().clone();
        store.approve(&r.id, &approver("sam"), None, at(1), &mut ok).await.unwrap();
    }
    let log = dir.path().join(LOG_FILE);
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, format!("garbage\n{text}")).unwrap();
    match ApprovalStore::open(dir.path()) {
        Err(StoreError::Corrupt { line: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// Refused and unrecorded changes never reach the log, and nothing unrecorded reappears on
/// replay.
#[tokio::test]
async fn only_recorded_changes_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log_lines = || std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap_or_default().lines().count();
    let mut fail = |_: &Committed| Err::<(), String>("audit trail unwritable".into());
    let r = {
        let store = ApprovalStore::open(dir.path()).unwrap();
        assert!(store.open_request(shape("t1"), terms(1, true), at(0), 100, &mut fail).await.is_err());
        assert_eq!(log_lines(), 0);
        let r = store.open_request(shape("t1"), terms(1, true), at(0), 100, &mut ok).await.unwrap().request().clone();
        assert!(store.approve(&r.id, &approver("sid"), None, at(1), &mut ok).await.is_err(), "own request");
        store.approve(&r.id, &approver("sam"), None, at(1), &mut ok).await.unwrap();
        assert!(store.use_grant(&r.id, &r.fingerprint, at(2), &mut fail).await.is_err());
        assert!(store.sweep(at(2 + 3600 + 1), &mut fail).await.is_err());
        assert_eq!(log_lines(), 2, "created and approved only");
        r
    };
    let store = ApprovalStore::open(dir.path()).unwrap();
    let back = store.get(&r.id, at(2)).await.unwrap().unwrap();
    assert_eq!((back.status, back.uses, back.decisions.len()), (Status::Approved, 0, 1));
}
