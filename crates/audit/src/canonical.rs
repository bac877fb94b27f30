//! The canonical JSON form that record hashes and checkpoint signatures are computed over.
//!
//! It is RFC 8785 (JSON Canonicalization Scheme) restricted to integers: object members sorted by
//! the UTF-16 code units of their names, no insignificant whitespace, strings escaped minimally
//! (`"`, `\`, and control characters, with `\b \t \n \f \r` short forms and lowercase `\u00xx`
//! otherwise), integers in plain decimal. Floating-point numbers and integers beyond ±(2^53−1) are
//! refused so that any JCS implementation in any language reproduces the same bytes.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::AuditError;

/// Largest integer JCS represents exactly (2^53 − 1).
const MAX_SAFE: u64 = (1 << 53) - 1;

/// The canonical bytes of `v`.
pub fn to_canonical(v: &Value) -> Result<Vec<u8>, AuditError> {
    let mut out = Vec::with_capacity(512);
    write(v, &mut out)?;
    Ok(out)
}

/// Appends the canonical form of `v` to `out`.
pub fn write(v: &Value, out: &mut Vec<u8>) -> Result<(), AuditError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let ok = n.as_u64().is_some_and(|u| u <= MAX_SAFE) || n.as_i64().is_some_and(|i| i.unsigned_abs() <= MAX_SAFE);
            if !ok {
                return Err(AuditError::Serialize(format!(
                    "number `{n}` is not an integer within ±(2^53-1); audit records carry integers only"
                )));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| cmp_keys(a.0, b.0));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Member order of JCS: by UTF-16 code units (equal to byte order for the ASCII names we use).
pub fn cmp_keys(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Joins already-canonical member values into a canonical object; `members` need not be sorted.
pub fn object(members: &mut [(&str, &[u8])]) -> Vec<u8> {
    members.sort_by(|a, b| cmp_keys(a.0, b.0));
    let mut out = Vec::with_capacity(members.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2);
    out.push(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, &mut out);
        out.push(b':');
        out.extend_from_slice(v);
    }
    out.push(b'}');
    out
}

pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x00..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sorts_members_and_escapes_minimally() {
        let v = json!({"b": [1, -2, "x\n\u{1}é"], "a": {"z": null, "y": true}, "é": "/"});
        let s = String::from_utf8(to_canonical(&v).unwrap()).unwrap();
        assert_eq!(s, r#"{"a":{"y":true,"z":null},"b":[1,-2,"x\n\u0001é"],"é":"/"}"#);
    }

    #[test]
    fn refuses_floats() {
        assert!(to_canonical(&json!({"x": 1.5})).is_err());
        assert!(to_canonical(&json!(9_007_199_254_740_992u64)).is_err());
    }

    #[test]
    fn object_matches_full_canonicalisation() {
        let v = json!({"seq": 3, "prev_hash": "ab", "kind": "request"});
        let parts: Vec<(String, Vec<u8>)> =
            v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), to_canonical(v).unwrap())).collect();
        let mut refs: Vec<(&str, &[u8])> = parts.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        assert_eq!(object(&mut refs), to_canonical(&v).unwrap());
    }
}
