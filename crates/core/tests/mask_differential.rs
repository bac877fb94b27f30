//! The byte engine ([`Masker::apply_json`]) against the tree walk ([`Masker::apply`]), the
//! oracle: on generated documents (nested, escaped, Go-HTML-escaped, JSON in strings one and two
//! layers deep, credential keys, OpenTelemetry attributes, keys that are themselves PII), on the
//! labeled corpus, on the golden inputs and on the fuzz corpus, both must serve the same
//! document (compared with JSON-in-strings decoded, since the byte engine copies an inner
//! document it did not change as it was) and report the same detector, operator and count.

#![expect(clippy::panic, reason = "a test reports a disagreement by failing")]

mod corpus;

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tracegate_core::embedded::{decode, MAX_LAYERS};
use tracegate_core::mask::{MaskKey, MaskReport, Masker, MaskingSpec};

fn key() -> MaskKey {
    MaskKey(b"differential-key-0123456789abcdef".to_vec())
}

/// `v` with every string that holds a document replaced by that document, recursively.
fn normalize(v: &Value) -> Value {
    match v {
        Value::String(s) => match decode(s, MAX_LAYERS) {
            Ok(Some((inner, _))) => normalize(&inner),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, c)| (k.clone(), normalize(c))).collect()),
        _ => v.clone(),
    }
}

/// Per (detector, operator): the count, and the paths when under the cap (their order can
/// differ: the walk masks an object's keys before its values).
type Summary = BTreeMap<(String, String), (u64, Option<Vec<String>>)>;

fn summary(r: &MaskReport) -> Summary {
    r.hits
        .iter()
        .map(|h| {
            let mut paths = h.paths.clone();
            paths.sort();
            let paths = (h.count < 32).then_some(paths);
            ((h.detector.clone(), h.operator.clone()), (h.count, paths))
        })
        .collect()
}

/// Masks `text` both ways and compares; the text must be JSON.
fn check(m: &Masker, text: &str) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut old = doc.clone();
    let old_report = m.apply(&mut old, &key());
    let mut out = Vec::new();
    let new_report = m.apply_json(text.as_bytes(), &key(), &mut out).map_err(|e| format!("byte engine refused: {e}"))?;
    let new: Value = serde_json::from_slice(&out).map_err(|e| format!("byte engine output is not JSON: {e}"))?;
    if normalize(&new) != normalize(&old) {
        return Err(format!(
            "outputs differ\ninput: {text}\nwalk:  {}\nbytes: {}",
            serde_json::to_string(&old).unwrap_or_default(),
            String::from_utf8_lossy(&out)
        ));
    }
    if summary(&new_report) != summary(&old_report) {
        return Err(format!("reports differ\ninput: {text}\nwalk:  {old_report:?}\nbytes: {new_report:?}"));
    }
    Ok(())
}

/// Go's `encoding/json` escapes `<`, `>` and `&` in strings (they occur nowhere else in JSON).
fn go_escape(s: &str) -> String {
    s.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn all() -> Masker {
    Masker::redact_all().unwrap_or_else(|e| unreachable!("{e}"))
}

fn maskers() -> Vec<Masker> {
    let mut v = vec![all()];
    for spec in [
        "keys = \"hash\"\n[detectors]\nemail = \"hash\"\nphone = \"partial\"\nperson_name = \"hash\"",
        "keys = \"drop\"\n[detectors]\nemail = \"drop\"\nus_ssn = \"drop\"",
        "secrets = \"partial\"\npii = \"off\"\nkey_names = [\"note\"]",
    ] {
        let spec: MaskingSpec = toml::from_str(spec).unwrap_or_else(|e| unreachable!("{e}"));
        v.push(spec.compile().unwrap_or_else(|e| unreachable!("{e:?}")));
    }
    v
}

#[test]
fn corpus_traces_agree() {
    let c = corpus::generate(0x6469_6666, 40, 60);
    let m = all();
    for (i, t) in c.traces.iter().enumerate() {
        let text = t.to_string();
        let text = if i % 3 == 0 { go_escape(&text) } else { text };
        check(&m, &text).unwrap_or_else(|e| panic!("trace {i}: {e}"));
    }
}

#[test]
fn golden_and_fuzz_inputs_agree() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut files = Vec::new();
    for dir in ["crates/core/tests/golden/mask", "fuzz/corpus/mask_walk"] {
        let Ok(rd) = std::fs::read_dir(format!("{root}/{dir}")) else { panic!("missing {dir}") };
        for e in rd.flatten() {
            files.push(e.path());
        }
    }
    files.sort();
    let maskers = maskers();
    let mut n = 0;
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else { continue };
        let text = match serde_json::from_slice::<Value>(&bytes) {
            Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
            // Not JSON: the fuzz target masks it as one JSON string.
            Err(_) => Value::String(String::from_utf8_lossy(&bytes).into_owned()).to_string(),
        };
        for m in &maskers {
            check(m, &text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
        n += 1;
    }
    assert!(n > 10, "only {n} inputs found");
}

#[test]
fn edge_cases_agree() {
    let m = all();
    let deep_string = {
        let mut s = json!({"email": "bob@example.com"}).to_string();
        for _ in 0..5 {
            s = json!({ "x": s }).to_string();
        }
        s
    };
    let cases = [
        r#"{"a@b.com": 1, "[REDACTED:EMAIL]": 2, "c@d.org": 3}"#.to_owned(),
        r#"{"value": {"stringValue": "hunter2"}, "key": "db.password"}"#.to_owned(),
        r#"{"key": "db.password", "value": {"stringValue": "hunter2"}}"#.to_owned(),
        r#"{"key": "db.password", "value": "x", "a": 1, "b": 2, "c": 3}"#.to_owned(),
        r#"{"password": "{\"a\": \"x\", \"b\": [1, null, true]}"}"#.to_owned(),
        r#"{"note": "{not json but call 415-555-2671}", "n": 4111111111111111}"#.to_owned(),
        r#"["\"{\\\"email\\\": \\\"alice@example.com\\\"}\"", "\"plain\""]"#.to_owned(),
        r#"{"s": "alice\\u0040example.com and frank%40example.net", "e": "caf\u00e9 \ud83d\ude00 <b>&amp;"}"#.to_owned(),
        json!({ "v": deep_string }).to_string(),
        "\"just text with alice@example.com\"".to_owned(),
        "  [ 1 , 2.5e3 , -0 , \"ok\" ]  ".to_owned(),
        format!("{}{}{}", "[".repeat(120), "\"bob@example.com\"", "]".repeat(120)),
        // A masked key's path met twice, apart: once for the key, once for its value (CI, stop 16).
        r#"{"key":"\"alice.smith@example.com\"","bob@example.com":"erin\\u0040example.org"}"#.to_owned(),
    ];
    for c in &cases {
        for m2 in maskers().iter().chain(std::iter::once(&m)) {
            check(m2, c).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn not_json_is_refused_like_serde() {
    let m = all();
    for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "\"\\x\"", "\"\\ud800\"", "nul", "[1] x", "\"a\u{1}b\"", "1.", "-"] {
        let mut out = b"kept".to_vec();
        assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad:?} is JSON to serde");
        assert!(m.apply_json(bad.as_bytes(), &key(), &mut out).is_err(), "{bad:?} accepted");
        assert_eq!(out, b"kept", "output appended on error");
    }
    let too_deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
    assert!(serde_json::from_str::<Value>(&too_deep).is_err());
    assert!(m.apply_json(too_deep.as_bytes(), &key(), &mut Vec::new()).is_err());
    let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
    assert!(serde_json::from_str::<Value>(&ok).is_ok());
    assert!(m.apply_json(ok.as_bytes(), &key(), &mut Vec::new()).is_ok());
}

const FRAGMENTS: &[&str] = &[
    "alice.smith@example.com", "call (415) 555-2671", "card 4111 1111 1111 1111", "SSN 123-45-6789",
    "DE89 3704 0044 0532 0130 00", "host 10.1.2.3", "AKIAIOSFODNN7EXAMPLE", "password=hunter2x9",
    "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "postgres://app:s3cr3t@db:5432/x", "Dear John Smith,",
    "v1.2.3", "550e8400-e29b-41d4-a716-446655440000", "2026-11-25T12:00:00Z", "<b>bold</b> & more",
    "the agent calls the tool", "Bearer abcdefghijklmnop0123456789", "erin\\u0040example.org",
    "[REDACTED:EMAIL]", "tab\there\nnewline \"quoted\"", "café Müller", "", "{", "[1,2", "ok",
];

const KEYS: &[&str] = &[
    "content", "role", "name", "password", "api_key", "key", "value", "stringValue", "bob@example.com",
    "note", "DB_PASSWORD", "max_tokens", "first_name", "x-api-key", "dob", "text",
];

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop::sample::select(FRAGMENTS), 0..4).prop_map(|v| v.join(" "))
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(Value::String),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => Just(json!(4111111111111111u64)),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
    ]
}

fn doc() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            3 => proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            4 => proptest::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())),
            // JSON in a string, one or two layers.
            2 => (inner.clone(), any::<bool>()).prop_map(|(v, twice)| {
                let s = v.to_string();
                Value::String(if twice { Value::String(s).to_string() } else { s })
            }),
            1 => (prop::sample::select(&["db.password", "gen_ai.prompt", "authorization"][..]), inner)
                .prop_map(|(k, v)| json!({"key": k, "value": v})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn generated_documents_agree(d in doc(), go in any::<bool>(), pretty in any::<bool>(), which in 0usize..4) {
        let text = if pretty { serde_json::to_string_pretty(&d).unwrap_or_default() } else { d.to_string() };
        let text = if go { go_escape(&text) } else { text };
        let ms = maskers();
        let m = &ms[which % ms.len()];
        if let Err(e) = check(m, &text) {
            prop_assert!(false, "{}", e);
        }
        // Idempotence: masking the served document again changes nothing and finds nothing.
        let all = all();
        let mut once = Vec::new();
        all.apply_json(text.as_bytes(), &key(), &mut once).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut twice = Vec::new();
        let again = all.apply_json(&once, &key(), &mut twice).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).map(|v| normalize(&v)).map_err(|e| TestCaseError::fail(e.to_string()));
        prop_assert_eq!(parse(&twice)?, parse(&once)?, "second pass changed {}", String::from_utf8_lossy(&once));
        prop_assert_eq!(again.total(), 0, "second pass found {:?} in {}", again, String::from_utf8_lossy(&once));
    }
}
