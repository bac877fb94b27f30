//! Decisions: which role serves a request, or why none may. Every outcome names its rules.

use std::time::SystemTime;

use crate::meta::TraceMeta;
use crate::policy::{ApprovalAsk, Policy, Role};
use crate::principal::Principal;

/// What a request does. Roles list the actions they permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read one trace.
    Read,
    /// Search trace metadata.
    Search,
    /// Store a trace.
    Write,
    /// Read the audit trail.
    Audit,
}

impl Action {
    pub const NAMES: [&'static str; 4] = ["read", "search", "write", "audit"];

    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "read" => Action::Read,
            "search" => Action::Search,
            "write" => Action::Write,
            "audit" => Action::Audit,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Search => "search",
            Action::Write => "write",
            Action::Audit => "audit",
        }
    }
}

/// Why a request was refused; stable strings for clients and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyCode {
    /// No role in the policy is reached from the caller's groups.
    NoRole,
    /// The caller's roles do not permit the action.
    ActionNotPermitted,
    /// The trace is outside the role's row scope.
    OutsideRowScope,
    /// A requested field is not in any `allow` rule of the role.
    FieldOutsideView,
    /// A requested field overlaps a `deny` rule of the role.
    FieldDenied,
    /// More traces were asked for than the role's `max_count`.
    CountOverLimit,
    /// The role serves this request only after a human approves it.
    ApprovalRequired,
    /// The role's approval rule requires the caller to state a purpose, and none was given.
    PurposeRequired,
}

impl DenyCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyCode::NoRole => "no_role",
            DenyCode::ActionNotPermitted => "action_not_permitted",
            DenyCode::OutsideRowScope => "outside_row_scope",
            DenyCode::FieldOutsideView => "field_outside_view",
            DenyCode::FieldDenied => "field_denied",
            DenyCode::CountOverLimit => "count_over_limit",
            DenyCode::ApprovalRequired => "approval_required",
            DenyCode::PurposeRequired => "purpose_required",
        }
    }
}

/// A refusal, with the role it was judged under (if any) and the rules behind it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Denial {
    pub code: DenyCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub rules: Vec<String>,
}

impl Denial {
    pub fn new(code: DenyCode, role: Option<&Role>, message: impl Into<String>, rules: Vec<String>) -> Self {
        Denial { code, message: message.into(), role: role.map(|r| r.name.clone()), rules }
    }
}

/// The roles that may perform `action` for this caller, in policy order; or why there are none.
pub fn roles_for_action<'p>(policy: &'p Policy, who: &Principal, action: Action) -> Result<Vec<&'p Role>, Denial> {
    let reached = policy.roles_for_groups(&who.groups);
    if reached.is_empty() {
        return Err(Denial::new(
            DenyCode::NoRole,
            None,
            format!("no role in policy `{}` is reached from groups {:?}", policy.version, who.groups),
            vec!["roles.*.groups".into()],
        ));
    }
    let permitted: Vec<&Role> = reached.iter().copied().filter(|r| r.actions.contains(&action)).collect();
    if permitted.is_empty() {
        let names: Vec<&str> = reached.iter().map(|r| r.name.as_str()).collect();
        return Err(Denial::new(
            DenyCode::ActionNotPermitted,
            reached.first().copied(),
            format!("role(s) {} do not permit `{}`", quoted(&names), action.as_str()),
            reached.iter().map(|r| r.rule("actions")).collect(),
        ));
    }
    Ok(permitted)
}

/// Checks one trace against a role's row scope. Returns the rules that admitted it.
/// Missing metadata or a missing claim never matches (fail closed).
pub fn check_rows(role: &Role, who: &Principal, meta: &TraceMeta, now: SystemTime) -> Result<Vec<String>, Denial> {
    let mut rules = Vec::new();
    for (key, claim) in &role.rows.matches {
        let rule = role.rule(&format!("rows.match.{key}"));
        match (meta.field(key), who.claim(claim)) {
            (Some(have), Some(want)) if have == want => rules.push(rule),
            (_, None) => {
                return Err(Denial::new(
                    DenyCode::OutsideRowScope,
                    Some(role),
                    format!("role `{}` limits traces by `{key}` to the caller's `{claim}` claim, which the caller's token does not carry", role.name),
                    vec![rule],
                ))
            }
            (_, Some(_)) => {
                // Never quote the trace's value: it is another tenant's metadata.
                return Err(Denial::new(
                    DenyCode::OutsideRowScope,
                    Some(role),
                    format!(
                        "trace `{}` is outside role `{}`'s row scope ({key} must equal the caller's `{claim}` claim)",
                        meta.trace_id, role.name
                    ),
                    vec![rule],
                ))
            }
        }
    }
    if let Some(max_age) = role.rows.max_age {
        let rule = role.rule("rows.max_age");
        let fresh = meta
            .started_at
            .is_some_and(|t| now.duration_since(t).map_or(true, |age| age <= max_age));
        if !fresh {
            return Err(Denial::new(
                DenyCode::OutsideRowScope,
                Some(role),
                format!(
                    "trace `{}` is older than role `{}`'s max_age of {} (or has no start time)",
                    meta.trace_id,
                    role.name,
                    humantime::format_duration(max_age)
                ),
                vec![rule],
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// Whether `role`'s approval rule makes this request wait for a human: `None` when it may go
/// ahead, else the rules that say so (`roles.<role>.approval`, then any `when` conditions that
/// held).
pub fn approval_needed(role: &Role, ask: &ApprovalAsk<'_>) -> Option<Vec<String>> {
    let rule = role.approval.as_ref()?;
    let held = rule.when.triggered(ask);
    if held.is_empty() {
        return None;
    }
    let mut rules = vec![role.rule("approval")];
    rules.extend(held.into_iter().filter(|c| *c != "when.always").map(|c| role.rule(&format!("approval.{c}"))));
    Some(rules)
}

/// The refusal for a request the role's approval rule gates where the request cannot wait
/// for a human (searches).
pub fn approval_denial(role: &Role, rules: Vec<String>) -> Denial {
    let (n, groups) = role
        .approval
        .as_ref()
        .map_or((1, String::new()), |a| (a.approvals, quoted(&a.approvers.iter().map(String::as_str).collect::<Vec<_>>())));
    Denial::new(
        DenyCode::ApprovalRequired,
        Some(role),
        format!("role `{}` serves this only after {n} approval(s) from group(s) {groups}", role.name),
        rules,
    )
}

/// Refuses requests the role's approval rule gates; for actions that are not served through
/// the approval workflow (search).
pub fn check_approval(role: &Role, ask: &ApprovalAsk<'_>) -> Result<(), Denial> {
    match approval_needed(role, ask) {
        None => Ok(()),
        Some(rules) => Err(approval_denial(role, rules)),
    }
}

/// The number of traces a search may return under `role`: the request's limit if within
/// `max_count`, else a refusal (never a silent cut).
pub fn check_count(role: &Role, requested: Option<u32>) -> Result<u32, Denial> {
    let max = role.rows.max_count;
    match requested {
        None => Ok(max.min(50)),
        Some(n) if n <= max => Ok(n),
        Some(n) => Err(Denial::new(
            DenyCode::CountOverLimit,
            Some(role),
            format!("limit {n} exceeds role `{}`'s max_count of {max}", role.name),
            vec![role.rule("rows.max_count")],
        )),
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}
