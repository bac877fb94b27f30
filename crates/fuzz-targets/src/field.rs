//! `field_request`: a caller's requested JSONPaths, parsed with [`FieldRequest::parse_all`] and
//! served through the read pipeline's project-and-mask phase for one role of the example policy,
//! over an example trace or a document of the input's own.
//!
//! Input: line 1 names the role (an unknown name picks one by its bytes), line 2 the document
//! (`agent-1`, `agent-2`, `otlp-1`, or `inline`), then one JSONPath per line; a line `---` ends
//! the paths, and for `inline` the rest is the JSON document. Empty lines are skipped; no path
//! asks for the role's whole view.
//!
//! The slice-integrity property: whatever is served, no `deny` rule of the role selects
//! anything in it, even inside JSON-encoded strings; a refusal names the rule behind it.
//!
//! [`serve`] is the one place that calls the pipeline, so a change of the pipeline's API is
//! a change here only.

use std::sync::OnceLock;

use serde_json::Value;
use tracegate_core::mask::MaskKey;
use tracegate_core::pipeline::{project_and_mask, Candidate, Served, ServeError};
use tracegate_core::project::FieldRequest;
use tracegate_core::{Policy, Role};

/// The example policy, as the quickstart ships it.
pub fn example_policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        Policy::parse("examples/policy.toml", include_str!("../../../examples/policy.toml"))
            .unwrap_or_else(|e| unreachable!("the example policy parses: {e}"))
    })
}

/// The example traces, by name.
pub fn example_doc(name: &str) -> Option<Value> {
    static DOCS: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        [
            ("agent-1", include_str!("../../../examples/traces/demo-agent-1.json")),
            ("agent-2", include_str!("../../../examples/traces/demo-agent-2.json")),
            ("otlp-1", include_str!("../../../examples/traces/demo-otlp-1.json")),
        ]
        .into_iter()
        .map(|(n, t)| (n, serde_json::from_str(t).unwrap_or_else(|e| unreachable!("example trace {n}: {e}"))))
        .collect()
    });
    docs.iter().find(|(n, _)| *n == name).map(|(_, d)| d.clone())
}

/// The key the fuzz targets pseudonymise with (long enough for `hash`).
pub fn mask_key() -> MaskKey {
    MaskKey(b"fuzz-mask-key-0123456789abcdef".to_vec())
}

/// Serves `doc` to `role` as the gateway's read does after the decide phase: projected to the
/// role's view (or to `fields`, if within it) and masked.
pub fn serve(role: &Role, doc: Value, fields: Option<&[FieldRequest]>) -> Result<Served, ServeError> {
    let candidates = [Candidate { role, rules: vec![role.rule("actions")] }];
    project_and_mask(&candidates, doc, fields, &mask_key())
}

/// Panics if any `deny` rule of `role` selects a node of `body`, looking inside JSON-encoded
/// strings as projection does. Sound for deny rules that select by name or filter (all of the
/// example policy's), since projection only removes nodes and never renames them.
pub fn assert_no_denied(role: &Role, body: &Value) {
    let mut expanded = body.clone();
    expand_json_strings(&mut expanded);
    for rule in &role.fields.deny {
        let hits = rule.path.query_located(&expanded);
        let at: Vec<String> = hits.locations().map(|l| l.to_string()).collect();
        assert!(at.is_empty(), "role `{}` was served {at:?}, which `{}` denies", role.name, rule.expr);
    }
}

/// Decodes string values holding a JSON object or array, recursively. Written apart from the
/// projection's own decoding so that the check does not share its mistakes.
fn expand_json_strings(v: &mut Value) {
    match v {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                if let Ok(inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s) {
                    *v = inner;
                    expand_json_strings(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(expand_json_strings),
        Value::Object(m) => m.values_mut().for_each(expand_json_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// True when the read was served.
pub fn field_request(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let policy = example_policy();
    let mut lines = text.split('\n');
    let role_line = lines.next().unwrap_or_default().trim();
    let Some(role) = policy.role(role_line).or_else(|| pick(&policy.roles, role_line)) else { return false };
    let doc_line = lines.next().unwrap_or_default().trim();
    let mut paths = Vec::new();
    for line in lines.by_ref() {
        if line == "---" {
            break;
        }
        if !line.is_empty() {
            paths.push(line);
        }
    }
    let doc = match example_doc(doc_line) {
        Some(d) => d,
        None => {
            let rest: Vec<&str> = lines.collect();
            match serde_json::from_str::<Value>(&rest.join("\n")) {
                Ok(d) => d,
                Err(_) => Value::Object(serde_json::Map::new()),
            }
        }
    };
    let requested = match FieldRequest::parse_all(paths.iter().copied()) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return false;
        }
    };
    let fields = if requested.is_empty() { None } else { Some(requested.as_slice()) };
    match serve(role, doc, fields) {
        Ok(served) => {
            assert_eq!(served.role, role.name);
            assert_no_denied(role, &served.body);
            let text = serde_json::to_string(&served.body).unwrap_or_else(|e| unreachable!("{e}"));
            assert!(serde_json::from_str::<Value>(&text).is_ok(), "served body is not valid JSON");
            true
        }
        Err(ServeError::Denied(d)) => {
            assert!(!d.rules.is_empty(), "refusal `{}` names no rule", d.message);
            assert_eq!(d.role.as_deref(), Some(role.name.as_str()));
            false
        }
        // Over the cost limits for this view: refused before evaluation, nothing to check.
        Err(ServeError::TooCostly(_)) => false,
        // The document is a parsed value: never reached.
        Err(ServeError::NotJson(_)) => false,
    }
}

/// A role chosen by the bytes of `name`, so any first line reaches some role.
fn pick<'a>(roles: &'a [Role], name: &str) -> Option<&'a Role> {
    let n = roles.len();
    if n == 0 {
        return None;
    }
    let sum = name.bytes().fold(0usize, |a, b| a.wrapping_add(usize::from(b)));
    roles.get(sum % n)
}

#[cfg(test)]
mod tests {
    use std::panic::catch_unwind;

    use serde_json::json;

    use super::*;

    fn support() -> &'static Role {
        example_policy().role("support").unwrap_or_else(|| unreachable!("the example policy has `support`"))
    }

    #[test]
    fn the_slice_check_sees_denied_nodes_also_inside_encoded_strings() {
        assert!(catch_unwind(|| assert_no_denied(support(), &json!({"steps": [{"reasoning": "x"}]}))).is_err());
        let encoded = json!({"a": "[{\"parts\": [{\"type\": \"tool_call\"}]}]"});
        assert!(catch_unwind(|| assert_no_denied(support(), &encoded)).is_err());
        assert_no_denied(support(), &json!({"final_output": "fine", "x": "{\"parts\": [{\"type\": \"text\"}]}"}));
    }
}
