//! The one storage test suite for access requests: every [`Backend`](crate::Backend) runs
//! exactly these assertions (the file log in this crate's tests, PostgreSQL in
//! `tracegate-state`'s). Each check takes two handles on the same state — two replicas when the
//! backend is shared (two connection pools), the same handle twice for the one-process file
//! log — and drives them concurrently from real tasks on a multi-threaded runtime.
//!
//! Backend-specific properties (torn tails of the file log, migrations of the database) stay
//! with the backend's own tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Barrier;
use tracegate_core::approval::{Actor, ApprovalError, Party, RequestShape, Status, Terms};
use tracegate_core::{Action, PolicyVersion, TraceId};

use crate::{ApprovalStore, Committed, Opened, StoreError};

/// Two handles on one state: `a` and `b` may be the same handle.
#[derive(Clone)]
pub struct Pair {
    pub a: Arc<ApprovalStore>,
    pub b: Arc<ApprovalStore>,
}

impl Pair {
    fn pick(&self, i: usize) -> Arc<ApprovalStore> {
        if i.is_multiple_of(2) { self.a.clone() } else { self.b.clone() }
    }
}

/// A record hook that always succeeds (the gateway writes the audit record here).
pub fn ok(_: &Committed) -> Result<(), String> {
    Ok(())
}

/// A fixed instant plus `secs`, so tests never read the clock.
pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// A read of `trace` by `sid`, for the `sre` role.
pub fn shape(trace: &str) -> RequestShape {
    shape_of("sid", trace)
}

pub fn shape_of(requester: &str, trace: &str) -> RequestShape {
    RequestShape::new(
        Party { subject: requester.into(), issuer: "iss".into(), person: None },
        Action::Read,
        "sre",
        PolicyVersion("sha256:p".into()),
        [TraceId::parse(trace).unwrap()],
        None::<Vec<String>>,
        Some("INC-1"),
    )
}

pub fn terms(approvals: u32, one_time: bool) -> Terms {
    Terms {
        rule: "roles.sre.approval".into(),
        approvers: vec!["security".into()],
        approvals,
        pending_ttl: Duration::from_secs(3600),
        grant_ttl: Duration::from_secs(3600),
        one_time,
    }
}

pub fn approver(sub: &str) -> Actor {
    Actor { party: Party { subject: sub.into(), issuer: "iss".into(), person: None }, groups: vec!["security".into()] }
}

async fn open(s: &ApprovalStore, trace: &str, t: Terms) -> tracegate_core::approval::AccessRequest {
    s.open_request(shape(trace), t, at(0), 100, &mut ok).await.unwrap().request().clone()
}

/// Runs every check against `pair`. `prefix` keeps the traces of one run apart from another's
/// on a state that outlives it.
pub async fn run_all(pair: &Pair, prefix: &str) {
    approved_through_one_is_granted_through_the_other(pair, &format!("{prefix}x")).await;
    two_approvers_at_once_both_count_exactly_once(pair, &format!("{prefix}a")).await;
    approval_racing_expiry_has_one_consistent_outcome(pair, &format!("{prefix}e")).await;
    a_one_time_grant_used_by_many_at_once_serves_exactly_one(pair, &format!("{prefix}o")).await;
    refusals_change_nothing(pair, &format!("{prefix}r")).await;
    a_change_that_cannot_be_recorded_does_not_happen(pair, &format!("{prefix}u")).await;
    concurrent_decisions_are_recorded_exactly_once(pair, &format!("{prefix}d")).await;
    pending_requests_per_requester_are_capped(pair, &format!("{prefix}c")).await;
    concurrent_sweeps_record_each_expiry_once(pair, &format!("{prefix}s")).await;
}

/// Opened and approved through `a`: `b` finds the grant, uses it, and `a` sees the use.
pub async fn approved_through_one_is_granted_through_the_other(p: &Pair, t: &str) {
    let r = open(&p.a, t, terms(1, false)).await;
    assert_eq!(p.b.pending_for(&r.fingerprint, at(1)).await.unwrap().map(|x| x.id), Some(r.id.clone()));
    // Asking again through the other handle joins the same request.
    let again = p.b.open_request(shape(t), terms(1, false), at(1), 100, &mut ok).await.unwrap();
    assert!(matches!(&again, Opened::Pending(x) if x.id == r.id), "{again:?}");
    assert!(p.b.find_grant(&r.fingerprint, at(1)).await.unwrap().is_none());
    p.a.approve(&r.id, &approver("sam"), Some("ok"), at(2), &mut ok).await.unwrap();
    let g = p.b.find_grant(&r.fingerprint, at(3)).await.unwrap().expect("the grant approved through a");
    assert_eq!(g.id, r.id);
    p.b.use_grant(&g.id, &g.fingerprint, at(3), &mut ok).await.unwrap();
    let seen = p.a.get(&r.id, at(4)).await.unwrap().unwrap();
    assert_eq!((seen.status, seen.uses, seen.decisions[0].comment.as_deref()), (Status::Approved, 1, Some("ok")));
    assert!(p.a.list(at(4)).await.unwrap().iter().any(|x| x.id == r.id));
    p.b.revoke(&r.id, &approver("sam"), Some("done"), at(5), &mut ok).await.unwrap();
    assert!(p.a.find_grant(&r.fingerprint, at(6)).await.unwrap().is_none());
}

pub async fn two_approvers_at_once_both_count_exactly_once(p: &Pair, prefix: &str) {
    for round in 0..10 {
        let r = open(&p.a, &format!("{prefix}{round}"), terms(2, false)).await;
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["sam", "olga"]
            .into_iter()
            .enumerate()
            .map(|(i, who)| {
                let (store, barrier, id) = (p.pick(i), barrier.clone(), r.id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.approve(&id, &approver(who), None, at(1), &mut ok).await.map(|c| c.request.status)
                })
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap().unwrap());
        }
        // One saw the first approval (still pending), the other completed it.
        results.sort_by_key(|s| s.as_str());
        assert_eq!(results, [Status::Approved, Status::Pending], "round {round}");
        let r = p.b.get(&r.id, at(2)).await.unwrap().unwrap();
        assert_eq!((r.status, r.approvers().len()), (Status::Approved, 2));
    }
    // The same person racing themself is counted once.
    let r = open(&p.a, &format!("{prefix}same"), terms(2, false)).await;
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (store, barrier, id) = (p.pick(i), barrier.clone(), r.id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.approve(&id, &approver("sam"), None, at(1), &mut ok).await.is_ok()
            })
        })
        .collect();
    let mut oks = 0;
    for h in handles {
        oks += usize::from(h.await.unwrap());
    }
    assert_eq!(oks, 1);
    assert_eq!(p.a.get(&r.id, at(2)).await.unwrap().unwrap().status, Status::Pending);
}

pub async fn approval_racing_expiry_has_one_consistent_outcome(p: &Pair, prefix: &str) {
    let deadline = 3600;
    for round in 0..10u64 {
        let r = open(&p.a, &format!("{prefix}{round}"), terms(1, false)).await;
        let barrier = Arc::new(Barrier::new(2));
        let expiries = Arc::new(AtomicUsize::new(0));
        // The approver's clock reads one side of the deadline or the other; the sweeper (on the
        // other handle) runs at it. A grant after a recorded expiry, or an approval at the
        // deadline, is wrong.
        let approve_at = if round % 2 == 0 { deadline - 1 } else { deadline };
        let a = {
            let (store, barrier, id) = (p.a.clone(), barrier.clone(), r.id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.approve(&id, &approver("sam"), None, at(approve_at), &mut ok).await
            })
        };
        let s = {
            let (store, barrier, id, expiries) = (p.b.clone(), barrier.clone(), r.id.clone(), expiries.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut count = |c: &Committed| {
                    if c.request.id == id {
                        expiries.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(())
                };
                store.sweep(at(deadline), &mut count).await.unwrap().len()
            })
        };
        let approved = a.await.unwrap();
        s.await.unwrap();
        let after = p.a.get(&r.id, at(deadline)).await.unwrap().unwrap();
        match approved {
            Ok(_) => {
                assert_eq!(approve_at, deadline - 1);
                assert_eq!(after.status, Status::Approved, "round {round}");
                assert_eq!(expiries.load(Ordering::SeqCst), 0);
            }
            Err(StoreError::Refused(ApprovalError::NotPending { status: Status::Expired, .. })) => {
                assert_eq!(after.status, Status::Expired, "round {round}");
                assert!(after.decisions.is_empty());
            }
            Err(e) => panic!("round {round}: {e}"),
        }
        assert!(expiries.load(Ordering::SeqCst) <= 1, "round {round}: an expiry recorded twice");
    }
}

pub async fn a_one_time_grant_used_by_many_at_once_serves_exactly_one(p: &Pair, prefix: &str) {
    let recorded = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    for round in 0..10 {
        let r = open(&p.a, &format!("{prefix}{round}"), terms(1, true)).await;
        p.b.approve(&r.id, &approver("sam"), None, at(1), &mut ok).await.unwrap();
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let wins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (store, barrier, wins, r, recorded) = (p.pick(i), barrier.clone(), wins.clone(), r.clone(), recorded.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut rec = |c: &Committed| {
                        recorded.lock().unwrap().push(c.event.change.name());
                        Ok(())
                    };
                    match store.use_grant(&r.id, &r.fingerprint, at(2), &mut rec).await {
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
            h.await.unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
        assert_eq!(p.a.get(&r.id, at(3)).await.unwrap().unwrap().status, Status::Used);
        assert_eq!(p.b.get(&r.id, at(3)).await.unwrap().unwrap().uses, 1);
    }
    assert_eq!(*recorded.lock().unwrap(), ["used"; 10], "only the winners' uses are recorded");
}

pub async fn refusals_change_nothing(p: &Pair, t: &str) {
    let r = open(&p.a, t, terms(1, false)).await;
    let me = Actor { party: Party { subject: "sid".into(), issuer: "iss".into(), person: None }, groups: vec!["security".into()] };
    let mut never = |c: &Committed| -> Result<(), String> { panic!("a refused change reached the recorder: {c:?}") };
    assert!(matches!(p.b.approve(&r.id, &me, None, at(1), &mut never).await, Err(StoreError::Refused(ApprovalError::OwnRequest))));
    assert!(matches!(p.b.approve("ar_nope", &approver("sam"), None, at(1), &mut never).await, Err(StoreError::NotFound(_))));
    assert!(matches!(p.b.deny(&r.id, &approver("sam"), None, at(1), &mut never).await, Err(StoreError::Refused(ApprovalError::CommentRequired(_)))));
    assert!(matches!(
        p.b.use_grant(&r.id, &r.fingerprint, at(1), &mut never).await,
        Err(StoreError::Refused(ApprovalError::NotActive { status: Status::Pending, .. }))
    ));
    let other = shape(&format!("{t}other")).fingerprint();
    assert!(p.a.find_grant(&other, at(1)).await.unwrap().is_none());
    let now = p.a.get(&r.id, at(1)).await.unwrap().unwrap();
    assert_eq!((now.status, now.decisions.len()), (Status::Pending, 0));
}

/// Audit first: a change whose record cannot be written does not happen, through either
/// handle, and the same change succeeds once recording works again.
pub async fn a_change_that_cannot_be_recorded_does_not_happen(p: &Pair, t: &str) {
    let mut fail = |_: &Committed| Err::<(), String>("audit trail unwritable".into());
    // Opening is a change too: refused, no request exists.
    assert!(matches!(p.a.open_request(shape(t), terms(1, true), at(0), 100, &mut fail).await, Err(StoreError::Unrecorded(m)) if m.contains("unwritable")));
    assert!(p.b.pending_for(&shape(t).fingerprint(), at(0)).await.unwrap().is_none());
    let r = open(&p.a, t, terms(1, true)).await;
    assert!(matches!(p.b.approve(&r.id, &approver("sam"), Some("go"), at(1), &mut fail).await, Err(StoreError::Unrecorded(_))));
    assert!(matches!(p.a.deny(&r.id, &approver("sam"), Some("no"), at(1), &mut fail).await, Err(StoreError::Unrecorded(_))));
    let now = p.a.get(&r.id, at(1)).await.unwrap().unwrap();
    assert_eq!((now.status, now.decisions.len()), (Status::Pending, 0));
    // The hook sees exactly the change that is about to be made.
    let mut seen = Vec::new();
    p.b.approve(&r.id, &approver("sam"), Some("go"), at(1), &mut |c: &Committed| {
        seen.push((c.event.change.name(), c.request.status, c.request.decisions.len()));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(seen, [("approved", Status::Approved, 1)]);
    // One-time use and revocation: refused when unrecorded; the grant stays usable.
    assert!(matches!(p.a.use_grant(&r.id, &r.fingerprint, at(2), &mut fail).await, Err(StoreError::Unrecorded(_))));
    assert!(matches!(p.b.revoke(&r.id, &approver("sam"), Some("stop"), at(2), &mut fail).await, Err(StoreError::Unrecorded(_))));
    let g = p.b.get(&r.id, at(2)).await.unwrap().unwrap();
    assert_eq!((g.status, g.uses), (Status::Approved, 0));
    // Expiry: the sweeper's record fails, so nothing is recorded; time alone still closes it.
    let late = at(2 + 3600 + 1);
    assert!(matches!(p.a.sweep(late, &mut fail).await, Err(StoreError::Unrecorded(_))));
    assert_eq!(p.a.get(&r.id, late).await.unwrap().unwrap().status, Status::Expired, "judged at the time of use");
    let stored = p.b.list(at(2)).await.unwrap().into_iter().find(|x| x.id == r.id).unwrap();
    assert_eq!((stored.status, stored.uses, stored.decisions.len()), (Status::Approved, 0, 1));
    // The sweep that can record it does, once.
    let swept = p.b.sweep(late, &mut ok).await.unwrap();
    assert_eq!(swept.iter().filter(|c| c.request.id == r.id).count(), 1);
    assert!(p.a.sweep(late, &mut ok).await.unwrap().iter().all(|c| c.request.id != r.id));
}

/// Of concurrent approvers and deniers on both handles, exactly one change is recorded and made.
pub async fn concurrent_decisions_are_recorded_exactly_once(p: &Pair, prefix: &str) {
    let recorded = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..10 {
        let r = open(&p.a, &format!("{prefix}{round}"), terms(1, false)).await;
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = ["sam", "sue", "sol", "sia"]
            .into_iter()
            .enumerate()
            .map(|(i, who)| {
                let (store, barrier, recorded, id) = (p.pick(i / 2), barrier.clone(), recorded.clone(), r.id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut rec = |c: &Committed| {
                        recorded.lock().unwrap().push(format!("{}:{}", c.request.id, c.event.change.name()));
                        Ok(())
                    };
                    if i % 2 == 0 {
                        store.approve(&id, &approver(who), None, at(1), &mut rec).await.is_ok()
                    } else {
                        store.deny(&id, &approver(who), Some("no"), at(1), &mut rec).await.is_ok()
                    }
                })
            })
            .collect();
        let mut wins = 0;
        for h in handles {
            wins += usize::from(h.await.unwrap());
        }
        assert_eq!(wins, 1, "round {round}");
        let mine = recorded.lock().unwrap().iter().filter(|s| s.starts_with(&r.id)).count();
        assert_eq!(mine, 1, "round {round}: only the winning change is recorded");
    }
}

/// A requester may have at most `max_pending` requests pending, however many ask at once
/// through however many handles; joining one already pending is always allowed, and the
/// refusal says when the oldest frees a slot.
pub async fn pending_requests_per_requester_are_capped(p: &Pair, prefix: &str) {
    let who = format!("{prefix}-sid");
    let sh = |t: &str| shape_of(&who, &format!("{prefix}{t}"));
    for (i, t) in ["1", "2"].into_iter().enumerate() {
        p.pick(i).open_request(sh(t), terms(1, false), at(i as u64 * 10), 2, &mut ok).await.unwrap();
    }
    assert!(matches!(p.b.open_request(sh("1"), terms(1, false), at(30), 2, &mut ok).await, Ok(Opened::Pending(_))));
    match p.a.open_request(sh("3"), terms(1, false), at(30), 2, &mut ok).await {
        Err(StoreError::TooManyPending { limit: 2, retry_after, .. }) => assert_eq!(retry_after, Duration::from_secs(3600 - 30)),
        other => panic!("expected the cap, got {other:?}"),
    }
    // Another requester is not affected.
    let other = shape_of(&format!("{prefix}-sue"), &format!("{prefix}3"));
    assert!(matches!(p.b.open_request(other, terms(1, false), at(30), 2, &mut ok).await, Ok(Opened::Created(_))));
    // Once one is decided, a slot is free.
    let first = p.a.list(at(31)).await.unwrap().into_iter().find(|r| r.shape.requester.subject == who).unwrap();
    p.b.deny(&first.id, &approver("sam"), Some("no"), at(31), &mut ok).await.unwrap();
    assert!(matches!(p.a.open_request(sh("3"), terms(1, false), at(32), 2, &mut ok).await, Ok(Opened::Created(_))));
    // Eight distinct asks at once by a fresh requester with a cap of 3: exactly 3 open.
    let racer = format!("{prefix}-race");
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (store, barrier, s) = (p.pick(i), barrier.clone(), shape_of(&racer, &format!("{prefix}r{i}")));
            tokio::spawn(async move {
                barrier.wait().await;
                match store.open_request(s, terms(1, false), at(40), 3, &mut ok).await {
                    Ok(Opened::Created(_)) => true,
                    Err(StoreError::TooManyPending { .. }) => false,
                    other => panic!("{other:?}"),
                }
            })
        })
        .collect();
    let mut created = 0;
    for h in handles {
        created += usize::from(h.await.unwrap());
    }
    assert_eq!(created, 3);
}

/// Both handles sweep at once: every due expiry is recorded exactly once in all.
pub async fn concurrent_sweeps_record_each_expiry_once(p: &Pair, prefix: &str) {
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(open(&p.a, &format!("{prefix}{i}"), terms(1, false)).await.id);
    }
    let late = at(3600 + 5);
    let recorded = Arc::new(Mutex::new(Vec::<String>::new()));
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (store, barrier, recorded) = (p.pick(i), barrier.clone(), recorded.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut rec = |c: &Committed| {
                    recorded.lock().unwrap().push(c.request.id.clone());
                    Ok(())
                };
                store.sweep(late, &mut rec).await.unwrap();
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    // A sweep that found the lock taken did nothing; a later one finishes whatever is left.
    p.b.sweep(late, &mut |c: &Committed| {
        recorded.lock().unwrap().push(c.request.id.clone());
        Ok(())
    })
    .await
    .unwrap();
    let recorded = recorded.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(recorded.iter().filter(|r| *r == id).count(), 1, "{id} expired {recorded:?}");
        assert_eq!(p.a.get(id, late).await.unwrap().unwrap().status, Status::Expired);
    }
}
