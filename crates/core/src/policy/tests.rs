//! Policy parsing: strictness and precise error positions.

use super::*;

const EXAMPLE: &str = include_str!("../../../../examples/policy.toml");

fn errors(text: &str) -> Vec<String> {
    match Policy::parse("p.toml", text) {
        Ok(_) => vec![],
        Err(e) => e.issues.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn example_policy_parses() {
    let p = Policy::parse("examples/policy.toml", EXAMPLE).unwrap_or_else(|e| unreachable!("{e}"));
    let names: Vec<&str> = p.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["auditor", "engineer", "sre", "support", "writer"]);
    assert!(p.version.0.starts_with("sha256:"));
    assert!(p.role("engineer").is_some_and(|r| r.fields.is_everything()));
    assert!(p.role("support").is_some_and(|r| !r.fields.is_everything()));
    assert!(p.role("sre").is_some_and(|r| r.approval.is_some()));
}

#[test]
fn unknown_keys_are_errors_with_position() {
    let text = "[roles.a]\ngroups = [\"g\"]\nactions = [\"read\"]\n[roles.a.fields]\nallow = [\"$\"]\ndney = [\"$..x\"]\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("p.toml:6:"), "{errs:?}");
    assert!(errs[0].contains("dney"), "{errs:?}");
}

#[test]
fn bad_jsonpath_and_action_are_reported_at_their_line() {
    let text = "[roles.a]\ngroups = [\"g\"]\nactions = [\"read\", \"raed\"]\n[roles.a.fields]\nallow = [\"$\", \"$.steps[\"]\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("p.toml:3:") && e.contains("unknown action `raed`")), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("p.toml:5:") && e.contains("`$.steps[`")), "{errs:?}");
}

#[test]
fn unsafe_or_useless_settings_are_errors() {
    let cases = [
        ("[roles.a]\ngroups = []\nactions = [\"search\"]\n", "lists no groups"),
        ("[roles.a]\ngroups = [\"g\"]\nactions = [\"read\"]\n", "`fields.allow` is empty"),
        ("[roles.a]\ngroups = [\"g\"]\nactions = [\"search\"]\n[roles.a.rows]\nmatch = { tenantt = \"tenant\" }\n", "not trace metadata"),
        ("[roles.a]\ngroups = [\"g\"]\nactions = [\"search\"]\n[roles.a.rows]\nmax_count = 0\n", "max_count"),
        ("[roles.a]\ngroups = [\"g\"]\nactions = [\"search\"]\n[roles.a.rows]\nmax_age = \"soon\"\n", "not a duration"),
        ("[roles.a]\ngroups = [\"g\"]\nactions = [\"search\"]\n[roles.a.approval]\napprovers = []\n", "no request could ever be approved"),
        ("", "missing field `roles`"),
        ("[roles]\n", "no roles"),
    ];
    for (text, want) in cases {
        let errs = errors(text);
        assert!(errs.iter().any(|e| e.contains(want)), "{text:?}: expected `{want}` in {errs:?}");
    }
}

#[test]
fn version_is_the_content_hash() {
    let a = Policy::parse("a", EXAMPLE).unwrap_or_else(|e| unreachable!("{e}"));
    let b = Policy::parse("b", &format!("{EXAMPLE}\n# comment\n")).unwrap_or_else(|e| unreachable!("{e}"));
    assert_ne!(a.version, b.version);
    assert_eq!(a.version, PolicyVersion::of(EXAMPLE.as_bytes()));
}
