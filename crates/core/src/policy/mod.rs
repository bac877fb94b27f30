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

pub use error::{PolicyError, PolicyIssue};

use crate::decision::Action;
use crate::mask::MaskingSpec;

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
    pub masking: MaskingSpec,
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

/// When a grant needs a human first. Until the approval workflow ships, a role with an approval
/// rule is refused with that reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalRule {
    pub approvers: Vec<String>,
    pub approvals: u32,
    #[serde(with = "humantime_serde_secs")]
    pub pending_ttl: Duration,
    #[serde(with = "humantime_serde_secs")]
    pub grant_ttl: Duration,
    pub one_time: bool,
    pub reason_required: bool,
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
