//! Masking throughput, end to end (bytes in, masked bytes out), on ~2 KB, ~100 KB and ~10 MB
//! traces of three kinds: `realistic` (the labeled corpus generator's traces: a sensitive value
//! every few hundred bytes, JSON in strings, doubly encoded tool arguments, Go-HTML escapes),
//! `sparse` (one planted value per ~2 KB of prose) and `clean` (nothing to mask). Each row runs
//! the tree walk (`walk`: parse, project, `Masker::apply`, serialise) and the byte engine
//! (`bytes`: `Masker::apply_json`), beside a `serde_json` and a `sonic-rs` parse + serialise
//! floor of the same bytes.
//!
//! Run: `cargo bench -p tracegate-core --bench mask` (criterion), or `MASK_RATIO=1 cargo bench
//! -p tracegate-core --bench mask` for the fastest-of-N table in docs/benchmarks.md. Peak memory
//! for the 10 MB trace: see `rss_only` and docs/benchmarks.md.

#[path = "../tests/corpus/mod.rs"]
#[allow(clippy::all, unused)]
mod corpus;

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use tracegate_core::mask::MaskKey;
use tracegate_core::policy::Policy;
use tracegate_core::project::project;

const WORDS: &[&str] = &[
    "the", "agent", "calls", "tool", "with", "arguments", "and", "returns", "result", "user", "asked", "about",
    "deployment", "failed", "because", "timeout", "retry", "config", "database", "query", "returned", "rows",
    "reasoning", "step", "plan", "check", "logs", "error", "version", "build", "latency", "ms", "request",
    "customer", "order", "invoice", "cluster", "node", "pod", "restart", "memory", "limit", "exceeded",
];

/// Prose of about `n` bytes with ordinary numbers, dates, ids and versions, and now and then
/// (3 tokens in 1000, about one per 2 KB) a planted secret or PII value.
fn prose_with(r: &mut corpus::Rng, n: usize, plant: bool) -> String {
    let planted = [
        "alice.smith@example.com", "+1 415 555 2671", "4111 1111 1111 1111", "123-45-6789",
        "DE89 3704 0044 0532 0130 00", "10.1.2.3", "AKIAIOSFODNN7EXAMPLE", "password=hunter2",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "postgres://app:s3cr3t@db:5432/x",
    ];
    let noise = ["2026-11-25T12:00:00Z", "v1.2.3", "550e8400-e29b-41d4-a716-446655440000", "42", "3.14", "200 OK", "key: value"];
    let mut s = String::with_capacity(n + 64);
    while s.len() < n {
        let roll = r.next() % 1000;
        if roll < 3 && plant {
            s.push_str(r.pick::<&str>(&planted));
        } else if roll < 60 {
            s.push_str(r.pick::<&str>(&noise));
        } else {
            s.push_str(r.pick::<&str>(WORDS));
        }
        s.push(if matches!(r.next() % 12, 0) { '.' } else { ' ' });
    }
    s
}

/// The realistic kind: corpus traces (OTLP GenAI spans and agent step logs, alternating) in
/// one `{"traces": [...]}` document of about `target` bytes.
fn realistic(target: usize) -> Vec<u8> {
    realistic_from(target, 0x7261_6365)
}

/// [`realistic`] from another seed: documents of the same kinds with other texts.
fn realistic_from(target: usize, first_seed: u64) -> Vec<u8> {
    let mut traces = Vec::new();
    let mut size = 0;
    let mut seed = first_seed;
    let per = if target < 10_000 { 3 } else { 40 };
    while size < target {
        let c = corpus::generate(seed, 1, per);
        for t in c.traces {
            size += t.to_string().len();
            traces.push(t);
        }
        seed += 1;
    }
    serde_json::to_vec(&json!({ "traces": traces })).unwrap_or_default()
}

/// An OpenTelemetry-style trace of about `target` bytes: spans whose GenAI attributes carry
/// message arrays as JSON-encoded strings, plus an agent step list with plain prose.
fn trace_with(target: usize, plant: bool) -> Vec<u8> {
    let mut r = corpus::Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut spans = Vec::new();
    let mut size = 0;
    let mut i = 0u64;
    while size < target {
        let text = prose_with(&mut r, 600, plant);
        let input = json!([
            {"role": "system", "parts": [{"type": "text", "content": "You are a helpful support agent."}]},
            {"role": "user", "parts": [{"type": "text", "content": text}]},
        ]);
        let output = json!([{"role": "assistant", "parts": [
            {"type": "reasoning", "content": prose_with(&mut r, 300, plant)},
            {"type": "tool_call", "name": "lookup_order", "arguments": {"order_id": format!("ord_{i}"), "note": prose_with(&mut r, 80, plant)}},
        ]}]);
        let span = json!({
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": format!("{:016x}", r.next()),
            "name": "chat gpt-4o",
            "startTimeUnixNano": "1732536000000000000",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 812}},
                {"key": "gen_ai.input.messages", "value": {"stringValue": input.to_string()}},
                {"key": "gen_ai.output.messages", "value": {"stringValue": output.to_string()}},
            ],
            "events": [{"name": "step", "attributes": {"thought": prose_with(&mut r, 200, plant)}}],
        });
        size += span.to_string().len();
        spans.push(span);
        i += 1;
    }
    serde_json::to_vec(&json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})).unwrap_or_default()
}

const POLICY: &str = r#"
[roles.all]
groups = ["g"]
actions = ["read"]
fields.allow = ["$"]
"#;

fn end_to_end(bytes: &[u8], policy: &Policy, key: &MaskKey) -> Vec<u8> {
    let Some(role) = policy.roles.first() else { return Vec::new() };
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else { return Vec::new() };
    let Ok(mut doc) = project(doc, role, None) else { return Vec::new() };
    let report = role.masking.apply(&mut doc, key);
    black_box(report);
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The byte engine: what a read whose view is everything costs.
fn bytes_engine(bytes: &[u8], policy: &Policy, key: &MaskKey) -> Vec<u8> {
    let Some(role) = policy.roles.first() else { return Vec::new() };
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let report = role.masking.apply_json(bytes, key, &mut out);
    black_box(report.ok());
    out
}

fn floor(bytes: &[u8]) -> Vec<u8> {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else { return Vec::new() };
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn sonic_floor(bytes: &[u8]) -> Vec<u8> {
    let Ok(doc) = sonic_rs::from_slice::<sonic_rs::Value>(bytes) else { return Vec::new() };
    sonic_rs::to_vec(&doc).unwrap_or_default()
}

type Run = fn(&[u8], &Policy, &MaskKey) -> Vec<u8>;

/// The rows of one size class: (name, function).
const RUNS: &[(&str, Run)] = &[
    ("floor_serde_json", |b, _, _| floor(b)),
    ("floor_sonic_rs", |b, _, _| sonic_floor(b)),
    ("walk_all_detectors", end_to_end),
    ("bytes_all_detectors", bytes_engine),
];

/// The documents: (kind, size class, bytes).
fn inputs() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut v = Vec::new();
    for (name, size) in [("2KB", 2_000), ("100KB", 100_000), ("10MB", 10_000_000)] {
        v.push(("realistic", name, realistic(size)));
        v.push(("sparse", name, trace_with(size, true)));
        v.push(("clean", name, trace_with(size, false)));
    }
    v
}

fn bench(c: &mut Criterion) {
    let Ok(policy) = Policy::parse("bench", POLICY) else { return };
    let key = MaskKey(b"benchmark-key-0123456789abcdef".to_vec());
    for (kind, name, bytes) in inputs() {
        let mut g = c.benchmark_group(format!("mask_{kind}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.sample_size(if bytes.len() >= 10_000_000 { 10 } else { 30 });
        for (run, f) in RUNS {
            g.bench_with_input(BenchmarkId::new(*run, name), &bytes, |b, bytes| b.iter(|| f(black_box(bytes), &policy, &key)));
        }
        g.finish();
    }
}

/// Peak-memory runs outside criterion, so nothing else is resident:
/// `MASK_RSS=write:FILE` writes the 10 MB trace; `MASK_RSS=floor:FILE` / `MASK_RSS=mask:FILE`
/// read it and run one parse + serialise, or one end-to-end mask, then exit.
fn rss_only() -> bool {
    let Ok(mode) = std::env::var("MASK_RSS") else { return false };
    let Some((what, file)) = mode.split_once(':') else { return true };
    if what == "write" {
        if let Err(e) = std::fs::write(file, realistic(10_000_000)) {
            eprintln!("writing {file}: {e}");
        }
        return true;
    }
    let Ok(bytes) = std::fs::read(file) else {
        eprintln!("cannot read {file}");
        return true;
    };
    let key = MaskKey(b"benchmark-key-0123456789abcdef".to_vec());
    let out = match (what, Policy::parse("bench", POLICY)) {
        ("mask", Ok(p)) => end_to_end(&bytes, &p, &key),
        ("bytes", Ok(p)) => bytes_engine(&bytes, &p, &key),
        ("sonic", _) => sonic_floor(&bytes),
        _ => floor(&bytes),
    };
    eprintln!("{what}: input {} bytes, output {} bytes", bytes.len(), out.len());
    true
}

criterion_group!(benches, bench);

/// `MASK_RATIO=1`: runs every row of a document in turn, round after round, and keeps the
/// fastest of each: a measure that holds up on a machine shared with other work (criterion's
/// means do not). `MASK_ONLY=realistic` (or `sparse`, `clean`) limits the kinds.
fn ratio_only() -> bool {
    if std::env::var_os("MASK_RATIO").is_none() {
        return false;
    }
    let only = std::env::var("MASK_ONLY").ok();
    let Ok(policy) = Policy::parse("bench", POLICY) else { return true };
    let key = MaskKey(b"benchmark-key-0123456789abcdef".to_vec());
    for (kind, name, bytes) in inputs() {
        if only.as_deref().is_some_and(|o| o != kind) {
            continue;
        }
        let rounds = (200_000_000 / bytes.len().max(1)).clamp(4, 2000);
        let mut best = vec![f64::MAX; RUNS.len()];
        for _ in 0..rounds {
            for (i, (_, f)) in RUNS.iter().enumerate() {
                let t = std::time::Instant::now();
                black_box(f(black_box(&bytes), &policy, &key));
                best[i] = best[i].min(t.elapsed().as_secs_f64());
            }
        }
        let mbs = |t: f64| bytes.len() as f64 / t / 1e6;
        let cells: Vec<String> = RUNS.iter().zip(&best).map(|((n, _), t)| format!("{n} {:.0} MB/s", mbs(*t))).collect();
        println!("{kind:>9} {name:>6} ({} bytes): {}", bytes.len(), cells.join(", "));
    }
    true
}

/// `MASK_PROFILE=KIND:SIZE:ROUNDS` (e.g. `realistic:100KB:200`; `file:PATH:ROUNDS` for a
/// document on disk): the byte engine alone on one
/// input, `ROUNDS` times, for a profiler (`valgrind --tool=callgrind`, `perf record`) to see
/// the masking rather than the input generation or the other rows.
fn profile_only() -> bool {
    let Ok(spec) = std::env::var("MASK_PROFILE") else { return false };
    let mut parts = spec.split(':');
    let (Some(kind), Some(size), rounds) = (parts.next(), parts.next(), parts.next()) else { return true };
    let rounds: usize = rounds.and_then(|r| r.parse().ok()).unwrap_or(100);
    let Ok(policy) = Policy::parse("bench", POLICY) else { return true };
    let key = MaskKey(b"benchmark-key-0123456789abcdef".to_vec());
    if kind == "file" {
        // `file:PATH:ROUNDS`: a document from disk (say the load run's `scripts/gen-trace.py`
        // trace, which the gateway masks on every read), masked again and again.
        let Ok(bytes) = std::fs::read(size) else {
            eprintln!("cannot read {size}");
            return true;
        };
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            black_box(bytes_engine(black_box(&bytes), &policy, &key));
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!("{size}: {rounds} rounds, {:.0} MB/s", (bytes.len() * rounds) as f64 / secs / 1e6);
        return true;
    }
    let n = match size {
        "2KB" => 2_000,
        "100KB" => 100_000,
        "10MB" => 10_000_000,
        _ => {
            eprintln!("no size {size}");
            return true;
        }
    };
    if kind == "fresh" {
        // Realistic documents that are all different: each round masks a document the engine
        // has not seen (after one warm-up document), so the regexes' lazy automata meet new
        // text as a server's do, where the `realistic` row repeats one document.
        let docs: Vec<Vec<u8>> = (0..=rounds as u64).map(|k| realistic_from(n, 0x7261_6365 + k * 7919)).collect();
        let t = std::time::Instant::now();
        let mut bytes = 0;
        for d in &docs {
            black_box(bytes_engine(black_box(d), &policy, &key));
            bytes += d.len();
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!("fresh {size}: {} documents, {:.0} MB/s", docs.len(), bytes as f64 / secs / 1e6);
        return true;
    }
    let bytes = match kind {
        "realistic" => realistic(n),
        "sparse" => trace_with(n, true),
        _ => trace_with(n, false),
    };
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        black_box(bytes_engine(black_box(&bytes), &policy, &key));
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!("{kind} {size}: {rounds} rounds, {:.0} MB/s", (bytes.len() * rounds) as f64 / secs / 1e6);
    true
}

fn main() {
    if rss_only() || ratio_only() || profile_only() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
