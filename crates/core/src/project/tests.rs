//! Projection: views, deny holes, JSON-in-string addressing, and refusals of wider requests.

use serde_json::json;

use super::*;
use crate::jsonpath::Limits;
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
    assert!(d.message.contains("`$.a`"), "{}", d.message);
}

#[test]
fn requests_that_can_only_reach_denied_fields_are_refused() {
    let p = policy("allow = [\"$\"]\ndeny = [\"$.a\", \"$..reasoning\"]");
    for asked in ["$..reasoning", "$.steps[*].reasoning", "$.a", "$.steps[0].reasoning.x"] {
        let d = project(doc(), &p.roles[0], Some(&req(&[asked]))).err();
        let d = d.unwrap_or_else(|| unreachable!("{asked} must be refused"));
        assert_eq!(d.code, DenyCode::FieldDenied, "{asked}");
    }
    // Wider requests are served over the view: denied parts are simply not in it.
    let out = project(doc(), &p.roles[0], Some(&req(&["$.steps[1]"]))).unwrap_or_else(|d| unreachable!("{d:?}"));
    assert_eq!(out, json!({"steps": [{"output": "o1", "n": 1}]}));
    let ok = project(doc(), &p.roles[0], Some(&req(&["$.steps[*].output", "$.steps[0].n"])));
    assert_eq!(ok.ok(), Some(json!({"steps": [{"output": "o0", "n": 0}, {"output": "o1"}]})));
}

#[test]
fn filters_see_the_view_not_the_stored_document() {
    let p = policy("allow = [\"$.steps\"]\ndeny = [\"$..reasoning\"]");
    // The filter tests a denied field: over the view it is absent, whatever it holds.
    for word in ["r0", "nothing"] {
        let out = project(doc(), &p.roles[0], Some(&req(&[&format!("$.steps[?search(@.reasoning, '{word}')].output")])));
        assert_eq!(out.ok(), Some(json!({})), "{word}");
    }
}

#[test]
fn denied_node_inside_json_string_is_cut_from_a_request_for_the_string() {
    let p = policy("allow = [\"$\"]\ndeny = [\"$..[?@.type == 'reasoning']\"]");
    let out = project(doc(), &p.roles[0], Some(&req(&["$.attrs[0].value"]))).unwrap_or_else(|d| unreachable!("{d:?}"));
    assert_eq!(out, json!({"attrs": [{"value": "[{\"type\":\"text\",\"content\":\"hi\"}]"}]}));
}

#[test]
fn query_limits_are_enforced_before_evaluation() {
    let e = FieldRequest::parse_all(["$..a..b..c"]).err();
    assert!(matches!(e, Some(FieldRequestError::Limit { limit: "max_descendants", .. })), "{e:?}");
    let e = FieldRequest::parse_all(["$[?@..a[?@..b]]"]).err();
    assert!(matches!(e, Some(FieldRequestError::Limit { .. })), "{e:?}");
    let long = format!("$[?search(@.a, '{}')]", "x".repeat(200));
    let e = FieldRequest::parse_all([long.as_str()]).err();
    assert!(matches!(e, Some(FieldRequestError::Limit { limit: "max_literal_bytes", .. })), "{e:?}");
    let e = FieldRequest::parse_all(["$[?match(@.a, @.b)]"]).err();
    assert!(matches!(e, Some(FieldRequestError::Limit { limit: "regex_literal", .. })), "{e:?}");
    // A descendant inside a filter over a large view is refused by the node estimate.
    let big = json!({"items": (0..2000).map(|i| json!({"a": {"b": {"c": i}}})).collect::<Vec<_>>()});
    let p = policy("allow = [\"$\"]");
    let r = req(&["$..items[?@..c]"]);
    let v = view(big, &p.roles[0]);
    let limits = Limits { max_evaluated_nodes: 10_000, ..Limits::DEFAULT };
    assert!(narrow(v, &r, &limits).is_err());
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
