//! The audit record: every field an auditor can rely on, named once here and documented in
//! `docs/audit.md`. A record answers, months later, who read which slice of which trace, under
//! which policy, with what masked, approved by whom — without ever holding a token or a masked value.
//!
//! Fields are plain strings and integers rather than the core's enums so that a record written
//! today still parses after the policy language grows new deny codes or actions.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracegate_core::decision::Denial;
use tracegate_core::mask::MaskReport;
use tracegate_core::policy::FieldView;
use tracegate_core::Principal;

/// Version of the record layout; bumped when a field changes meaning.
pub const SCHEMA: u32 = 1;

/// `prev_hash` of the first record ever written: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A wall-clock instant with millisecond precision, written as RFC 3339 UTC
/// (`2026-11-25T20:30:00.123Z`). Truncated on construction so what is hashed is what is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Self {
        let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        Timestamp(UNIX_EPOCH + Duration::from_millis(ms))
    }

    pub fn system(self) -> SystemTime {
        self.0
    }

    /// Parses RFC 3339 (`Z` or an offset; fractions beyond milliseconds are cut).
    pub fn parse(s: &str) -> Result<Self, String> {
        humantime::parse_rfc3339_weak(s)
            .map(Self::from_system)
            .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a record is about. Request records are the trail of served (or refused) requests;
/// the others record state changes that explain them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One HTTP request through the gateway (read, search, write, audit query), served or not.
    Request,
    /// A change of an access request's state: created, approved, rejected, expired, used.
    Approval,
    /// Something the audit log itself did: recovery of a torn tail after a crash, and the like.
    System,
}

/// The outcome recorded. `pending` is an access request waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    Error,
    Pending,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
            Decision::Pending => "pending",
        }
    }
}

/// Who made the request, as identity established it. Never the token or any secret.
///
/// Fields are declared in canonical (JCS) member order, as every nested record struct is, so the
/// canonical writer takes them as they come and never reorders them (`canonical::Members::end`;
/// `nested_records_serialise_in_canonical_order` keeps them so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    /// How the caller authenticated: `oidc`, `dev`, `saml`, `service_account`, ...
    pub auth_method: String,
    /// The scalar claims row scope can match on (e.g. `tenant`), so replay re-decides with
    /// what the caller had. Claims are attributes, never credentials.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// What the caller presented, when it was not a bearer credential: `session` for a browser
    /// session cookie (whose sign-in `auth_method` names). Absent for bearer tokens and API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    pub groups: Vec<String>,
    pub issuer: String,
    /// Roles of the policy reached from `groups` (not only the one that served).
    pub roles: Vec<String>,
    pub subject: String,
}

impl PrincipalRecord {
    /// The audit view of a principal; `roles` are the policy roles its groups reach.
    pub fn new(p: &Principal, roles: Vec<String>) -> Self {
        let auth_method = serde_json::to_value(p.auth_method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", p.auth_method).to_lowercase());
        PrincipalRecord {
            subject: p.subject.clone(),
            issuer: p.issuer.clone(),
            groups: p.groups.clone(),
            roles,
            auth_method,
            credential: match p.credential {
                tracegate_core::Credential::Bearer => None,
                tracegate_core::Credential::Session => Some("session".to_owned()),
            },
            claims: p.claims.clone(),
        }
    }
}

/// What was asked for (fields in canonical order, as [`PrincipalRecord`]'s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Policy action: `read`, `search`, `write`, `audit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// JSONPaths the caller asked for; empty means "the whole view".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// The purpose the caller gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The matched route template, e.g. `/v1/traces/{id}` (not the raw path, which may carry ids
    /// twice and query strings).
    pub route: String,
    /// Trace ids named by the request, or returned by a search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace_ids: Vec<String>,
}

/// The slice granted: the field rules of the role that served, as JSONPath expressions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Slice {
    pub fn of(view: &FieldView) -> Self {
        Slice {
            allow: view.allow.iter().map(|r| r.expr.clone()).collect(),
            deny: view.deny.iter().map(|r| r.expr.clone()).collect(),
        }
    }
}

/// One masker's effect on the response: how many values and where, never the values (fields in
/// canonical order, as [`PrincipalRecord`]'s: a read carries several of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskApplied {
    pub count: u64,
    pub detector: String,
    pub operator: String,
    /// Normalised JSONPaths of the masked nodes.
    pub paths: Vec<String>,
}

impl MaskApplied {
    /// Takes the report: its paths (up to [`tracegate_core::mask::MAX_REPORT_PATHS`] per
    /// detector, on every request) move into the record instead of being copied.
    pub fn from_report(r: MaskReport) -> Vec<MaskApplied> {
        r.hits
            .into_iter()
            .map(|h| MaskApplied { detector: h.detector, operator: h.operator, count: h.count, paths: h.paths })
            .collect()
    }
}

/// What a caller hands to [`crate::AuditLog::append`]: a record without its chain fields
/// (`seq`, `prev_hash`, `hash`), which the log's single writer assigns.
///
/// Optional fields are omitted from the record when `None` (never written as `null`), so the
/// canonical form has one spelling for "absent". Fields are declared in canonical member order,
/// as the nested structs' are (see [`PrincipalRecord`]): the record's members are then sorted as
/// serialised, on every request, and the writer's seal only places its chain fields among them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Lowercase hex SHA-256 of exactly the `bytes_sent` bytes; replay reproduces and compares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// Size of the response body released to the client (for writes, the stored bytes are named
    /// by `object_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_sent: Option<u64>,
    /// The client's address as the gateway saw it (`ip:port`), or as a trusted proxy reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// Always present on `request` records; the access request's state on `approval` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Stable reason code of a denial (`field_denied`, `approval_required`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_code: Option<String>,
    /// Free-form details for `approval` and `system` records (integers only, no floats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    pub kind: Kind,
    /// Time from request arrival to the audit append, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Maskers that changed the response; empty when nothing was masked.
    #[serde(default)]
    pub masks: Vec<MaskApplied>,
    /// The human-readable reason of a denial or error, as the client was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Version (etag or content hash) of the stored object read or written, for replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_version: Option<String>,
    /// `sha256:<hex>` of the policy file the decision was made under; the file is kept in the
    /// policy archive so replay can re-apply it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestRecord>,
    /// The gateway's id for the request, also returned to the client in `x-request-id`.
    pub request_id: String,
    /// The role that served the request (or that a denial was judged under).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Policy rule ids behind the decision, e.g. `roles.support.fields`.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Record layout version ([`SCHEMA`]).
    pub schema: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<Slice>,
    /// HTTP status returned to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// When the request arrived (request records) or the event happened.
    pub time: Timestamp,
}

impl Entry {
    fn blank(kind: Kind, request_id: String, time: Timestamp) -> Self {
        Entry {
            schema: SCHEMA,
            kind,
            time,
            request_id,
            principal: None,
            client_addr: None,
            request: None,
            policy_version: None,
            decision: None,
            deny_code: None,
            message: None,
            rules: Vec::new(),
            role: None,
            slice: None,
            masks: Vec::new(),
            approval_id: None,
            object_version: None,
            status: None,
            bytes_sent: None,
            body_sha256: None,
            latency_us: None,
            event: None,
        }
    }

    /// A request record; it starts as `error` so that a request whose handler forgot to set
    /// the outcome is never recorded as allowed.
    pub fn request(request_id: impl Into<String>, time: Timestamp) -> Self {
        let mut e = Self::blank(Kind::Request, request_id.into(), time);
        e.decision = Some(Decision::Error);
        e
    }

    /// An access-request state change (issue 5): `event` says which, `decision` the new state.
    pub fn approval(request_id: impl Into<String>, approval_id: impl Into<String>, decision: Decision, event: Value) -> Self {
        let mut e = Self::blank(Kind::Approval, request_id.into(), Timestamp::now());
        e.approval_id = Some(approval_id.into());
        e.decision = Some(decision);
        e.event = Some(event);
        e
    }

    /// Something the audit log did itself.
    pub fn system(event: Value) -> Self {
        Self::blank(Kind::System, String::new(), Timestamp::now())
            .with_event(event)
    }

    fn with_event(mut self, event: Value) -> Self {
        self.event = Some(event);
        self
    }

    /// Records a refusal: decision `deny`, its code, message, rules and role.
    pub fn deny(&mut self, d: &Denial) {
        self.decision = Some(Decision::Deny);
        self.deny_code = Some(d.code.as_str().to_owned());
        self.message = Some(d.message.clone());
        self.rules = d.rules.clone();
        self.role = d.role.clone();
    }

    /// Records the body released to the client: size and digest.
    pub fn body(&mut self, digest: BodyDigest) {
        let (n, hex) = digest.finish();
        self.bytes_sent = Some(n);
        self.body_sha256 = Some(hex);
    }
}

/// A record as read back from the log: an [`Entry`] plus its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// `hash` of the record with `seq - 1`, or [`GENESIS_HASH`] for seq 1.
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of the canonical form of every other field of this record.
    pub hash: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// Where an appended record landed; returned only once it is on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sealed {
    pub seq: u64,
    pub hash: String,
}

/// SHA-256 of a response body, fed as it streams out.
#[derive(Debug, Clone, Default)]
pub struct BodyDigest {
    hasher: Sha256,
    len: u64,
}

impl BodyDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Byte count and lowercase hex digest.
    pub fn finish(self) -> (u64, String) {
        (self.len, lower_hex(&self.hasher.finalize()))
    }

    /// Digest of a whole body at once.
    pub fn of(bytes: &[u8]) -> (u64, String) {
        let mut d = Self::new();
        d.update(bytes);
        d.finish()
    }
}

/// Lowercase hex of a digest, written through a buffer rather than `hex::encode`'s char iterator:
/// every record carries two or three of them.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    // The buffer is exactly twice the input (all `encode_to_slice` checks) and hex is ASCII.
    if hex::encode_to_slice(bytes, &mut buf).is_ok() {
        if let Ok(s) = String::from_utf8(buf) {
            return s;
        }
    }
    hex::encode(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::canonical::cmp_keys;

    /// Member names of `v` in the order its `Serialize` impl writes them (`preserve_order`).
    fn names(v: &impl Serialize) -> Vec<String> {
        match serde_json::to_value(v) {
            Ok(Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    fn assert_canonical(what: &str, names: &[String], expected: usize) {
        assert_eq!(names.len(), expected, "{what}: every field set, so every member written: {names:?}");
        for w in names.windows(2) {
            assert_eq!(cmp_keys(&w[0], &w[1]), std::cmp::Ordering::Less, "{what}: `{}` is declared before `{}`", w[0], w[1]);
        }
    }

    /// Record structs are declared in canonical member order, so the canonical writer never
    /// reorders them on the request path; a field added out of order fails here.
    #[test]
    fn nested_records_serialise_in_canonical_order() {
        let principal = PrincipalRecord {
            auth_method: "dev".into(),
            claims: BTreeMap::from([("tenant".to_owned(), "acme".to_owned())]),
            credential: Some("session".into()),
            groups: vec!["eng".into()],
            issuer: "https://issuer".into(),
            roles: vec!["engineer".into()],
            subject: "alice".into(),
        };
        assert_canonical("PrincipalRecord", &names(&principal), 7);
        let request = RequestRecord {
            action: Some("read".into()),
            fields: vec!["$.a".into()],
            method: "GET".into(),
            purpose: Some("debug".into()),
            route: "/v1/traces/{id}".into(),
            trace_ids: vec!["t1".into()],
        };
        assert_canonical("RequestRecord", &names(&request), 6);
        let slice = Slice { allow: vec!["$".into()], deny: vec![] };
        assert_canonical("Slice", &names(&slice), 2);
        let mask = MaskApplied { count: 1, detector: "email".into(), operator: "hash".into(), paths: vec!["$['a']".into()] };
        assert_canonical("MaskApplied", &names(&mask), 4);
        let mut entry = Entry::request("r1", Timestamp::now());
        entry.approval_id = Some("a1".into());
        entry.body(BodyDigest::new());
        entry.client_addr = Some("127.0.0.1:1".into());
        entry.deny_code = Some("field_denied".into());
        entry.event = Some(serde_json::json!({}));
        entry.latency_us = Some(1);
        entry.masks = vec![mask];
        entry.message = Some("m".into());
        entry.object_version = Some("sha256:00".into());
        entry.policy_version = Some("sha256:00".into());
        entry.principal = Some(principal);
        entry.request = Some(request);
        entry.role = Some("support".into());
        entry.slice = Some(slice);
        entry.status = Some(200);
        assert_canonical("Entry", &names(&entry), 22);
    }
}
