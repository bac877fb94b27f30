//! One request's path through the core, in phase order. The server, `policy test` and benchmarks
//! all call these, so what a golden scenario shows is what the gateway serves.

use std::time::SystemTime;

use serde_json::Value;

use crate::approval::{Party, RequestShape};
use crate::decision::{
    approval_needed, check_approval, check_count, check_rows, roles_for_action, Action, Denial, DenyCode,
};
use crate::mask::{MaskKey, MaskReport};
use crate::meta::TraceMeta;
use crate::policy::{ApprovalAsk, ApprovalRule, Policy, Role};
use crate::principal::Principal;
use crate::project::{project, FieldRequest};

/// A role that may serve a request, with the rules that admitted it so far.
#[derive(Debug)]
pub struct Candidate<'p> {
    pub role: &'p Role,
    pub rules: Vec<String>,
}

/// What a read returns once decided, projected and masked.
#[derive(Debug)]
pub struct Served {
    pub role: String,
    pub rules: Vec<String>,
    pub body: Value,
    pub masks: MaskReport,
}

/// What a read asks for, beyond the trace: the fields (none = the role's whole view) and the
/// caller's stated purpose.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadRequest<'a> {
    pub fields: Option<&'a [FieldRequest]>,
    pub purpose: Option<&'a str>,
}

/// The decide phase's answer for a read.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "made once per request and matched at once; a box would only add an allocation")]
pub enum ReadDecision<'p> {
    /// Serve under the first of these roles whose view holds the request.
    Serve(Vec<Candidate<'p>>),
    /// Only roles whose approval rule gates this request admit it: it is served under `role`
    /// once an access request for exactly `shape` is approved.
    Approval(Gate<'p>),
}

/// A read that waits for approval.
#[derive(Debug)]
pub struct Gate<'p> {
    pub role: &'p Role,
    pub rule: &'p ApprovalRule,
    /// Rules that admitted the read, then the approval rules that gate it.
    pub rules: Vec<String>,
    /// Exactly what was asked; its fingerprint binds the grant.
    pub shape: RequestShape,
}

impl Gate<'_> {
    /// The candidate to serve under once the grant is found.
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate { role: self.role, rules: self.rules.clone() }
    }
}

/// Decide phase of a read, before the body is fetched: the roles that may read this trace
/// (action, row scope), in policy order, or the approval gate it must pass.
///
/// Roles that serve without approval win: a caller in both `eng` and `sre` is served as an
/// engineer, never made to wait. Only when every admitting role gates the request does it wait,
/// under the first such role. A purpose that rule requires must be given before anything is
/// opened.
pub fn decide_read_gated<'p>(
    policy: &'p Policy,
    who: &Principal,
    meta: &TraceMeta,
    req: &ReadRequest<'_>,
    now: SystemTime,
) -> Result<ReadDecision<'p>, Denial> {
    let field_exprs: Option<Vec<String>> = req.fields.map(|f| f.iter().map(|r| r.expr.clone()).collect());
    let ask = ApprovalAsk { reads_documents: true, fields: field_exprs.as_deref(), count: 1, purpose: req.purpose };
    let mut first_denial = None;
    let mut ok = Vec::new();
    let mut gated = Vec::new();
    for role in roles_for_action(policy, who, Action::Read)? {
        match check_rows(role, who, meta, now) {
            Ok(mut rules) => {
                rules.insert(0, role.rule("actions"));
                match (approval_needed(role, &ask), role.approval.as_ref()) {
                    (Some(gate_rules), Some(rule)) => gated.push((role, rule, rules, gate_rules)),
                    _ => ok.push(Candidate { role, rules }),
                }
            }
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    if !ok.is_empty() {
        return Ok(ReadDecision::Serve(ok));
    }
    let Some((role, rule, mut rules, gate_rules)) = gated.into_iter().next() else {
        return Err(first_denial.unwrap_or_else(|| Denial::new(DenyCode::NoRole, None, "no role may read", vec![])));
    };
    if rule.reason_required && req.purpose.is_none_or(|p| p.trim().is_empty()) {
        return Err(Denial::new(
            DenyCode::PurposeRequired,
            Some(role),
            format!(
                "role `{}` needs approval for this read and a stated purpose: send header `x-tracegate-purpose` or `?purpose=`",
                role.name
            ),
            vec![role.rule("approval.reason_required")],
        ));
    }
    rules.extend(gate_rules);
    let requester = Party::of(who);
    let shape = RequestShape::new(
        requester,
        Action::Read,
        role.name.clone(),
        policy.version.clone(),
        [meta.trace_id.clone()],
        field_exprs,
        req.purpose,
    );
    Ok(ReadDecision::Approval(Gate { role, rule, rules, shape }))
}

/// Project-and-mask phase of a read: served under the first candidate whose view holds every
/// requested field. The document is only cloned when more than one role is in play.
pub fn project_and_mask(
    candidates: &[Candidate<'_>],
    doc: Value,
    requested: Option<&[FieldRequest]>,
    key: &MaskKey,
) -> Result<Served, Denial> {
    let mut first_denial = None;
    let mut doc = Some(doc);
    for (i, c) in candidates.iter().enumerate() {
        let input = if i + 1 == candidates.len() { doc.take() } else { doc.clone() };
        let Some(input) = input else { break };
        match project(input, c.role, requested) {
            Ok(mut body) => {
                let masks = c.role.masking.apply(&mut body, key);
                let mut rules = c.rules.clone();
                rules.push(c.role.rule("fields"));
                return Ok(Served { role: c.role.name.clone(), rules, body, masks });
            }
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    Err(first_denial.unwrap_or_else(|| {
        Denial::new(DenyCode::NoRole, None, "no role may serve this read", vec![])
    }))
}

/// A metadata search.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub tenant: Option<String>,
    pub project: Option<String>,
    pub agent: Option<String>,
    pub user: Option<String>,
    #[serde(default, with = "opt_rfc3339")]
    pub since: Option<SystemTime>,
    #[serde(default, with = "opt_rfc3339")]
    pub until: Option<SystemTime>,
    pub limit: Option<u32>,
}

impl SearchQuery {
    fn filter(&self, key: &str) -> Option<&str> {
        match key {
            "tenant" => self.tenant.as_deref(),
            "project" => self.project.as_deref(),
            "agent" => self.agent.as_deref(),
            "user" => self.user.as_deref(),
            _ => None,
        }
    }
}

/// Search results: metadata only, newest first.
#[derive(Debug, serde::Serialize)]
pub struct SearchResult {
    pub role: String,
    pub rules: Vec<String>,
    pub limit: u32,
    pub traces: Vec<TraceMeta>,
    /// More traces matched than `limit`.
    pub more: bool,
}

/// Searches `all` under the first role that may search with this limit. A filter that names
/// a value the role's row scope excludes is refused, not silently emptied.
pub fn search<'a>(
    policy: &Policy,
    who: &Principal,
    query: &SearchQuery,
    all: impl Iterator<Item = &'a TraceMeta>,
    now: SystemTime,
) -> Result<SearchResult, Denial> {
    let roles = roles_for_action(policy, who, Action::Search)?;
    let mut chosen = None;
    let mut first_denial = None;
    for role in roles {
        let checked = check_count(role, query.limit).and_then(|limit| {
            // Searches return metadata only and do not wait: a gated search is refused.
            check_approval(role, &ApprovalAsk { reads_documents: false, fields: None, count: limit, purpose: None })?;
            check_filters(role, who, query)?;
            Ok(limit)
        });
        match checked {
            Ok(limit) => {
                chosen = Some((role, limit));
                break;
            }
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    let Some((role, limit)) = chosen else {
        return Err(first_denial.unwrap_or_else(|| Denial::new(DenyCode::NoRole, None, "no role may search", vec![])));
    };
    let mut hits: Vec<&TraceMeta> = all
        .filter(|m| {
            ["tenant", "project", "agent", "user"]
                .iter()
                .all(|k| query.filter(k).is_none_or(|want| m.field(k) == Some(want)))
        })
        .filter(|m| query.since.is_none_or(|s| m.started_at.is_some_and(|t| t >= s)))
        .filter(|m| query.until.is_none_or(|u| m.started_at.is_some_and(|t| t < u)))
        .filter(|m| check_rows(role, who, m, now).is_ok())
        .collect();
    hits.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.trace_id.cmp(&b.trace_id)));
    let more = hits.len() > limit as usize;
    hits.truncate(limit as usize);
    let mut rules = vec![role.rule("actions"), role.rule("rows.max_count")];
    rules.extend(role.rows.matches.iter().map(|(k, _)| role.rule(&format!("rows.match.{k}"))));
    if role.rows.max_age.is_some() {
        rules.push(role.rule("rows.max_age"));
    }
    Ok(SearchResult { role: role.name.clone(), rules, limit, traces: hits.into_iter().cloned().collect(), more })
}

fn check_filters(role: &Role, who: &Principal, query: &SearchQuery) -> Result<(), Denial> {
    for (key, claim) in &role.rows.matches {
        let rule = role.rule(&format!("rows.match.{key}"));
        let Some(mine) = who.claim(claim) else {
            return Err(Denial::new(
                DenyCode::OutsideRowScope,
                Some(role),
                format!("role `{}` limits traces by `{key}` to the caller's `{claim}` claim, which the caller's token does not carry", role.name),
                vec![rule],
            ));
        };
        if let Some(asked) = query.filter(key) {
            if asked != mine {
                return Err(Denial::new(
                    DenyCode::OutsideRowScope,
                    Some(role),
                    format!("search for {key} `{asked}` is outside role `{}`'s scope ({key} must equal the caller's `{claim}` claim)", role.name),
                    vec![rule],
                ));
            }
        }
    }
    Ok(())
}

/// Decide phase of a write: a role that may write, and whose row scope admits the document.
pub fn decide_write<'p>(
    policy: &'p Policy,
    who: &Principal,
    meta: &TraceMeta,
    now: SystemTime,
) -> Result<Candidate<'p>, Denial> {
    let mut first_denial = None;
    for role in roles_for_action(policy, who, Action::Write)? {
        // max_age is about reading old traces; a write is judged on the match rules only.
        let scoped = TraceMeta { started_at: Some(now), ..meta.clone() };
        match check_rows(role, who, &scoped, now) {
            Ok(mut rules) => {
                rules.insert(0, role.rule("actions"));
                return Ok(Candidate { role, rules });
            }
            Err(d) => {
                first_denial.get_or_insert(d);
            }
        }
    }
    Err(first_denial.unwrap_or_else(|| Denial::new(DenyCode::NoRole, None, "no role may write", vec![])))
}

mod opt_rfc3339 {
    use std::time::SystemTime;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_rfc3339_weak(&s).map_err(|e| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time: {e}"))))
            .transpose()
    }
}
