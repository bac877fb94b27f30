//! Throughput and latency of the embedded audit log with `fdatasync` on every batch.
//!
//! For 1, 8 and 64 concurrent appenders, with 1 (classic group commit) or 4 overlapping flushes,
//! each appending realistic request records back to back for `AUDIT_BENCH_SECS` seconds
//! (default 3) — and once with 2 ms of other work before each append, as a request would have —
//! prints records/s and the append latency p50/p99/max: the time `append` adds to a request.
//! Each row runs with the flush journal (the default) and with the log flushed itself.
//! The first row is the device's floor, one write + `fdatasync` at a time. Runs on the disk of
//! the target directory (not /tmp, which may be tmpfs where fsync is free); set
//! `AUDIT_BENCH_DIR` to measure another disk.
//!
//! `cargo bench -p tracegate-audit --bench append`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracegate_audit::{
    AuditLog, BodyDigest, Decision, Entry, LogOptions, MaskApplied, PrincipalRecord, RequestRecord, SigningKey, Slice,
    Timestamp,
};

fn entry(i: u64) -> Entry {
    let mut e = Entry::request(format!("01J9Z{i:021}"), Timestamp::now());
    e.principal = Some(PrincipalRecord {
        subject: "alice@example.com".into(),
        issuer: "https://login.example.com/".into(),
        groups: vec!["support".into(), "eng".into()],
        roles: vec!["support".into()],
        auth_method: "oidc".into(),
        credential: None,
        claims: [("tenant".to_owned(), "acme".to_owned())].into(),
    });
    e.client_addr = Some("10.1.2.3:51234".into());
    e.request = Some(RequestRecord {
        method: "GET".into(),
        route: "/v1/traces/{id}".into(),
        action: Some("read".into()),
        trace_ids: vec![format!("4bf92f3577b34da6a3ce929d0e0e{:04}", i % 10_000)],
        fields: vec!["$.steps[*].output".into()],
        purpose: Some("ticket 4711".into()),
    });
    e.policy_version = Some("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into());
    e.decision = Some(Decision::Allow);
    e.rules = vec!["roles.support.actions".into(), "roles.support.rows.match.tenant".into(), "roles.support.fields".into()];
    e.role = Some("support".into());
    e.slice = Some(Slice { allow: vec!["$.steps[*].output".into(), "$.metadata".into()], deny: vec!["$..reasoning".into()] });
    e.masks = vec![MaskApplied { detector: "email".into(), operator: "hash".into(), count: 2, paths: vec!["$.steps[0].output".into()] }];
    e.object_version = Some("\"d41d8cd98f00b204e9800998ecf8427e\"".into());
    e.status = Some(200);
    e.body(BodyDigest::new());
    e.latency_us = Some(850);
    e
}

struct Run {
    appenders: usize,
    work: Duration,
    sync_threads: usize,
    journal: bool,
    records: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn run(dir: PathBuf, key: PathBuf, appenders: usize, sync_threads: usize, journal: bool, work: Duration, secs: u64) -> Run {
    let _ = std::fs::remove_dir_all(&dir);
    let opts = LogOptions { dir, checkpoint_every_records: 1000, checkpoint_interval: Duration::from_secs(60), max_batch: 4096, sync_threads, flush_delay: Duration::ZERO, journal };
    let log = Arc::new(AuditLog::open(opts, SigningKey::load_or_generate(&key).expect("key")).expect("open"));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..appenders {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut i = a as u64 * 10_000_000;
            while Instant::now() < deadline {
                if !work.is_zero() {
                    tokio::time::sleep(work).await;
                }
                let e = entry(i);
                let t = Instant::now();
                log.append(&e).await.expect("append");
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    log.shutdown().await.expect("shutdown");
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Run { appenders, work, sync_threads, journal, records: lat.len() as u64, secs, p50: pct(0.50), p99: pct(0.99), max: *lat.last().expect("records") }
}

/// The floor: one 700-byte append plus `fdatasync`, sequentially, on the same disk. No audit
/// append can be faster than the device's flush.
fn raw_fdatasync(dir: &std::path::Path) -> (Duration, Duration) {
    use std::io::Write;
    std::fs::create_dir_all(dir).expect("bench dir");
    let path = dir.join("fdatasync-probe");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("probe file");
    let line = [b'x'; 700];
    let mut lat: Vec<Duration> = (0..300)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&line).and_then(|()| f.sync_data()).expect("probe write");
            t.elapsed()
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    lat.sort_unstable();
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

fn main() {
    let secs = std::env::var("AUDIT_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let base = std::env::var_os("AUDIT_BENCH_DIR").map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("audit-bench"), PathBuf::from);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!("audit log append, fdatasync per batch, {secs} s per row, dir {}", base.display());
    println!("| appenders | other work per request | sync_threads | flushes | records/s | p50 µs | p99 µs | max µs |");
    println!("|---:|---:|---:|---|---:|---:|---:|---:|");
    let (f50, f99) = raw_fdatasync(&base);
    println!("| floor: 1 write + fdatasync | – | – | – | {:.0} | {} | {} | |", 1.0 / f50.as_secs_f64(), f50.as_micros(), f99.as_micros());
    let none = Duration::ZERO;
    let two_ms = Duration::from_millis(2);
    // Each configuration with the flush journal (the default) and with the log flushed itself,
    // back to back, so the two are compared on the same minute of the same disk.
    let rows = [(1, none, 1), (1, none, 4), (8, none, 1), (8, none, 4), (64, none, 1), (64, none, 4), (64, two_ms, 4)];
    for (appenders, work, sync_threads) in rows {
        for journal in [true, false] {
            let r = rt.block_on(run(base.join(format!("c{appenders}")), base.join("bench.key"), appenders, sync_threads, journal, work, secs));
            println!(
                "| {} | {} | {} | {} | {:.0} | {} | {} | {} |",
                r.appenders,
                if r.work.is_zero() { "none (closed loop)".to_owned() } else { format!("{} ms", r.work.as_millis()) },
                r.sync_threads,
                if r.journal { "journal" } else { "log" },
                r.records as f64 / r.secs,
                r.p50.as_micros(),
                r.p99.as_micros(),
                r.max.as_micros()
            );
        }
    }
}
