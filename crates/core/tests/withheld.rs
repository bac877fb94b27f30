//! `?explain=withheld` as a hostile caller sees it: the list of what a read's view left out must
//! never carry a hidden value, a hidden key that is itself a secret, or anything a narrowed read
//! (`fields=`) would not show; and it must not change the body.

use std::time::SystemTime;

use serde_json::{json, Value};
use tracegate_core::mask::MaskKey;
use tracegate_core::pipeline::{decide_read_gated, explain_withheld, serve_read, ReadDecision, ReadRequest, WithheldReport, MAX_WITHHELD_BYTES};
use tracegate_core::project::FieldRequest;
use tracegate_core::{AuthMethod, Policy, Principal, TraceId, TraceMeta};

const POLICY: &str = include_str!("../../../examples/policy.toml");

fn policy() -> Policy {
    Policy::parse("examples/policy.toml", POLICY).unwrap_or_else(|e| unreachable!("{e}"))
}

fn support() -> Principal {
    Principal {
        subject: "sam".into(),
        issuer: "test".into(),
        groups: vec!["support".into()],
        claims: [("tenant".to_owned(), "acme".to_owned())].into_iter().collect(),
        auth_method: AuthMethod::Dev,
        person: None,
        credential: Default::default(),
    }
}

fn key() -> MaskKey {
    MaskKey(b"withheld-test-key-0123456789abcdef".to_vec())
}

/// The body and the withheld report `who` gets for `doc`, as the read route computes them.
fn read(doc: &Value, fields: Option<&[&str]>) -> (Vec<u8>, WithheldReport) {
    let policy = policy();
    let who = support();
    let fields = fields.map(|f| FieldRequest::parse_all(f.iter().copied()).unwrap_or_else(|e| unreachable!("{e}")));
    let meta = TraceMeta::extract(TraceId::parse("t-1").unwrap_or_else(|e| unreachable!("{e}")), doc);
    let now = humantime::parse_rfc3339("2026-11-25T12:00:00Z").unwrap_or(SystemTime::UNIX_EPOCH);
    let ask = ReadRequest { fields: fields.as_deref(), purpose: None };
    let Ok(ReadDecision::Serve(c)) = decide_read_gated(&policy, &who, &meta, &ask, now) else { unreachable!("support reads this trace") };
    let stored = serde_json::to_vec(doc).unwrap_or_else(|e| unreachable!("{e}"));
    let body = serve_read(&c, &stored, None, fields.as_deref(), &key()).unwrap_or_else(|e| unreachable!("{e:?}")).body;
    let w = explain_withheld(&c, &stored, None, fields.as_deref(), &key()).unwrap_or_else(|e| unreachable!("{e:?}"));
    (body, w)
}

fn trace(extra: Value) -> Value {
    let mut doc = json!({
        "trace_id": "t-1",
        "metadata": {"tenant": "acme", "project": "p", "agent": "a", "user": "u", "started_at": "2026-11-20T10:00:00Z"},
        "system_instructions": "never reveal the ledger",
        "steps": [
            {"index": 0, "reasoning": "the customer is dana@example.com", "output": "done", "tool_calls": [{"name": "x", "arguments": {"k": "AKIAIOSFODNN7EXAMPLE"}}]}
        ],
        "final_output": "ok"
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    doc
}

#[test]
fn withheld_paths_name_the_boundary_and_never_a_value() {
    let (_, w) = read(&trace(json!({})), None);
    assert_eq!(w.paths, ["$['system_instructions']", "$['steps'][0]['reasoning']", "$['steps'][0]['tool_calls']"]);
    assert!(!w.narrowed);
    let all = w.paths.concat();
    for planted in ["dana@example.com", "AKIAIOSFODNN7EXAMPLE", "ledger", "arguments"] {
        assert!(!all.contains(planted), "{planted} in {all}");
    }
}

#[test]
fn a_withheld_key_that_is_itself_a_secret_is_masked_like_a_key_in_the_body() {
    // Keys outside the view that are an email address and an AWS key id: listed masked, exactly
    // as the masker shows such a key in a body, never raw.
    let doc = trace(json!({"dana@example.com": {"n": 1}, "AKIAIOSFODNN7EXAMPLE": 2, "plain": 3}));
    let (_, w) = read(&doc, None);
    let all = w.paths.concat();
    assert!(!all.contains("dana@example.com") && !all.contains("AKIAIOSFODNN7EXAMPLE"), "{all}");
    assert!(w.paths.iter().any(|p| p == "$['[REDACTED:EMAIL]']"), "{:?}", w.paths);
    assert!(w.paths.iter().any(|p| p.starts_with("$['[REDACTED:AWS")), "{:?}", w.paths);
    assert!(w.paths.iter().any(|p| p == "$['plain']"), "{:?}", w.paths);
}

#[test]
fn a_narrowed_read_lists_nothing_so_a_filter_over_a_hidden_field_learns_nothing() {
    // Filters aimed at the hidden reasoning: whatever it holds, the report is the same, and it
    // lists no path at all (the view's list would describe parts the narrowed read does not show).
    let probes: [&[&str]; 3] = [
        &["$.steps[?search(@.reasoning, 'dana')].output"],
        &["$.steps[*].output"],
        &["$..[?search(@, 'AKIA')]"],
    ];
    for fields in probes {
        let (_, a) = read(&trace(json!({})), Some(fields));
        let mut other = trace(json!({}));
        other["steps"][0]["reasoning"] = json!("nothing here");
        let (_, b) = read(&other, Some(fields));
        assert_eq!(a, b, "{fields:?}");
        assert!(a.narrowed && a.paths.is_empty() && a.more == 0, "{a:?}");
    }
}

#[test]
fn asking_for_the_list_does_not_change_the_body() {
    let doc = trace(json!({"dana@example.com": 1}));
    let stored = serde_json::to_vec(&doc).unwrap_or_else(|e| unreachable!("{e}"));
    let (body, _) = read(&doc, None);
    // The body of a read that did not ask: `serve_read` alone, as before this report existed.
    let policy = policy();
    let meta = TraceMeta::extract(TraceId::parse("t-1").unwrap_or_else(|e| unreachable!("{e}")), &doc);
    let now = humantime::parse_rfc3339("2026-11-25T12:00:00Z").unwrap_or(SystemTime::UNIX_EPOCH);
    let Ok(ReadDecision::Serve(c)) = decide_read_gated(&policy, &support(), &meta, &ReadRequest::default(), now) else { unreachable!() };
    let plain = serve_read(&c, &stored, None, None, &key()).unwrap_or_else(|e| unreachable!("{e:?}")).body;
    assert_eq!(body, plain);
}

#[test]
fn the_list_is_bounded_in_count_and_bytes() {
    let many: serde_json::Map<String, Value> = (0..200).map(|i| (format!("k{i:03}"), json!(i))).collect();
    let (_, w) = read(&trace(Value::Object(many)), None);
    assert_eq!(w.paths.len() as u64 + w.more, 203, "every withheld path is listed or counted");
    assert!(w.paths.len() <= 64);
    let long: serde_json::Map<String, Value> = (0..4).map(|i| (format!("{i}{}", "x".repeat(1500)), json!(i))).collect();
    let (_, w) = read(&trace(Value::Object(long)), None);
    assert!(w.paths.iter().map(String::len).sum::<usize>() <= MAX_WITHHELD_BYTES);
    assert_eq!(w.paths.len() as u64 + w.more, 7);
}
