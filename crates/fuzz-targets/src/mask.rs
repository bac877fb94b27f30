//! `mask_walk`: the masking walk ([`Masker::redact_all`], what `tracegate mask` and roles without
//! a masking table use) on any JSON document, or on any text as one JSON string.
//!
//! Properties: the masked document is valid JSON that round-trips; anything that changed is in
//! the report (the audit trail must show every masking); report paths stay within their cap;
//! masking what is already masked changes nothing and finds nothing; and the byte engine
//! ([`Masker::apply_json`]) serves the same document with the same count per detector and
//! operator.

use std::sync::OnceLock;

use serde_json::Value;
use tracegate_core::mask::{MaskKey, MaskReport, Masker, MAX_REPORT_PATHS};

fn masker() -> &'static Masker {
    static M: OnceLock<Masker> = OnceLock::new();
    M.get_or_init(|| Masker::redact_all().unwrap_or_else(|e| unreachable!("the built-in detectors compile: {e}")))
}

/// True when something was masked.
pub fn mask_walk(data: &[u8]) -> bool {
    let doc = serde_json::from_slice::<Value>(data)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(data).into_owned()));
    let key = MaskKey(b"fuzz-mask-key-0123456789abcdef".to_vec());
    let m = masker();

    let mut once = doc.clone();
    let report = m.apply(&mut once, &key);
    // Compared as JSON: a JSON text in a string may be re-encoded with nothing masked in it (a
    // detector's candidate span was dropped), which changes bytes, not content.
    if unlabeled(&once) != unlabeled(&doc) {
        assert!(report.total() > 0, "the document changed but the mask report is empty");
    }
    for hit in &report.hits {
        assert!(hit.count > 0 && hit.paths.len() <= MAX_REPORT_PATHS, "report entry {hit:?}");
        assert!(hit.paths.len() as u64 <= hit.count, "more paths than masked values: {hit:?}");
    }

    let text = serde_json::to_string(&once).unwrap_or_else(|e| unreachable!("a Value serializes: {e}"));
    let back: Value = serde_json::from_str(&text).unwrap_or_else(|e| unreachable!("masked output is not valid JSON: {e}"));
    assert_eq!(back, once, "masked output does not round-trip through JSON");

    // Masking masked output changes nothing and finds nothing: a trace masked on write and
    // again on read shows and reports only what was really found, and nothing the first pass
    // missed is left for a second one (compared as JSON: a JSON text in a string may be
    // re-encoded compactly).
    //
    // Not when masking turned a text that was not JSON into one that is (the span that broke it
    // was redacted): the second pass then reads another document, a tree where the first read
    // a text, and its key and context rules see other surroundings. The gateway never meets
    // this: it stores and serves only valid JSON, and a text in it that holds JSON is read as
    // JSON on the first pass already.
    if json_texts(&once) <= json_texts(&doc) {
        let mut twice = once.clone();
        let again = m.apply(&mut twice, &key);
        assert_eq!(again.total(), 0, "masking masked output found more: {again:?}");
        assert_eq!(decoded(&twice), decoded(&once), "masking masked output changed it");
    }

    // The byte engine serves the same document from the text, and counts the same.
    let text = serde_json::to_string(&doc).unwrap_or_else(|e| unreachable!("a Value serializes: {e}"));
    let mut out = Vec::new();
    let bytes_report = m.apply_json(text.as_bytes(), &key, &mut out).unwrap_or_else(|e| unreachable!("serialized JSON is JSON: {e}"));
    let served: Value = serde_json::from_slice(&out).unwrap_or_else(|e| unreachable!("byte engine output is not JSON: {e}"));
    assert_eq!(decoded(&served), decoded(&once), "the byte engine serves another document than the walk");
    assert_eq!(counts(&bytes_report), counts(&report), "the byte engine counts other maskings than the walk");
    report.total() > 0
}

/// Count per (detector, operator).
fn counts(r: &MaskReport) -> std::collections::BTreeMap<(&str, &str), u64> {
    r.hits.iter().map(|h| ((h.detector.as_str(), h.operator.as_str()), h.count)).collect()
}

/// `v` with every redaction label `[REDACTED:NAME]` reduced to `[REDACTED]`, in keys and strings,
/// and strings that hold JSON compared as the JSON they hold: masking text can make an invalid
/// JSON text valid (the span that broke it is redacted), and a second pass then masks inside it
/// and re-encodes it compactly, which changes its bytes but not what it says.
fn unlabeled(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.starts_with(['{', '[', '"']) {
                if let Ok(inner) = serde_json::from_str::<Value>(t) {
                    return unlabeled(&inner);
                }
            }
            Value::String(strip_labels(s))
        }
        Value::Array(a) => Value::Array(a.iter().map(unlabeled).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, c)| (strip_labels(k), unlabeled(c))).collect()),
        Value::Null | Value::Bool(_) | Value::Number(_) => v.clone(),
    }
}

/// How many strings in `v`, at any depth, hold a JSON text.
fn json_texts(v: &Value) -> usize {
    match v {
        Value::String(s) => match tracegate_core::embedded::decode(s, tracegate_core::embedded::MAX_LAYERS) {
            Ok(Some((inner, _))) => 1 + json_texts(&inner),
            _ => 0,
        },
        Value::Array(a) => a.iter().map(json_texts).sum(),
        Value::Object(m) => m.values().map(json_texts).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// `v` with JSON-in-strings decoded, labels kept: what a reader sees, encoding aside.
fn decoded(v: &Value) -> Value {
    match v {
        Value::String(s) => match tracegate_core::embedded::decode(s, tracegate_core::embedded::MAX_LAYERS) {
            Ok(Some((inner, _))) => decoded(&inner),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(decoded).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, c)| (k.clone(), decoded(c))).collect()),
        Value::Null | Value::Bool(_) | Value::Number(_) => v.clone(),
    }
}

fn strip_labels(s: &str) -> String {
    const OPEN: &str = "[REDACTED:";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(OPEN) {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        let after = &from[OPEN.len()..];
        let name_len = after.bytes().take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_').count();
        if after.as_bytes().get(name_len) == Some(&b']') {
            out.push_str("[REDACTED]");
            rest = &after[name_len + 1..];
        } else {
            out.push_str(OPEN);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
