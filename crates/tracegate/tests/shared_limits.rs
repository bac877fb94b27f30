//! Rate limits shared through PostgreSQL (`[limits]` with `[state]`): two gateways on one
//! database spend one budget per principal, so spreading requests over replicas gains nothing;
//! and a limiter that cannot reach the database refuses (fails closed) rather than allows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::Gateway;
use tracegate_core::{AuthMethod, Principal};
use tracegate_server::config::LimitsSection;
use tracegate_server::limits::Limits;
use tracegate_server::{AppState, GatewayConfig};
use tracegate_state::testing::TestDb;

const BURST: usize = 5;

fn who(sub: &str) -> Principal {
    Principal {
        subject: sub.into(),
        issuer: "tracegate-dev".into(),
        groups: Vec::new(),
        claims: Default::default(),
        auth_method: AuthMethod::Dev,
        person: None,
        credential: Default::default(),
    }
}

/// One access request per hour with a burst of `BURST`: nothing refills during the test.
fn hourly() -> LimitsSection {
    LimitsSection {
        access_requests_per_hour: 1,
        access_request_burst: BURST as u32,
        ..LimitsSection::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_over_http_spend_one_budget_per_principal() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let url = db.config().url.unwrap();
    // One request per minute sustained, a burst of five: within the test, five at most.
    let a = Gateway::start_with(|t| format!("{t}\n[state]\nurl = {url:?}\n\n[limits]\nrequests_per_minute = 1\nrequest_burst = {BURST}\n")).await;
    let cfg = GatewayConfig::load(&a.data_dir().join("tracegate.toml")).unwrap();
    let b_state = Arc::new(AppState::from_config(&cfg).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop_b, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tracegate_server::serve(b_state, listener, async {
        let _ = rx.await;
    }));

    // Twelve requests from one principal, six through each replica, all at once.
    let erin = a.token("erin", &["eng"], &[]);
    let mut calls = Vec::new();
    for n in 0..12 {
        let url = if n % 2 == 0 {
            a.url("/v1/whoami")
        } else {
            format!("{b_url}/v1/whoami")
        };
        let (client, token) = (a.client.clone(), erin.clone());
        calls.push(tokio::spawn(async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            )
        }));
    }
    let mut allowed = 0;
    let mut refused = 0;
    for c in calls {
        match c.await.unwrap() {
            (200, _) => allowed += 1,
            (429, retry) => {
                refused += 1;
                let secs: u64 = retry.expect("a 429 says when to retry").parse().unwrap();
                assert!((1..=60).contains(&secs), "Retry-After {secs}");
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // Per-replica buckets would have let ten through (five each).
    assert!(
        allowed <= BURST,
        "{allowed} allowed across both replicas; the shared burst is {BURST}"
    );
    assert!(
        allowed >= 1 && allowed + refused == 12,
        "{allowed} allowed, {refused} refused"
    );
    // Another principal has a budget of its own, on either replica.
    let (s, body) = a.get("/v1/whoami", &a.token("frank", &["eng"], &[])).await;
    assert_eq!(s, 200, "{body}");
    // The refusals are on the one trail, as refusals.
    let pool = db.raw_pool().await;
    let denied: i64 = tracegate_state::sqlx::query_scalar(
        "SELECT count(*) FROM audit_records WHERE subject = 'erin' AND decision = 'deny'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(denied, refused as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_budget_is_exact_across_pools_and_concurrent_checks() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (p1, p2) = (db.pool().await, db.pool().await);
    let one = Arc::new(Limits::new(&hourly()).unwrap().shared(p1));
    let two = Arc::new(Limits::new(&hourly()).unwrap().shared(p2));
    // 40 concurrent checks for one principal over two replicas' pools: exactly the burst passes.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let l = if n % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(
            async move { l.check_open(&who("mallory")).await },
        ));
    }
    let mut allowed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => allowed += 1,
            Err(e) => {
                assert_eq!((e.status.as_u16(), e.code), (429, "rate_limited"));
                // The next token is an hour away (less the time the test took).
                let secs = e.retry_after.unwrap();
                assert!((3000..=3600).contains(&secs), "Retry-After {secs}");
            }
        }
    }
    assert_eq!(allowed, BURST);
    // Same subject at another issuer is another person; the request limit is another budget.
    let mut elsewhere = who("mallory");
    elsewhere.issuer = "https://idp.example".into();
    assert!(one.check_open(&elsewhere).await.is_ok());
    assert!(two.check_request(&who("mallory")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_refuses_rather_than_allows() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut state = db.config();
    state.acquire_timeout = Some("1s".into());
    let limits = Limits::new(&hourly())
        .unwrap()
        .shared(tracegate_state::open(&state).await.unwrap());
    assert!(limits.check_open(&who("eve")).await.is_ok());
    db.allow_connections(false).await;
    db.terminate_connections().await;
    for _ in 0..3 {
        let e = limits
            .check_open(&who("eve"))
            .await
            .expect_err("no database, no allowance");
        assert_eq!((e.status.as_u16(), e.code), (503, "rate_limit_unavailable"));
    }
    db.allow_connections(true).await;
    // Back: the budget is where it was (one spent), with no restart.
    let mut ok = 0;
    for _ in 0..BURST + 2 {
        ok += usize::from(limits.check_open(&who("eve")).await.is_ok());
    }
    assert_eq!(ok, BURST - 1);
    // Idle cells are forgotten only once full again; these are not.
    limits.forget_idle().await;
    assert!(limits.check_open(&who("eve")).await.is_err());
}

/// A busy caller is served from leases of its shared budget: far fewer statements than
/// requests, a single replica still spends exactly its budget, and two replicas racing never
/// allow more than it between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_cut_statements_and_never_overspend_across_replicas() {
    const BIG: usize = 1600; // leases of up to 64; one request a minute refills nothing here
    let Some(db) = TestDb::create().await else {
        return;
    };
    let cfg = LimitsSection {
        requests_per_minute: 1,
        request_burst: BIG as u32,
        ..LimitsSection::default()
    };
    let one = Arc::new(Limits::new(&cfg).unwrap().shared(db.pool().await));
    let two = Arc::new(Limits::new(&cfg).unwrap().shared(db.pool().await));

    // One replica, one request after another: exactly the burst, then refusals.
    let mut allowed = 0;
    for _ in 0..BIG + 50 {
        match one.check_request(&who("alice")).await {
            Ok(()) => allowed += 1,
            Err(e) => assert_eq!((e.status.as_u16(), e.code), (429, "rate_limited")),
        }
    }
    assert_eq!(allowed, BIG, "leases spend the budget exactly");
    let steps = one.shared_steps();
    // ~7 growing leases, ~25 of 64, a few near the end, one per refusal.
    assert!(steps < 150, "{steps} statements for {} checks", BIG + 50);

    // Two replicas at once for another principal: never more than the budget.
    let before = one.shared_steps() + two.shared_steps();
    let unspent_before = [one.leased_unspent(), two.leased_unspent()].iter().map(|(d, h)| d + h).sum::<u64>();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let l = if n % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..125 {
                ok += usize::from(l.check_request(&who("bob")).await.is_ok());
            }
            ok
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.unwrap();
    }
    assert!(allowed <= BIG, "{allowed} allowed across two replicas; the budget is {BIG}");
    // 2,000 checks against 1,600: refusals came, so the cell was drained, and every request
    // taken from it was either allowed or leased and not spent — dropped when its lease
    // expired (a slow machine can leave a lease idle past its 250 ms) or still held. Nothing
    // else goes missing.
    assert!(allowed < 2000);
    let (unspent_one, unspent_two) = (one.leased_unspent(), two.leased_unspent());
    let unspent = unspent_one.0 + unspent_one.1 + unspent_two.0 + unspent_two.1 - unspent_before;
    assert_eq!(allowed as u64 + unspent, BIG as u64, "{allowed} allowed, {unspent} leased unspent ({unspent_one:?}, {unspent_two:?})");
    let steps = one.shared_steps() + two.shared_steps() - before;
    assert!(steps < 1000, "{steps} statements for 2000 checks");
    // Another principal is another budget.
    assert!(two.check_request(&who("carol")).await.is_ok());
}
