//! What the detectors find, pinned: every detection (detector, byte span, value) the engine
//! reports in every text of the labeled corpus (`corpus/mod.rs`, two seeds) and the golden
//! inputs, compared with `golden/detections.txt`.
//!
//! Why: `mask_differential` compares the byte engine with the tree walk, but both call the same
//! detectors, and the corpus recall test counts planted values only. A rule rewritten for speed
//! (ASCII classes, clamped lengths, windowed captures) that finds a span one byte shorter, or a
//! value the corpus does not label, passes both; here it is a diff line to review. A lost line is
//! a lost detection (a bug unless the value was not sensitive); a new line must be a real secret
//! or PII value. Regenerate with `UPDATE_GOLDEN=1 cargo test -p tracegate-core --test
//! mask_detections` after review and say why in the commit.
//!
//! Spans are the engine's raw detections before merging (so two rules finding one value are two
//! lines), in the text the engine scans: every string, JSON-in-string layer and object key, and
//! each one's escape-decoded form.

#![allow(clippy::panic)]

mod corpus;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tracegate_core::mask::detectors::{DetSet, Detector, Engine, Span};

/// The corpus recall test's seed, and a second draw so the reference is not one corpus's.
const SEEDS: [(u64, usize, usize); 2] = [(0x7261_6365_6761_7465, 120, 60), (0x5eed_0002, 40, 60)];


fn text_id(t: &str) -> String {
    hex::encode(&Sha256::digest(t.as_bytes())[..6])
}

/// The value, quoted, cut at 48 characters so the file stays reviewable.
fn shown(t: &str, s: &Span) -> String {
    let v = t.get(s.start..s.end).unwrap_or("<not on a char boundary>");
    let cut: String = v.chars().take(48).collect();
    let more = if cut.len() < v.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

/// One line per detection, keyed by text id, and the texts by id (for the failure message).
fn detections() -> (BTreeSet<String>, BTreeMap<String, String>) {
    let engine = Engine::shared().unwrap_or_else(|e| unreachable!("{e}"));
    let mut all = DetSet::default();
    for d in Detector::ALL {
        all.insert(*d);
    }
    let mut set = BTreeSet::new();
    for (seed, traces, per) in SEEDS {
        for t in corpus::generate(seed, traces, per).traces {
            corpus::texts(&t, &mut set, 0);
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mask");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| unreachable!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".input.json"))
        .collect();
    inputs.sort();
    for p in inputs {
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap_or_default()).unwrap_or(Value::Null);
        corpus::texts(&v, &mut set, 0);
    }
    let mut lines = BTreeSet::new();
    let mut by_id = BTreeMap::new();
    let mut spans = Vec::new();
    for t in set {
        spans.clear();
        engine.scan(&t, all, &mut spans);
        spans.sort_unstable_by_key(|s| (s.start, s.end, s.detector));
        spans.dedup();
        let id = text_id(&t);
        for s in &spans {
            lines.insert(format!("{id} {:>6} {:>6} {} {}", s.start, s.end, s.detector.name(), shown(&t, s)));
        }
        by_id.insert(id, t);
    }
    (lines, by_id)
}

/// The text around a line's span, for reviewing a diff.
fn context(line: &str, by_id: &BTreeMap<String, String>) -> String {
    let mut f = line.split_whitespace();
    let (Some(id), Some(start), Some(end)) = (f.next(), f.next(), f.next()) else { return String::new() };
    let (Some(t), Ok(start), Ok(end)) = (by_id.get(id), start.parse::<usize>(), end.parse::<usize>()) else {
        return String::new();
    };
    let from = (0..=start.saturating_sub(60)).rev().find(|i| t.is_char_boundary(*i)).unwrap_or(0);
    let to = (end.saturating_add(30).min(t.len())..=t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(t.len());
    format!("  in {:?}", t.get(from..to).unwrap_or(""))
}

#[test]
fn detections_match_the_reference() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/detections.txt");
    let (got, by_id) = detections();
    let got_text: String = got.iter().map(|l| format!("{l}\n")).collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got_text).unwrap_or_else(|e| unreachable!("{e}"));
        return;
    }
    let want_text = std::fs::read_to_string(&path).unwrap_or_else(|e| unreachable!("{}: {e} (UPDATE_GOLDEN=1)", path.display()));
    let want: BTreeSet<String> = want_text.lines().map(str::to_owned).collect();
    assert!(want.len() > 10_000, "reference too small: {} lines", want.len());
    let lost: Vec<&String> = want.difference(&got).collect();
    let new: Vec<&String> = got.difference(&want).collect();
    if lost.is_empty() && new.is_empty() {
        return;
    }
    let mut msg = format!("{} detections lost, {} new (UPDATE_GOLDEN=1 after review)\n", lost.len(), new.len());
    for l in lost.iter().take(40) {
        msg.push_str(&format!("- {l}\n{}\n", context(l, &by_id)));
    }
    for l in new.iter().take(40) {
        msg.push_str(&format!("+ {l}\n{}\n", context(l, &by_id)));
    }
    panic!("{msg}");
}
