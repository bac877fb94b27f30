//! `trace_meta`: [`TraceMeta::extract`] on any JSON document, agent or OTLP shaped or neither.
//! Row scope and search trust what it returns, so it must never invent a value: every field it
//! reports is one of the four metadata keys and holds a string that the document carries, and
//! the result always serializes (search responses and the index are built from it).

use serde_json::Value;
use tracegate_core::meta::META_KEYS;
use tracegate_core::{TraceId, TraceMeta};

/// True when some metadata was found.
pub fn trace_meta(data: &[u8]) -> bool {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else { return false };
    let Ok(id) = TraceId::parse("fuzz-trace-1") else { unreachable!("a valid id literal") };
    let meta = TraceMeta::extract(id.clone(), &doc);
    assert_eq!(meta.trace_id, id);
    let mut strings = Vec::new();
    collect_strings(&doc, &mut strings);
    for (k, v) in &meta.fields {
        assert!(META_KEYS.contains(&k.as_str()), "unknown metadata key `{k}`");
        assert!(strings.contains(&v.as_str()), "`{k}` = {v:?} is not a string of the document");
    }
    // Extraction is a function of the document.
    assert_eq!(TraceMeta::extract(id, &doc), meta);
    let json = serde_json::to_value(&meta).unwrap_or_else(|e| unreachable!("trace metadata must serialize: {e}"));
    assert_eq!(json.get("trace_id").and_then(Value::as_str), Some("fuzz-trace-1"));
    for (k, v) in &meta.fields {
        assert_eq!(json.get(k).and_then(Value::as_str), Some(v.as_str()), "`{k}` lost in serialization");
    }
    assert_eq!(json.get("started_at").is_some(), meta.started_at.is_some());
    !meta.fields.is_empty() || meta.started_at.is_some()
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|c| collect_strings(c, out)),
        Value::Object(m) => m.values().for_each(|c| collect_strings(c, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
