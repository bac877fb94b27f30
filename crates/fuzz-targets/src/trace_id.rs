//! `trace_id`: [`TraceId::parse`] on any text. Whatever it accepts must be safe as an object key
//! on every store: one plain path component, no separator, no traversal, no control or
//! whitespace character, nothing outside `[A-Za-z0-9._-]`, at most 128 bytes.

use std::path::{Component, Path};

use tracegate_core::trace_id::MAX_TRACE_ID_LEN;
use tracegate_core::{TraceId, TraceIdError};

/// True when some candidate was accepted.
pub fn trace_id(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    // Each line is one candidate, and so is the whole input (which may hold a newline).
    let mut any = check(&text);
    for line in text.split('\n') {
        any |= check(line);
    }
    any
}

fn check(s: &str) -> bool {
    match TraceId::parse(s) {
        Ok(id) => {
            accepted(s, &id);
            true
        }
        Err(e) => {
            // The message quotes at most the id's length limit of what was sent.
            let msg = e.to_string();
            if let TraceIdError::Invalid(quoted) = &e {
                assert!(quoted.chars().count() <= MAX_TRACE_ID_LEN, "error quotes {} chars", quoted.chars().count());
            }
            assert!(!msg.is_empty());
            // The serde path refuses exactly what `parse` refuses.
            let json = serde_json::Value::String(s.to_owned());
            assert!(serde_json::from_value::<TraceId>(json).is_err(), "deserialize accepted {s:?} that parse refused");
            false
        }
    }
}

fn accepted(s: &str, id: &TraceId) {
    assert_eq!(id.as_str(), s, "an accepted id must be the input, unchanged");
    assert_eq!(id.to_string(), s);
    assert!(!s.is_empty() && s.len() <= MAX_TRACE_ID_LEN, "length {} accepted", s.len());
    assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')), "{s:?}: a byte outside [A-Za-z0-9._-]");
    assert!(s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()), "{s:?} starts with a non-alphanumeric");
    for bad in ["/", "\\", "..", "\0", ":", "%", " "] {
        assert!(!s.contains(bad), "{s:?} contains {bad:?}");
    }
    assert!(!s.chars().any(|c| c.is_control() || c.is_whitespace()), "{s:?} holds a control or space character");
    // As a path it is exactly one ordinary component, equal to itself: no root, no `..`, no `.`.
    let comps: Vec<Component<'_>> = Path::new(s).components().collect();
    assert!(matches!(comps.as_slice(), [Component::Normal(c)] if *c == s), "{s:?} is not one plain path component");
    // Serde agrees with `parse`, and the id round-trips through JSON unchanged.
    let json = serde_json::Value::String(s.to_owned());
    let back: Result<TraceId, _> = serde_json::from_value(json);
    assert_eq!(back.as_ref().ok(), Some(id), "deserialize disagrees with parse on {s:?}");
    assert_eq!(serde_json::to_value(id).ok(), Some(serde_json::Value::String(s.to_owned())));
}
