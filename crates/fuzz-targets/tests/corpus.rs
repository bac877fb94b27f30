//! Replays every checked-in fuzz input on stable: each file of `fuzz/corpus/<target>/` goes
//! through the same target body libFuzzer runs (`tracegate_fuzz_targets::TARGETS`). A crash the
//! fuzzer found stays fixed once its input is in the corpus. Also keeps the three lists in step:
//! every target has a non-empty corpus and a libFuzzer binary, and nothing else does.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tracegate_fuzz_targets::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn names_in(dir: &Path, strip: &str) -> BTreeSet<String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| unreachable!("{}: {e}", dir.display()));
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(|n| n.trim_end_matches(strip).to_owned()))
        .collect()
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    let targets: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(names_in(&fuzz_dir().join("corpus"), ""), targets, "fuzz/corpus/ directories");
    assert_eq!(names_in(&fuzz_dir().join("fuzz_targets"), ".rs"), targets, "fuzz/fuzz_targets/*.rs");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap_or_else(|e| unreachable!("{e}"));
    for t in &targets {
        assert!(manifest.contains(&format!("name = \"{t}\"")), "fuzz/Cargo.toml has no [[bin]] `{t}`");
    }
}

/// Runs every corpus file of `target`; returns the names of the accepted ones. Fails when any
/// input breaks a property, or when the corpus reaches only one side (all accepted or all
/// refused), which would mean the target no longer tests what it is meant to.
fn replay(target: &str) -> BTreeSet<String> {
    let Some((_, run)) = TARGETS.iter().find(|(n, _)| *n == target) else { unreachable!("no target {target}") };
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| unreachable!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    let mut failed = Vec::new();
    let mut accepted = BTreeSet::new();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| unreachable!("{}: {e}", f.display()));
        match catch_unwind(AssertUnwindSafe(|| run(&data))) {
            Ok(true) => {
                accepted.insert(f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned());
            }
            Ok(false) => {}
            Err(_) => failed.push(f.display().to_string()),
        }
    }
    assert!(failed.is_empty(), "{target}: {} of {} inputs fail: {failed:#?}", failed.len(), files.len());
    assert!(!accepted.is_empty(), "{target}: no corpus input is accepted");
    assert!(accepted.len() < files.len(), "{target}: every corpus input is accepted");
    accepted
}

#[test]
fn policy_parse() {
    replay("policy_parse");
}

#[test]
fn field_request() {
    let served = replay("field_request");
    for ok in ["support-whole-view", "support-final-output", "support-otlp-text-parts", "support-inline-nested", "support-inline-deep", "support-whole-step", "engineer-everything"] {
        assert!(served.contains(ok), "`{ok}` was refused");
    }
    // Only outcomes that do not hang on projection details the policy language may refine.
    for refused in ["support-reasoning", "support-bad-path", "support-too-many", "crash-path-ends-in-unicode-escape"] {
        assert!(!served.contains(refused), "`{refused}` was served");
    }
}

#[test]
fn jwt_parse() {
    let accepted = replay("jwt_parse");
    // Properly signed tokens that follow the rules pass, so the property checks on accepted
    // principals run; everything sent unsigned, and each rule's violation, is refused.
    for ok in ["signed-good", "signed-no-kid", "signed-typ-upper", "signed-typ-long", "signed-aud-array", "signed-exp-float", "signed-groups-string", "signed-groups-mixed", "mint-basic"] {
        assert!(accepted.contains(ok), "`{ok}` was refused");
    }
    let unsigned: Vec<&String> = accepted.iter().filter(|n| n.starts_with("raw-")).collect();
    assert!(unsigned.is_empty(), "unsigned tokens accepted: {unsigned:?}");
    for bad in ["signed-wrong-kid", "signed-typ-jwt", "signed-alg-rs256", "signed-crit", "signed-expired", "signed-exp-string", "signed-nbf-future", "signed-nbf-string", "signed-aud-wrong", "signed-iss-wrong", "signed-sub-empty", "signed-sub-number", "signed-no-exp", "signed-dup-keys", "signed-dup-header", "mint-reserved"] {
        assert!(!accepted.contains(bad), "`{bad}` was accepted");
    }
}

#[test]
fn mask_walk() {
    replay("mask_walk");
}

#[test]
fn trace_meta() {
    replay("trace_meta");
}

#[test]
fn trace_id() {
    replay("trace_id");
}
