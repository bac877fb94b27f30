//! Just-in-time approval: the access-request state machine, pure.
//!
//! A request that a role's `approval` rule gates becomes an [`AccessRequest`], bound by its
//! [`Fingerprint`] to exactly what was asked. Humans move it along:
//!
//! ```text
//!             approve × N                 use (one-time)
//!   pending ───────────────▶ approved ───────────────────▶ used
//!      │  deny (any approver)    │  revoke / grant_ttl passes
//!      ▼                         ▼
//!   denied / expired          revoked / expired
//! ```
//!
//! Every transition is a pure function of the request, the actor and `now` that returns either an
//! [`Event`] or a typed [`ApprovalError`]; nothing changes until the caller [`AccessRequest::apply`]s
//! the event. Stores log events and rebuild state by applying them again, so a replayed log takes
//! exactly the path the live one did, and the rules live here alone.
//!
//! **Invariants:** nobody decides on their own request, whatever groups they hold (there is no
//! admin bypass) and whichever linked issuer they arrive through; approvals come from distinct
//! people; a deny by any approver ends the request;
//! time only ever closes a request, never opens one.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::decision::Action;
use crate::policy::{ApprovalRule, PolicyVersion};
use crate::principal::Principal;
use crate::trace_id::TraceId;

#[cfg(test)]
mod tests;

/// Longest purpose a caller may state, in bytes.
pub const MAX_PURPOSE_LEN: usize = 500;
/// Longest comment on a decision, in bytes.
pub const MAX_COMMENT_LEN: usize = 2000;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    Used,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Used => "used",
            Status::Revoked => "revoked",
        }
    }

    /// A closed request never changes again.
    pub fn is_closed(self) -> bool {
        !matches!(self, Status::Pending | Status::Approved)
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Pending, Status::Approved, Status::Denied, Status::Expired, Status::Used, Status::Revoked]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person, as identity knows them: subject within issuer. Two tokens with the same pair are
/// the same person, whatever their groups — and so are two pairs the identity config links to
/// one `person` (`[identity.persons]`). Compare with [`Party::same_person`], never `==`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Party {
    pub subject: String,
    pub issuer: String,
    /// The linked person, if the identity config names one for this (issuer, subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

impl Party {
    /// The party a principal is.
    pub fn of(p: &Principal) -> Party {
        Party { subject: p.subject.clone(), issuer: p.issuer.clone(), person: p.person.clone() }
    }

    /// Same account, or two accounts linked to the same person. An unlinked account is only
    /// ever itself: a subject name alone, shared across issuers, proves nothing.
    pub fn same_person(&self, other: &Party) -> bool {
        (self.subject == other.subject && self.issuer == other.issuer)
            || matches!((&self.person, &other.person), (Some(a), Some(b)) if a == b)
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.subject)
    }
}

/// Someone acting on a request: who they are and the groups their token carries now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub party: Party,
    pub groups: Vec<String>,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Actor { party: Party::of(p), groups: p.groups.clone() }
    }
}

/// Exactly what was asked. Normalised on construction so the same request always has the same
/// fingerprint: traces and fields sorted and de-duplicated, fields and purpose trimmed.
///
/// Masking is not a separate switch: the role and the policy version fix which maskers run, and
/// both are part of the shape, so a grant never covers a less-masked view than was approved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestShape {
    pub requester: Party,
    pub action: Action,
    /// The role the request would be served under.
    pub role: String,
    pub policy_version: PolicyVersion,
    pub traces: Vec<TraceId>,
    /// `None`: the role's whole view.
    pub fields: Option<Vec<String>>,
    pub purpose: Option<String>,
    /// What the requester is served of this read without approval, found from the requester's
    /// own principal when the request was opened: what "a grant would reveal" is compared with.
    /// Not part of the fingerprint (it describes the requester, not what a grant is bound to).
    /// Absent on requests opened before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_view: Option<CurrentView>,
}

/// The requester's view of a read without approval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CurrentView {
    /// The role serving it, in the policy version of the request; `None`: no role serves the
    /// requester this trace without approval.
    pub role: Option<String>,
}

impl RequestShape {
    pub fn new(
        requester: Party,
        action: Action,
        role: impl Into<String>,
        policy_version: PolicyVersion,
        traces: impl IntoIterator<Item = TraceId>,
        fields: Option<impl IntoIterator<Item = impl AsRef<str>>>,
        purpose: Option<&str>,
    ) -> RequestShape {
        let traces: BTreeSet<TraceId> = traces.into_iter().collect();
        let fields = fields.map(|f| {
            f.into_iter().map(|e| e.as_ref().trim().to_owned()).collect::<BTreeSet<String>>().into_iter().collect()
        });
        let purpose = purpose.map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
        RequestShape {
            requester,
            action,
            role: role.into(),
            policy_version,
            traces: traces.into_iter().collect(),
            fields,
            purpose,
            current_view: None,
        }
    }

    /// The shape with the requester's current view recorded (see [`RequestShape::current_view`]).
    pub fn with_current_view(mut self, role: Option<String>) -> RequestShape {
        self.current_view = Some(CurrentView { role });
        self
    }

    /// SHA-256 over a canonical, length-prefixed encoding of every part, so no two different
    /// shapes can share an encoding (a `,` inside a field expression cannot forge a boundary).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        let mut put = |tag: &str, v: &str| {
            h.update(tag.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        };
        put("v", "tracegate.access-request.v1");
        put("sub", &self.requester.subject);
        put("iss", &self.requester.issuer);
        put("act", self.action.as_str());
        put("role", &self.role);
        put("pol", &self.policy_version.0);
        put("ntr", &self.traces.len().to_string());
        for t in &self.traces {
            put("tr", t.as_str());
        }
        match &self.fields {
            None => put("fields", "*"),
            Some(f) => {
                put("nf", &f.len().to_string());
                for e in f {
                    put("f", e);
                }
            }
        }
        match &self.purpose {
            None => put("purpose", "-"),
            Some(p) => put("purpose=", p),
        }
        Fingerprint(format!("sha256:{}", hex::encode(h.finalize())))
    }
}

/// The fingerprint of a request shape: `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The approval terms copied from the policy when the request was made. Later policy edits
/// change neither who may decide an open request nor what its grant is worth.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terms {
    /// The rule cited in decisions, e.g. `roles.sre.approval`.
    pub rule: String,
    pub approvers: Vec<String>,
    pub approvals: u32,
    #[serde(with = "secs")]
    pub pending_ttl: Duration,
    #[serde(with = "secs")]
    pub grant_ttl: Duration,
    pub one_time: bool,
}

impl Terms {
    pub fn of(rule_id: impl Into<String>, rule: &ApprovalRule) -> Terms {
        Terms {
            rule: rule_id.into(),
            approvers: rule.approvers.clone(),
            approvals: rule.approvals.max(1),
            pending_ttl: rule.pending_ttl,
            grant_ttl: rule.grant_ttl,
            one_time: rule.one_time,
        }
    }
}

/// What a decision said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Deny,
    Revoke,
}

/// One person's decision, with their comment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub by: Party,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
}

/// An access request and everything that has happened to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub fingerprint: Fingerprint,
    pub shape: RequestShape,
    pub terms: Terms,
    /// As last recorded; time may have moved it on — see [`AccessRequest::status_at`].
    pub status: Status,
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    #[serde(with = "rfc3339")]
    pub pending_until: SystemTime,
    #[serde(default, with = "opt_rfc3339")]
    pub grant_until: Option<SystemTime>,
    pub decisions: Vec<Decision>,
    /// Requests served under the grant.
    pub uses: u32,
    #[serde(default, with = "opt_rfc3339")]
    pub closed_at: Option<SystemTime>,
}

/// One recorded change. The unit of the store's log, of notifications and of audit records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub request_id: String,
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    #[serde(flatten)]
    pub change: Change,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Created { request: Box<AccessRequest> },
    /// One approval; the request is approved once the rule's count of distinct approvers is met.
    Approved { by: Party, #[serde(default, skip_serializing_if = "Option::is_none")] comment: Option<String> },
    Denied { by: Party, #[serde(default, skip_serializing_if = "Option::is_none")] comment: Option<String> },
    Revoked { by: Party, #[serde(default, skip_serializing_if = "Option::is_none")] comment: Option<String> },
    /// A request was served under the grant.
    Used,
    Expired,
}

impl Change {
    /// The stable name of the change, for logs, metrics and webhook `type`s.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Created { .. } => "created",
            Change::Approved { .. } => "approved",
            Change::Denied { .. } => "denied",
            Change::Revoked { .. } => "revoked",
            Change::Used => "used",
            Change::Expired => "expired",
        }
    }
}

/// Why a transition was refused. Not `non_exhaustive`: a new refusal should break callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("access request `{id}` is {status}, so it can no longer be decided")]
    NotPending { id: String, status: Status },
    #[error("access request `{id}` is {status}, not an active grant")]
    NotActive { id: String, status: Status },
    #[error("nobody may decide on their own access request")]
    OwnRequest,
    #[error("`{subject}` is in none of the approver groups {groups:?} of this request")]
    NotApprover { subject: String, groups: Vec<String> },
    #[error("`{subject}` may not revoke this grant: only its requester and the approver groups {groups:?} may")]
    NotRevoker { subject: String, groups: Vec<String> },
    #[error("`{subject}` has already approved access request `{id}`; approvals must come from distinct people")]
    AlreadyApproved { id: String, subject: String },
    #[error("this request is not the one access request `{id}` was approved for")]
    NotCovered { id: String },
    #[error("rule `{rule}` requires a purpose: say why (header `x-tracegate-purpose` or `?purpose=`)")]
    PurposeRequired { rule: String },
    #[error("the purpose is longer than {MAX_PURPOSE_LEN} bytes")]
    PurposeTooLong,
    #[error("a comment is required to {0}")]
    CommentRequired(&'static str),
    #[error("the comment is longer than {MAX_COMMENT_LEN} bytes")]
    CommentTooLong,
}

impl ApprovalError {
    /// A stable code for API bodies and audit.
    pub fn code(&self) -> &'static str {
        match self {
            ApprovalError::NotPending { .. } => "request_not_pending",
            ApprovalError::NotActive { .. } => "grant_not_active",
            ApprovalError::OwnRequest => "own_request",
            ApprovalError::NotApprover { .. } => "not_approver",
            ApprovalError::NotRevoker { .. } => "not_revoker",
            ApprovalError::AlreadyApproved { .. } => "already_approved",
            ApprovalError::NotCovered { .. } => "not_covered",
            ApprovalError::PurposeRequired { .. } => "purpose_required",
            ApprovalError::PurposeTooLong => "purpose_too_long",
            ApprovalError::CommentRequired(_) => "comment_required",
            ApprovalError::CommentTooLong => "comment_too_long",
        }
    }

    /// True when the actor is refused because of who they are (HTTP 403); otherwise the
    /// request's state or the input is at fault (409 / 400).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApprovalError::OwnRequest | ApprovalError::NotApprover { .. } | ApprovalError::NotRevoker { .. })
    }

    /// True when the request's state, not the caller, is at fault (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ApprovalError::NotPending { .. } | ApprovalError::NotActive { .. } | ApprovalError::AlreadyApproved { .. }
        )
    }
}

/// Checks a purpose against a rule before a request is opened.
pub fn check_purpose(rule_id: &str, rule: &ApprovalRule, purpose: Option<&str>) -> Result<(), ApprovalError> {
    let p = purpose.map(str::trim).unwrap_or("");
    if p.len() > MAX_PURPOSE_LEN {
        return Err(ApprovalError::PurposeTooLong);
    }
    if rule.reason_required && p.is_empty() {
        return Err(ApprovalError::PurposeRequired { rule: rule_id.to_owned() });
    }
    Ok(())
}

impl AccessRequest {
    /// Opens a request. `id` comes from the caller (the store mints unguessable ids).
    pub fn open(id: impl Into<String>, shape: RequestShape, terms: Terms, now: SystemTime) -> Result<Event, ApprovalError> {
        if shape.purpose.as_ref().is_some_and(|p| p.len() > MAX_PURPOSE_LEN) {
            return Err(ApprovalError::PurposeTooLong);
        }
        let id = id.into();
        let request = AccessRequest {
            id: id.clone(),
            fingerprint: shape.fingerprint(),
            shape,
            pending_until: now + terms.pending_ttl,
            terms,
            status: Status::Pending,
            created_at: now,
            grant_until: None,
            decisions: Vec::new(),
            uses: 0,
            closed_at: None,
        };
        Ok(Event { request_id: id, at: now, change: Change::Created { request: Box::new(request) } })
    }

    /// The status at `now`: a pending request past `pending_until`, or a grant past
    /// `grant_until`, is expired even before anyone records it.
    pub fn status_at(&self, now: SystemTime) -> Status {
        match self.status {
            Status::Pending if now >= self.pending_until => Status::Expired,
            Status::Approved if self.grant_until.is_none_or(|g| now >= g) => Status::Expired,
            s => s,
        }
    }

    /// The event that records an expiry that time has already brought about, if any.
    pub fn expire_due(&self, now: SystemTime) -> Option<Event> {
        (self.status_at(now) == Status::Expired && self.status != Status::Expired)
            .then(|| self.event(now, Change::Expired))
    }

    pub fn is_requester(&self, actor: &Actor) -> bool {
        actor.party.same_person(&self.shape.requester)
    }

    /// Holds an approver group of this request's rule (whether or not they may decide it).
    pub fn is_approver(&self, actor: &Actor) -> bool {
        actor.groups.iter().any(|g| self.terms.approvers.contains(g))
    }

    /// Requesters see their own requests; approvers see those of their rules.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        self.is_requester(actor) || self.is_approver(actor)
    }

    /// May `actor` approve or deny this request (ignoring its state)?
    pub fn may_decide(&self, actor: &Actor) -> Result<(), ApprovalError> {
        if self.is_requester(actor) {
            return Err(ApprovalError::OwnRequest);
        }
        if !self.is_approver(actor) {
            return Err(ApprovalError::NotApprover {
                subject: actor.party.subject.clone(),
                groups: self.terms.approvers.clone(),
            });
        }
        Ok(())
    }

    /// The distinct people who approved, in order.
    pub fn approvers(&self) -> Vec<&Party> {
        let mut seen = Vec::new();
        for d in &self.decisions {
            if d.verdict == Verdict::Approve && !seen.iter().any(|p: &&Party| p.same_person(&d.by)) {
                seen.push(&d.by);
            }
        }
        seen
    }

    /// One approval. The request becomes approved when distinct approvals reach the rule's count.
    pub fn approve(&self, actor: &Actor, comment: Option<&str>, now: SystemTime) -> Result<Event, ApprovalError> {
        let comment = comment_of(comment, None)?;
        self.check_pending(now)?;
        self.may_decide(actor)?;
        if self.approvers().iter().any(|p| p.same_person(&actor.party)) {
            return Err(ApprovalError::AlreadyApproved { id: self.id.clone(), subject: actor.party.subject.clone() });
        }
        Ok(self.event(now, Change::Approved { by: actor.party.clone(), comment }))
    }

    /// A deny by any approver ends the request. Needs a comment: the requester deserves a reason.
    pub fn deny(&self, actor: &Actor, comment: Option<&str>, now: SystemTime) -> Result<Event, ApprovalError> {
        let comment = comment_of(comment, Some("deny"))?;
        self.check_pending(now)?;
        self.may_decide(actor)?;
        Ok(self.event(now, Change::Denied { by: actor.party.clone(), comment }))
    }

    /// Ends an active grant early. Any approver of the rule may, and so may the requester (giving
    /// up access is always safe). Needs a comment.
    pub fn revoke(&self, actor: &Actor, comment: Option<&str>, now: SystemTime) -> Result<Event, ApprovalError> {
        let comment = comment_of(comment, Some("revoke"))?;
        let status = self.status_at(now);
        if status != Status::Approved {
            return Err(ApprovalError::NotActive { id: self.id.clone(), status });
        }
        if !self.is_requester(actor) && !self.is_approver(actor) {
            return Err(ApprovalError::NotRevoker {
                subject: actor.party.subject.clone(),
                groups: self.terms.approvers.clone(),
            });
        }
        Ok(self.event(now, Change::Revoked { by: actor.party.clone(), comment }))
    }

    /// Serves one request under the grant, if `fingerprint` is exactly the approved one. A
    /// one-time grant is used up by it.
    pub fn use_grant(&self, fingerprint: &Fingerprint, now: SystemTime) -> Result<Event, ApprovalError> {
        let status = self.status_at(now);
        if status != Status::Approved {
            return Err(ApprovalError::NotActive { id: self.id.clone(), status });
        }
        if *fingerprint != self.fingerprint {
            return Err(ApprovalError::NotCovered { id: self.id.clone() });
        }
        Ok(self.event(now, Change::Used))
    }

    /// Applies a recorded event. Events come from the transitions above (live) or from a log
    /// they once produced (replay); either way they were checked when made, so this only moves
    /// state. An event for another request, or a `Created`, is ignored.
    pub fn apply(&mut self, e: &Event) {
        if e.request_id != self.id {
            return;
        }
        match &e.change {
            Change::Created { .. } => {}
            Change::Approved { by, comment } => {
                self.decisions.push(Decision { by: by.clone(), verdict: Verdict::Approve, comment: comment.clone(), at: e.at });
                if self.status == Status::Pending && self.approvers().len() >= self.terms.approvals as usize {
                    self.status = Status::Approved;
                    self.grant_until = Some(e.at + self.terms.grant_ttl);
                }
            }
            Change::Denied { by, comment } => {
                self.decisions.push(Decision { by: by.clone(), verdict: Verdict::Deny, comment: comment.clone(), at: e.at });
                self.close(Status::Denied, e.at);
            }
            Change::Revoked { by, comment } => {
                self.decisions.push(Decision { by: by.clone(), verdict: Verdict::Revoke, comment: comment.clone(), at: e.at });
                self.close(Status::Revoked, e.at);
            }
            Change::Used => {
                self.uses = self.uses.saturating_add(1);
                if self.terms.one_time {
                    self.close(Status::Used, e.at);
                }
            }
            Change::Expired => self.close(Status::Expired, e.at),
        }
    }

    fn close(&mut self, status: Status, at: SystemTime) {
        if !self.status.is_closed() {
            self.status = status;
            self.closed_at = Some(at);
        }
    }

    fn check_pending(&self, now: SystemTime) -> Result<(), ApprovalError> {
        match self.status_at(now) {
            Status::Pending => Ok(()),
            status => Err(ApprovalError::NotPending { id: self.id.clone(), status }),
        }
    }

    fn event(&self, at: SystemTime, change: Change) -> Event {
        Event { request_id: self.id.clone(), at, change }
    }
}

fn comment_of(comment: Option<&str>, required_for: Option<&'static str>) -> Result<Option<String>, ApprovalError> {
    let c = comment.map(str::trim).filter(|c| !c.is_empty());
    if c.is_some_and(|c| c.len() > MAX_COMMENT_LEN) {
        return Err(ApprovalError::CommentTooLong);
    }
    match (c, required_for) {
        (None, Some(what)) => Err(ApprovalError::CommentRequired(what)),
        (c, _) => Ok(c.map(str::to_owned)),
    }
}

/// `SystemTime` as RFC 3339 with nanoseconds, so a replayed log reproduces deadlines exactly.
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_nanos(*t).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s).map_err(|e| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time: {e}")))
    }
}

mod opt_rfc3339 {
    use std::time::SystemTime;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_rfc3339_weak(&s).map_err(|e| serde::de::Error::custom(format!("`{s}` is not an RFC 3339 time: {e}"))))
            .transpose()
    }
}

mod secs {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}
