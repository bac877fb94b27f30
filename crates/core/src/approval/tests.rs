//! Every transition of the access-request state machine, and every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use super::*;
use crate::policy::{ApprovalAsk, Policy};

const T0: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

fn party(sub: &str) -> Party {
    Party { subject: sub.into(), issuer: "https://idp.example".into(), person: None }
}

fn actor(sub: &str, groups: &[&str]) -> Actor {
    Actor { party: party(sub), groups: groups.iter().map(|g| (*g).to_owned()).collect() }
}

fn shape(trace: &str, fields: Option<&[&str]>, purpose: Option<&str>) -> RequestShape {
    RequestShape::new(
        party("sid"),
        Action::Read,
        "sre",
        PolicyVersion("sha256:abc".into()),
        [TraceId::parse(trace).unwrap()],
        fields.map(|f| f.to_vec()),
        purpose,
    )
}

fn terms(approvals: u32, one_time: bool) -> Terms {
    Terms {
        rule: "roles.sre.approval".into(),
        approvers: vec!["security".into(), "secops".into()],
        approvals,
        pending_ttl: Duration::from_secs(3600),
        grant_ttl: Duration::from_secs(3600),
        one_time,
    }
}

fn opened(approvals: u32, one_time: bool) -> AccessRequest {
    let e = AccessRequest::open("ar-1", shape("demo-agent-1", None, Some("INC-42")), terms(approvals, one_time), at(0)).unwrap();
    match e.change {
        Change::Created { request } => *request,
        other => panic!("{other:?}"),
    }
}

fn step(r: &mut AccessRequest, f: impl FnOnce(&AccessRequest) -> Result<Event, ApprovalError>) {
    let e = f(r).unwrap();
    r.apply(&e);
}

#[test]
fn fingerprint_binds_every_part_and_ignores_order_and_whitespace() {
    let a = shape("demo-agent-1", Some(&["$.b", " $.a", "$.b"]), Some(" INC-42 "));
    let b = shape("demo-agent-1", Some(&["$.a", "$.b"]), Some("INC-42"));
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert!(a.fingerprint().0.starts_with("sha256:"));
    let base = b.fingerprint();
    let variants = [
        shape("demo-agent-2", Some(&["$.a", "$.b"]), Some("INC-42")),
        shape("demo-agent-1", Some(&["$.a"]), Some("INC-42")),
        shape("demo-agent-1", None, Some("INC-42")),
        shape("demo-agent-1", Some(&["$.a", "$.b"]), None),
        shape("demo-agent-1", Some(&["$.a", "$.b"]), Some("INC-43")),
        // A comma inside one expression must not equal two expressions.
        shape("demo-agent-1", Some(&["$.a\u{0}$.b"]), Some("INC-42")),
    ];
    for v in &variants {
        assert_ne!(v.fingerprint(), base, "{v:?}");
    }
    let mut other_person = b.clone();
    other_person.requester.issuer = "https://other-idp.example".into();
    assert_ne!(other_person.fingerprint(), base);
    let mut other_role = b.clone();
    other_role.role = "engineer".into();
    assert_ne!(other_role.fingerprint(), base);
    let mut other_policy = b.clone();
    other_policy.policy_version = PolicyVersion("sha256:def".into());
    assert_ne!(other_policy.fingerprint(), base);
    let mut other_action = b;
    other_action.action = Action::Search;
    assert_ne!(other_action.fingerprint(), base);
}

#[test]
fn open_is_pending_until_pending_ttl_then_expires_on_its_own() {
    let r = opened(1, false);
    assert_eq!(r.status, Status::Pending);
    assert_eq!(r.status_at(at(3599)), Status::Pending);
    assert!(r.expire_due(at(3599)).is_none());
    assert_eq!(r.status_at(at(3600)), Status::Expired);
    let mut r2 = r.clone();
    let e = r.expire_due(at(3600)).unwrap();
    assert_eq!(e.change, Change::Expired);
    r2.apply(&e);
    assert_eq!((r2.status, r2.closed_at), (Status::Expired, Some(at(3600))));
    // Too late to approve or deny.
    let err = r.approve(&actor("sam", &["security"]), None, at(3600)).unwrap_err();
    assert_eq!(err, ApprovalError::NotPending { id: "ar-1".into(), status: Status::Expired });
    assert!(err.is_conflict());
    assert!(r.deny(&actor("sam", &["security"]), Some("no"), at(4000)).is_err());
}

#[test]
fn one_approval_grants_for_grant_ttl() {
    let mut r = opened(1, false);
    step(&mut r, |r| r.approve(&actor("sam", &["security"]), Some("go ahead"), at(10)));
    assert_eq!(r.status, Status::Approved);
    assert_eq!(r.grant_until, Some(at(3610)));
    assert_eq!(r.decisions[0].comment.as_deref(), Some("go ahead"));
    assert_eq!(r.approvers(), [&party("sam")]);
    let fp = r.fingerprint.clone();
    // Time-bound: used many times within the hour.
    step(&mut r, |r| r.use_grant(&fp, at(20)));
    step(&mut r, |r| r.use_grant(&fp, at(30)));
    assert_eq!((r.status, r.uses), (Status::Approved, 2));
    // The pending deadline no longer matters once approved.
    assert_eq!(r.status_at(at(3601)), Status::Approved);
    assert_eq!(r.status_at(at(3610)), Status::Expired);
    let err = r.use_grant(&fp, at(3610)).unwrap_err();
    assert_eq!(err, ApprovalError::NotActive { id: "ar-1".into(), status: Status::Expired });
    let e = r.expire_due(at(3610)).unwrap();
    r.apply(&e);
    assert_eq!(r.status, Status::Expired);
}

#[test]
fn one_time_grant_is_used_once() {
    let mut r = opened(1, true);
    step(&mut r, |r| r.approve(&actor("sam", &["security"]), None, at(10)));
    let fp = r.fingerprint.clone();
    let first = r.use_grant(&fp, at(11)).unwrap();
    // A second use computed from the same state is also valid on its own; the store serialises
    // them so only the first applies. Once applied, the grant is gone.
    r.apply(&first);
    assert_eq!((r.status, r.uses), (Status::Used, 1));
    assert_eq!(r.use_grant(&fp, at(12)).unwrap_err().code(), "grant_not_active");
}

#[test]
fn a_different_request_is_not_covered() {
    let mut r = opened(1, false);
    step(&mut r, |r| r.approve(&actor("sam", &["security"]), None, at(10)));
    for other in [
        shape("demo-agent-2", None, Some("INC-42")),
        shape("demo-agent-1", Some(&["$.steps"]), Some("INC-42")),
        shape("demo-agent-1", None, None),
    ] {
        assert_eq!(r.use_grant(&other.fingerprint(), at(11)).unwrap_err(), ApprovalError::NotCovered { id: "ar-1".into() });
    }
}

#[test]
fn nobody_approves_their_own_request_admins_included() {
    let r = opened(1, false);
    let me_with_every_group = actor("sid", &["security", "secops", "admin", "sre"]);
    assert_eq!(r.approve(&me_with_every_group, None, at(1)).unwrap_err(), ApprovalError::OwnRequest);
    assert_eq!(r.deny(&me_with_every_group, Some("x"), at(1)).unwrap_err(), ApprovalError::OwnRequest);
    assert!(ApprovalError::OwnRequest.is_forbidden());
    // Same subject from another issuer is another person.
    let namesake = Actor { party: Party { subject: "sid".into(), issuer: "https://other".into(), person: None }, groups: vec!["security".into()] };
    assert!(r.approve(&namesake, None, at(1)).is_ok());
}

#[test]
fn a_person_linked_across_issuers_is_one_person() {
    // The requester `sid` at the IdP is linked to person `sid-p`; so is `sid@corp` at a second
    // issuer. Arriving through the second issuer does not make a second person.
    let linked = |sub: &str, iss: &str, person: Option<&str>| Party {
        subject: sub.into(),
        issuer: iss.into(),
        person: person.map(str::to_owned),
    };
    let mut s = shape("demo-agent-1", None, Some("INC-42"));
    s.requester = linked("sid", "https://idp.example", Some("sid-p"));
    let e = AccessRequest::open("ar-2", s, terms(2, false), at(0)).unwrap();
    let Change::Created { request } = e.change else { panic!() };
    let mut r = *request;
    let other_issuer = Actor { party: linked("sid@corp", "https://second.example", Some("sid-p")), groups: vec!["security".into()] };
    assert_eq!(r.approve(&other_issuer, None, at(1)).unwrap_err(), ApprovalError::OwnRequest);
    assert_eq!(r.deny(&other_issuer, Some("x"), at(1)).unwrap_err(), ApprovalError::OwnRequest);
    assert!(r.is_requester(&other_issuer) && r.visible_to(&other_issuer));
    // Without the link, the same account is someone else (and may approve).
    let unlinked = Actor { party: linked("sid@corp", "https://second.example", None), groups: vec!["security".into()] };
    assert!(r.approve(&unlinked, None, at(1)).is_ok());
    // Two approvals from one person through two linked issuers count once.
    let olga_a = Actor { party: linked("olga", "https://idp.example", Some("olga-p")), groups: vec!["security".into()] };
    let olga_b = Actor { party: linked("o.k", "https://second.example", Some("olga-p")), groups: vec!["secops".into()] };
    step(&mut r, |r| r.approve(&olga_a, None, at(2)));
    assert_eq!(r.approve(&olga_b, None, at(3)).unwrap_err().code(), "already_approved");
    assert_eq!(r.status, Status::Pending);
    // Even if such a decision were in a log, it would not count twice.
    r.apply(&Event { request_id: r.id.clone(), at: at(3), change: Change::Approved { by: olga_b.party.clone(), comment: None } });
    assert_eq!(r.approvers().len(), 1);
    assert_eq!(r.status, Status::Pending);
}

#[test]
fn approver_must_hold_an_approver_group() {
    let r = opened(1, false);
    let err = r.approve(&actor("erin", &["eng", "sre"]), None, at(1)).unwrap_err();
    assert_eq!(err.code(), "not_approver");
    assert!(err.is_forbidden());
    assert!(r.deny(&actor("erin", &["eng"]), Some("no"), at(1)).is_err());
    assert!(r.approve(&actor("olga", &["secops"]), None, at(1)).is_ok());
}

#[test]
fn n_distinct_approvers_are_needed() {
    let mut r = opened(2, false);
    step(&mut r, |r| r.approve(&actor("sam", &["security"]), Some("one"), at(1)));
    assert_eq!(r.status, Status::Pending);
    // The same person again, even with another group, does not count twice.
    let again = r.approve(&actor("sam", &["secops"]), None, at(2)).unwrap_err();
    assert_eq!(again, ApprovalError::AlreadyApproved { id: "ar-1".into(), subject: "sam".into() });
    step(&mut r, |r| r.approve(&actor("olga", &["secops"]), Some("two"), at(3)));
    assert_eq!(r.status, Status::Approved);
    assert_eq!(r.grant_until, Some(at(3603)));
    assert_eq!(r.approvers(), [&party("sam"), &party("olga")]);
    // Approved: no more decisions.
    assert_eq!(r.approve(&actor("tom", &["security"]), None, at(4)).unwrap_err().code(), "request_not_pending");
}

#[test]
fn a_deny_by_any_approver_ends_it_even_after_other_approvals() {
    let mut r = opened(2, false);
    step(&mut r, |r| r.approve(&actor("sam", &["security"]), None, at(1)));
    assert_eq!(r.deny(&actor("olga", &["secops"]), None, at(2)).unwrap_err(), ApprovalError::CommentRequired("deny"));
    step(&mut r, |r| r.deny(&actor("olga", &["secops"]), Some("not for this incident"), at(2)));
    assert_eq!((r.status, r.closed_at), (Status::Denied, Some(at(2))));
    assert_eq!(r.decisions[1].verdict, Verdict::Deny);
    assert_eq!(r.decisions[1].comment.as_deref(), Some("not for this incident"));
    assert_eq!(r.approve(&actor("tom", &["security"]), None, at(3)).unwrap_err().code(), "request_not_pending");
    assert_eq!(r.use_grant(&r.fingerprint.clone(), at(3)).unwrap_err().code(), "grant_not_active");
}

#[test]
fn revoke_ends_a_grant_approvers_or_requester_only() {
    let mut r = opened(1, false);
    // Nothing to revoke while pending.
    assert_eq!(r.revoke(&actor("sam", &["security"]), Some("x"), at(1)).unwrap_err().code(), "grant_not_active");
    step(&mut r, |r| r.approve(&actor("sam", &["security"]), None, at(1)));
    let err = r.revoke(&actor("erin", &["eng"]), Some("x"), at(2)).unwrap_err();
    assert_eq!(err.code(), "not_revoker");
    assert!(err.is_forbidden());
    assert_eq!(r.revoke(&actor("sam", &["security"]), None, at(2)).unwrap_err(), ApprovalError::CommentRequired("revoke"));
    // The requester may give access up.
    assert!(r.revoke(&actor("sid", &["sre"]), Some("done"), at(2)).is_ok());
    step(&mut r, |r| r.revoke(&actor("olga", &["secops"]), Some("incident closed"), at(2)));
    assert_eq!(r.status, Status::Revoked);
    assert_eq!(r.use_grant(&r.fingerprint.clone(), at(3)).unwrap_err().code(), "grant_not_active");
    assert_eq!(r.revoke(&actor("sam", &["security"]), Some("again"), at(3)).unwrap_err().code(), "grant_not_active");
}

#[test]
fn closed_requests_never_reopen() {
    let mut r = opened(1, false);
    step(&mut r, |r| r.deny(&actor("sam", &["security"]), Some("no"), at(1)));
    // Even a stray approval event (it could not be produced now) leaves it denied.
    r.apply(&Event { request_id: "ar-1".into(), at: at(2), change: Change::Approved { by: party("olga"), comment: None } });
    r.apply(&Event { request_id: "ar-1".into(), at: at(2), change: Change::Expired });
    assert_eq!(r.status, Status::Denied);
    assert!(Status::Denied.is_closed() && Status::Used.is_closed() && !Status::Approved.is_closed());
}

#[test]
fn comments_and_purposes_are_bounded() {
    let r = opened(1, false);
    let long = "x".repeat(MAX_COMMENT_LEN + 1);
    assert_eq!(r.approve(&actor("sam", &["security"]), Some(&long), at(1)).unwrap_err(), ApprovalError::CommentTooLong);
    let long_purpose = "p".repeat(MAX_PURPOSE_LEN + 1);
    let s = shape("demo-agent-1", None, Some(&long_purpose));
    assert_eq!(AccessRequest::open("x", s, terms(1, false), at(0)).unwrap_err(), ApprovalError::PurposeTooLong);
}

#[test]
fn visibility_requester_and_approvers_only() {
    let r = opened(1, false);
    assert!(r.visible_to(&actor("sid", &["sre"])));
    assert!(r.visible_to(&actor("sam", &["security"])));
    assert!(!r.visible_to(&actor("erin", &["eng", "sre"])));
}

#[test]
fn events_round_trip_through_json_and_replay_to_the_same_state() {
    let created = AccessRequest::open("ar-1", shape("demo-agent-1", Some(&["$.a"]), Some("INC-42")), terms(2, true), at(0)).unwrap();
    let Change::Created { request } = created.change.clone() else { panic!() };
    let mut live = *request;
    let mut log = vec![created];
    let e = live.approve(&actor("sam", &["security"]), Some("ok"), at(1)).unwrap();
    live.apply(&e);
    log.push(e);
    let e = live.approve(&actor("olga", &["secops"]), None, at(2)).unwrap();
    live.apply(&e);
    log.push(e);
    let e = live.use_grant(&live.fingerprint.clone(), at(3)).unwrap();
    live.apply(&e);
    log.push(e);
    assert_eq!(live.status, Status::Used);

    let text: Vec<String> = log.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    assert!(text[0].contains(r#""change":"created""#), "{}", text[0]);
    let mut replayed: Option<AccessRequest> = None;
    for line in &text {
        let e: Event = serde_json::from_str(line).unwrap();
        match (&mut replayed, e.change.clone()) {
            (None, Change::Created { request }) => replayed = Some(*request),
            (Some(r), _) => r.apply(&e),
            (None, other) => panic!("{other:?}"),
        }
    }
    assert_eq!(replayed.unwrap(), live);
}

#[test]
fn purpose_check_follows_the_rule() {
    let text = "[roles.sre]\ngroups = [\"sre\"]\nactions = [\"read\"]\n[roles.sre.fields]\nallow = [\"$\"]\n[roles.sre.approval]\napprovers = [\"security\"]\nreason_required = true\n";
    let p = Policy::parse("p.toml", text).unwrap();
    let rule = p.role("sre").and_then(|r| r.approval.as_ref()).unwrap();
    assert_eq!(check_purpose("roles.sre.approval", rule, None).unwrap_err().code(), "purpose_required");
    assert_eq!(check_purpose("roles.sre.approval", rule, Some("  ")).unwrap_err().code(), "purpose_required");
    assert!(check_purpose("roles.sre.approval", rule, Some("INC-42")).is_ok());
    let t = Terms::of("roles.sre.approval", rule);
    assert_eq!((t.approvals, t.one_time, t.grant_ttl), (1, false, Duration::from_secs(3600)));
}

#[test]
fn when_conditions_decide_which_requests_wait() {
    let text = r#"
[roles.eval]
groups = ["ml"]
actions = ["read", "search"]
[roles.eval.fields]
allow = ["$"]
[roles.eval.approval]
approvers = ["ml-leads"]
when = { fields_outside = ["$.final_output", " $.metadata "], count_over = 20, purposes = ["fine-tuning"] }
"#;
    let p = Policy::parse("p.toml", text).unwrap();
    let w = &p.role("eval").and_then(|r| r.approval.as_ref()).unwrap().when;
    let inside = ["$.metadata".to_owned(), "$.final_output".to_owned()];
    let outside = ["$.metadata".to_owned(), "$.steps".to_owned()];
    let ask = |fields: Option<&'static [String]>, count, purpose| ApprovalAsk { reads_documents: true, fields, count, purpose };
    let leak = |v: &[String]| -> &'static [String] { Box::leak(v.to_vec().into_boxed_slice()) };
    assert!(w.triggered(&ask(Some(leak(&inside)), 1, Some("debugging"))).is_empty());
    assert_eq!(w.triggered(&ask(Some(leak(&outside)), 1, None)), ["when.fields_outside"]);
    assert_eq!(w.triggered(&ask(None, 1, None)), ["when.fields_outside"]);
    assert_eq!(w.triggered(&ask(Some(leak(&[])), 1, None)), ["when.fields_outside"]);
    assert_eq!(w.triggered(&ask(Some(leak(&inside)), 21, None)), ["when.count_over"]);
    assert!(w.triggered(&ask(Some(leak(&inside)), 20, None)).is_empty());
    assert_eq!(w.triggered(&ask(Some(leak(&inside)), 1, Some(" fine-tuning"))), ["when.purposes"]);
    // A search returns metadata only: field conditions do not apply, the count does.
    let search = |count| ApprovalAsk { reads_documents: false, fields: None, count, purpose: None };
    assert!(w.triggered(&search(20)).is_empty());
    assert_eq!(w.triggered(&search(21)), ["when.count_over"]);

    let example = Policy::parse("examples/policy.toml", include_str!("../../../../examples/policy.toml")).unwrap();
    let sre = example.role("sre").and_then(|r| r.approval.as_ref()).unwrap();
    assert_eq!(sre.when, crate::policy::ApprovalWhen::ALWAYS);
    assert_eq!((sre.approvers.as_slice(), sre.approvals), (&["security".to_owned()][..], 1));
    assert_eq!((sre.grant_ttl, sre.one_time), (Duration::from_secs(3600), false));
}

#[test]
fn strict_approval_settings_are_errors() {
    let base = "[roles.a]\ngroups = [\"g\"]\nactions = [\"read\"]\n[roles.a.fields]\nallow = [\"$\"]\n[roles.a.approval]\napprovers = [\"s\"]\n";
    let cases = [
        ("when = {}\n", "names no condition"),
        ("when = { always = true, count_over = 3 }\n", "meaningless"),
        ("when = { fields_outside = [\"$.[\"] }\n", "not an RFC 9535 JSONPath"),
        ("when = { count_over = -1 }\n", "zero or more"),
        ("when = { purposes = [\" \"] }\n", "must not be empty"),
        ("when = { sometimes = true }\n", "unknown field"),
        ("approvals = 11\n", "at most 10"),
        ("pending_ttl = \"8d\"\n", "at most 7d"),
        ("grant_ttl = \"31d\"\n", "at most 30d"),
    ];
    for (extra, want) in cases {
        let text = format!("{base}{extra}");
        let errs = match Policy::parse("p.toml", &text) {
            Ok(_) => vec![],
            Err(e) => e.issues.iter().map(ToString::to_string).collect::<Vec<_>>(),
        };
        assert!(errs.iter().any(|e| e.contains(want)), "{extra:?}: expected `{want}` in {errs:?}");
    }
}

#[test]
fn the_read_decision_gates_only_when_no_role_serves_without_approval() {
    use crate::pipeline::{decide_read_gated, ReadDecision, ReadRequest};
    use crate::principal::{AuthMethod, Principal};
    use crate::TraceMeta;

    let policy = Policy::parse("examples/policy.toml", include_str!("../../../../examples/policy.toml")).unwrap();
    let who = |groups: &[&str]| Principal {
        subject: "sid".into(),
        issuer: "iss".into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: Default::default(),
        auth_method: AuthMethod::Dev,
        person: None,
        credential: Default::default(),
    };
    let meta = TraceMeta::extract(TraceId::parse("demo-agent-1").unwrap(), &serde_json::json!({ "metadata": {} }));
    let now = SystemTime::now();

    // An SRE waits; the gate carries the exact shape, and the rules.
    let purpose = Some("INC-42");
    let d = decide_read_gated(&policy, &who(&["sre"]), &meta, &ReadRequest { fields: None, purpose }, now).unwrap();
    let ReadDecision::Approval(g) = d else { panic!("{d:?}") };
    assert_eq!(g.role.name, "sre");
    assert_eq!(g.rules, ["roles.sre.actions", "roles.sre.approval"]);
    assert_eq!(g.shape.purpose.as_deref(), Some("INC-42"));
    assert_eq!(g.shape.traces, [TraceId::parse("demo-agent-1").unwrap()]);
    assert_eq!(g.shape.policy_version, policy.version);
    // An engineer who is also an SRE is served as an engineer, never made to wait.
    let d = decide_read_gated(&policy, &who(&["sre", "eng"]), &meta, &ReadRequest::default(), now).unwrap();
    assert!(matches!(d, ReadDecision::Serve(ref c) if c.len() == 1 && c[0].role.name == "engineer"), "{d:?}");

    // A rule that requires a purpose refuses to open a request without one.
    let strict = include_str!("../../../../examples/policy.toml").replace("grant_ttl = \"1h\"", "grant_ttl = \"1h\"\nreason_required = true");
    let strict = Policy::parse("p.toml", &strict).unwrap();
    let err = decide_read_gated(&strict, &who(&["sre"]), &meta, &ReadRequest::default(), now).unwrap_err();
    assert_eq!((err.code.as_str(), err.rules.as_slice()), ("purpose_required", &["roles.sre.approval.reason_required".to_owned()][..]));
    assert!(decide_read_gated(&strict, &who(&["sre"]), &meta, &ReadRequest { fields: None, purpose }, now).is_ok());

    // `fields_outside`: a slice inside the listed fields is served at once; anything else waits.
    let sliced = include_str!("../../../../examples/policy.toml")
        .replace("grant_ttl = \"1h\"", "grant_ttl = \"1h\"\nwhen = { fields_outside = [\"$.final_output\"] }");
    let sliced = Policy::parse("p.toml", &sliced).unwrap();
    let inside = crate::project::FieldRequest::parse_all(["$.final_output"]).unwrap();
    let d = decide_read_gated(&sliced, &who(&["sre"]), &meta, &ReadRequest { fields: Some(&inside), purpose: None }, now).unwrap();
    assert!(matches!(d, ReadDecision::Serve(_)), "{d:?}");
    let wider = crate::project::FieldRequest::parse_all(["$.steps"]).unwrap();
    let d = decide_read_gated(&sliced, &who(&["sre"]), &meta, &ReadRequest { fields: Some(&wider), purpose: None }, now).unwrap();
    let ReadDecision::Approval(g) = d else { panic!("{d:?}") };
    assert_eq!(g.rules, ["roles.sre.actions", "roles.sre.approval", "roles.sre.approval.when.fields_outside"]);
    assert_eq!(g.shape.fields, Some(vec!["$.steps".to_owned()]));
}
