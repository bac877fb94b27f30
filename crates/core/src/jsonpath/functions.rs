//! The RFC 9535 `match` and `search` functions, registered in place of `serde_json_path`'s own
//! (whose `regex` feature is off): that implementation compiles the pattern again for every node
//! it tests. Here each pattern is compiled once per process, with compile-size limits, and a
//! pattern that does not compile (or is too large) matches nothing.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use regex::{Regex, RegexBuilder};
use serde_json::Value;
use serde_json_path::functions::{LogicalType, ValueType};

/// Compiled programs are capped, so one pattern cannot make the gateway build a huge automaton.
const COMPILE_LIMIT: usize = 256 * 1024;
/// Distinct patterns kept; the cache is emptied when it fills.
const CACHE_ENTRIES: usize = 1024;

type Cache = Mutex<HashMap<(bool, String), Option<Arc<Regex>>>>;
static CACHE: LazyLock<Cache> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The compiled form of an I-Regexp (RFC 9485): anchored for `match`, unanchored for `search`.
pub fn compiled(pattern: &str, anchored: bool) -> Option<Arc<Regex>> {
    let key = (anchored, pattern.to_owned());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(hit) = cache.get(&key) {
        return hit.clone();
    }
    let source = if anchored { format!("^(?:{pattern})$") } else { format!("(?:{pattern})") };
    let re = RegexBuilder::new(&source)
        .size_limit(COMPILE_LIMIT)
        .dfa_size_limit(COMPILE_LIMIT)
        .build()
        .ok()
        .map(Arc::new);
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, re.clone());
    re
}

fn test(value: ValueType, rgx: ValueType, anchored: bool) -> LogicalType {
    match (value.as_value(), rgx.as_value()) {
        (Some(Value::String(s)), Some(Value::String(r))) => {
            compiled(r, anchored).is_some_and(|re| re.is_match(s)).into()
        }
        _ => LogicalType::False,
    }
}

#[serde_json_path::function(name = "match")]
fn match_fn(value: ValueType, rgx: ValueType) -> LogicalType {
    test(value, rgx, true)
}

#[serde_json_path::function(name = "search")]
fn search_fn(value: ValueType, rgx: ValueType) -> LogicalType {
    test(value, rgx, false)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use serde_json_path::JsonPath;

    #[test]
    fn match_and_search_work_and_compile_once() {
        let doc = json!([{"a": "duplicate"}, {"a": "other"}, {"a": 3}]);
        let q = |s: &str| JsonPath::parse(s).unwrap_or_else(|e| unreachable!("{e}")).query(&doc).len();
        assert_eq!(q("$[?search(@.a, 'dup')]"), 1);
        assert_eq!(q("$[?match(@.a, 'dup')]"), 0);
        assert_eq!(q("$[?match(@.a, 'dup.*')]"), 1);
        assert_eq!(q("$[?match(@.a, '[')]"), 0);
        let a = super::compiled("x+", false);
        let b = super::compiled("x+", false);
        assert!(a.zip(b).is_some_and(|(a, b)| std::sync::Arc::ptr_eq(&a, &b)));
    }
}
