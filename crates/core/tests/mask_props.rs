//! Never leaking: random traces with secrets and PII planted in random places are masked, and no
//! planted value survives, as raw bytes or in any string after decoding JSON-in-strings; decoys
//! (invalid-Luhn numbers, UUIDs, ISO dates, version strings, hex digests) are left alone.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tracegate_core::mask::{MaskKey, Masker, MaskingSpec};

/// A planted value: the bytes that must disappear, and the text that carries it (the needle
/// plus whatever context its detector needs, such as `password=`).
#[derive(Debug, Clone)]
struct Plant {
    needle: String,
    carrier: String,
}

fn alnum(n: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![b'a'..=b'z', b'A'..=b'Z', b'0'..=b'9'], n)
        .prop_map(|v| String::from_utf8(v).unwrap_or_default())
}

fn digits(n: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0u8..10, n)
}

fn luhn_complete(mut d: Vec<u8>) -> Vec<u8> {
    // append the check digit that makes the whole number pass Luhn
    let mut sum = 0u32;
    for (i, x) in d.iter().rev().enumerate() {
        let mut v = u32::from(*x);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    d.push(((10 - sum % 10) % 10) as u8);
    d
}

fn text_of(d: &[u8]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

fn iban_de(bban: &[u8]) -> String {
    let mut rem = 0u32;
    for &x in bban {
        rem = (rem * 10 + u32::from(x)) % 97;
    }
    for v in [13u32, 14, 0, 0] {
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    format!("DE{:02}{}", 98 - rem, text_of(bban))
}

fn plant() -> impl Strategy<Value = Plant> {
    let same = |s: String| Plant { needle: s.clone(), carrier: s };
    prop_oneof![
        ("[a-z]{3,8}", "[a-z]{2,6}", "[a-z]{3,9}", prop::sample::select(vec!["com", "org", "io", "de", "co.uk"]))
            .prop_map(move |(a, b, c, t)| same(format!("{a}.{b}@{c}.{t}"))),
        (prop::sample::select(vec![4u8, 5]), digits(14)).prop_map(move |(p, mut d)| {
            d.insert(0, p);
            let d = luhn_complete(d);
            let t = text_of(&d);
            same(if matches!(d[1] % 2, 0) { t } else { format!("{} {} {} {}", &t[0..4], &t[4..8], &t[8..12], &t[12..16]) })
        }),
        (1u32..666, 1u32..100, 1u32..10000).prop_map(move |(a, g, s)| same(format!("{a:03}-{g:02}-{s:04}"))),
        (200u32..1000, 200u32..1000, 0u32..10000).prop_map(move |(a, b, c)| same(format!("+1 {a} {b} {c:04}"))),
        (2u32..1000, 200u32..1000, 0u32..10000).prop_filter("area", |(a, _, _)| *a >= 200).prop_map(move |(a, b, c)| same(format!("({a}) {b}-{c:04}"))),
        digits(18).prop_map(move |d| same(iban_de(&d))),
        (1u32..224, 0u32..256, 0u32..256, 1u32..255).prop_map(move |(a, b, c, d)| same(format!("{a}.{b}.{c}.{d}"))),
        "[A-Z2-7]{16}".prop_map(move |s| same(format!("AKIA{s}"))),
        alnum(36).prop_map(move |s| same(format!("ghp_{s}"))),
        alnum(38).prop_map(move |s| same(format!("sk-proj-{s}1a"))),
        (alnum(20), alnum(30)).prop_map(move |(a, b)| same(format!("eyJ{a}.eyJ{b}.{a}{b}"))),
        alnum(12).prop_map(|s| Plant { needle: format!("{s}9q"), carrier: format!("password={s}9q") }),
        alnum(12).prop_map(|s| Plant { needle: format!("{s}Z7"), carrier: format!("postgres://svc:{s}Z7@db.internal:5432/app") }),
        alnum(64).prop_map(|s| Plant { needle: s.clone(), carrier: format!("-----BEGIN PRIVATE KEY-----\n{s}\n-----END PRIVATE KEY-----") }),
        alnum(30).prop_map(|s| Plant { needle: format!("{s}4x"), carrier: format!("Authorization: Bearer {s}4x") }),
    ]
}

/// Values that look a little like PII but are not, and must come out unchanged.
fn decoy() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(vec![4u8, 5]), digits(14)).prop_map(|(p, mut d)| {
            d.insert(0, p);
            let mut d = luhn_complete(d);
            if let Some(last) = d.last_mut() {
                *last = (*last + 1) % 10;
            }
            text_of(&d)
        }),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        (2000u32..2100, 1u32..13, 1u32..29, 0u32..24).prop_map(|(y, m, d, h)| format!("{y}-{m:02}-{d:02}T{h:02}:00:00Z")),
        (0u32..20, 0u32..50, 0u32..100).prop_map(|(a, b, c)| format!("v{a}.{b}.{c}")),
        (0u32..20, 0u32..50, 0u32..100).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        "[0-9a-f]{40}",
    ]
}

const WORDS: &[&str] = &["the", "agent", "called", "lookup", "with", "and", "then", "returned", "result", "for", "order", "customer"];

/// Prose (or code) around a carrier.
fn around(carrier: String) -> impl Strategy<Value = String> {
    (prop::sample::subsequence(WORDS.to_vec(), 0..4), prop::sample::subsequence(WORDS.to_vec(), 0..4), 0u8..4).prop_map(
        move |(a, b, style)| match style {
            0 => carrier.clone(),
            1 => format!("{} {} {}", a.join(" "), carrier, b.join(" ")),
            2 => format!("```python\nclient = connect(\"{}\")\n# {}\n```", carrier, b.join(" ")),
            _ => format!("{}:\n{}\n\n{}.", a.join(" "), carrier, b.join(" ")),
        },
    )
}

/// Where in the document a text goes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Value,
    Key,
    InArray,
    JsonInString,
    DoubleJsonInString,
}

fn slot() -> impl Strategy<Value = Slot> {
    prop_oneof![Just(Slot::Value), Just(Slot::Key), Just(Slot::InArray), Just(Slot::JsonInString), Just(Slot::DoubleJsonInString)]
}

fn place(text: String, slot: Slot, depth: usize) -> Value {
    let leaf = match slot {
        Slot::Value => json!({"content": text}),
        Slot::Key => {
            let mut m = Map::new();
            m.insert(text, json!(1));
            Value::Object(m)
        }
        Slot::InArray => json!(["x", text, 3]),
        Slot::JsonInString => json!({"stringValue": json!([{"role": "user", "content": text}]).to_string()}),
        Slot::DoubleJsonInString => {
            let inner = json!({"args": json!({"q": text}).to_string()}).to_string();
            json!({"stringValue": inner})
        }
    };
    (0..depth).fold(leaf, |v, i| if i % 2 == 0 { json!({"steps": [v]}) } else { json!({"output": v, "n": i}) })
}

/// Every string in `v` (keys too), with JSON-in-strings decoded recursively.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            out.push(s.clone());
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                if !inner.is_string() || inner.as_str() != Some(s) {
                    strings(&inner, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|e| strings(e, out)),
        Value::Object(m) => m.iter().for_each(|(k, e)| {
            out.push(k.clone());
            strings(e, out);
        }),
        _ => {}
    }
}

fn masker() -> Masker {
    MaskingSpec::default().compile().unwrap_or_else(|e| unreachable!("{e:?}"))
}

fn doc_strategy() -> impl Strategy<Value = (Vec<Plant>, Vec<String>, Vec<u8>, bool)> {
    let item = (plant(), slot(), 0usize..5).prop_flat_map(|(p, s, d)| (Just(p.clone()), around(p.carrier), Just(s), Just(d)));
    (proptest::collection::vec(item, 1..6), proptest::collection::vec(decoy(), 0..4), any::<bool>()).prop_map(|(items, decoys, escape)| {
        let mut members = Vec::new();
        let mut plants = Vec::new();
        for (i, (p, text, s, d)) in items.into_iter().enumerate() {
            members.push(json!({"i": i, "v": place(text, s, d)}));
            plants.push(p);
        }
        for (i, dec) in decoys.iter().enumerate() {
            members.push(json!({"id": dec, "note": format!("the agent returned {dec} for order"), "j": i}));
        }
        let mut bytes = serde_json::to_vec(&json!({"trace": members})).unwrap_or_default();
        if escape {
            // Write every `@` as `\u0040` (only strings can hold `@`, so the JSON stays valid).
            let s = String::from_utf8(bytes).unwrap_or_default();
            bytes = s.replace('@', "\\u0040").into_bytes();
        }
        (plants, decoys, bytes, escape)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_planted_value_survives((plants, decoys, bytes, _escape) in doc_strategy()) {
        let mut doc: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let m = masker();
        m.apply(&mut doc, &MaskKey(b"proptest-key-0123456789".to_vec()));
        let out = serde_json::to_string(&doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut all = Vec::new();
        strings(&doc, &mut all);
        for p in &plants {
            prop_assert!(!out.contains(&p.needle), "raw output holds {:?}: {}", p.needle, out);
            for s in &all {
                prop_assert!(!s.contains(&p.needle), "decoded string holds {:?}: {:?}", p.needle, s);
            }
        }
        for d in &decoys {
            let note = format!("the agent returned {d} for order");
            prop_assert!(all.contains(d), "decoy id {:?} was changed: {}", d, out);
            prop_assert!(all.contains(&note), "decoy in prose {:?} was changed: {}", d, out);
        }
    }

    #[test]
    fn never_panics_and_output_is_json(s in "\\PC{0,200}", nested in any::<bool>()) {
        let mut doc = if nested { json!({"a": [s.clone(), {"k": json!([s]).to_string()}]}) } else { json!(s) };
        masker().apply(&mut doc, &MaskKey::default());
        let text = serde_json::to_string(&doc).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(serde_json::from_str::<Value>(&text).is_ok());
    }
}
