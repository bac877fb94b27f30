//! Replay of a recorded read: re-fetch the object version the record names, re-apply the policy
//! version it was decided under (from the policy archive) with the role and `fields=` it
//! served, and compare the digest of the reproduced body with the digest of the bytes sent.
//! `tracegate audit replay` and `GET /v1/audit/{request_id}/replay` both call [`replay`]; they
//! differ only in who sees the body (see [`covers`] and `docs/audit.md`).

use serde_json::Value;
use tracegate_audit::{AuditError, AuditQuery, AuditSource, BodyDigest, Decision, Kind, Record};
use tracegate_core::mask::MaskKey;
use tracegate_core::pipeline::{project_and_mask, renders_whole_document, serve_read, Candidate, ServeError};
use tracegate_core::project::FieldRequest;
use tracegate_core::{Policy, PolicyVersion, TraceId};
use tracegate_store::{StoreError, TraceStore};


/// What a replay found. Each outcome has a stable code ([`Outcome::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The reproduced body's digest is the recorded one: exactly what was shown.
    Reproduced,
    /// The reproduced body differs from what was sent (a changed masking key, a corrupted
    /// archive, or a record that does not describe what was sent).
    DigestMismatch { replayed: String },
    /// The record is not an allowed read of one trace with everything replay needs.
    NotReplayable(String),
    /// The served version is no longer kept; the trace is now at `current`.
    ObjectChanged { current: String },
    /// The trace no longer exists.
    ObjectDeleted,
}

impl Outcome {
    /// The stable code clients and scripts match on.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Reproduced => "reproduced",
            Outcome::DigestMismatch { .. } => "digest_mismatch",
            Outcome::NotReplayable(_) => "not_replayable",
            Outcome::ObjectChanged { .. } => "object_changed",
            Outcome::ObjectDeleted => "object_deleted",
        }
    }
}

/// A finished replay.
#[derive(Debug)]
pub struct Replay {
    pub outcome: Outcome,
    /// A sentence for people, naming digests and versions.
    pub detail: String,
    /// The trace the record read (absent when the record names none, or several).
    pub trace_id: Option<TraceId>,
    /// The reproduced body (only when the stored version was found and re-served).
    pub body: Option<Value>,
    /// The reproduced bytes, exactly as the gateway would send them (their digest is `digest`).
    pub bytes: Option<Vec<u8>>,
    /// Lowercase hex SHA-256 of the reproduced body's bytes.
    pub digest: Option<String>,
}

/// Why a replay could not be carried out at all (as opposed to an [`Outcome`] it reached).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the audit trail could not be read: {0}")]
    Audit(#[from] AuditError),
    #[error("the trace store could not be read: {0}")]
    Store(#[from] StoreError),
    #[error("the archived policy `{version}` does not parse: {message}")]
    Policy { version: String, message: String },
    #[error("the stored version of `{0}` is not valid JSON")]
    Corrupt(TraceId),
    #[error("the recorded `fields` do not parse: {0}")]
    Fields(String),
    #[error("re-applying the policy refused the read: {0}")]
    Refused(String),
    #[error("the stored version of `{0}` is larger than this gateway's read limit (`server.max_read_bytes`)")]
    TooLarge(TraceId),
    #[error("the re-rendering task failed")]
    RenderFailed,
}

/// The request record of `request_id`, if the trail has one.
pub async fn find(source: &AuditSource, request_id: &str) -> Result<Option<Record>, AuditError> {
    let q = AuditQuery { request_id: Some(request_id.to_owned()), kind: Some(Kind::Request), limit: Some(1), ..AuditQuery::default() };
    Ok(source.query(&q).await?.into_iter().next())
}

/// Replays `record` (see the module header). The store is read with the gateway's own
/// credential; `key` is the masking key the gateway serves with. A stored version over
/// `max_bytes` is not re-served (the gateway's read limit: what it would not serve to a reader
/// it does not rebuild for an auditor either). The re-render takes its share of the store's read
/// budget like any read.
pub async fn replay(
    record: &Record,
    source: &AuditSource,
    store: &dyn TraceStore,
    key: &MaskKey,
    max_bytes: usize,
) -> Result<Replay, ReplayError> {
    let e = &record.entry;
    let not = |why: &str| Replay { outcome: Outcome::NotReplayable(why.into()), detail: why.into(), trace_id: None, body: None, bytes: None, digest: None };
    let readable = e.kind == Kind::Request
        && e.decision == Some(Decision::Allow)
        && e.request.as_ref().and_then(|r| r.action.as_deref()) == Some("read");
    let (Some(req), Some(policy_version), Some(role_name), Some(object_version), Some(recorded)) =
        (&e.request, &e.policy_version, &e.role, &e.object_version, &e.body_sha256)
    else {
        return Ok(not("the record lacks the request, policy version, role, object version or digest"));
    };
    let [trace] = req.trace_ids.as_slice() else {
        return Ok(not("only allowed reads of one trace are replayed"));
    };
    if !readable {
        return Ok(not("only allowed reads of one trace are replayed"));
    }
    let Ok(tid) = TraceId::parse(trace) else {
        return Ok(not("the record's trace id is not a valid trace id"));
    };
    let text = source.policy(&PolicyVersion(policy_version.clone())).await?;
    let policy = Policy::parse(policy_version, &text)
        .map_err(|e| ReplayError::Policy { version: policy_version.clone(), message: e.to_string() })?;
    if policy.role(role_name).is_none() {
        let why = format!("role `{role_name}` is not in policy {policy_version}");
        return Ok(Replay { trace_id: Some(tid), ..not(&why) });
    }
    // Exactly the version that was served: every write keeps its versions, so an overwrite
    // since does not stop a replay.
    let stored = match store.get_version(&tid, object_version).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => {
            let (outcome, detail) = match store.get(&tid).await {
                Ok(cur) => (
                    Outcome::ObjectChanged { current: cur.version.clone() },
                    format!("trace `{tid}` is now version {} and {object_version}, which was served, is no longer kept; what was shown cannot be reproduced", cur.version),
                ),
                Err(_) => (Outcome::ObjectDeleted, format!("trace `{tid}` no longer exists; what was shown cannot be reproduced")),
            };
            return Ok(Replay { outcome, detail, trace_id: Some(tid), body: None, bytes: None, digest: None });
        }
        Err(StoreError::TooLarge { .. }) => return Err(ReplayError::TooLarge(tid)),
        Err(e) => return Err(e.into()),
    };
    if stored.bytes.len() > max_bytes {
        return Err(ReplayError::TooLarge(tid));
    }
    let fields = match req.fields.is_empty() {
        true => None,
        false => Some(FieldRequest::parse_all(req.fields.iter().map(String::as_str)).map_err(|e| ReplayError::Fields(e.to_string()))?),
    };
    // The same bounded path a read takes: `stored` holds its share of the store's read budget
    // until the render is done, and large traces are rendered on the blocking pool
    // (`crate::budget`).
    let len = stored.bytes.len();
    let (role_name, recorded_digest, key, t) = (role_name.clone(), recorded.clone(), key.clone(), tid.clone());
    let (bytes, digest, body) = crate::budget::run(len, move || {
        let Some(role) = policy.role(&role_name) else {
            return Err(ReplayError::Refused(format!("role `{role_name}` is not in the policy")));
        };
        let (bytes, digest) = render(role, &stored.bytes, fields.as_deref(), &key, &recorded_digest, &t)?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| ReplayError::Corrupt(t.clone()))?;
        Ok((bytes, digest, body))
    })
    .await
    .ok_or(ReplayError::RenderFailed)??;
    let (outcome, detail) = match &digest == recorded {
        true => (Outcome::Reproduced, format!("sha256 {digest} matches the record: this is exactly what was shown")),
        false => (
            Outcome::DigestMismatch { replayed: digest.clone() },
            format!("replayed sha256 {digest} differs from the recorded {recorded}"),
        ),
    };
    Ok(Replay { outcome, detail, trace_id: Some(tid), body: Some(body), bytes: Some(bytes), digest: Some(digest) })
}

/// The body `role` serves from `stored` with `fields`, exactly as the gateway renders it, and its
/// digest; for a whole-document read, the older parsed-view rendering when that is what matches
/// `recorded`.
fn render(
    role: &tracegate_core::Role,
    stored: &[u8],
    fields: Option<&[FieldRequest]>,
    key: &MaskKey,
    recorded: &str,
    tid: &TraceId,
) -> Result<(Vec<u8>, String), ReplayError> {
    let refused = |e: ServeError| match e {
        ServeError::Denied(d) => ReplayError::Refused(d.message),
        ServeError::TooCostly(e) => ReplayError::Refused(e.to_string()),
        ServeError::NotJson(_) => ReplayError::Corrupt(tid.clone()),
    };
    // Exactly the rendering the gateway uses (`serve_read`: the byte engine for a whole-document
    // read, the parsed view otherwise).
    let candidates = [Candidate { role, rules: Vec::new() }];
    let mut bytes = serve_read(&candidates, stored, None, fields, key).map_err(refused)?.body;
    let (_, mut digest) = BodyDigest::of(&bytes);
    if digest != recorded && renders_whole_document(role, fields) {
        // Gateways before the byte engine served whole-document reads through the parsed view:
        // the same values, but an unchanged JSON-in-string re-encoded. Those records replay
        // through that rendering; both renderings are functions of the same inputs.
        let doc: Value = tracegate_core::pipeline::parse_stored(stored).map_err(|_| ReplayError::Corrupt(tid.clone()))?;
        let served = project_and_mask(&candidates, doc, None, key).map_err(refused)?;
        let tree = serde_json::to_vec(&served.body).map_err(|e| ReplayError::Refused(e.to_string()))?;
        let (_, tree_digest) = BodyDigest::of(&tree);
        if tree_digest == recorded {
            (bytes, digest) = (tree, tree_digest);
        }
    }
    Ok((bytes, digest))
}

/// Whether `shown` (a body served to someone else) reveals nothing beyond `own` (what the
/// caller is served from the same stored version): every member and element of `shown` is at
/// the same place in `own` with the same value, except that a `[REDACTED:TYPE]` label in a
/// string of `shown` may stand for any text of `own` there (the label says only where a
/// detector fired and its type, on text the caller sees anyway). A keyed pseudonym must be
/// equal, never a stand-in: beside the raw value it would be a dictionary entry for joining
/// other pseudonymised data. Arrays must have the same length (a projection that removed
/// elements shifts the rest; such a body is not compared, and is withheld).
pub fn covers(own: &Value, shown: &Value) -> bool {
    match (own, shown) {
        (Value::Object(o), Value::Object(s)) => s.iter().all(|(k, v)| o.get(k).is_some_and(|ov| covers(ov, v))),
        (Value::Array(o), Value::Array(s)) => o.len() == s.len() && o.iter().zip(s).all(|(ov, v)| covers(ov, v)),
        (Value::String(o), Value::String(s)) => o == s || labels_match(o, s),
        (o, s) => o == s,
    }
}

/// `shown` with each `[REDACTED:TYPE]` as a wildcard matches all of `own`.
fn labels_match(own: &str, shown: &str) -> bool {
    let pieces = split_labels(shown);
    if pieces.len() < 2 {
        return false;
    }
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { return false };
    if !own.starts_with(first) || own.len() < first.len() + last.len() || !own.ends_with(last) {
        return false;
    }
    let mut rest = &own[first.len()..own.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// The text of `s` between its `[REDACTED:TYPE]` labels (one more piece than labels).
fn split_labels(s: &str) -> Vec<&str> {
    const OPEN: &str = "[REDACTED:";
    let mut pieces = Vec::new();
    let mut from = 0;
    let mut at = 0;
    while let Some(i) = s[at..].find(OPEN) {
        let start = at + i;
        let body = &s[start + OPEN.len()..];
        let len = body.bytes().take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_').count();
        if len > 0 && body.as_bytes().get(len) == Some(&b']') {
            pieces.push(&s[from..start]);
            from = start + OPEN.len() + len + 1;
            at = from;
        } else {
            at = start + OPEN.len();
        }
    }
    pieces.push(&s[from..]);
    pieces
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_body_is_covered_only_by_a_view_that_holds_all_of_it() {
        let own = json!({"a": "mail dana@example.com now", "b": [1, {"c": true}], "d": "EMAIL_0123456789ab"});
        for shown in [
            json!({}),
            json!({"a": "mail dana@example.com now"}),
            json!({"a": "mail [REDACTED:EMAIL] now", "b": [1, {}]}),
            json!({"a": "[REDACTED:EMAIL_ADDRESS]"}),
            json!({"a": "mail [REDACTED:EMAIL][REDACTED:X]now"}),
            json!({"d": "EMAIL_0123456789ab"}),
        ] {
            assert!(covers(&own, &shown), "{shown}");
        }
        for shown in [
            // More than the caller sees: a member, an element, a different value.
            json!({"e": 1}),
            json!({"b": [1, {"c": true}, 3]}),
            json!({"b": [1]}),
            json!({"a": "mail dana@example.org now"}),
            json!({"a": "mail [REDACTED:EMAIL] later"}),
            json!({"a": "Mail [REDACTED:EMAIL] now"}),
            // A pseudonym where the caller has another value (or the raw one): never a stand-in.
            json!({"d": "EMAIL_ffffffffffff"}),
            json!({"a": "mail EMAIL_0123456789ab now"}),
            // Not a label: lowercase type, unclosed.
            json!({"a": "mail [REDACTED:email] now"}),
            json!({"a": "mail [REDACTED:EMAIL now"}),
            json!({"b": [1, {"c": "true"}]}),
            json!([]),
        ] {
            assert!(!covers(&own, &shown), "{shown}");
        }
    }

    #[test]
    fn labels_split_the_text_around_them() {
        assert_eq!(split_labels("a[REDACTED:X]b[REDACTED:Y_2]"), ["a", "b", ""]);
        assert_eq!(split_labels("[REDACTED:]x[REDACTED:A"), ["[REDACTED:]x[REDACTED:A"]);
        assert_eq!(split_labels("[REDACTED:[REDACTED:A]]"), ["[REDACTED:", "]"]);
        // A label's pieces must fit without overlapping: "ab" is not "ab…ab".
        assert!(!labels_match("ab", "ab[REDACTED:X]ab"));
        assert!(labels_match("abab", "ab[REDACTED:X]ab"));
    }
}
