//! The embedded store: durability across reopen, and correctness under real concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, SystemTime};

use tracegate_approvals::store::LOG_FILE;
use tracegate_approvals::{ApprovalStore, Committed, Opened, StoreError};
use tracegate_core::approval::{Actor, ApprovalError, Party, RequestShape, Status, Terms};
use tracegate_core::{Action, PolicyVersion, TraceId};

/// A record hook that always succeeds (the gateway's writes the audit record here).
fn ok(_: &Committed) -> Result<(), String> {
    Ok(())
}

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
        let Opened::Created(Committed { request: r, .. }) = store.open_request(shape("t1"), terms(1, false), at(0), 100, &mut ok).unwrap() else {
            panic!("a new request")
        };
        // Asking again while pending joins the same request.
        let Opened::Pending(again) = store.open_request(shape("t1"), terms(1, false), at(1), 100, &mut ok).unwrap() else {
            panic!("the pending request")
        };
        assert_eq!(again.id, r.id);
        store.approve(&r.id, &approver("sam"), Some("ok"), at(2), &mut ok).unwrap();
        store.use_grant(&r.id, &r.fingerprint, at(3), &mut ok).unwrap();
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
    store.revoke(&id, &approver("sam"), Some("done"), at(6), &mut ok).unwrap();
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
        store.open_request(shape("t1"), terms(1, false), at(0), 100, &mut ok).unwrap().request().id.clone()
    };
    let log = dir.path().join(LOG_FILE);
    let mut text = std::fs::read(&log).unwrap();
    assert_eq!(text.pop(), Some(b'\n'));
    std::fs::write(&log, &text).unwrap();
    {
        let store = ApprovalStore::open(dir.path()).unwrap();
        store.approve(&id, &approver("sam"), None, at(1), &mut ok).unwrap();
    }
    let store = ApprovalStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&id, at(2)).unwrap().status, Status::Approved);
}

#[test]
fn a_corrupt_line_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ApprovalStore::open(dir.path()).unwrap();
        let r = store.open_request(shape("t1"), terms(1, false), at(0), 100, &mut ok).unwrap().request().clone();
        store.approve(&r.id, &approver("sam"), None, at(1), &mut ok).unwrap();
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
        let r = store.open_request(shape(&format!("t{round}")), terms(2, false), at(0), 100, &mut ok).unwrap().request().clone();
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["sam", "olga"]
            .into_iter()
            .map(|who| {
                let (store, barrier, id) = (store.clone(), barrier.clone(), r.id.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.approve(&id, &approver(who), None, at(1), &mut ok).map(|c| c.request.status)
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
    let r = store.open_request(shape("same"), terms(2, false), at(0), 100, &mut ok).unwrap().request().clone();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (store, barrier, id) = (store.clone(), barrier.clone(), r.id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.approve(&id, &approver("sam"), None, at(1), &mut ok).is_ok()
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
        let r = store.open_request(shape(&format!("t{round}")), terms(1, false), at(0), 100, &mut ok).unwrap().request().clone();
        let barrier = Arc::new(Barrier::new(2));
        // The approver's clock reads one side of the deadline or the other; the sweeper runs at
        // it. Either order of the two is fine; a grant after a recorded expiry, or an approval
        // at the deadline, is not.
        let approve_at = if round % 2 == 0 { deadline - 1 } else { deadline };
        let a = {
            let (store, barrier, id) = (store.clone(), barrier.clone(), r.id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.approve(&id, &approver("sam"), None, at(approve_at), &mut ok)
            })
        };
        let s = {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.sweep(at(deadline), &mut ok).unwrap().len()
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
        let r = store.open_request(shape(&format!("t{round}")), terms(1, true), at(0), 100, &mut ok).unwrap().request().clone();
        store.approve(&r.id, &approver("sam"), None, at(1), &mut ok).unwrap();
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let wins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (store, barrier, wins, r) = (store.clone(), barrier.clone(), wins.clone(), r.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match store.use_grant(&r.id, &r.fingerprint, at(2), &mut ok) {
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
    let r = store.open_request(shape("t1"), terms(1, false), at(0), 100, &mut ok).unwrap().request().clone();
    let me = Actor { party: Party { subject: "sid".into(), issuer: "iss".into(), person: None }, groups: vec!["security".into()] };
    assert!(matches!(store.approve(&r.id, &me, None, at(1), &mut ok), Err(StoreError::Refused(ApprovalError::OwnRequest))));
    assert!(matches!(store.approve("ar_nope", &approver("sam"), None, at(1), &mut ok), Err(StoreError::NotFound(_))));
    let other = shape("t2").fingerprint();
    assert!(store.find_grant(&other, at(1)).is_none());
    let lines = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap().lines().count();
    assert_eq!(lines, 1);
    assert_eq!(store.get(&r.id, at(1)).unwrap().status, Status::Pending);
}

/// Audit first: a change whose record cannot be written does not happen — not in memory, not in
/// the log, not after reopening — and the same change succeeds once recording works again.
#[test]
fn a_change_that_cannot_be_recorded_does_not_happen() {
    let dir = tempfile::tempdir().unwrap();
    let log_lines = || std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap_or_default().lines().count();
    let mut fail = |_: &Committed| Err::<(), String>("audit trail unwritable".into());
    let r = {
        let store = ApprovalStore::open(dir.path()).unwrap();
        // Opening is a change too: refused, no request exists.
        assert!(matches!(store.open_request(shape("t1"), terms(1, true), at(0), 100, &mut fail), Err(StoreError::Unrecorded(m)) if m.contains("unwritable")));
        assert!(store.list(at(0)).is_empty());
        assert_eq!(log_lines(), 0);
        let r = store.open_request(shape("t1"), terms(1, true), at(0), 100, &mut ok).unwrap().request().clone();
        // Approve, deny, revoke: each refused when unrecorded, leaving the request pending.
        assert!(matches!(store.approve(&r.id, &approver("sam"), Some("go"), at(1), &mut fail), Err(StoreError::Unrecorded(_))));
        assert!(matches!(store.deny(&r.id, &approver("sam"), Some("no"), at(1), &mut fail), Err(StoreError::Unrecorded(_))));
        let now = store.get(&r.id, at(1)).unwrap();
        assert_eq!((now.status, now.decisions.len()), (Status::Pending, 0));
        // The hook sees exactly the change that is about to be made.
        let mut seen = Vec::new();
        store
            .approve(&r.id, &approver("sam"), Some("go"), at(1), &mut |c: &Committed| {
                seen.push((c.event.change.name(), c.request.status, c.request.decisions.len()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [("approved", Status::Approved, 1)]);
        // One-time use and revocation: refused when unrecorded; the grant stays usable.
        assert!(matches!(store.use_grant(&r.id, &r.fingerprint, at(2), &mut fail), Err(StoreError::Unrecorded(_))));
        assert!(matches!(store.revoke(&r.id, &approver("sam"), Some("stop"), at(2), &mut fail), Err(StoreError::Unrecorded(_))));
        assert_eq!(store.get(&r.id, at(2)).unwrap().status, Status::Approved);
        assert_eq!(store.get(&r.id, at(2)).unwrap().uses, 0);
        // Expiry: the sweeper's record fails, so nothing is logged; time alone still closes it.
        let late = at(2 + 3600 + 1);
        assert!(matches!(store.sweep(late, &mut fail), Err(StoreError::Unrecorded(_))));
        assert_eq!(store.get(&r.id, late).unwrap().status, Status::Expired, "judged at the time of use");
        assert_eq!(log_lines(), 2, "created and approved only");
        r
    };
    // Nothing unrecorded reappears on replay.
    let store = ApprovalStore::open(dir.path()).unwrap();
    let back = store.get(&r.id, at(2)).unwrap();
    assert_eq!((back.status, back.uses, back.decisions.len()), (Status::Approved, 0, 1));
}

/// Of concurrent approvers racing with the recorder, exactly one change is recorded and made.
#[test]
fn concurrent_decisions_are_recorded_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ApprovalStore::open(dir.path()).unwrap());
    let recorded = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..10 {
        let r = store.open_request(shape(&format!("t{round}")), terms(1, false), at(0), 100, &mut ok).unwrap().request().clone();
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = ["sam", "sue", "sol", "sia"]
            .into_iter()
            .enumerate()
            .map(|(i, who)| {
                let (store, barrier, recorded, id) = (store.clone(), barrier.clone(), recorded.clone(), r.id.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut rec = |c: &Committed| {
                        recorded.lock().unwrap().push(format!("{}:{}", c.request.id, c.event.change.name()));
                        Ok(())
                    };
                    if i % 2 == 0 {
                        store.approve(&id, &approver(who), None, at(1), &mut rec).is_ok()
                    } else {
                        store.deny(&id, &approver(who), Some("no"), at(1), &mut rec).is_ok()
                    }
                })
            })
            .collect();
        let wins = handles.into_iter().map(|h| h.join().unwrap()).filter(|w| *w).count();
        assert_eq!(wins, 1, "round {round}");
        let mine = recorded.lock().unwrap().iter().filter(|s| s.starts_with(&r.id)).count();
        assert_eq!(mine, 1, "round {round}: only the winning change is recorded");
    }
}

/// A requester may have at most `max_pending` requests pending; joining one already pending is
/// always allowed, and the refusal says when the oldest frees a slot.
#[test]
fn pending_requests_per_requester_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = ApprovalStore::open(dir.path()).unwrap();
    for (i, t) in ["t1", "t2"].into_iter().enumerate() {
        store.open_request(shape(t), terms(1, false), at(i as u64 * 10), 2, &mut ok).unwrap();
    }
    assert!(matches!(store.open_request(shape("t1"), terms(1, false), at(30), 2, &mut ok), Ok(Opened::Pending(_))));
    match store.open_request(shape("t3"), terms(1, false), at(30), 2, &mut ok) {
        Err(StoreError::TooManyPending { limit: 2, retry_after, .. }) => assert_eq!(retry_after, Duration::from_secs(3600 - 30)),
        other => panic!("expected the cap, got {other:?}"),
    }
    // Another requester is not affected.
    let mut other = shape("t3");
    other.requester.subject = "sue".into();
    let other = RequestShape::new(other.requester, Action::Read, "sre", PolicyVersion("sha256:p".into()), [TraceId::parse("t3").unwrap()], None::<Vec<String>>, None);
    assert!(matches!(store.open_request(other, terms(1, false), at(30), 2, &mut ok), Ok(Opened::Created(_))));
    // Once one is decided, a slot is free.
    let first = store.list(at(31)).into_iter().find(|r| r.shape.requester.subject == "sid").unwrap();
    store.deny(&first.id, &approver("sam"), Some("no"), at(31), &mut ok).unwrap();
    assert!(matches!(store.open_request(shape("t3"), terms(1, false), at(32), 2, &mut ok), Ok(Opened::Created(_))));
}
