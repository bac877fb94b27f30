//! Trace metadata: the few facts row scope and search work on, read from the common trace shapes.
//!
//! Two shapes are understood first-class:
//! - agent-framework exports with a top-level `metadata` object (`tenant`, `project`, `agent`,
//!   `user`, `started_at` as RFC 3339);
//! - OpenTelemetry OTLP/JSON, where the resource attributes carry `tracegate.tenant` (or
//!   `tenant.id`), `tracegate.project` (or `service.namespace`), `service.name` (the agent) and
//!   `enduser.id` (or `user.id`), and the earliest span `startTimeUnixNano` is the start time.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::trace_id::TraceId;

/// Metadata keys row scope and search can name.
pub const META_KEYS: [&str; 4] = ["tenant", "project", "agent", "user"];

/// What the gateway knows about a trace without reading its body again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceMeta {
    pub trace_id: TraceId,
    /// `tenant`, `project`, `agent`, `user` — whichever the trace carries.
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
    /// Start of the trace, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_time")]
    pub started_at: Option<SystemTime>,
}

fn ser_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
        None => s.serialize_none(),
    }
}

impl TraceMeta {
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// Reads metadata from a trace document of either known shape; unknown shapes give only the id.
    pub fn extract(id: TraceId, doc: &Value) -> TraceMeta {
        let mut meta = TraceMeta { trace_id: id, fields: BTreeMap::new(), started_at: None };
        if let Some(m) = doc.get("metadata").and_then(Value::as_object) {
            for key in META_KEYS {
                if let Some(v) = m.get(key).and_then(Value::as_str) {
                    meta.fields.insert(key.to_owned(), v.to_owned());
                }
            }
            meta.started_at = m
                .get("started_at")
                .and_then(Value::as_str)
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok());
        }
        if let Some(rs) = doc.get("resourceSpans").and_then(Value::as_array) {
            extract_otlp(rs, &mut meta);
        }
        meta
    }
}

fn extract_otlp(resource_spans: &[Value], meta: &mut TraceMeta) {
    const ALIASES: [(&str, &[&str]); 4] = [
        ("tenant", &["tracegate.tenant", "tenant.id"]),
        ("project", &["tracegate.project", "service.namespace"]),
        ("agent", &["gen_ai.agent.name", "service.name"]),
        ("user", &["enduser.id", "user.id"]),
    ];
    let mut earliest: Option<u64> = None;
    for rs in resource_spans {
        let attrs = rs.pointer("/resource/attributes").and_then(Value::as_array);
        for (key, names) in ALIASES {
            if meta.fields.contains_key(key) {
                continue;
            }
            let found = names.iter().find_map(|n| attrs.and_then(|a| otlp_string_attr(a, n)));
            if let Some(v) = found {
                meta.fields.insert(key.to_owned(), v.to_owned());
            }
        }
        let spans = rs
            .get("scopeSpans")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|ss| ss.get("spans").and_then(Value::as_array))
            .flatten();
        for span in spans {
            // OTLP/JSON encodes 64-bit integers as strings; accept numbers too.
            let t = match span.get("startTimeUnixNano") {
                Some(Value::String(s)) => s.parse::<u64>().ok(),
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            };
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
    }
    if meta.started_at.is_none() {
        meta.started_at = earliest.map(|ns| UNIX_EPOCH + Duration::from_nanos(ns));
    }
}

/// The string value of an OTLP attribute (`{"key": K, "value": {"stringValue": V}}`).
pub fn otlp_string_attr<'a>(attrs: &'a [Value], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.get("key").and_then(Value::as_str) == Some(key))
        .and_then(|a| a.pointer("/value/stringValue"))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> TraceId {
        TraceId::parse(s).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn agent_shape() {
        let doc = json!({"metadata": {"tenant": "acme", "agent": "a1", "user": "u", "started_at": "2026-11-20T10:00:00Z", "other": 1}});
        let m = TraceMeta::extract(id("t"), &doc);
        assert_eq!(m.field("tenant"), Some("acme"));
        assert_eq!(m.field("agent"), Some("a1"));
        assert_eq!(m.field("project"), None);
        assert_eq!(m.started_at, humantime::parse_rfc3339("2026-11-20T10:00:00Z").ok());
    }

    #[test]
    fn otlp_shape() {
        let doc = json!({"resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "helpdesk"}},
                {"key": "tracegate.tenant", "value": {"stringValue": "acme"}}
            ]},
            "scopeSpans": [{"spans": [
                {"startTimeUnixNano": "1763632800000000000"},
                {"startTimeUnixNano": "1763632700000000000"}
            ]}]
        }]});
        let m = TraceMeta::extract(id("t"), &doc);
        assert_eq!(m.field("agent"), Some("helpdesk"));
        assert_eq!(m.field("tenant"), Some("acme"));
        assert_eq!(m.started_at, Some(UNIX_EPOCH + Duration::from_secs(1_763_632_700)));
    }
}
