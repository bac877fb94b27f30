//! The hash chain: how a record's `hash` is computed and checked.
//!
//! `hash = lowercase_hex(SHA-256(canonical(record without "hash")))`, where the record includes
//! `seq` and `prev_hash`, and `canonical` is [`crate::canonical`] (RFC 8785 over integers). The
//! line stored in the log is the canonical form of the whole record, `hash` included, plus `\n`.
//!
//! Canonicalising the caller's fields happens on the caller's task ([`Prepared::new`]); the single
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
    members: Vec<(String, Vec<u8>)>,
}

impl Prepared {
    pub(crate) fn new(entry: &Entry) -> Result<Self, AuditError> {
        let value = serde_json::to_value(entry).map_err(|e| AuditError::Serialize(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(AuditError::Serialize("an entry must serialise to a json object".into()));
        };
        let mut members = Vec::with_capacity(map.len());
        for (k, v) in &map {
            if CHAIN_FIELDS.contains(&k.as_str()) {
                return Err(AuditError::Serialize(format!("entry must not carry chain field `{k}`")));
            }
            members.push((k.clone(), canonical::to_canonical(v)?));
        }
        Ok(Prepared { members })
    }

    /// The stored line (with trailing `\n`) and hash of this entry at `seq` after `prev_hash`.
    pub(crate) fn seal(&self, seq: u64, prev_hash: &str) -> (Vec<u8>, String) {
        let seq_bytes = seq.to_string().into_bytes();
        let mut prev_bytes = Vec::with_capacity(prev_hash.len() + 2);
        canonical::write_str(prev_hash, &mut prev_bytes);
        let mut parts: Vec<(&str, &[u8])> = Vec::with_capacity(self.members.len() + 3);
        parts.extend(self.members.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        parts.push(("seq", &seq_bytes));
        parts.push(("prev_hash", &prev_bytes));
        let body = canonical::object(&mut parts);
        let hash = hex::encode(Sha256::digest(&body));
        let mut hash_bytes = Vec::with_capacity(hash.len() + 2);
        canonical::write_str(&hash, &mut hash_bytes);
        parts.push(("hash", &hash_bytes));
        let mut line = canonical::object(&mut parts);
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
    let computed = hex::encode(Sha256::digest(&body));
    Ok(Checked { seq, prev_hash, hash, computed })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::record::{Entry, Timestamp, GENESIS_HASH};

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
}
