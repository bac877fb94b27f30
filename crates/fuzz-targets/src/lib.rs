//! The bodies of tracegate's fuzz targets, one function per target taking the raw input bytes.
//!
//! Two harnesses call exactly these functions: the coverage-guided libFuzzer binaries in
//! `fuzz/fuzz_targets/` (nightly, `scripts/fuzz.sh`) and the stable corpus replay in
//! `tests/corpus.rs`, which runs every file of `fuzz/corpus/<target>/` in the ordinary test
//! suite. A crash the fuzzer finds is therefore reproduced by `cargo test` as soon as its input
//! is added to the corpus.
//!
//! Each body checks properties, not just "does not panic": a broken invariant is an `assert!`,
//! which both harnesses report as a failure. Each function is tolerant of any input: bytes that
//! cannot be the kind of input a target wants return early. Each returns whether the input was
//! accepted (parsed, served, authenticated, masked), which libFuzzer ignores and the replay uses
//! to prove that a corpus reaches both the accepting and the refusing side.

pub mod field;
pub mod jwt;
pub mod mask;
pub mod meta;
pub mod policy;
pub mod trace_id;

/// A target body: the input bytes in, whether the input was accepted out.
pub type Target = fn(&[u8]) -> bool;

/// Every target, by the name of its libFuzzer binary and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("policy_parse", policy::policy_parse),
    ("field_request", field::field_request),
    ("jwt_parse", jwt::jwt_parse),
    ("mask_walk", mask::mask_walk),
    ("trace_meta", meta::trace_meta),
    ("trace_id", trace_id::trace_id),
];
