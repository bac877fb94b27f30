//! What the shared identity state costs per operation on PostgreSQL: two replicas (two pools),
//! `clients` concurrent tasks each, on a fresh database of the local server. Measures the SAML
//! replay check (one `INSERT … ON CONFLICT`), an AuthnRequest insert + take, and a session
//! check (`Sessions::authenticate`: one read and one touch).
//! `cargo run --release -p tracegate-state --example identity_roundtrip -- [clients] [per_client]`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracegate_core::{AuthMethod, Principal};
use tracegate_identity::saml::{PendingRequest, ReplayCache, RequestStore};
use tracegate_identity::sessions::Sessions;
use tracegate_state::saml::{PgReplayCache, PgRequests};
use tracegate_state::sessions::PgSessions;
use tracegate_state::testing::TestDb;

fn report(what: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    let n = lat.len();
    let p = |q: f64| lat[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e3;
    println!(
        "{what:<28} {n:>6} ops  {:>8.0} ops/s  p50 {:.2} ms  p99 {:.2} ms",
        n as f64 / wall.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
}

/// Runs `op(replica, client, i)` on both replicas with `clients` tasks each.
async fn run<T, F, Fut>(
    replicas: &[Arc<T>],
    clients: usize,
    per_client: usize,
    op: F,
) -> (Vec<Duration>, Duration)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, usize, usize) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (ri, r) in replicas.iter().enumerate() {
        for c in 0..clients {
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    op(r.clone(), ri * clients + c, i).await;
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, start.elapsed())
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clients = args.first().copied().unwrap_or(16);
    let per_client = args.get(1).copied().unwrap_or(200);
    let db = TestDb::create()
        .await
        .expect("postgresql at 127.0.0.1:5432");
    let later = || SystemTime::now() + Duration::from_secs(600);

    let caches = [
        Arc::new(PgReplayCache::new(db.pool().await)),
        Arc::new(PgReplayCache::new(db.pool().await)),
    ];
    let (lat, wall) = run(&caches, clients, per_client, move |r, c, i| async move {
        assert!(r
            .check_and_remember(&format!("idp\u{0}{c}-{i}"), later())
            .await
            .unwrap());
    })
    .await;
    report("saml replay check", lat, wall);

    let requests = [
        Arc::new(PgRequests::new(db.pool().await)),
        Arc::new(PgRequests::new(db.pool().await)),
    ];
    let (lat, wall) = run(&requests, clients, per_client, move |r, c, i| async move {
        let id = format!("tg-{c}-{i}");
        assert!(r
            .insert(
                &id,
                PendingRequest {
                    until: later(),
                    binding: None
                }
            )
            .await
            .unwrap());
        assert!(r.take(&id).await.unwrap().is_some());
    })
    .await;
    report("authn request insert+take", lat, wall);

    let who = Principal {
        subject: "erin@example.com".into(),
        issuer: "https://idp.test/saml".into(),
        groups: vec!["eng".into()],
        claims: Default::default(),
        auth_method: AuthMethod::Saml,
        person: None,
        credential: Default::default(),
    };
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(Sessions::new(
            Arc::new(PgSessions::new(db.pool().await)),
            Duration::from_secs(3600),
            Duration::from_secs(600),
        ));
    }
    // One session started through the first replica, checked through both.
    let id = sessions[0].start(who).await.unwrap().id;
    let shared: Vec<Arc<(Sessions, String)>> = sessions
        .into_iter()
        .map(|s| Arc::new((s, id.clone())))
        .collect();
    let (lat, wall) = run(&shared, clients, per_client, |r, _, _| async move {
        r.0.authenticate(&r.1).await.unwrap();
    })
    .await;
    report("session authenticate", lat, wall);
}
