//! Recall and decoy rate on the generated labeled corpus (`corpus/mod.rs`), masked with
//! `Masker::redact_all()`: at least 99.9% of planted secrets and PII and 95% of person names
//! masked, every type at least 99% (names 95%), at most 1% of decoys touched. Removing or
//! weakening a detector fails this test: each type's recall is asserted on its own.
//!
//! `CORPUS_REPORT=1` prints the per-type table (used for docs/masking.md; run with
//! `-- --nocapture`), `CORPUS_MISSES=1` every miss with its surroundings, `CORPUS_SEED=N` draws
//! another corpus, and `CORPUS_OUT=DIR` also writes the traces and labels there.

mod corpus;

use std::collections::BTreeMap;

use serde_json::Value;
use tracegate_core::mask::{MaskKey, Masker};

use corpus::{Class, Corpus};

const SEED: u64 = 0x7261_6365_6761_7465;


struct Tally {
    total: usize,
    hit: usize,
}

/// Recall per (class, type), masked count per decoy type, and the corpus size in bytes.
type Measured = (BTreeMap<(Class, &'static str), Tally>, BTreeMap<&'static str, Tally>, usize);

fn measure(c: &Corpus) -> Measured {
    let masker = Masker::redact_all().unwrap_or_else(|e| unreachable!("{e}"));
    let key = MaskKey(b"corpus-key-0123456789abcdef0123".to_vec());
    // One haystack per trace: a value counts as masked when it survives nowhere in its trace.
    let mut haystacks: Vec<String> = Vec::new();
    let mut bytes = 0;
    for t in &c.traces {
        let mut doc = t.clone();
        bytes += doc.to_string().len();
        masker.apply(&mut doc, &key);
        let mut all = Vec::new();
        corpus::texts(&doc, &mut all, 0);
        let mut haystack = String::new();
        for s in all {
            haystack.push_str(&s);
            haystack.push('\u{1}');
        }
        haystacks.push(haystack);
    }
    let mut per_type: BTreeMap<(Class, &'static str), Tally> = BTreeMap::new();
    for p in &c.planted {
        let e = per_type.entry((p.class, p.kind)).or_insert(Tally { total: 0, hit: 0 });
        e.total += 1;
        let haystack = &haystacks[p.trace];
        match haystack.find(&p.value) {
            None => e.hit += 1,
            Some(at) if std::env::var_os("CORPUS_MISSES").is_some() => {
                let from = haystack[..at].char_indices().rev().nth(80).map_or(0, |(i, _)| i);
                let to = haystack[at..].char_indices().nth(p.value.chars().count() + 40).map_or(haystack.len(), |(i, _)| at + i);
                println!("MISS {}: {:?} in {:?}", p.kind, p.value, &haystack[from..to]);
            }
            Some(_) => {}
        }
    }
    let mut decoys: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for d in &c.decoys {
        let e = decoys.entry(d.kind).or_insert(Tally { total: 0, hit: 0 });
        e.total += 1;
        if !haystacks[d.trace].contains(&d.value) {
            e.hit += 1;
            if std::env::var_os("CORPUS_MISSES").is_some() {
                println!("DECOY MASKED {}: {:?}", d.kind, d.value);
            }
        }
    }
    (per_type, decoys, bytes)
}

fn rate(t: &Tally) -> f64 {
    t.hit as f64 / t.total.max(1) as f64
}

#[test]
fn corpus_recall_and_decoy_rate() {
    // `CORPUS_SEED` draws another corpus of the same shape (a check against tuning to this one).
    let seed = std::env::var("CORPUS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    let c = corpus::generate(seed, 120, 60);
    if let Some(dir) = std::env::var_os("CORPUS_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        for (i, t) in c.traces.iter().enumerate() {
            std::fs::write(dir.join(format!("trace-{i:04}.json")), t.to_string()).unwrap_or_else(|e| unreachable!("{e}"));
        }
        let labels: Vec<Value> = c.planted.iter().map(|p| serde_json::json!({"class": format!("{:?}", p.class), "type": p.kind, "value": p.value})).collect();
        std::fs::write(dir.join("labels.json"), Value::Array(labels).to_string()).unwrap_or_else(|e| unreachable!("{e}"));
    }
    let (per_type, decoys, bytes) = measure(&c);
    let mut by_class: BTreeMap<Class, Tally> = BTreeMap::new();
    for ((class, _), t) in &per_type {
        let e = by_class.entry(*class).or_insert(Tally { total: 0, hit: 0 });
        e.total += t.total;
        e.hit += t.hit;
    }
    let decoy_total: usize = decoys.values().map(|t| t.total).sum();
    let decoy_hit: usize = decoys.values().map(|t| t.hit).sum();
    let decoy_rate = decoy_hit as f64 / decoy_total.max(1) as f64;
    let secrets_pii = {
        let s = by_class.get(&Class::Secret).map_or((0, 0), |t| (t.total, t.hit));
        let p = by_class.get(&Class::Pii).map_or((0, 0), |t| (t.total, t.hit));
        Tally { total: s.0 + p.0, hit: s.1 + p.1 }
    };
    let mut report = format!("corpus: {} traces, {} bytes, {} planted, {} decoys\n", c.traces.len(), bytes, c.planted.len(), decoy_total);
    report.push_str("| class | type | planted | masked | recall |\n|---|---|---|---|---|\n");
    for ((class, kind), t) in &per_type {
        report.push_str(&format!("| {class:?} | `{kind}` | {} | {} | {:.2}% |\n", t.total, t.hit, 100.0 * rate(t)));
    }
    for (class, t) in &by_class {
        report.push_str(&format!("| **{class:?}** | all | {} | {} | {:.2}% |\n", t.total, t.hit, 100.0 * rate(t)));
    }
    report.push_str(&format!("| **Secret + Pii** | all | {} | {} | {:.3}% |\n", secrets_pii.total, secrets_pii.hit, 100.0 * rate(&secrets_pii)));
    report.push_str("\n| decoy | planted | masked |\n|---|---|---|\n");
    for (kind, t) in &decoys {
        report.push_str(&format!("| `{kind}` | {} | {} |\n", t.total, t.hit));
    }
    report.push_str(&format!("| **all** | {decoy_total} | {decoy_hit} ({:.2}%) |\n", 100.0 * decoy_rate));
    if std::env::var_os("CORPUS_REPORT").is_some() {
        println!("{report}");
    }

    assert!(secrets_pii.total > 4000 && decoy_total > 1000, "corpus too small to measure 99.9%:\n{report}");
    for ((class, kind), t) in &per_type {
        let floor = if *class == Class::Name { 0.95 } else { 0.99 };
        assert!(t.total >= 20, "`{kind}`: only {} planted:\n{report}", t.total);
        assert!(rate(t) >= floor, "`{kind}`: recall {:.2}% below {:.0}%:\n{report}", 100.0 * rate(t), 100.0 * floor);
    }
    assert!(rate(&secrets_pii) >= 0.999, "secrets + PII recall {:.3}% below 99.9%:\n{report}", 100.0 * rate(&secrets_pii));
    let names = by_class.get(&Class::Name).map_or(0.0, rate);
    assert!(names >= 0.95, "person-name recall {:.2}% below 95%:\n{report}", 100.0 * names);
    assert!(decoy_rate <= 0.01, "decoy rate {:.2}% above 1%:\n{report}", 100.0 * decoy_rate);
}
