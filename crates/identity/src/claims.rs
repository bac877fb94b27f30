//! From verified claims to what the core needs: groups from the configured claim path, and the
//! string-valued claims that row scopes compare against (e.g. `tenant`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The value at `path` in `claims`. A claim named exactly `path` wins (IdPs namespace claims with
/// URLs, which contain dots); otherwise `path` is read as dot-separated object keys.
pub(crate) fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut segments = path.split('.');
    let mut value = claims.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// The groups at `path`: an array of strings, or one string. Anything else, including an array
/// holding a non-string, yields no groups: a claim we cannot read grants nothing.
pub(crate) fn groups(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    match lookup(claims, path) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items.iter().map(|v| v.as_str().map(str::to_owned)).collect();
            names.unwrap_or_else(|| {
                tracing::debug!(claim = path, "groups claim holds a non-string; no groups taken");
                Vec::new()
            })
        }
        Some(_) => {
            tracing::debug!(claim = path, "groups claim is neither a string nor an array; no groups taken");
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// The top-level claims whose values are strings. Numbers and objects are left out on purpose:
/// row scopes compare strings, and a silent conversion could make two different values equal.
pub(crate) fn string_claims(claims: &Map<String, Value>) -> BTreeMap<String, String> {
    claims.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn dotted_paths_and_exact_names() {
        let c = map(json!({
            "groups": ["a", "b"],
            "realm_access": {"roles": ["eng"]},
            "https://example.com/groups": ["ns"],
            "a.b": "exact",
            "a": {"b": "nested"},
        }));
        assert_eq!(groups(&c, "groups"), ["a", "b"]);
        assert_eq!(groups(&c, "realm_access.roles"), ["eng"]);
        assert_eq!(groups(&c, "https://example.com/groups"), ["ns"]);
        assert_eq!(groups(&c, "a.b"), ["exact"]);
        assert!(groups(&c, "realm_access.missing").is_empty());
        assert!(groups(&c, "groups.x").is_empty());
    }

    #[test]
    fn groups_shapes() {
        let c = map(json!({"one": "solo", "mixed": ["a", 1], "num": 3, "obj": {"a": 1}, "empty": []}));
        assert_eq!(groups(&c, "one"), ["solo"]);
        assert!(groups(&c, "mixed").is_empty());
        assert!(groups(&c, "num").is_empty());
        assert!(groups(&c, "obj").is_empty());
        assert!(groups(&c, "empty").is_empty());
    }

    #[test]
    fn only_string_claims_are_kept() {
        let c = map(json!({"tenant": "acme", "exp": 5, "nested": {"x": "y"}, "flag": true, "sub": "u"}));
        let s = string_claims(&c);
        assert_eq!(s.len(), 2);
        assert_eq!(s["tenant"], "acme");
        assert_eq!(s["sub"], "u");
    }
}
