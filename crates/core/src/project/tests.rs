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

fn withheld_of(doc: Value, fields: &str, cap: usize) -> (Vec<String>, u64) {
    let p = policy(fields);
    let w = withheld(doc, &p.roles[0], cap);
    (w.paths.iter().map(|s| crate::path_trie::display(s)).collect(), w.more)
}

#[test]
fn withheld_lists_the_top_most_paths_the_view_leaves_out() {
    let (paths, more) = withheld_of(doc(), "allow = [\"$.steps\"]\ndeny = [\"$..reasoning\"]", 64);
    assert_eq!(paths, ["$['a']", "$['steps'][0]['reasoning']", "$['steps'][1]['reasoning']", "$['attrs']"]);
    assert_eq!(more, 0);
    // Inside a JSON-in-string: the denied element of the decoded array, at its stored index.
    let (paths, _) = withheld_of(doc(), "allow = [\"$.attrs[?@.key == 'msgs']\"]\ndeny = [\"$..[?@.type == 'reasoning']\"]", 64);
    assert_eq!(paths, ["$['a']", "$['steps']", "$['attrs'][0]['value'][1]", "$['attrs'][1]"]);
    // Everything shown: nothing listed; nothing allowed: every top-level member.
    assert_eq!(withheld_of(doc(), "allow = [\"$\"]", 64).0, Vec::<String>::new());
    assert_eq!(withheld_of(doc(), "allow = [\"$.nothing\"]", 64).0, ["$['a']", "$['steps']", "$['attrs']"]);
    assert_eq!(withheld_of(doc(), "allow = [\"$\"]\ndeny = [\"$\"]", 64).0, ["$"]);
}

#[test]
fn withheld_is_capped_and_counts_the_rest() {
    let big = json!({"keep": 1, "items": (0..10).map(|i| json!({"secret": i, "ok": i})).collect::<Vec<_>>()});
    let (paths, more) = withheld_of(big, "allow = [\"$\"]\ndeny = [\"$.items[*].secret\"]", 3);
    assert_eq!(paths, ["$['items'][0]['secret']", "$['items'][1]['secret']", "$['items'][2]['secret']"]);
    assert_eq!(more, 7);
}

#[test]
fn withheld_never_holds_a_value_or_anything_below_a_withheld_node() {
    // Two documents that differ only inside withheld nodes (values and structure) list the same
    // paths, and no listed path carries any of that content.
    let make = |secret: &str| {
        json!({
            "steps": [{"output": "o", "reasoning": {"plan": secret, secret: [secret]}}],
            "hidden": {secret: secret},
        })
    };
    let fields = "allow = [\"$.steps\"]\ndeny = [\"$..reasoning\"]";
    let (a, _) = withheld_of(make("hunter2-ALPHA"), fields, 64);
    let (b, _) = withheld_of(make("other-BRAVO"), fields, 64);
    assert_eq!(a, b);
    assert_eq!(a, ["$['steps'][0]['reasoning']", "$['hidden']"]);
    assert!(!a.concat().contains("hunter2") && !a.concat().contains("ALPHA"));
}

#[test]
fn withheld_walks_exactly_the_view() {
    // Over objects (no array shifts), removing every listed node from the stored document gives
    // exactly the view: nothing dropped goes unlisted, nothing listed is shown.
    let stored = json!({
        "a": {"b": 1, "c": {"d": 2, "e": 3}, "f": "x"},
        "g": {"h": {"i": 4}},
        "j": 5,
        "k": "[REDACTED:EMAIL]",
        "l": "{\"m\": 1, \"n\": {\"o\": 2}}"
    });
    for fields in [
        "allow = [\"$.a\"]\ndeny = [\"$.a.c.d\"]",
        "allow = [\"$.a.b\", \"$.g.h\", \"$.l.n\"]",
        "allow = [\"$\"]\ndeny = [\"$..e\", \"$.j\", \"$.l.m\"]",
        "allow = [\"$..h\", \"$.a[?@ == 'x']\"]",
    ] {
        let p = policy(fields);
        let r = &p.roles[0];
        let listed = withheld(stored.clone(), r, 64);
        // Both sides decoded (JSON-in-strings as trees), as the view holds them.
        let shown = view(stored.clone(), r).doc;
        let mut rest = stored.clone();
        crate::embedded::decode_tree(&mut rest);
        for segs in &listed.paths {
            remove(&mut rest, segs);
        }
        assert_eq!(rest, shown, "{fields}: {:?}", listed.paths);
    }
}

fn remove(doc: &mut Value, segs: &[crate::path_trie::Seg]) {
    use crate::path_trie::Seg;
    let Some((last, parents)) = segs.split_last() else {
        *doc = json!({});
        return;
    };
    let mut at = doc;
    for s in parents {
        at = match (s, at) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k).unwrap_or_else(|| unreachable!("{k}")),
            (s, _) => unreachable!("{s:?}"),
        };
    }
    match (last, at) {
        (Seg::Key(k), Value::Object(m)) => assert!(m.remove(k).is_some(), "{k} listed but absent"),
        (s, _) => unreachable!("{s:?}"),
    }
}

#[path = "../../tests/corpus/rng.rs"]
#[allow(dead_code)]
#[expect(clippy::duplicate_mod, reason = "the shared test xorshift; `mask` includes it privately too")]
mod rng;

/// Every marked path of a trie with its mark, for comparing two tries.
fn marks(t: &PathTrie<usize>) -> std::collections::BTreeSet<(String, usize)> {
    fn go(
        t: &PathTrie<usize>,
        at: &mut Vec<Seg>,
        out: &mut std::collections::BTreeSet<(String, usize)>,
    ) {
        if let Some(m) = t.mark {
            out.insert((crate::path_trie::display(at), m));
        }
        t.for_each_child(|k, i, c| {
            at.push(match (k, i) {
                (Some(k), _) => Seg::Key(k.to_owned()),
                (None, i) => Seg::Index(i.unwrap_or_default()),
            });
            go(c, at, out);
            at.pop();
        });
    }
    let mut out = std::collections::BTreeSet::new();
    go(t, &mut Vec::new(), &mut out);
    out
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "steps",
    "_x1",
    "x y",
    "q'uote",
    "back\\slash",
    "ü",
    "a.b",
    "1a",
    "tab\t",
    "",
];

fn gen_doc(r: &mut rng::Rng, depth: usize) -> Value {
    match r.below(if depth == 0 { 3 } else { 6 }) {
        0 => Value::from(r.below(5)),
        1 => Value::from(*r.pick(NAMES)),
        2 => Value::Null,
        3 | 4 => Value::Object(
            (0..r.below(5))
                .map(|_| (r.pick(NAMES).to_string(), gen_doc(r, depth - 1)))
                .collect(),
        ),
        _ => Value::Array((0..r.below(5)).map(|_| gen_doc(r, depth - 1)).collect()),
    }
}

fn quoted(n: &str, dq: bool) -> String {
    let q = if dq { '"' } else { '\'' };
    let mut s = String::from(q);
    for c in n.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\t' => s.push_str("\\t"),
            c if c == q => {
                s.push('\\');
                s.push(c);
            }
            c => s.push(c),
        }
    }
    s.push(q);
    s
}

fn gen_query(r: &mut rng::Rng) -> String {
    let mut s = String::from("$");
    for _ in 0..1 + r.below(4) {
        let desc = r.chance(35);
        if desc {
            s.push_str("..");
        }
        let name = *r.pick(NAMES);
        match r.below(8) {
            0 if plan_shorthand(name) => {
                if !desc {
                    s.push('.');
                }
                s.push_str(name);
            }
            1 => {
                if !desc {
                    s.push('.');
                }
                s.push('*');
            }
            7 => s.push_str(r.pick::<&str>(&["[?@.a]", "[1:3]", "[?@ == 'b']", "[?@ == $.a]", "[?$.a]", "[?!$.b]", "[?length(@) > 1]", "[::-1]"])),
            _ => {
                s.push('[');
                for j in 0..1 + r.below(3) {
                    if j > 0 {
                        s.push_str(if r.chance(50) { "," } else { " , " });
                    }
                    match r.below(4) {
                        0 => s.push('*'),
                        1 => s.push_str(&(r.below(7) as i64 - 3).to_string()),
                        _ => s.push_str(&quoted(r.pick::<&str>(NAMES), r.chance(30))),
                    }
                }
                s.push(']');
            }
        }
    }
    s
}

fn plan_shorthand(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii())
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii())
}

/// The walked plan selects exactly the nodes `serde_json_path` locates, for generated
/// documents and queries (names that need escaping, both quote styles, both forms, negative
/// indices, descendants, filters and slices after them, filters that mention the root).
#[test]
fn plans_select_what_the_library_selects() {
    let mut r = rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    let (mut planned, mut compared, mut split) = (0, 0, 0);
    for _ in 0..400 {
        let doc = gen_doc(&mut r, 5);
        for _ in 0..10 {
            let q = gen_query(&mut r);
            let Ok(path) = crate::jsonpath::parse(&q) else {
                continue;
            };
            compared += 1;
            let Some(p) = plan::Plan::of(&q, &path) else {
                continue;
            };
            if p.is_split() {
                split += 1;
            }
            planned += 1;
            let mut lib = PathTrie::default();
            for loc in path.query_located(&doc).locations() {
                lib.insert(&segs_of(loc), 7);
            }
            let mut walked = PathTrie::default();
            p.mark(&doc, &mut walked, 7);
            assert_eq!(marks(&walked), marks(&lib), "query `{q}` over {doc}");
        }
    }
    // The plan must apply to most generated queries, or this test would check nothing.
    assert!(
        planned * 10 > compared * 7,
        "{planned} of {compared} queries planned"
    );
    // And some of them walked up to a filter or slice, evaluated by the library from there.
    assert!(split * 20 > compared, "{split} of {compared} queries split");
}

/// A rule that already marked a node keeps it: plans and library rules mix in one view.
#[test]
fn planned_and_library_rules_mark_the_first_rule() {
    let p = policy(
        "allow = [\"$.steps[*]\", \"$.steps[?@.n == 1]\", \"$..output\"]\ndeny = [\"$.steps[0].reasoning\", \"$..reasoning\"]",
    );
    let role = p.roles.first().unwrap_or_else(|| unreachable!());
    let d = doc();
    let allow = locate(&d, &role.fields, Kind::Allow);
    let deny = locate(&d, &role.fields, Kind::Deny);
    let allow_m = marks(&allow);
    assert!(
        allow_m.contains(&("$['steps'][1]".to_owned(), 0)),
        "{allow_m:?}"
    );
    assert!(
        allow_m.contains(&("$['steps'][0]['output']".to_owned(), 2)),
        "{allow_m:?}"
    );
    let deny_m = marks(&deny);
    assert!(
        deny_m.contains(&("$['steps'][0]['reasoning']".to_owned(), 0)),
        "{deny_m:?}"
    );
    assert!(
        deny_m.contains(&("$['steps'][1]['reasoning']".to_owned(), 1)),
        "{deny_m:?}"
    );
}

/// `$..name` rules sharing one walk leave the trie their walks in turn leave, marks included,
/// for generated documents and groups of such rules (names, indices, wildcards, unions).
#[test]
fn shared_descendant_walk_marks_what_walks_in_turn_mark() {
    let mut r = rng::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut compared = 0;
    for _ in 0..300 {
        let doc = gen_doc(&mut r, 5);
        let mut plans = Vec::new();
        for _ in 0..40 {
            let q = format!("$..{}", gen_query(&mut r).trim_start_matches('$').trim_start_matches('.'));
            let Ok(path) = crate::jsonpath::parse(&q) else { continue };
            if let Some(p) = plan::Plan::of(&q, &path).filter(|p| p.descendant_only().is_some()) {
                plans.push(p);
            }
            if plans.len() == 4 {
                break;
            }
        }
        if plans.len() < 2 {
            continue;
        }
        compared += 1;
        let mut in_turn = PathTrie::default();
        for (i, p) in plans.iter().enumerate() {
            p.mark(&doc, &mut in_turn, i);
        }
        let group: Vec<(&[plan::Pick], usize)> =
            plans.iter().enumerate().filter_map(|(i, p)| p.descendant_only().map(|s| (s, i))).collect();
        let mut shared = PathTrie::default();
        plan::mark_descendants(&group, &doc, &mut shared);
        assert_eq!(marks(&shared), marks(&in_turn), "{} rules over {doc}", plans.len());
    }
    assert!(compared > 100, "only {compared} groups compared");
}
