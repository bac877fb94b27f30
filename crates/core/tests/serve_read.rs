//! `pipeline::serve_read`, the read route's rendering, against `project_and_mask` + `serde_json`
//! (what the gateway served before the byte engine): over the example policy's roles and traces,
//! whole-document reads (byte engine) show the same values with the same masks and rules, every
//! other read gives exactly the same bytes, and bytes that are not JSON fail closed on both paths.

#![expect(clippy::panic, reason = "a test reports a disagreement by failing")]

use serde_json::Value;
use tracegate_core::embedded::decode_tree;
use tracegate_core::mask::{MaskKey, MaskReport};
use tracegate_core::pipeline::{project_and_mask, renders_whole_document, serve_read, Candidate, ServeError};
use tracegate_core::project::FieldRequest;
use tracegate_core::Policy;

const POLICY: &str = include_str!("../../../examples/policy.toml");
const TRACES: [&str; 3] = [
    include_str!("../../../examples/traces/demo-agent-1.json"),
    include_str!("../../../examples/traces/demo-agent-2.json"),
    include_str!("../../../examples/traces/demo-otlp-1.json"),
];

fn key() -> MaskKey {
    MaskKey(b"serve-read-test-key-0123456789abcdef".to_vec())
}

/// `v` with its JSON-in-strings decoded in place (the one decoder): the byte engine copies an
/// inner document it did not change as it was, the parsed view re-encodes it.
fn decoded(mut v: Value) -> Value {
    decode_tree(&mut v);
    v
}

fn counts(r: &MaskReport) -> Vec<(String, String, u64)> {
    let mut v: Vec<_> = r.hits.iter().map(|h| (h.detector.clone(), h.operator.clone(), h.count)).collect();
    v.sort();
    v
}

#[test]
fn serve_read_matches_the_parsed_view() {
    let policy = Policy::parse("example", POLICY).unwrap_or_else(|e| panic!("{e}"));
    let queries: [Option<&str>; 3] = [None, Some("$.metadata"), Some("$..output")];
    let mut whole = 0;
    for role in policy.roles.iter() {
        for (i, text) in TRACES.iter().enumerate() {
            for q in queries {
                let fields = q.map(|q| FieldRequest::parse_all([q]).unwrap_or_else(|e| panic!("{e}")));
                let candidates = [Candidate { role, rules: vec!["r".to_owned()] }];
                let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
                let old = project_and_mask(&candidates, doc.clone(), fields.as_deref(), &key());
                let new = serve_read(&candidates, text.as_bytes(), None, fields.as_deref(), &key());
                // The parsed tree handed in (as the route does for row scope) changes nothing.
                let reused = serve_read(&candidates, text.as_bytes(), Some(doc), fields.as_deref(), &key());
                let at = format!("role {}, trace {i}, fields {q:?}", role.name);
                match (old, new, reused) {
                    (Ok(old), Ok(new), Ok(reused)) => {
                        assert_eq!(new.body, reused.body, "{at}");
                        assert_eq!((&new.role, &new.rules), (&old.role, &old.rules), "{at}");
                        assert_eq!(counts(&new.masks), counts(&old.masks), "{at}");
                        let old_bytes = serde_json::to_vec(&old.body).unwrap_or_else(|e| panic!("{e}"));
                        if renders_whole_document(role, fields.as_deref()) {
                            whole += 1;
                            let shown: Value = serde_json::from_slice(&new.body).unwrap_or_else(|e| panic!("{at}: {e}"));
                            assert_eq!(decoded(shown), decoded(old.body), "{at}");
                        } else {
                            assert_eq!(new.body, old_bytes, "{at}");
                        }
                    }
                    (Err(ServeError::Denied(a)), Err(ServeError::Denied(b)), Err(ServeError::Denied(c))) => {
                        assert_eq!((a.code.as_str(), &a.rules), (b.code.as_str(), &b.rules), "{at}");
                        assert_eq!((a.code.as_str(), &a.rules), (c.code.as_str(), &c.rules), "{at}");
                    }
                    (a, b, c) => panic!("{at}: outcomes differ: {a:?} / {b:?} / {c:?}"),
                }
            }
        }
    }
    assert!(whole >= 3, "no whole-document read was exercised");
}

#[test]
fn bytes_that_are_not_json_fail_closed_on_both_paths() {
    let policy = Policy::parse("example", POLICY).unwrap_or_else(|e| panic!("{e}"));
    for name in ["engineer", "support", "sre"] {
        let role = policy.role(name).unwrap_or_else(|| panic!("no role {name}"));
        let candidates = [Candidate { role, rules: Vec::new() }];
        for bad in [&b"{\"a\": "[..], b"not json", b"{\"a\":1} trailing", b"\xff\xfe{}"] {
            match serve_read(&candidates, bad, None, None, &key()) {
                Err(ServeError::NotJson(_)) => {}
                other => panic!("role {name}: {:?} served: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }
}
