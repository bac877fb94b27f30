//! Projection: views, deny holes, JSON-in-string addressing, and refusals of wider requests.

use serde_json::json;

use super::*;
use crate::policy::Policy;

fn policy(fields: &str) -> Policy {
    let text = format!("[roles.r]\ngroups = [\"g\"]\nactions = [\"read\"]\n[roles.r.fields]\n{fields}\n");
    Policy::parse("t", &text).unwrap_or_else(|e| unreachable!("{e}"))
}

fn req(exprs: &[&str]) -> Vec<FieldRequest> {
    FieldRequest::parse_all(exprs.iter().copied()).unwrap_or_else(|e| unreachable!("{e}"))
}

fn doc() -> Value {
    json!({
        "a": 1,
        "steps": [
            {"output": "o0", "reasoning": "r0", "n": 0},
            {"output": "o1", "reasoning": "r1", "n": 1}
        ],
        "attrs": [
            {"key": "msgs", "value": "[{\"type\":\"text\",\"content\":\"hi\"},{\"type\":\"reasoning\",\"content\":\"secret thoughts\"}]"},
            {"key": "other", "value": "x"}
        ]
    })
}

#[test]
fn everything_view_is_identity() {
    let p = policy("allow = [\"$\"]");
    let r = &p.roles[0];
    assert_eq!(project(doc(), r, None).ok(), Some(doc()));
}

#[test]
fn allow_minus_deny() {
    let p = policy("allow = [\"$.steps\"]\ndeny = [\"$..reasoning\"]");
    let out = project(doc(), &p.roles[0], None).unwrap_or_else(|d| unreachable!("{d:?}"));
    assert_eq!(out, json!({"steps": [{"output": "o0", "n": 0}, {"output": "o1", "n": 1}]}));
}

#[test]
fn deny_reaches_inside_json_strings_and_reencodes() {
    let p = policy("allow = [\"$.attrs[?@.key == 'msgs']\"]\ndeny = [\"$..[?@.type == 'reasoning']\"]");
    let out = project(doc(), &p.roles[0], None).unwrap_or_else(|d| unreachable!("{d:?}"));
    assert_eq!(out, json!({"attrs": [{"key": "msgs", "value": "[{\"type\":\"text\",\"content\":\"hi\"}]"}]}));
    assert!(!out.to_string().contains("secret thoughts"));
}

#[test]
fn narrower_request_is_served() {
    let p = policy("allow = [\"$.steps\"]\ndeny = [\"$..reasoning\"]");
    let out = project(doc(), &p.roles[0], Some(&req(&["$.steps[*].output"]))).unwrap_or_else(|d| unreachable!("{d:?}"));
    assert_eq!(out, json!({"steps": [{"output": "o0"}, {"output": "o1"}]}));
}

#[test]
fn request_outside_allow_is_refused() {
    let p = policy("allow = [\"$.steps\"]");
    let d = project(doc(), &p.roles[0], Some(&req(&["$.steps[0]", "$.a"]))).err();
    let d = d.unwrap_or_else(|| unreachable!("must be refused"));
    assert_eq!(d.code, DenyCode::FieldOutsideView);
    assert_eq!(d.rules, ["roles.r.fields.allow"]);
    assert!(d.message.contains("$['a']"), "{}", d.message);
}

#[test]
fn request_containing_or_inside_deny_is_refused() {
    let p = policy("allow = [\"$\"]\ndeny = [\"$.a\", \"$..reasoning\"]");
    for asked in ["$.steps[1]", "$..reasoning", "$", "$.steps[*].reasoning", "$..*"] {
        let d = project(doc(), &p.roles[0], Some(&req(&[asked]))).err();
        let d = d.unwrap_or_else(|| unreachable!("{asked} must be refused"));
        assert_eq!(d.code, DenyCode::FieldDenied, "{asked}");
    }
    let ok = project(doc(), &p.roles[0], Some(&req(&["$.steps[*].output", "$.steps[0].n"])));
    assert!(ok.is_ok());
}

#[test]
fn denied_node_inside_json_string_blocks_a_request_for_the_string() {
    let p = policy("allow = [\"$\"]\ndeny = [\"$..[?@.type == 'reasoning']\"]");
    let d = project(doc(), &p.roles[0], Some(&req(&["$.attrs[0].value"]))).err();
    assert_eq!(d.map(|d| d.code), Some(DenyCode::FieldDenied));
}

#[test]
fn empty_allow_sees_nothing() {
    let text = "[roles.r]\ngroups = [\"g\"]\nactions = [\"search\"]\n";
    let p = Policy::parse("t", text).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(project(doc(), &p.roles[0], None).ok(), Some(json!({})));
}

#[test]
fn bad_requested_paths_are_typed_errors() {
    assert!(matches!(FieldRequest::parse_all(["$.x["]), Err(FieldRequestError::Syntax { .. })));
    assert!(matches!(FieldRequest::parse_all(vec!["$"; 33]), Err(FieldRequestError::TooMany)));
    let long = format!("$.{}", "a".repeat(600));
    assert!(matches!(FieldRequest::parse_all([long.as_str()]), Err(FieldRequestError::TooLong)));
}
