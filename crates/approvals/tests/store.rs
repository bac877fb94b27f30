//! The embedded store: durability across reopen, and correctness under real concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, SystemTime};

use tracegate_approvals::store::LOG_FILE;
use tracegate_approvals::{ApprovalStore, Committed, Opened, StoreError};
use tracegate_core::approval::{Actor, ApprovalError, Party, RequestShape, Status, Terms};
use tracegate_core::{Action, PolicyVersion, TraceId};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn shape(trace: &str) -> RequestShape {
    RequestShape::new(
        Party { subject: "sid".into(), issuer: "iss".into(), person: None },
        Action::Read,
        "sre",
        PolicyVersion("sha256:p".into()),
        [TraceId::parse(trace).unwrap()],
        None::<Vec<String>>,
        Some("INC-1"),
    )
}

fn terms(approvals: u32, one_time: bool) -> Terms {
    Terms {
        rule: "roles.sre.approval".into(),
        approvers: vec!["security".into()],
        approvals,
        pending_ttl: Duration::from_secs(3600),
        grant_ttl: Duration::from_secs(3600),
        one_time,
    }
}

fn approver(sub: &str) -> Actor {
    Actor { party: Party { subject: sub.into(), issuer: "iss".into(), person: None }, groups: vec!["security".into()] }
}

#[test]
fn state_survives_reopen_and_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let (id, fp) = {
        let store = ApprovalStore::open(dir.path()).unwrap();
        let Opened::Created(Committed { request: r, .. }) = store.open_request(shape("t1"), terms(1, false), at(0)).unwrap() else {
            panic!("a new request")
        };
        // Asking again while pending joins the same request.
        let Opened::Pending(again) = store.open_request(shape("t1"), terms(1, false), at(1)).unwrap() else {
            panic!("the pending request")
        };
        assert_eq!(again.id, r.id);
        store.approve(&r.id, &approver("sam"), Some("ok"), at(2)).unwrap();
        store.use_grant(&r.id, &r.fingerprint, at(3)).unwrap();
        (r.id, r.fingerprint)
    };
    // A crash in the middle of a write leaves a partial line.
    let log = dir.path().join(LOG_FILE);
    let mut text = std::fs::read(&log).unwrap();
    text.extend_from_slice(br#"{"request_id":"ar_x","at":"2027"#);
    std::fs::write(&log, &text).unwrap();

    let store = ApprovalStore::open(dir.path()).unwrap();
    let r = store.get(&id, at(4)).unwrap();
    assert_eq!((r.status, r.uses), (Status::Approved, 1));
    assert_eq!(r.decisions[0].comment.as_deref(), Some("ok"));
    assert_eq!(store.find_grant(&fp, at(5)).map(|g| g.id), Some(id.clone()));
    // The torn tail was cut: new events land on their own line and the log replays again.
    store.revoke(&id, &approver("sam"), Some("done"), at(6)).unwrap();
    drop(store);
    let store = ApprovalStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&id, at(7)).unwrap().status, Status::Revoked);
    assert!(store.find_grant(&fp, at(7)).is_none());
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = ApprovalStore::open(dir.path()).unwrap();
    assert!(matches!(ApprovalStore::open(dir.path()), Err(StoreError::Locked(_))));
    drop(first);
    assert!(ApprovalStore::open(dir.path()).is_ok());
}

#[test]
fn a_last_event_missing_only_its_newline_is_kept_and_the_line_finished() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = ApprovalStore::open(dir.path()).unwrap();
        store.open_request(shape("t1"), terms(1, false), at(0)).unwrap().request().id.clone()
    };
    let log = dir.path().join(LOG_FILE);
    let mut text = std::fs::read(&log).unwrap();
    assert_eq!(text.pop(), Some(b'\n'));
    std::fs::write(&log, &text).unwrap();
    {
        let store = ApprovalStore::open(dir.path()).unwrap();
        store.approve(&id, &approver("sam"), None, at(1)).unwrap();
    }
    let store = ApprovalStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&id, at(2)).unwrap().status, Status::Approved);
}

#[test]
fn a_corrupt_line_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ApprovalStore::open(dir.path()).unwrap();
        let r = store.open_request(shape("t1"), terms(1, false), at(0)).unwrap().request().clone();
        store.approve(&r.id, &approver("sam"), None, at(1)).unwrap();
    }
    let log = dir.path().join(LOG_FILE);
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, format!("garbage\n{text}")).unwrap();
    match ApprovalStore::open(dir.path()) {
        Err(StoreError::Corrupt { line: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_approvers_at_once_both_count_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ApprovalStore::open(dir.path()).unwrap());
    for round in 0..20 {
        let r = store.open_request(shape(&format!("t{round}")), terms(2, false), at(0)).unwrap().request().clone();
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["sam", "olga"]
            .into_iter()
            .map(|who| {
                let (store, barrier, id) = (store.clone(), barrier.clone(), r.id.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.approve(&id, &approver(who), None, at(1)).map(|c| c.request.status)
                })
            })
            .collect();
        let results: Vec<Status> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
        // One saw the first approval (still pending), the other completed it.
        let mut sorted = results.clone();
        sorted.sort_by_key(|s| s.as_str());
        assert_eq!(sorted, [Status::Approved, Status::Pending], "round {round}");
        let r = store.get(&r.id, at(2)).unwrap();
        assert_eq!(r.status, Status::Approved);
        assert_eq!(r.approvers().len(), 2);
    }
    // The same person racing themself is counted once.
    let r = store.open_request(shape("same"), terms(2, false), at(0)).unwrap().request().clone();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (store, barrier, id) = (store.clone(), barrier.clone(), r.id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.approve(&id, &approver("sam"), None, at(1)).is_ok()
            })
        })
        .collect();
    let oks = handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(oks, 1);
    assert_eq!(store.get(&r.id, at(2)).unwrap().status, Status::Pending);
}

#[test]
fn approval_racing_expiry_has_one_consistent_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ApprovalStore::open(dir.path()).unwrap());
    let deadline = 3600;
    for round in 0..20u64 {
        let r = store.open_request(shape(&format!("t{round}")), terms(1, false), at(0)).unwrap().request().clone();
        let barrier = Arc::new(Barrier::new(2));
        // The approver's clock reads one side of the deadline or the other; the sweeper runs at
        // it. Either order of the two is fine; a grant after a recorded expiry, or an approval
        // at the deadline, is not.
        let approve_at = if round % 2 == 0 { deadline - 1 } else { deadline };
        let a = {
            let (store, barrier, id) = (store.clone(), barrier.clone(), r.id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.approve(&id, &approver("sam"), None, at(approve_at))
            })
        };
        let s = {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.sweep(at(deadline)).unwrap().len()
            })
        };
        let approved = a.join().unwrap();
        s.join().unwrap();
        let after = store.get(&r.id, at(deadline)).unwrap();
        match approved {
            // Approved before the deadline: a grant, which the sweep at the deadline leaves alone.
            Ok(_) => {
                assert_eq!(approve_at, deadline - 1);
                assert_eq!(after.status, Status::Approved, "round {round}");
            }
            // At the deadline, or when the sweep got there first, it is expired, whichever
            // recorded it, and nobody's approval was taken.
            Err(StoreError::Refused(ApprovalError::NotPending { status: Status::Expired, .. })) => {
                assert_eq!(after.status, Status::Expired, "round {round}");
                assert!(after.decisions.is_empty());
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    // Every expiry was recorded exactly once: the log replays to the same state.
    let live = store.list(at(deadline));
    drop(store);
    let reopened = ApprovalStore::open(dir.path()).unwrap();
    assert_eq!(reopened.list(at(deadline)), live);
}

#[test]
fn a_one_time_grant_used_by_many_at_once_serves_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ApprovalStore::open(dir.path()).unwrap());
    let events = Arc::new(Mutex::new(Vec::new()));
    let store = {
        let mut s = Arc::try_unwrap(store).unwrap();
        let ev = events.clone();
        s.set_listener(Arc::new(move |e, _r| ev.lock().unwrap().push(e.change.name())));
        Arc::new(s)
    };
    for round in 0..10 {
        let r = store.open_request(shape(&format!("t{round}")), terms(1, true), at(0)).unwrap().request().clone();
        store.approve(&r.id, &approver("sam"), None, at(1)).unwrap();
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let wins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (store, barrier, wins, r) = (store.clone(), barrier.clone(), wins.clone(), r.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match store.use_grant(&r.id, &r.fingerprint, at(2)) {
                        Ok(_) => {
                            wins.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(StoreError::Refused(ApprovalError::NotActive { status: Status::Used, .. })) => {}
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
        assert_eq!(store.get(&r.id, at(3)).unwrap().status, Status::Used);
    }
    let names = events.lock().unwrap().clone();
    assert_eq!(names.iter().filter(|n| **n == "used").count(), 10);
    assert_eq!(names.iter().filter(|n| **n == "created").count(), 10);
}

#[test]
fn refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::open(dir.path()).unwrap();
    let r = store.open_request(shape("t1"), terms(1, false), at(0)).unwrap().request().clone();
    let me = Actor { party: Party { subject: "sid".into(), issuer: "iss".into(), person: None }, groups: vec!["security".into()] };
    assert!(matches!(store.approve(&r.id, &me, None, at(1)), Err(StoreError::Refused(ApprovalError::OwnRequest))));
    assert!(matches!(store.approve("ar_nope", &approver("sam"), None, at(1)), Err(StoreError::NotFound(_))));
    let other = shape("t2").fingerprint();
    assert!(store.find_grant(&other, at(1)).is_none());
    let lines = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap().lines().count();
    assert_eq!(lines, 1);
    assert_eq!(store.get(&r.id, at(1)).unwrap().status, Status::Pending);
}
