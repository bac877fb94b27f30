//! What happens to a detected value: redacted, partly shown, pseudonymised, or its field dropped.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::MaskKey;

/// An operator as written in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Detector disabled: the value is served as is.
    Off,
    /// `[REDACTED:EMAIL]`: the type stays visible, nothing of the value.
    Redact,
    /// Stars, then the last 4 characters (all stars when the value is shorter than 8).
    Partial,
    /// `EMAIL_3f9a1c2b7d4e`: HMAC-SHA256 under the gateway's key, so equal values give equal
    /// pseudonyms (analysts can join) but nobody without the key can test a guess.
    Hash,
    /// The whole field is removed (an array element becomes `null`, keeping indexes stable).
    Drop,
}

impl Op {
    pub const NAMES: &'static [&'static str] = &["off", "redact", "partial", "hash", "drop"];

    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "off" => Op::Off,
            "redact" => Op::Redact,
            "partial" => Op::Partial,
            "hash" => Op::Hash,
            "drop" => Op::Drop,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Off => "off",
            Op::Redact => "redact",
            Op::Partial => "partial",
            Op::Hash => "hash",
            Op::Drop => "drop",
        }
    }
}

/// Hex characters of the HMAC kept in a pseudonym: 48 bits, so collisions stay unlikely
/// (birthday bound ~16 million distinct values) while pseudonyms stay short.
const PSEUDONYM_HEX: usize = 12;

/// Shortest key accepted for `hash`. With a shorter (or no) key the pseudonym would be an
/// unkeyed, brute-forceable hash, so `hash` degrades to `redact` instead.
pub const MIN_KEY_LEN: usize = 16;

/// Applies operators for one masking run; holds the keyed MAC state so the key schedule is
/// computed once per document, not once per value.
pub struct Operators {
    mac: Option<Hmac<Sha256>>,
}

impl Operators {
    pub fn new(key: &MaskKey) -> Operators {
        let mac = if key.0.len() >= MIN_KEY_LEN { Hmac::<Sha256>::new_from_slice(&key.0).ok() } else { None };
        Operators { mac }
    }

    /// Operators for a masker that never pseudonymises: no MAC state (its key schedule, two
    /// SHA-256 blocks, was a few percent of masking a small document).
    pub fn without_hash() -> Operators {
        Operators { mac: None }
    }

    /// The operator actually applied: `hash` without a usable key is `redact`.
    pub fn effective(&self, op: Op) -> Op {
        if op == Op::Hash && self.mac.is_none() {
            Op::Redact
        } else {
            op
        }
    }

    /// Appends the replacement for `value` under `op` (never `Off` or `Drop`, which the walk
    /// handles) to `out`.
    pub fn apply(&self, op: Op, label: &str, value: &str, out: &mut String) {
        match self.effective(op) {
            Op::Partial => {
                let n = value.chars().count();
                let keep = if n >= 8 { 4 } else { 0 };
                out.extend(std::iter::repeat_n('*', n - keep));
                out.extend(value.chars().skip(n - keep));
            }
            Op::Hash => {
                if let Some(mac) = &self.mac {
                    let mut m = mac.clone();
                    // The label separates types: the same string as an email and as a name
                    // gives unrelated pseudonyms.
                    m.update(label.as_bytes());
                    m.update(&[0]);
                    m.update(value.as_bytes());
                    let tag = m.finalize().into_bytes();
                    out.push_str(label);
                    out.push('_');
                    // Into a stack buffer: `hex::encode` builds a `String` a char at a time,
                    // and every pseudonym of a read passes here.
                    let mut hex = [0u8; PSEUDONYM_HEX];
                    if hex::encode_to_slice(&tag[..PSEUDONYM_HEX / 2], &mut hex).is_ok() {
                        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
                    }
                }
            }
            Op::Redact | Op::Off | Op::Drop => {
                out.push_str("[REDACTED:");
                out.push_str(label);
                out.push(']');
            }
        }
    }
}

/// Whether `s` could hold something an operator wrote: a `[REDACTED:` label, a `partial` star,
/// or a `hash` pseudonym's `_` and 12 hex digits — or JSON punctuation, since a JSON-in-string
/// value is re-encoded when something inside it is masked. A text without any of these that
/// masking leaves unchanged can only be shown for a stored value equal to it (every replacement
/// leaves one of these marks), which is what lets a search filter on it run in SQL.
pub fn may_hold_operator_output(s: &str) -> bool {
    if s.contains("[REDACTED:") || s.bytes().any(|b| matches!(b, b'*' | b'{' | b'[' | b'"' | b'\\')) {
        return true;
    }
    s.match_indices('_').any(|(i, _)| {
        let hex = s.as_bytes()[i + 1..].iter().take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')).count();
        hex >= PSEUDONYM_HEX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: Op, key: &[u8], v: &str) -> String {
        let mut s = String::new();
        Operators::new(&MaskKey(key.to_vec())).apply(op, "EMAIL", v, &mut s);
        s
    }

    #[test]
    fn redact_shows_type_only() {
        assert_eq!(run(Op::Redact, b"", "a@b.co"), "[REDACTED:EMAIL]");
    }

    #[test]
    fn partial_keeps_last_four_of_long_values_only() {
        assert_eq!(run(Op::Partial, b"", "4111111111111111"), "************1111");
        assert_eq!(run(Op::Partial, b"", "hunter2"), "*******");
    }

    #[test]
    fn hash_is_keyed_and_stable() {
        let k1 = b"0123456789abcdef0123";
        let k2 = b"fedcba98765432100123";
        let a = run(Op::Hash, k1, "alice@example.com");
        assert_eq!(a, run(Op::Hash, k1, "alice@example.com"));
        assert_ne!(a, run(Op::Hash, k2, "alice@example.com"));
        assert_ne!(a, run(Op::Hash, k1, "bob@example.com"));
        assert!(a.starts_with("EMAIL_") && a.len() == "EMAIL_".len() + PSEUDONYM_HEX, "{a}");
    }

    #[test]
    fn hash_without_key_fails_closed_to_redact() {
        assert_eq!(run(Op::Hash, b"short", "alice@example.com"), "[REDACTED:EMAIL]");
    }

    /// What search pushdown rests on: whatever an operator writes, for any value, label and key,
    /// is recognised as possibly an operator's — inside surrounding text too — while ordinary
    /// metadata values are not.
    #[test]
    fn every_operator_output_carries_a_mark() {
        let keys: [&[u8]; 2] = [b"0123456789abcdef0123", b""];
        let values = ["a", "hunter2", "4111111111111111", "bob@example.com", "ünïcödé-välue", "x y z 1 2 3", "0"];
        for key in keys {
            for op in [Op::Redact, Op::Partial, Op::Hash] {
                for label in ["EMAIL", "PERSON_NAME", "AWS_KEY"] {
                    for v in values {
                        let ops = Operators::new(&MaskKey(key.to_vec()));
                        let mut out = String::new();
                        ops.apply(op, label, v, &mut out);
                        for text in [out.clone(), format!("user {out} here"), format!("{out}-2")] {
                            assert!(may_hold_operator_output(&text), "{op:?} {label} {v:?}: {text}");
                        }
                    }
                }
            }
        }
        for plain in ["acme", "tenant-7", "u1", "agent_triage", "p_1", "2026-11-24", "Ünïcode Tenant", "a_0123456789a"] {
            assert!(!may_hold_operator_output(plain), "{plain}");
        }
        for marked in ["x_0123456789ab", "{\"a\":1}", "[1]", "a*b", "say \"hi\"", "back\\slash"] {
            assert!(may_hold_operator_output(marked), "{marked}");
        }
    }
}
