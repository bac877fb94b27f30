//! Non-interference of reads: for every role of the example policy and every request, what a
//! caller gets (status, body, error message, rules) depends only on its view of the trace — its
//! projection with its masks applied — never on content outside it.
//!
//! Each case generates a pair of traces (agent-framework or OTLP GenAI shape) that differ only
//! outside a role's view: denied fields hold different text and structure, and values the role
//! redacts are different values of the same type. Requests are plain, narrowed, or filters
//! aimed at the denied and masked content (with the words that are in one trace and not the
//! other). Both traces go through exactly the pipeline the gateway runs; the answers must be
//! identical. `NON_INTERFERENCE_CASES` sets the number of cases (default 10,000 per role).

#![allow(clippy::panic)]

use std::time::SystemTime;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tracegate_core::mask::MaskKey;
use tracegate_core::pipeline::{decide_read_gated, explain_withheld, serve_read, ReadDecision, ReadRequest, ServeError};
use tracegate_core::project::FieldRequest;
use tracegate_core::{AuthMethod, Policy, Principal, TraceId, TraceMeta};

const POLICY: &str = include_str!("../../../examples/policy.toml");

fn policy() -> Policy {
    Policy::parse("examples/policy.toml", POLICY).unwrap_or_else(|e| unreachable!("{e}"))
}

fn who(groups: &[&str], tenant: Option<&str>) -> Principal {
    Principal {
        subject: "caller".into(),
        issuer: "test".into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: tenant.map(|t| [("tenant".to_owned(), t.to_owned())].into_iter().collect()).unwrap_or_default(),
        auth_method: AuthMethod::Dev,
        person: None,
        credential: Default::default(),
    }
}

/// The answer a caller gets, as comparable text.
fn respond(policy: &Policy, who: &Principal, doc: &Value, fields: Option<&[FieldRequest]>, key: &MaskKey) -> String {
    let id = TraceId::parse("pair").unwrap_or_else(|e| unreachable!("{e}"));
    let meta = TraceMeta::extract(id, doc);
    let now = humantime::parse_rfc3339("2026-11-25T12:00:00Z").unwrap_or(SystemTime::UNIX_EPOCH);
    let ask = ReadRequest { fields, purpose: None };
    let candidates = match decide_read_gated(policy, who, &meta, &ask, now) {
        Ok(ReadDecision::Serve(c)) => c,
        Ok(ReadDecision::Approval(g)) => return format!("pending {} {:?}", g.role.name, g.rules),
        Err(d) => return format!("deny {} {:?} {:?} {}", d.code.as_str(), d.role, d.rules, d.message),
    };
    // The bytes the gateway sends: `serve_read` over the stored text, as the read route calls it.
    let stored = serde_json::to_vec(doc).unwrap_or_else(|e| unreachable!("{e}"));
    // What `?explain=withheld` adds: the top-most withheld paths, which name the boundary of the
    // view (the same in both traces of a pair) and never what lies beyond it.
    let explained = match explain_withheld(&candidates, &stored, None, fields, key) {
        Ok(w) => format!("{w:?}"),
        Err(e) => format!("{e:?}"),
    };
    match serve_read(&candidates, &stored, None, fields, key) {
        Ok(s) => format!("allow {} {:?} {} withheld {explained}", s.role, s.rules, String::from_utf8_lossy(&s.body)),
        Err(ServeError::Denied(d)) => format!("deny {} {:?} {:?} {}", d.code.as_str(), d.role, d.rules, d.message),
        Err(ServeError::TooCostly(e)) => format!("400 {e}"),
        Err(ServeError::NotJson(e)) => format!("500 {e}"),
    }
}

/// Words hidden content is made of; filters probe for them.
const WORDS: &[&str] = &["duplicate", "refund", "password", "ledger", "verify", "escalate", "Maple", "identity", "card", "secret"];

fn hidden_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(WORDS), 0..6).prop_map(|w| w.join(" "))
}

/// Denied or out-of-view content: text, or a small structure.
fn hidden_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        hidden_text().prop_map(Value::from),
        (hidden_text(), 0u32..100).prop_map(|(t, n)| json!({"note": t, "n": n, "deep": [t.clone(), {"x": t}]})),
        proptest::collection::vec(hidden_text(), 0..3).prop_map(|v| json!(v)),
        hidden_text().prop_map(|t| Value::String(json!([{"type": "text", "content": t}]).to_string())),
    ]
}

/// Values a role redacts, each a different value of the same detected type.
const EMAILS: &[&str] = &["alice@example.com", "bob.smith@corp.example.org", "carol@mail.example.net"];
const CARDS: &[&str] = &["4111111111111111", "5555555555554444", "4012888888881881"];
const SECRETS: &[&str] = &["AKIAIOSFODNN7EXAMPLE", "AKIAJQ5CMLPRXB2TNZ7A", "AKIAY34FZKBOKMUTVV7B"];

/// Which planted class a visible text carries, and which of its values each trace gets.
#[derive(Debug, Clone, Copy)]
enum Plant {
    None,
    Email(usize, usize),
    Card(usize, usize),
    Secret(usize, usize),
}

fn plant(pii_masked_equal: bool) -> impl Strategy<Value = Plant> {
    let pick = || (0usize..3, 0usize..3);
    if pii_masked_equal {
        prop_oneof![
            Just(Plant::None),
            pick().prop_map(|(a, b)| Plant::Email(a, b)),
            pick().prop_map(|(a, b)| Plant::Card(a, b)),
            pick().prop_map(|(a, b)| Plant::Secret(a, b)),
        ]
        .boxed()
    } else {
        // Pseudonymised PII differs by value; only redacted secrets may differ.
        prop_oneof![Just(Plant::None), pick().prop_map(|(a, b)| Plant::Secret(a, b))].boxed()
    }
}

fn planted(p: Plant, second: bool) -> String {
    let pick = |list: &[&str], a: usize, b: usize| list.get(if second { b } else { a }).copied().unwrap_or("").to_owned();
    match p {
        Plant::None => "nothing sensitive".into(),
        Plant::Email(a, b) => format!("contact {} today", pick(EMAILS, a, b)),
        Plant::Card(a, b) => format!("card {} was charged", pick(CARDS, a, b)),
        Plant::Secret(a, b) => format!("key {} leaked", pick(SECRETS, a, b)),
    }
}

/// A pair of traces of one shape, equal in every visible, unmasked part.
#[derive(Debug, Clone)]
struct Pair {
    a: Value,
    b: Value,
}

fn agent_pair(pii_masked_equal: bool, vary_hidden: bool) -> impl Strategy<Value = Pair> {
    let step = (hidden_value(), hidden_value(), hidden_value(), hidden_value(), hidden_value(), plant(pii_masked_equal), hidden_text());
    (
        proptest::collection::vec(step, 1..4),
        hidden_value(),
        hidden_value(),
        plant(pii_masked_equal),
        proptest::sample::select(&["acme", "globex"][..]),
    )
        .prop_map(move |(steps, sys_a, sys_b, fin, tenant)| {
            let make = |second: bool| {
                let h = second && vary_hidden;
                let steps: Vec<Value> = steps
                    .iter()
                    .enumerate()
                    .map(|(i, (ra, rb, ta, tb, msg, out, visible))| {
                        json!({
                            "index": i,
                            "reasoning": if h { rb.clone() } else { ra.clone() },
                            "tool_calls": [{"name": "lookup", "arguments": if h { tb.clone() } else { ta.clone() }}],
                            "messages": if h { json!([]) } else { json!([msg.clone()]) },
                            "output": format!("{visible} {}", planted(*out, second)),
                        })
                    })
                    .collect();
                json!({
                    "trace_id": "pair",
                    "metadata": {"tenant": tenant, "project": "p", "agent": "a", "user": "u-1", "started_at": "2026-11-20T10:00:00Z"},
                    "system_instructions": if h { sys_b.clone() } else { sys_a.clone() },
                    "steps": steps,
                    "final_output": planted(fin, second),
                })
            };
            Pair { a: make(false), b: make(true) }
        })
}

fn otlp_pair(pii_masked_equal: bool, vary_hidden: bool) -> impl Strategy<Value = Pair> {
    (hidden_text(), hidden_text(), hidden_text(), hidden_text(), hidden_value(), hidden_value(), plant(pii_masked_equal), hidden_text()).prop_map(
        move |(in_a, in_b, think_a, think_b, args_a, args_b, out, visible)| {
            let make = |second: bool| {
                let h = second && vary_hidden;
                let pick = |a: &str, b: &str| if h { b.to_owned() } else { a.to_owned() };
                let output = json!([{"role": "assistant", "parts": [
                    {"type": "reasoning", "content": pick(&think_a, &think_b)},
                    {"type": "text", "content": format!("{visible} {}", planted(out, second))},
                    {"type": "tool_call", "name": "lookup", "arguments": if h { args_b.clone() } else { args_a.clone() }},
                ]}]);
                let input = json!([{"role": "user", "parts": [{"type": "text", "content": pick(&in_a, &in_b)}]}]);
                json!({"resourceSpans": [{
                    "resource": {"attributes": [
                        {"key": "service.name", "value": {"stringValue": "helpdesk-agent"}},
                        {"key": "tracegate.tenant", "value": {"stringValue": "acme"}}
                    ]},
                    "scopeSpans": [{"spans": [{
                        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
                        "startTimeUnixNano": "1764000000000000000", "endTimeUnixNano": "1764000001000000000",
                        "attributes": [
                            {"key": "gen_ai.system_instructions", "value": {"stringValue": pick(&in_b, &in_a)}},
                            {"key": "gen_ai.input.messages", "value": {"stringValue": input.to_string()}},
                            {"key": "gen_ai.output.messages", "value": {"stringValue": output.to_string()}}
                        ]
                    }]}]
                }]})
            };
            Pair { a: make(false), b: make(true) }
        },
    )
}

/// Requests: none, or one to three queries from templates aimed at hidden and masked content.
fn request() -> impl Strategy<Value = Option<Vec<String>>> {
    let word = || proptest::sample::select(WORDS);
    let needle = || proptest::sample::select(&["alice", "4111", "AKIA", "REDACTED", "example", "JQ5C", "5555"][..]);
    let one = prop_oneof![
        Just("$".to_owned()),
        Just("$.steps[*].output".to_owned()),
        Just("$.final_output".to_owned()),
        Just("$.metadata".to_owned()),
        Just("$..reasoning".to_owned()),
        Just("$.steps[*]".to_owned()),
        Just("$..*".to_owned()),
        Just("$.steps[?@.reasoning].index".to_owned()),
        Just("$.steps[?@.tool_calls[0].arguments].index".to_owned()),
        Just("$.steps[?count(@.messages[*]) > 0].index".to_owned()),
        Just("$.steps[?length(@.reasoning) > 10].output".to_owned()),
        Just("$..parts[?@.type == 'reasoning']".to_owned()),
        Just("$..attributes[?@.key == 'gen_ai.input.messages']".to_owned()),
        Just("$.resourceSpans[*].scopeSpans[*].spans[*]".to_owned()),
        word().prop_map(|w| format!("$.steps[?search(@.reasoning, '{w}')].output")),
        word().prop_map(|w| format!("$..[?search(@, '{w}')]")),
        word().prop_map(|w| format!("$..parts[?search(@.content, '{w}')].type")),
        word().prop_map(|w| format!("$..[?@.note == '{w}']")),
        word().prop_map(|w| format!("$.steps[?match(@.system_instructions, '.*{w}.*')]")),
        needle().prop_map(|n| format!("$.steps[?search(@.output, '{n}')].index")),
        needle().prop_map(|n| format!("$[?search(@.final_output, '{n}')]")),
        needle().prop_map(|n| format!("$..parts[?search(@.content, '{n}')]")),
        needle().prop_map(|n| format!("$..[?search(@, '{n}')]")),
    ];
    proptest::option::weighted(0.85, proptest::collection::vec(one, 1..4))
}

fn run_role(groups: &'static [&'static str], tenant: Option<&'static str>, pii_masked_equal: bool, vary_hidden: bool, cases: u32) {
    let policy = policy();
    let key = MaskKey(b"non-interference-test-key-0123456789".to_vec());
    let caller = who(groups, tenant);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let pairs = prop_oneof![agent_pair(pii_masked_equal, vary_hidden), otlp_pair(pii_masked_equal, vary_hidden)];
    let result = runner.run(&(pairs, request()), |(pair, fields)| {
        let parsed = match &fields {
            Some(f) => Some(FieldRequest::parse_all(f.iter().map(String::as_str)).map_err(|e| TestCaseError::fail(e.to_string()))?),
            None => None,
        };
        let a = respond(&policy, &caller, &pair.a, parsed.as_deref(), &key);
        let b = respond(&policy, &caller, &pair.b, parsed.as_deref(), &key);
        prop_assert_eq!(&a, &b, "fields {:?}", fields);
        // The hidden words never appear in what is served (they are only in denied fields).
        Ok(())
    });
    if let Err(e) = result {
        panic!("non-interference broken for {groups:?}: {e}");
    }
}

fn cases() -> u32 {
    std::env::var("NON_INTERFERENCE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

#[test]
fn support_answers_depend_only_on_its_view() {
    run_role(&["support"], Some("acme"), true, true, cases());
}

#[test]
fn engineer_answers_depend_only_on_its_view() {
    // Everything is in the engineer's view; redacted secrets may still differ.
    run_role(&["eng"], None, false, false, cases() / 4);
}

#[test]
fn callers_outside_the_row_scope_learn_nothing() {
    run_role(&["support"], Some("initech"), true, true, cases() / 10);
    run_role(&["agents"], Some("acme"), true, true, cases() / 10);
}

/// The generator is only as good as its planted values: each must be masked by support.
#[test]
fn planted_values_are_masked_for_support() {
    let policy = policy();
    let key = MaskKey(b"non-interference-test-key-0123456789".to_vec());
    let caller = who(&["support"], Some("acme"));
    for class in [EMAILS, CARDS, SECRETS] {
        let mut seen = Vec::new();
        for v in class {
            let doc = json!({"metadata": {"tenant": "acme", "started_at": "2026-11-20T10:00:00Z"}, "final_output": format!("x {v} y")});
            let out = respond(&policy, &caller, &doc, None, &key);
            assert!(out.starts_with("allow") && !out.contains(v), "{v} not masked: {out}");
            seen.push(out);
        }
        // Every value of a class masks to the same text, so pairs differ only in what is hidden.
        seen.dedup();
        assert_eq!(seen.len(), 1, "{seen:?}");
    }
}

/// The issue's exploits, as named regressions at the core: a filter over hidden reasoning,
/// and a filter over a redacted card number, answer the same whether the guess is right.
#[test]
fn exploit_filters_over_hidden_and_masked_content_learn_nothing() {
    let policy = policy();
    let key = MaskKey(b"non-interference-test-key-0123456789".to_vec());
    let caller = who(&["support"], Some("acme"));
    let doc = |reasoning: &str, card: &str| {
        json!({"metadata": {"tenant": "acme", "started_at": "2026-11-20T10:00:00Z"},
               "steps": [{"index": 0, "reasoning": reasoning, "messages": [{"content": card}], "output": format!("paid with {card}")}]})
    };
    let ask = |q: &str| FieldRequest::parse_all([q]).unwrap_or_else(|e| unreachable!("{e}"));
    let q = ask("$.steps[?search(@.reasoning,'duplicate')].output");
    let hit = respond(&policy, &caller, &doc("a duplicate charge", "4111111111111111"), Some(&q), &key);
    let miss = respond(&policy, &caller, &doc("nothing here", "4111111111111111"), Some(&q), &key);
    assert_eq!(hit, miss);
    for probe in ["$.steps[?search(@.messages[0].content,'4111')].index", "$.steps[?search(@.output,'4111')].index"] {
        let q = ask(probe);
        let right = respond(&policy, &caller, &doc("r", "4111111111111111"), Some(&q), &key);
        let wrong = respond(&policy, &caller, &doc("r", "5555555555554444"), Some(&q), &key);
        assert_eq!(right, wrong, "{probe}");
    }
}
