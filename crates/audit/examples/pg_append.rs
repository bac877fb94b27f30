//! Audit records/s on PostgreSQL: two `PgAuditLog` handles on two pools (two replicas), each
//! with `clients` concurrent appenders, on a fresh database of the local server; then verifies
//! the chain. `cargo run --release -p tracegate-audit --example pg_append -- [clients] [per_client]`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracegate_audit::{AuditSource, Entry, PgAuditLog, PgOptions, PublicKey, RequestRecord, SigningKey, Timestamp};
use tracegate_state::testing::TestDb;

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let clients = args.first().copied().unwrap_or(64);
    let per_client = args.get(1).copied().unwrap_or(200);
    let db = TestDb::create().await.expect("postgresql at 127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k.key");
    SigningKey::generate(&key_path).unwrap();
    let opts = PgOptions { checkpoint_every_records: 1000, checkpoint_interval: Duration::from_secs(60), max_batch: 4096 };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(Arc::new(PgAuditLog::open(db.pool().await, opts.clone(), SigningKey::load(&key_path).unwrap()).await.unwrap()));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut latencies = Vec::new();
    for r in &replicas {
        for c in 0..clients {
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client as usize);
                for i in 0..per_client {
                    let mut e = Entry::request(format!("req-{c}-{i}"), Timestamp::now());
                    e.request = Some(RequestRecord { method: "GET".into(), route: "/v1/traces/{id}".into(), trace_ids: vec![format!("t{i}")], ..RequestRecord::default() });
                    let t = Instant::now();
                    r.append(&e).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
    }
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let n = latencies.len();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)];
    for r in &replicas {
        r.shutdown().await.unwrap();
    }
    let report = AuditSource::Postgres(db.pool().await)
        .verify(&[PublicKey::load(&tracegate_audit::public_key_path(&key_path)).unwrap()])
        .await
        .unwrap();
    println!(
        "2 replicas x {clients} clients: {n} records in {:.2}s = {:.0} records/s; append p50 {:.1} ms, p99 {:.1} ms; verify ok={} records={}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        report.ok(),
        report.records
    );
}
