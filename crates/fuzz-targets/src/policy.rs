//! `policy_parse`: [`Policy::parse`] on any text. A policy file is trusted configuration, but a
//! typo must give an error that points into the file, never a panic or a half-built policy; and
//! a policy that parses must be usable: its summary renders, and every role can serve the example
//! traces through the same read path the gateway runs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tracegate_core::pipeline::{decide_read_gated, ReadDecision, ReadRequest};
use tracegate_core::{AuthMethod, Policy, PolicyVersion, Principal, TraceId, TraceMeta};

use crate::field::{example_doc, serve};

/// True when the policy parsed.
pub fn policy_parse(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let policy = match Policy::parse("fuzz.toml", text) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.issues.is_empty(), "a refused policy names no issue");
            let lines = text.split('\n').count();
            for i in &e.issues {
                assert!(i.line <= lines, "issue at line {} of a {lines}-line file: {i}", i.line);
                assert!(i.line == 0 || i.column >= 1, "issue with column 0: {i}");
                assert!(!i.message.is_empty());
            }
            assert!(!e.to_string().is_empty());
            return false;
        }
    };
    assert_eq!(policy.version, PolicyVersion::of(data));
    assert!(!policy.roles.is_empty(), "a policy without roles parsed");
    let views = policy.effective_views();
    let again = Policy::parse("fuzz.toml", text).unwrap_or_else(|e| unreachable!("parsed once, refused twice: {e}"));
    assert_eq!(again.effective_views(), views, "parsing is not deterministic");
    for role in &policy.roles {
        assert!(views.pointer(&format!("/roles/{}", role.name)).is_some(), "role `{}` missing from the summary", role.name);
        exercise(&policy, role);
    }
    true
}

/// Runs one role over the example traces as a caller in all its groups: decide, then project and
/// mask. Denials are fine; panics and invalid output are not.
fn exercise(policy: &Policy, role: &tracegate_core::Role) {
    let who = Principal {
        subject: "fuzz".into(),
        issuer: "fuzz".into(),
        groups: role.groups.iter().cloned().collect(),
        claims: BTreeMap::from([("tenant".to_owned(), "acme".to_owned())]),
        auth_method: AuthMethod::Dev,
        person: None,
        credential: Default::default(),
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    for name in ["agent-1", "otlp-1"] {
        let Some(doc) = example_doc(name) else { continue };
        let Ok(id) = TraceId::parse(&format!("demo-{name}")) else { continue };
        let meta = TraceMeta::extract(id, &doc);
        if let Ok(ReadDecision::Serve(c)) = decide_read_gated(policy, &who, &meta, &ReadRequest::default(), now) {
            assert!(!c.is_empty());
        }
        if let Ok(served) = serve(role, doc, None) {
            let text = serde_json::to_string(&served.body).unwrap_or_else(|e| unreachable!("{e}"));
            assert!(serde_json::from_str::<Value>(&text).is_ok(), "served body is not valid JSON");
        }
    }
}
