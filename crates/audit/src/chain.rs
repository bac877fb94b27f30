//! The hash chain: how a record's `hash` is computed and checked.
//!
//! `hash = lowercase_hex(SHA-256(canonical(record without "hash")))`, where the record includes
//! `seq` and `prev_hash`, and `canonical` is [`crate::canonical`] (RFC 8785 over integers). The
//! line stored in the log is the canonical form of the whole record, `hash` included, plus `\n`.
//!
//! Canonicalising the caller's fields happens on the caller's task ([`Prepared::new`], straight from
//! the entry's `Serialize`, [`canonical::members`]); the single
//! writer only splices in the three chain fields and hashes, so its serial work per record stays small.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::error::AuditError;
use crate::record::Entry;

/// Names the writer owns; an entry never carries them.
pub(crate) const CHAIN_FIELDS: [&str; 3] = ["seq", "prev_hash", "hash"];

/// An entry already in canonical pieces: `(member name, canonical value bytes)`.
#[derive(Debug)]
pub(crate) struct Prepared {
    members: Vec<canonical::Member>,
}

impl Prepared {
    pub(crate) fn new(entry: &Entry) -> Result<Self, AuditError> {
        let members = canonical::members(entry)?;
        if let Some((k, _)) = members.iter().find(|(k, _)| CHAIN_FIELDS.contains(&k.as_ref())) {
            return Err(AuditError::Serialize(format!("entry must not carry chain field `{k}`")));
        }
        Ok(Prepared { members })
    }

    /// The stored line (with trailing `\n`) and hash of this entry at `seq` after `prev_hash`.
    /// The object is built once: the line is the hashed body with the `hash` member spliced in
    /// where it sorts ([`canonical::write_object_noting`]), which is this writer's serial work.
    pub(crate) fn seal(&self, seq: u64, prev_hash: &str) -> (Vec<u8>, String) {
        let seq_bytes = seq.to_string().into_bytes();
        let mut prev_bytes = Vec::with_capacity(prev_hash.len() + 2);
        canonical::write_str(prev_hash, &mut prev_bytes);
        let mut parts: Vec<(&str, &[u8])> = Vec::with_capacity(self.members.len() + 2);
        parts.extend(self.members.iter().map(|(k, v)| (k.as_ref(), v.as_slice())));
        // The members are sorted ([`canonical::members`]): the chain fields go where they sort,
        // so the object build below finds everything in order and moves nothing.
        for (name, bytes) in [("seq", seq_bytes.as_slice()), ("prev_hash", prev_bytes.as_slice())] {
            let at = parts.partition_point(|(k, _)| canonical::cmp_keys(k, name) == std::cmp::Ordering::Less);
            parts.insert(at, (name, bytes));
        }
        let size = parts.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2;
        let mut body = Vec::with_capacity(size);
        let at = canonical::write_object_noting(&mut parts, &mut body, "hash");
        let hash = crate::record::lower_hex(&Sha256::digest(&body));
        let mut member = Vec::with_capacity(hash.len() + 10);
        canonical::write_str("hash", &mut member);
        member.push(b':');
        canonical::write_str(&hash, &mut member);
        let (head, tail) = body.split_at(at.min(body.len()));
        let mut line = Vec::with_capacity(body.len() + member.len() + 2);
        line.extend_from_slice(head);
        if tail.len() > 1 {
            // Before a member that sorts after it.
            line.extend_from_slice(&member);
            line.push(b',');
        } else {
            // Last, after every other member (if any).
            if !parts.is_empty() {
                line.push(b',');
            }
            line.extend_from_slice(&member);
        }
        line.extend_from_slice(tail);
        line.push(b'\n');
        (line, hash)
    }
}

/// The chain fields of a parsed line and whether its stored hash matches its content.
#[derive(Debug)]
pub(crate) struct Checked {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub computed: String,
}

impl Checked {
    pub(crate) fn intact(&self) -> bool {
        self.hash == self.computed
    }
}

/// Parses one stored line and recomputes its hash; `Err` says why it is not a record at all.
pub(crate) fn check_line(line: &[u8]) -> Result<Checked, String> {
    let mut value: Value = serde_json::from_slice(line).map_err(|e| format!("not json: {e}"))?;
    let Value::Object(map) = &mut value else {
        return Err("not a json object".into());
    };
    let hash = match map.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err("no `hash` string".into()),
    };
    let seq = map.get("seq").and_then(Value::as_u64).ok_or("no `seq` integer")?;
    let prev_hash = map.get("prev_hash").and_then(Value::as_str).ok_or("no `prev_hash` string")?.to_owned();
    let body = canonical::to_canonical(&value).map_err(|e| e.to_string())?;
    let computed = crate::record::lower_hex(&Sha256::digest(&body));
    Ok(Checked { seq, prev_hash, hash, computed })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::record::{Entry, Timestamp, GENESIS_HASH};

    /// A record with every field set, strings needing escapes, nested objects out of order.
    fn full_entry() -> Entry {
        use crate::record::{Decision, MaskApplied, PrincipalRecord, RequestRecord, Slice};
        let mut e = Entry::request("r-\u{1}\"é", Timestamp::now());
        e.principal = Some(PrincipalRecord {
            subject: "sam\n".into(),
            issuer: "https://idp/\\".into(),
            groups: vec!["support".into(), "z".into(), "a".into()],
            roles: vec!["support".into()],
            auth_method: "dev".into(),
            credential: Some("session".into()),
            claims: [("tenant".to_owned(), "acme".to_owned()), ("b".to_owned(), "\u{7f}\u{1f}".to_owned())].into(),
        });
        e.client_addr = Some("127.0.0.1:9".into());
        e.request = Some(RequestRecord {
            method: "GET".into(),
            route: "/v1/traces/{id}".into(),
            action: Some("read".into()),
            trace_ids: vec!["t1".into()],
            fields: vec!["$.a".into()],
            purpose: Some("incident 4".into()),
        });
        e.policy_version = Some("sha256:00".into());
        e.decision = Some(Decision::Deny);
        e.deny_code = Some("field_denied".into());
        e.message = Some("tab\there".into());
        e.rules = vec!["roles.support.fields".into()];
        e.role = Some("support".into());
        e.slice = Some(Slice { allow: vec!["$".into()], deny: vec!["$..secret".into()] });
        e.masks = vec![MaskApplied { detector: "email".into(), operator: "hash".into(), count: 2, paths: vec!["$['a']".into()] }];
        e.approval_id = Some("ar-1".into());
        e.object_version = Some("sha256:11".into());
        e.status = Some(403);
        e.bytes_sent = Some(0);
        e.body_sha256 = Some("ab".into());
        e.latency_us = Some(9_007_199_254_740_991);
        e.event = Some(serde_json::json!({"z": [1, -2, {"y": null, "b": true}], "a": "x", "é": {"k": false}}));
        e
    }

    #[test]
    fn prepared_members_are_the_canonical_form_of_the_serialised_entry() {
        for e in [full_entry(), Entry::request("r1", Timestamp::now()), Entry::system(serde_json::json!({"type": "t"}))] {
            let value = serde_json::to_value(&e).unwrap();
            let Value::Object(map) = &value else { panic!("an entry is an object") };
            let mut want: Vec<canonical::Member> = map.iter().map(|(k, v)| (k.clone().into(), canonical::to_canonical(v).unwrap())).collect();
            want.sort_by(|a, b| canonical::cmp_keys(&a.0, &b.0));
            let mut got = Prepared::new(&e).unwrap().members;
            got.sort_by(|a, b| canonical::cmp_keys(&a.0, &b.0));
            assert_eq!(got, want);
            // And the sealed line is the canonical form of the whole record.
            let (line, _) = Prepared::new(&e).unwrap().seal(7, GENESIS_HASH);
            let v: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(canonical::to_canonical(&v).unwrap(), line[..line.len() - 1].to_vec());
        }
    }

    #[test]
    fn prepared_refuses_what_canonical_json_cannot_hold() {
        let mut e = full_entry();
        e.event = Some(serde_json::json!({"x": 1.5}));
        assert!(Prepared::new(&e).is_err());
        e.event = Some(serde_json::json!({"x": 9_007_199_254_740_992u64}));
        assert!(Prepared::new(&e).is_err());
        e.event = Some(serde_json::json!({"x": -9_007_199_254_740_991i64}));
        assert!(Prepared::new(&e).is_ok());
        assert!(canonical::members(&serde_json::json!([1])).is_err());
        assert!(canonical::members(&serde_json::json!({"seq": 1})).is_ok());
    }

    #[test]
    fn sealed_line_checks_and_is_canonical() {
        let e = Entry::request("r1", Timestamp::now());
        let p = Prepared::new(&e).unwrap();
        let (line, hash) = p.seal(1, GENESIS_HASH);
        let c = check_line(&line[..line.len() - 1]).unwrap();
        assert!(c.intact());
        assert_eq!(c.hash, hash);
        assert_eq!(c.seq, 1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(canonical::to_canonical(&v).unwrap(), line[..line.len() - 1].to_vec());
    }

    #[test]
    fn sealed_line_is_the_hashed_object_with_its_hash_added() {
        for e in [full_entry(), Entry::request("r1", Timestamp::now()), Entry::system(serde_json::json!({"type": "t"}))] {
            for (seq, prev) in [(1, GENESIS_HASH), (9_007_199_254_740_991, "ab\"\n\u{1}é")] {
                let p = Prepared::new(&e).unwrap();
                let (line, hash) = p.seal(seq, prev);
                // Two object builds, as first written: the oracle.
                let seq_bytes = seq.to_string().into_bytes();
                let mut prev_bytes = Vec::new();
                canonical::write_str(prev, &mut prev_bytes);
                let mut parts: Vec<(&str, &[u8])> = p.members.iter().map(|(k, v)| (k.as_ref(), v.as_slice())).collect();
                parts.push(("seq", &seq_bytes));
                parts.push(("prev_hash", &prev_bytes));
                let body = canonical::object(&mut parts);
                assert_eq!(hash, hex::encode(Sha256::digest(&body)));
                let mut hash_bytes = Vec::new();
                canonical::write_str(&hash, &mut hash_bytes);
                parts.push(("hash", &hash_bytes));
                let mut want = canonical::object(&mut parts);
                want.push(b'\n');
                assert_eq!(String::from_utf8(line).unwrap(), String::from_utf8(want).unwrap());
            }
        }
    }
}
