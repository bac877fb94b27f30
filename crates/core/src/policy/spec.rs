//! The policy file as written (serde, strict) and its compilation into a [`Policy`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::{LineIndex, PolicyError, PolicyIssue};
use super::{
    ApprovalRule, ApprovalWhen, FieldRule, FieldView, Policy, PolicyVersion, Role, RowScope, DEFAULT_APPROVAL_TTL,
    DEFAULT_MAX_COUNT, MAX_APPROVALS, MAX_COUNT_CEILING, MAX_GRANT_TTL, MAX_PENDING_TTL,
};
use crate::decision::Action;
use crate::mask::MaskingSpec;
use crate::meta::META_KEYS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySpec {
    description: Option<String>,
    roles: BTreeMap<Spanned<String>, RoleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSpec {
    description: Option<String>,
    groups: Vec<Spanned<String>>,
    actions: Vec<Spanned<String>>,
    #[serde(default)]
    fields: FieldsSpec,
    #[serde(default)]
    rows: RowsSpec,
    #[serde(default)]
    masking: MaskingSpec,
    approval: Option<ApprovalSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FieldsSpec {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RowsSpec {
    #[serde(default, rename = "match")]
    matches: BTreeMap<Spanned<String>, Spanned<String>>,
    max_age: Option<Spanned<String>>,
    max_count: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalSpec {
    approvers: Vec<Spanned<String>>,
    #[serde(default = "one")]
    approvals: Spanned<i64>,
    pending_ttl: Option<Spanned<String>>,
    grant_ttl: Option<Spanned<String>>,
    #[serde(default)]
    one_time: bool,
    #[serde(default)]
    reason_required: bool,
    when: Option<WhenSpec>,
}

/// `approval.when`: the conditions under which a request waits; absent means every request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenSpec {
    #[serde(default)]
    always: bool,
    fields_outside: Option<Vec<Spanned<String>>>,
    count_over: Option<Spanned<i64>>,
    #[serde(default)]
    purposes: Vec<Spanned<String>>,
}

fn one() -> Spanned<i64> {
    Spanned::new(0..0, 1)
}

struct Ctx<'a> {
    file: &'a str,
    lines: LineIndex<'a>,
    issues: Vec<PolicyIssue>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, message: String) {
        let (line, column) = if span == (0..0) { (0, 0) } else { self.lines.position(span.start) };
        self.issues.push(PolicyIssue { file: self.file.to_owned(), line, column, message });
    }

    fn duration(&mut self, s: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(s.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.err(s.span(), format!("{what} must be longer than zero"));
                None
            }
            Err(e) => {
                self.err(s.span(), format!("{what} `{}` is not a duration (e.g. `15m`, `90d`): {e}", s.get_ref()));
                None
            }
        }
    }

    /// Compiles `approval.when`. Strict: an empty table (which would never ask) and `always`
    /// next to other conditions (which would be dead) are errors, not silent surprises.
    fn when(&mut self, role: &str, role_span: Range<usize>, w: Option<&WhenSpec>) -> ApprovalWhen {
        let Some(w) = w else { return ApprovalWhen::ALWAYS };
        let has_other = w.fields_outside.is_some() || w.count_over.is_some() || !w.purposes.is_empty();
        if w.always && has_other {
            self.err(role_span.clone(), format!("role `{role}`: `approval.when.always` makes its other conditions meaningless; drop one"));
        }
        if !w.always && !has_other {
            self.err(role_span, format!("role `{role}`: `approval.when` names no condition, so no request would ever wait; drop it to always ask"));
        }
        let fields_outside = w.fields_outside.as_ref().map(|list| {
            list.iter()
                .filter_map(|s| match crate::jsonpath::parse(s.get_ref().trim()) {
                    Ok(_) => Some(s.get_ref().trim().to_owned()),
                    Err(e) => {
                        self.err(s.span(), format!("`{}` is not an RFC 9535 JSONPath: {e}", s.get_ref()));
                        None
                    }
                })
                .collect::<BTreeSet<String>>()
        });
        let count_over = w.count_over.as_ref().and_then(|c| match u32::try_from(*c.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(c.span(), "`approval.when.count_over` must be zero or more".into());
                None
            }
        });
        let mut purposes = BTreeSet::new();
        for p in &w.purposes {
            let t = p.get_ref().trim();
            if t.is_empty() {
                self.err(p.span(), "`approval.when.purposes` entries must not be empty".into());
            } else {
                purposes.insert(t.to_owned());
            }
        }
        ApprovalWhen { always: w.always, fields_outside, count_over, purposes }
    }

    fn paths(&mut self, role: &str, kind: &str, specs: &[Spanned<String>]) -> Vec<FieldRule> {
        let mut out = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            match crate::jsonpath::parse(s.get_ref()).and_then(|path| {
                crate::jsonpath::scan(s.get_ref()).map(|shape| (path, shape)).map_err(|e| e.0)
            }) {
                Ok((path, shape)) => out.push(FieldRule::new(
                    format!("roles.{role}.fields.{kind}[{i}]"),
                    s.get_ref().clone(),
                    path,
                    shape,
                )),
                Err(e) => self.err(
                    s.span(),
                    format!("`{}` is not an RFC 9535 JSONPath: {e}", s.get_ref()),
                ),
            }
        }
        out
    }
}

pub(super) fn compile(file: &str, text: &str) -> Result<Policy, PolicyError> {
    let mut cx = Ctx { file, lines: LineIndex::new(text), issues: Vec::new() };
    let spec: PolicySpec = match toml::from_str(text) {
        Ok(s) => s,
        Err(e) => {
            cx.err(e.span().unwrap_or(0..0), e.message().to_owned());
            return Err(PolicyError { issues: cx.issues });
        }
    };
    if spec.roles.is_empty() {
        cx.err(0..0, "policy defines no roles".into());
    }
    let mut roles = Vec::new();
    for (name, r) in spec.roles {
        let name_span = name.span();
        let name = name.into_inner();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            cx.err(name_span.clone(), format!("role name `{name}` may only contain letters, digits, `_` and `-`"));
        }
        if r.groups.is_empty() {
            cx.err(name_span.clone(), format!("role `{name}` lists no groups, so nobody can reach it"));
        }
        let groups: BTreeSet<String> = r.groups.iter().map(|g| g.get_ref().clone()).collect();
        let mut actions = BTreeSet::new();
        for a in &r.actions {
            match Action::parse(a.get_ref()) {
                Some(act) => {
                    actions.insert(act);
                }
                None => cx.err(
                    a.span(),
                    format!("unknown action `{}` (expected one of: {})", a.get_ref(), Action::NAMES.join(", ")),
                ),
            }
        }
        let fields = FieldView {
            allow: cx.paths(&name, "allow", &r.fields.allow),
            deny: cx.paths(&name, "deny", &r.fields.deny),
        };
        if actions.contains(&Action::Read) && fields.allow.is_empty() {
            cx.err(name_span.clone(), format!("role `{name}` may `read` but `fields.allow` is empty, so it would see nothing"));
        }
        let mut matches = Vec::new();
        for (key, claim) in &r.rows.matches {
            if !META_KEYS.contains(&key.get_ref().as_str()) {
                cx.err(
                    key.span(),
                    format!("`rows.match` key `{}` is not trace metadata (expected one of: {})", key.get_ref(), META_KEYS.join(", ")),
                );
            }
            if claim.get_ref().is_empty() {
                cx.err(claim.span(), "`rows.match` needs a claim name".into());
            }
            matches.push((key.get_ref().clone(), claim.get_ref().clone()));
        }
        let max_age = r.rows.max_age.as_ref().and_then(|s| cx.duration(s, "`rows.max_age`"));
        let max_count = match &r.rows.max_count {
            None => DEFAULT_MAX_COUNT,
            Some(c) => match u32::try_from(*c.get_ref()) {
                Ok(n) if (1..=MAX_COUNT_CEILING).contains(&n) => n,
                _ => {
                    cx.err(c.span(), format!("`rows.max_count` must be between 1 and {MAX_COUNT_CEILING}"));
                    DEFAULT_MAX_COUNT
                }
            },
        };
        let approval = r.approval.as_ref().map(|a| {
            if a.approvers.is_empty() {
                cx.err(name_span.clone(), format!("role `{name}`: `approval.approvers` is empty, so no request could ever be approved"));
            }
            let approvals = match u32::try_from(*a.approvals.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    cx.err(a.approvals.span(), "`approval.approvals` must be at least 1".into());
                    1
                }
            };
            if approvals > MAX_APPROVALS {
                cx.err(a.approvals.span(), format!("`approval.approvals` must be at most {MAX_APPROVALS}"));
            }
            let pending_ttl = a.pending_ttl.as_ref().and_then(|s| cx.duration(s, "`approval.pending_ttl`")).unwrap_or(DEFAULT_APPROVAL_TTL);
            if pending_ttl > MAX_PENDING_TTL {
                cx.err(a.pending_ttl.as_ref().map_or(0..0, Spanned::span), "`approval.pending_ttl` must be at most 7d".into());
            }
            let grant_ttl = a.grant_ttl.as_ref().and_then(|s| cx.duration(s, "`approval.grant_ttl`")).unwrap_or(DEFAULT_APPROVAL_TTL);
            if grant_ttl > MAX_GRANT_TTL {
                cx.err(a.grant_ttl.as_ref().map_or(0..0, Spanned::span), "`approval.grant_ttl` must be at most 30d".into());
            }
            ApprovalRule {
                approvers: a.approvers.iter().map(|g| g.get_ref().clone()).collect(),
                approvals,
                pending_ttl,
                grant_ttl,
                one_time: a.one_time,
                reason_required: a.reason_required,
                when: cx.when(&name, name_span.clone(), a.when.as_ref()),
            }
        });
        let masking = match r.masking.compile() {
            Ok(m) => Some(m),
            Err(errs) => {
                for e in errs {
                    cx.err(e.span.unwrap_or_else(|| name_span.clone()), format!("role `{name}`: {}", e.message));
                }
                None
            }
        };
        let Some(masking) = masking else { continue };
        roles.push(Role {
            name,
            description: r.description,
            groups,
            actions,
            fields,
            rows: RowScope { matches, max_age, max_count },
            masking,
            approval,
        });
    }
    if !cx.issues.is_empty() {
        return Err(PolicyError { issues: cx.issues });
    }
    Ok(Policy { version: PolicyVersion::of(text.as_bytes()), description: spec.description, roles })
}
