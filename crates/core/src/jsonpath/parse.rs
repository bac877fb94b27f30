//! The one way an RFC 9535 JSONPath is parsed, for policy rules and callers' field requests
//! alike: `serde_json_path`'s parser, guarded against the inputs on which it panics instead of
//! returning an error.

use serde_json_path::JsonPath;

/// Parses `expr`; the error is the parser's message.
///
/// `serde_json_path` 0.7.2 panics ("we do not use streaming parsers") on an expression that
/// ends inside a `\u` escape — `$['\u`, `$['\uD`, `$['\uD800\u`, `$['\uD800\uD` — because
/// its string parser uses a streaming `one_of` that asks for more input at the end. A caller's
/// `?fields=` is parsed with it, so that was a panic any caller could cause, before the audit
/// record. No valid expression ends in `\u`, `\uD` or `\ud` (a backslash outside a string is
/// invalid, and inside one the string must still be closed), so those are refused here before
/// the parser sees them. Found by the `field_request` fuzz target.
pub fn parse(expr: &str) -> Result<JsonPath, String> {
    if ["\\u", "\\uD", "\\ud"].iter().any(|tail| expr.ends_with(tail)) {
        return Err("the expression ends inside a `\\u` escape".to_owned());
    }
    JsonPath::parse(expr).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_ending_inside_a_unicode_escape_are_refused_not_panics() {
        // The fuzzer's input, minimised, and each place the parser asked for more input.
        for bad in [r"$.metadata['\u", r"$['\u", r"$['\uD", r"$['\uD800\u", r"$['\uD800\uD", r"$['\uD800\ud", r#"$["\u"#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn escapes_that_are_complete_still_parse() {
        for ok in [r"$['\u0074enant']", r"$['\uD83D\uDE00']", r"$['\\u']", r"$[?@.a == 'x\\u']"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [r"$['\u00']", r"$['\uD800']", r"$['\uZZZZ']", r"$['\u", r"$['\ud']"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_requests_and_policies_refuse_them_through_it() {
        let asked = crate::project::FieldRequest::parse_all([r"$.metadata['\u"]);
        assert!(matches!(asked, Err(crate::project::FieldRequestError::Syntax { .. })), "{asked:?}");
        let policy = "[roles.r]\ngroups = [\"g\"]\nactions = [\"read\"]\n[roles.r.fields]\nallow = [\"$['\\\\uD800\\\\u\"]\n";
        let err = crate::Policy::parse("p.toml", policy).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("p.toml:5:") && err.contains("ends inside a `\\u` escape"), "{err}");
    }
}
