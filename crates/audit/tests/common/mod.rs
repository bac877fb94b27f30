//! What the audit test binaries share: one way to make a read record.

use tracegate_audit::{Decision, Entry, PrincipalRecord, RequestRecord, Timestamp};

/// The `i`th read by `subject` of one of three traces, decided `decision`, stamped `time`.
pub fn entry_at(i: u64, subject: &str, decision: Decision, time: Timestamp) -> Entry {
    let mut e = Entry::request(format!("req-{i}"), time);
    e.principal = Some(PrincipalRecord {
        subject: subject.into(),
        issuer: "https://idp".into(),
        groups: vec!["support".into()],
        roles: vec!["support".into()],
        auth_method: "oidc".into(),
        credential: None,
        claims: [("tenant".to_owned(), "acme".to_owned())].into(),
    });
    e.request = Some(RequestRecord {
        method: "GET".into(),
        route: "/v1/traces/{id}".into(),
        action: Some("read".into()),
        trace_ids: vec![format!("t{}", i % 3)],
        fields: vec![],
        purpose: None,
    });
    e.decision = Some(decision);
    e.status = Some(200);
    e.latency_us = Some(i);
    e
}

/// [`entry_at`] stamped now.
#[allow(dead_code)] // not every test binary uses both
pub fn entry(i: u64, subject: &str, decision: Decision) -> Entry {
    entry_at(i, subject, decision, Timestamp::now())
}
