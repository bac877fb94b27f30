//! Trace identifiers, validated once at the edge so no store ever sees a path.

use std::fmt;

/// Longest accepted trace id, in bytes.
pub const MAX_TRACE_ID_LEN: usize = 128;

/// A trace id that is safe to use as an object key: 1–128 bytes of `[A-Za-z0-9._-]`, starting with
/// an alphanumeric, never containing `..`. Path separators, absolute paths and traversal cannot be
/// expressed, so the store never needs to re-check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TraceId(String);

/// Why a string is not a trace id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceIdError {
    #[error("trace id is empty")]
    Empty,
    #[error("trace id is longer than {MAX_TRACE_ID_LEN} bytes")]
    TooLong,
    #[error("trace id `{0}` may only contain letters, digits, `.`, `_` and `-`, start with a letter or digit, and not contain `..`")]
    Invalid(String),
}

impl TraceId {
    pub fn parse(s: &str) -> Result<Self, TraceIdError> {
        if s.is_empty() {
            return Err(TraceIdError::Empty);
        }
        if s.len() > MAX_TRACE_ID_LEN {
            return Err(TraceIdError::TooLong);
        }
        let first_ok = s.as_bytes().first().is_some_and(|b| b.is_ascii_alphanumeric());
        let chars_ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !first_ok || !chars_ok || s.contains("..") {
            return Err(TraceIdError::Invalid(s.chars().take(MAX_TRACE_ID_LEN).collect()));
        }
        Ok(TraceId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TraceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TraceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for ok in ["demo-otlp-1", "a", "4bf92f3577b34da6a3ce929d0e0e4736", "run_2026.11.25"] {
            assert!(TraceId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_paths_and_traversal() {
        for bad in [
            "", "../etc/passwd", "/etc/passwd", "a/b", "a\\b", ".hidden", "a..b", "-x", "a b", "a%2F..",
            "a\0b", "é",
        ] {
            assert!(TraceId::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(TraceId::parse(&"a".repeat(129)), Err(TraceIdError::TooLong));
        assert!(TraceId::parse(&"a".repeat(128)).is_ok());
    }
}
