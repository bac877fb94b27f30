//! Masking throughput, end to end (parse, project, mask, serialise), beside the floor of a
//! plain serde_json parse + serialise of the same bytes, on ~2 KB, ~100 KB and ~10 MB traces.
//!
//! Run: `cargo bench -p tracegate-core --bench mask`. Peak memory for the 10 MB trace: see
//! `rss_only` and docs/benchmarks.md.

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

/// A deterministic generator (xorshift), so every run masks the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// Prose of about `n` bytes with ordinary numbers, dates, ids and versions, and now and then
/// (3 tokens in 1000, about one per 2 KB) a planted secret or PII value.
fn prose(r: &mut Rng, n: usize) -> String {
    let planted = [
        "alice.smith@example.com", "+1 415 555 2671", "4111 1111 1111 1111", "123-45-6789",
        "DE89 3704 0044 0532 0130 00", "10.1.2.3", "AKIAIOSFODNN7EXAMPLE", "password=hunter2",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "postgres://app:s3cr3t@db:5432/x",
    ];
    let noise = ["2026-11-25T12:00:00Z", "v1.2.3", "550e8400-e29b-41d4-a716-446655440000", "42", "3.14", "200 OK", "key: value"];
    let mut s = String::with_capacity(n + 64);
    while s.len() < n {
        let roll = r.next() % 1000;
        if roll < 3 {
            s.push_str(r.pick(&planted));
        } else if roll < 60 {
            s.push_str(r.pick(&noise));
        } else {
            s.push_str(r.pick(WORDS));
        }
        s.push(if matches!(r.next() % 12, 0) { '.' } else { ' ' });
    }
    s
}

/// An OpenTelemetry-style trace of about `target` bytes: spans whose GenAI attributes carry
/// message arrays as JSON-encoded strings, plus an agent step list with plain prose.
fn trace(target: usize) -> Vec<u8> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut spans = Vec::new();
    let mut size = 0;
    let mut i = 0u64;
    while size < target {
        let text = prose(&mut r, 600);
        let input = json!([
            {"role": "system", "parts": [{"type": "text", "content": "You are a helpful support agent."}]},
            {"role": "user", "parts": [{"type": "text", "content": text}]},
        ]);
        let output = json!([{"role": "assistant", "parts": [
            {"type": "reasoning", "content": prose(&mut r, 300)},
            {"type": "tool_call", "name": "lookup_order", "arguments": {"order_id": format!("ord_{i}"), "note": prose(&mut r, 80)}},
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
            "events": [{"name": "step", "attributes": {"thought": prose(&mut r, 200)}}],
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

fn floor(bytes: &[u8]) -> Vec<u8> {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else { return Vec::new() };
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let Ok(policy) = Policy::parse("bench", POLICY) else { return };
    let key = MaskKey(b"benchmark-key-0123456789abcdef".to_vec());
    let mut g = c.benchmark_group("mask");
    for (name, size) in [("2KB", 2_000), ("100KB", 100_000), ("10MB", 10_000_000)] {
        let bytes = trace(size);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        if size >= 10_000_000 {
            g.sample_size(10);
        } else {
            g.sample_size(50);
        }
        g.bench_with_input(BenchmarkId::new("floor_parse_serialise", name), &bytes, |b, bytes| b.iter(|| floor(black_box(bytes))));
        g.bench_with_input(BenchmarkId::new("end_to_end_all_detectors", name), &bytes, |b, bytes| {
            b.iter(|| end_to_end(black_box(bytes), &policy, &key))
        });
    }
    g.finish();
}

/// Peak-memory runs outside criterion, so nothing else is resident:
/// `MASK_RSS=write:FILE` writes the 10 MB trace; `MASK_RSS=floor:FILE` / `MASK_RSS=mask:FILE`
/// read it and run one parse + serialise, or one end-to-end mask, then exit.
fn rss_only() -> bool {
    let Ok(mode) = std::env::var("MASK_RSS") else { return false };
    let Some((what, file)) = mode.split_once(':') else { return true };
    if what == "write" {
        if let Err(e) = std::fs::write(file, trace(10_000_000)) {
            eprintln!("writing {file}: {e}");
        }
        return true;
    }
    let Ok(bytes) = std::fs::read(file) else {
        eprintln!("cannot read {file}");
        return true;
    };
    let out = match (what, Policy::parse("bench", POLICY)) {
        ("mask", Ok(p)) => end_to_end(&bytes, &p, &MaskKey(b"benchmark-key-0123456789abcdef".to_vec())),
        _ => floor(&bytes),
    };
    eprintln!("{what}: input {} bytes, output {} bytes", bytes.len(), out.len());
    true
}

criterion_group!(benches, bench);

/// `MASK_RATIO=1`: alternates floor and end-to-end runs and keeps the fastest of each, a
/// measure that holds up on a machine shared with other work (criterion's means do not).
fn ratio_only() -> bool {
    if std::env::var_os("MASK_RATIO").is_none() {
        return false;
    }
    let Ok(policy) = Policy::parse("bench", POLICY) else { return true };
    let key = MaskKey(b"benchmark-key-0123456789abcdef".to_vec());
    for (name, size, rounds) in [("2KB", 2_000, 2000), ("100KB", 100_000, 200), ("10MB", 10_000_000, 8)] {
        let bytes = trace(size);
        let (mut best_floor, mut best_mask) = (f64::MAX, f64::MAX);
        for _ in 0..rounds {
            let t = std::time::Instant::now();
            black_box(floor(black_box(&bytes)));
            best_floor = best_floor.min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            black_box(end_to_end(black_box(&bytes), &policy, &key));
            best_mask = best_mask.min(t.elapsed().as_secs_f64());
        }
        let mbs = |t: f64| bytes.len() as f64 / t / 1e6;
        println!(
            "{name:>6} ({} bytes): floor {:.0} MB/s, end-to-end {:.0} MB/s, ratio {:.2}x",
            bytes.len(),
            mbs(best_floor),
            mbs(best_mask),
            best_mask / best_floor
        );
    }
    true
}

fn main() {
    if rss_only() || ratio_only() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
