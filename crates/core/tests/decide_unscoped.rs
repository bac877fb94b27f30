//! `decide_read_unscoped` against `decide_read_gated`: the read route skips the metadata lookup
//! when the first answers, so whatever it answers must be exactly what the second answers for
//! every trace metadata the lookup could have returned. Generated callers (every combination of
//! the example policy's groups, with and without a tenant claim), requests (fields in and out
//! of the views, purposes) and metadata (tenants, start times inside and outside `max_age`).

#![allow(clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tracegate_core::pipeline::{decide_read_gated, decide_read_unscoped, ReadDecision, ReadRequest};
use tracegate_core::project::FieldRequest;
use tracegate_core::{AuthMethod, Policy, Principal, TraceId, TraceMeta};

const POLICY: &str = include_str!("../../../examples/policy.toml");
const GROUPS: &[&str] = &["support", "eng", "sre", "agents", "audit", "nobody"];
const FIELDS: &[&str] = &["$.steps[*].input", "$.spans", "$.metadata.tenant", "$..password", "$.steps[0]"];

fn who(groups: &[bool], tenant: Option<&str>) -> Principal {
    Principal {
        subject: "caller".into(),
        issuer: "test".into(),
        groups: GROUPS.iter().zip(groups).filter(|(_, on)| **on).map(|(g, _)| (*g).to_owned()).collect(),
        claims: tenant.map(|t| [("tenant".to_owned(), t.to_owned())].into_iter().collect()).unwrap_or_default(),
        auth_method: AuthMethod::Dev,
        person: None,
        credential: Default::default(),
    }
}

/// What a decision says, as comparable text (roles and rules in order; the gate's role).
fn said(d: &Result<ReadDecision<'_>, tracegate_core::decision::Denial>) -> String {
    match d {
        Ok(ReadDecision::Serve(c)) => format!("serve {:?}", c.iter().map(|c| (&c.role.name, &c.rules)).collect::<Vec<_>>()),
        Ok(ReadDecision::Approval(g)) => format!("approval {} {:?}", g.role.name, g.rules),
        Err(d) => format!("deny {}", d.code.as_str()),
    }
}

#[test]
fn an_unscoped_decision_is_the_gated_decision_for_every_metadata() {
    let policy = Policy::parse("examples/policy.toml", POLICY).unwrap_or_else(|e| unreachable!("{e}"));
    let id = TraceId::parse("t-1").unwrap_or_else(|e| unreachable!("{e}"));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let strategy = (
        proptest::collection::vec(any::<bool>(), GROUPS.len()),
        proptest::option::of(proptest::sample::select(&["acme", "globex"][..])),
        proptest::option::of(proptest::collection::vec(proptest::sample::select(FIELDS), 1..3)),
        proptest::option::of(proptest::sample::select(&["", "incident 42"][..])),
        proptest::collection::vec(
            (
                proptest::option::of(proptest::sample::select(&["acme", "globex", "initech"][..])),
                proptest::option::of(0u64..2_000),
            ),
            1..6,
        ),
    );
    let (skipped, looked_up) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize));
    let mut runner = TestRunner::new(Config { cases: 4_000, ..Config::default() });
    let result = runner.run(&strategy, |(groups, tenant, fields, purpose, metas)| {
        let who = who(&groups, tenant);
        let fields: Option<Vec<FieldRequest>> =
            fields.map(|f| FieldRequest::parse_all(f).unwrap_or_else(|e| unreachable!("{e}")));
        let ask = ReadRequest { fields: fields.as_deref(), purpose };
        let unscoped = decide_read_unscoped(&policy, &who, &id, &ask, now);
        let scoped_role = groups.first().copied().unwrap_or(false);
        if scoped_role {
            // `support` limits rows by tenant and age: its metadata matters, so never skipped.
            prop_assert!(unscoped.is_none(), "a caller reaching a scoped role skipped the lookup");
        }
        let Some(unscoped) = unscoped else {
            looked_up.set(looked_up.get() + 1);
            return Ok(());
        };
        skipped.set(skipped.get() + 1);
        let short = format!("serve {:?}", unscoped.iter().map(|c| (&c.role.name, &c.rules)).collect::<Vec<_>>());
        for (tenant, age_days) in metas {
            let meta = TraceMeta {
                trace_id: id.clone(),
                fields: tenant.map(|t| [("tenant".to_owned(), t.to_owned())].into_iter().collect()).unwrap_or_else(BTreeMap::new),
                started_at: age_days.map(|d| now - Duration::from_secs(d * 86_400)),
            };
            let full = decide_read_gated(&policy, &who, &meta, &ask, now);
            prop_assert_eq!(&short, &said(&full), "metadata {:?}", meta);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Both branches were exercised: engineers skip, support and SRE-only callers look up.
    let (skipped, looked_up) = (skipped.get(), looked_up.get());
    assert!(skipped > 100 && looked_up > 100, "skipped {skipped}, looked up {looked_up}");
}
