//! The policy: roles reached from groups, and for each the actions, rows, fields and maskers it gets.
//!
//! A policy file is TOML, parsed strictly: unknown keys are errors (a typo in `deny` must never
//! widen access), every JSONPath is compiled up front, and every error names the file, line and
//! column. A parsed policy is identified by the SHA-256 of its bytes ([`PolicyVersion`]), which is
//! what audit records and decisions cite.

mod error;
mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde_json_path::JsonPath;
use sha2::{Digest, Sha256};

pub use error::{LineIndex, PolicyError, PolicyIssue};

use crate::decision::Action;
use crate::mask::Masker;

/// Largest `max_count` a role may set: a request for more traces than this is never served.
pub const MAX_COUNT_CEILING: u32 = 10_000;
/// `max_count` when a role names none.
pub const DEFAULT_MAX_COUNT: u32 = 100;

/// The content hash of a policy file: `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PolicyVersion(pub String);

impl PolicyVersion {
    pub fn of(bytes: &[u8]) -> Self {
        PolicyVersion(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed, validated policy.
#[derive(Debug)]
pub struct Policy {
    pub version: PolicyVersion,
    pub description: Option<String>,
    /// Roles in name order; a request is served under the first role that allows all of it.
    pub roles: Vec<Role>,
}

/// A named grant.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    pub description: Option<String>,
    /// Identity-provider groups that reach this role.
    pub groups: BTreeSet<String>,
    pub actions: BTreeSet<Action>,
    pub fields: FieldView,
    pub rows: RowScope,
    pub masking: Masker,
    pub approval: Option<ApprovalRule>,
}

impl Role {
    /// The rule id of a part of this role, as decisions cite it: `roles.<name>.<part>`.
    pub fn rule(&self, part: &str) -> String {
        format!("roles.{}.{}", self.name, part)
    }
}

/// One JSONPath in a role's `fields.allow` or `fields.deny`.
#[derive(Debug)]
pub struct FieldRule {
    /// e.g. `roles.support.fields.deny[1]`.
    pub id: String,
    pub expr: String,
    pub path: JsonPath,
    /// Its pattern, for deciding from the policy alone what a request can reach.
    pub shape: crate::jsonpath::Shape,
    /// How a read locates what the rule selects: its checked walk, built once when the policy
    /// is compiled (`None`: the library evaluates it). Built here rather than looked up per
    /// request, so a read takes no lock and hashes no rule text.
    pub(crate) plan: Option<crate::project::plan::Plan>,
}

impl FieldRule {
    /// A rule for `expr` as parsed into `path` and `shape`, with its plan.
    pub(crate) fn new(id: String, expr: String, path: JsonPath, shape: crate::jsonpath::Shape) -> FieldRule {
        let plan = crate::project::plan::Plan::of(&expr, &path);
        FieldRule { id, expr, path, shape, plan }
    }
}

/// The projection a role gets: nodes matched by any `allow`, minus subtrees matched by any `deny`.
/// With no `allow`, the role sees no field at all.
#[derive(Debug, Default)]
pub struct FieldView {
    pub allow: Vec<FieldRule>,
    pub deny: Vec<FieldRule>,
}

impl FieldView {
    /// True when the view is the whole document, so projection can be skipped.
    pub fn is_everything(&self) -> bool {
        self.deny.is_empty() && self.allow.iter().any(|r| r.expr.trim() == "$")
    }
}

/// Which traces a role may touch.
#[derive(Debug)]
pub struct RowScope {
    /// `(metadata key, claim name)`: the trace's metadata value must equal the caller's claim.
    pub matches: Vec<(String, String)>,
    pub max_age: Option<Duration>,
    pub max_count: u32,
}

impl RowScope {
    /// True when checking this scope reads the trace's own metadata (`match`, `max_age`): only
    /// then must a read parse the served version to check it again
    /// ([`crate::decision::check_rows`] admits every trace otherwise).
    pub fn reads_trace(&self) -> bool {
        // Destructured so that a new row-scope field must be sorted here too: a field
        // `check_rows` reads from the trace but this ignores would skip the re-check.
        let RowScope { matches, max_age, max_count: _ } = self;
        !matches.is_empty() || max_age.is_some()
    }
}

/// Most distinct approvals a rule may require.
pub const MAX_APPROVALS: u32 = 10;
/// `pending_ttl` and `grant_ttl` when a rule names none.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(3600);
/// Longest a request may wait: reviews that never expire pile up into rubber stamps.
pub const MAX_PENDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest a grant may last: just-in-time access is not a standing role.
pub const MAX_GRANT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A role's `approval` table: which of its requests wait for a human, who decides, and what an
/// approval is worth. See [`crate::approval`] for the workflow it drives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalRule {
    /// Groups whose members may approve, deny or revoke. Never the requester.
    pub approvers: Vec<String>,
    /// Distinct approvers needed.
    pub approvals: u32,
    /// How long a request waits before it expires on its own.
    #[serde(with = "humantime_serde_secs")]
    pub pending_ttl: Duration,
    /// How long a grant lasts once approved.
    #[serde(with = "humantime_serde_secs")]
    pub grant_ttl: Duration,
    /// A grant serves exactly one request, then is used up.
    pub one_time: bool,
    /// The caller must state a purpose (`x-tracegate-purpose` or `?purpose=`).
    pub reason_required: bool,
    pub when: ApprovalWhen,
}

/// `approval.when`: a request waits if **any** listed condition holds. Without a `when` table,
/// every request waits ([`ApprovalWhen::ALWAYS`]). Conditions are judged on the request alone,
/// before anything is fetched, so asking never reveals whether a field exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalWhen {
    pub always: bool,
    /// Field expressions readable without approval. A request waits unless it names `fields`
    /// and every one is (after trimming) literally in this list; asking for the whole view waits.
    /// Literal matching is deliberate: JSONPath containment is undecidable in general, and a
    /// false "inside" would skip a human.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields_outside: Option<BTreeSet<String>>,
    /// A request for more than this many traces waits (searches and exports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count_over: Option<u32>,
    /// A request stating one of these purposes waits.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub purposes: BTreeSet<String>,
}

/// The parts of a request that `approval.when` looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalAsk<'a> {
    /// The request returns trace documents (reads), not only metadata (searches). Field
    /// conditions apply only then.
    pub reads_documents: bool,
    /// Requested field expressions; `None` asks for the role's whole view.
    pub fields: Option<&'a [String]>,
    /// How many traces the request may return.
    pub count: u32,
    pub purpose: Option<&'a str>,
}

impl ApprovalWhen {
    pub const ALWAYS: ApprovalWhen =
        ApprovalWhen { always: true, fields_outside: None, count_over: None, purposes: BTreeSet::new() };

    /// The conditions that hold for `ask`, as rule-id suffixes (`when.always`, ...); empty when
    /// the request may go ahead without approval.
    pub fn triggered(&self, ask: &ApprovalAsk<'_>) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.always {
            out.push("when.always");
        }
        if let Some(free) = self.fields_outside.as_ref().filter(|_| ask.reads_documents) {
            let inside = ask.fields.is_some_and(|f| !f.is_empty() && f.iter().all(|e| free.contains(e.trim())));
            if !inside {
                out.push("when.fields_outside");
            }
        }
        if self.count_over.is_some_and(|n| ask.count > n) {
            out.push("when.count_over");
        }
        if ask.purpose.is_some_and(|p| self.purposes.contains(p.trim())) {
            out.push("when.purposes");
        }
        out
    }
}

mod humantime_serde_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl Policy {
    /// Parses and validates a policy; `file` names it in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        spec::compile(file, text)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Roles reached from any of the caller's groups, in policy order.
    pub fn roles_for_groups(&self, groups: &[String]) -> Vec<&Role> {
        self.roles.iter().filter(|r| groups.iter().any(|g| r.groups.contains(g))).collect()
    }

    /// A human- and machine-readable summary of each role's effective view, for `policy check`.
    pub fn effective_views(&self) -> serde_json::Value {
        let mut roles = BTreeMap::new();
        for r in &self.roles {
            roles.insert(
                r.name.clone(),
                serde_json::json!({
                    "groups": r.groups,
                    "actions": r.actions,
                    "fields": {
                        "allow": r.fields.allow.iter().map(|f| &f.expr).collect::<Vec<_>>(),
                        "deny": r.fields.deny.iter().map(|f| &f.expr).collect::<Vec<_>>(),
                    },
                    "rows": {
                        "match": r.rows.matches.iter().map(|(k, c)| format!("trace.{k} == caller.{c}")).collect::<Vec<_>>(),
                        "max_age": r.rows.max_age.map(|d| humantime::format_duration(d).to_string()),
                        "max_count": r.rows.max_count,
                    },
                    "masking": r.masking.summary(),
                    "approval": r.approval,
                }),
            );
        }
        serde_json::json!({ "version": self.version, "roles": roles })
    }
}

#[cfg(test)]
mod tests;
