//! Identity state on PostgreSQL through two pools (two replicas): SAML assertion ids redeemed
//! once across both (also when raced), AuthnRequests taken once by whichever replica gets the
//! response, OIDC pending sign-ins likewise, browser sessions that start on one replica,
//! authenticate on the other and end everywhere at logout, with lifetime and idle timeout kept
//! and only the hash of a session id stored; expired rows are swept; and an unreachable database
//! refuses every step (fail closed), then recovers without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracegate_core::{AuthMethod, Principal};
use tracegate_identity::browser::{PendingSignIn, SignInError, SignInStore};
use tracegate_identity::saml::{PendingRequest, ReplayCache, ReplayCacheError, RequestStore};
use tracegate_identity::sessions::{SessionError, Sessions};
use tracegate_state::saml::{PgReplayCache, PgRequests};
use tracegate_state::sessions::{PgSessions, PgSignIns};
use tracegate_state::testing::TestDb;

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(300)
}

fn who() -> Principal {
    Principal {
        subject: "erin@example.com".into(),
        issuer: "https://idp.test/saml".into(),
        groups: vec!["eng".into()],
        claims: Default::default(),
        auth_method: AuthMethod::Saml,
        person: None,
        credential: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_assertion_id_is_redeemed_once_across_replicas_even_when_raced() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let a = PgReplayCache::new(db.pool().await);
    let b = PgReplayCache::new(db.pool().await);
    assert!(a
        .check_and_remember("idp\u{0}assertion-1", later())
        .await
        .unwrap());
    assert!(
        !b.check_and_remember("idp\u{0}assertion-1", later())
            .await
            .unwrap(),
        "B must see A's redemption"
    );
    assert!(!a
        .check_and_remember("idp\u{0}assertion-1", later())
        .await
        .unwrap());
    assert!(b
        .check_and_remember("idp\u{0}assertion-2", later())
        .await
        .unwrap());

    // 16 tasks over both replicas, one id per round: exactly one wins each round.
    let (a, b) = (Arc::new(a), Arc::new(b));
    for round in 0..8 {
        let id = format!("idp\u{0}raced-{round}");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let cache: Arc<PgReplayCache> = if i % 2 == 0 { a.clone() } else { b.clone() };
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                cache.check_and_remember(&id, later()).await.unwrap()
            }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(
            wins, 1,
            "round {round}: {wins} replicas accepted one assertion"
        );
    }

    // An expired use no longer blocks (the assertion itself is expired by then), and the sweep
    // removes it.
    assert!(a
        .check_and_remember("old", SystemTime::now() - Duration::from_secs(1))
        .await
        .unwrap());
    assert!(b.check_and_remember("old", later()).await.unwrap());
    assert!(a
        .check_and_remember("gone", SystemTime::now() - Duration::from_secs(1))
        .await
        .unwrap());
    assert_eq!(a.sweep().await.unwrap(), 1);
    let left: i64 =
        tracegate_state::sqlx::query_scalar("SELECT count(*) FROM saml_used_assertions")
            .fetch_one(&db.pool().await)
            .await
            .unwrap();
    assert_eq!(left, 2 + 8 + 1, "live ids are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_authn_request_issued_by_one_replica_is_taken_once_by_another() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let a = PgRequests::new(db.pool().await);
    let b = Arc::new(PgRequests::new(db.pool().await));
    let pending = PendingRequest {
        until: SystemTime::now() + Duration::from_secs(600),
        binding: Some([9; 32]),
    };
    assert!(a.insert("tg-1", pending.clone()).await.unwrap());
    let taken = b
        .take("tg-1")
        .await
        .unwrap()
        .expect("B redeems A's request");
    assert_eq!(taken.binding, Some([9; 32]));
    assert_eq!(
        a.take("tg-1").await.unwrap(),
        None,
        "a request is redeemed once"
    );

    // Raced by 8 tasks: one gets it.
    assert!(a
        .insert(
            "tg-2",
            PendingRequest {
                binding: None,
                ..pending.clone()
            }
        )
        .await
        .unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.take("tg-2").await.unwrap().is_some() })
        })
        .collect();
    let mut got = 0;
    for t in tasks {
        got += usize::from(t.await.unwrap());
    }
    assert_eq!(got, 1);

    // Expired: not redeemable, and swept.
    let past = PendingRequest {
        until: SystemTime::now() - Duration::from_secs(1),
        binding: None,
    };
    assert!(a.insert("tg-old", past.clone()).await.unwrap());
    assert_eq!(
        b.take("tg-old").await.unwrap(),
        None,
        "an expired request is not redeemable"
    );
    assert!(a.insert("tg-old2", past).await.unwrap());
    assert_eq!(a.sweep().await.unwrap(), 1);

    // The cap: a full table refuses new requests (a flood of logins), expired rows do not count.
    let small = PgRequests::with_capacity(db.pool().await, 2);
    assert!(small.insert("c1", pending.clone()).await.unwrap());
    assert!(small.insert("c2", pending.clone()).await.unwrap());
    assert!(!small.insert("c3", pending).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_sign_in_started_on_one_replica_is_completed_once_on_another() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let a = PgSignIns::new(db.pool().await);
    let b = PgSignIns::new(db.pool().await);
    let p = PendingSignIn {
        nonce: "n".into(),
        verifier: "v".into(),
        binding: [3; 32],
        expires: later(),
    };
    assert!(a.insert([1; 32], p.clone()).await.unwrap());
    assert_eq!(b.take(&[1; 32]).await.unwrap(), Some(p));
    assert_eq!(
        a.take(&[1; 32]).await.unwrap(),
        None,
        "a state is consumed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_shared_ends_everywhere_at_logout_and_keeps_its_timeouts() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let pool = db.pool().await;
    let a = Sessions::new(
        Arc::new(PgSessions::new(db.pool().await)),
        Duration::from_secs(600),
        Duration::from_secs(60),
    );
    let b = Sessions::new(
        Arc::new(PgSessions::new(db.pool().await)),
        Duration::from_secs(600),
        Duration::from_secs(60),
    );
    let started = a.start(who()).await.unwrap();
    let active = b.authenticate(&started.id).await.unwrap();
    assert_eq!(active.principal.subject, "erin@example.com");
    assert_eq!(
        active.principal.credential,
        tracegate_core::Credential::Session
    );
    assert_eq!(active.csrf_token, started.csrf_token);

    // Only the hash of the id is stored: no column of any row holds the id.
    let rows: Vec<String> =
        tracegate_state::sqlx::query_scalar("SELECT s::text FROM browser_sessions s")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        !rows[0].contains(&started.id) && !rows[0].contains(started.id.trim_start_matches("tgs_")),
        "{}",
        rows[0]
    );

    // Logout through B ends it on A at once.
    assert!(b.revoke(&started.id).await.unwrap());
    assert_eq!(
        a.authenticate(&started.id).await.unwrap_err(),
        SessionError::Unknown
    );

    // Idle: last used 61 s ago (per the shared row), whichever replica sees it.
    let idle = a.start(who()).await.unwrap();
    tracegate_state::sqlx::query(
        "UPDATE browser_sessions SET last_seen_ns = last_seen_ns - 61000000000",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        b.authenticate(&idle.id).await.unwrap_err(),
        SessionError::Idle
    );
    assert_eq!(
        a.authenticate(&idle.id).await.unwrap_err(),
        SessionError::Unknown,
        "an idle session is gone everywhere"
    );

    // Lifetime: in use, but past its absolute expiry.
    let old = a.start(who()).await.unwrap();
    tracegate_state::sqlx::query("UPDATE browser_sessions SET expires_at_ns = created_at_ns")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        b.authenticate(&old.id).await.unwrap_err(),
        SessionError::Expired
    );

    // A use through one replica keeps it alive for the other.
    let busy = a.start(who()).await.unwrap();
    tracegate_state::sqlx::query(
        "UPDATE browser_sessions SET last_seen_ns = last_seen_ns - 59000000000",
    )
    .execute(&pool)
    .await
    .unwrap();
    b.authenticate(&busy.id).await.unwrap();
    tracegate_state::sqlx::query(
        "UPDATE browser_sessions SET last_seen_ns = last_seen_ns - 2000000000",
    )
    .execute(&pool)
    .await
    .unwrap();
    a.authenticate(&busy.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_refuses_every_identity_step_then_recovers() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let cfg = tracegate_state::StateConfig {
        acquire_timeout: Some("500ms".into()),
        ..db.config()
    };
    let pool = tracegate_state::open(&cfg).await.unwrap();
    let replay = PgReplayCache::new(pool.clone());
    let requests = PgRequests::new(pool.clone());
    let sign_ins = PgSignIns::new(pool.clone());
    let sessions = Sessions::new(
        Arc::new(PgSessions::new(pool.clone())),
        Duration::from_secs(600),
        Duration::from_secs(60),
    );
    let live = sessions.start(who()).await.unwrap();
    assert!(requests
        .insert(
            "tg-live",
            PendingRequest {
                until: later(),
                binding: None
            }
        )
        .await
        .unwrap());

    db.allow_connections(false).await;
    db.terminate_connections().await;
    assert!(matches!(
        replay.check_and_remember("x", later()).await,
        Err(ReplayCacheError::Unavailable(_))
    ));
    assert!(matches!(
        requests
            .insert(
                "tg-2",
                PendingRequest {
                    until: later(),
                    binding: None
                }
            )
            .await,
        Err(ReplayCacheError::Unavailable(_))
    ));
    assert!(matches!(
        requests.take("tg-live").await,
        Err(ReplayCacheError::Unavailable(_))
    ));
    let p = PendingSignIn {
        nonce: "n".into(),
        verifier: "v".into(),
        binding: [3; 32],
        expires: later(),
    };
    assert_eq!(
        sign_ins.insert([1; 32], p.clone()).await,
        Err(SignInError::StoreUnavailable)
    );
    assert_eq!(
        sign_ins.take(&[1; 32]).await,
        Err(SignInError::StoreUnavailable)
    );
    assert_eq!(
        sessions.authenticate(&live.id).await.unwrap_err(),
        SessionError::Unavailable,
        "a session that cannot be checked is refused"
    );
    assert_eq!(
        sessions.start(who()).await.unwrap_err(),
        SessionError::Unavailable
    );

    db.allow_connections(true).await;
    assert!(replay.check_and_remember("x", later()).await.unwrap());
    assert!(
        requests.take("tg-live").await.unwrap().is_some(),
        "what was stored before the outage is still there"
    );
    assert_eq!(
        sessions
            .authenticate(&live.id)
            .await
            .unwrap()
            .principal
            .subject,
        "erin@example.com"
    );
}
