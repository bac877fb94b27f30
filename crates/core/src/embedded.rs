//! JSON documents encoded inside JSON strings — the one decoder.
//!
//! OpenTelemetry GenAI attributes carry whole message arrays as JSON-encoded strings, and agent
//! frameworks double-encode tool arguments. Projection (deny rules must reach inside) and masking
//! (detectors must see every value) both see such strings through [`decode_tree`], with the same
//! depth limit, so every string masking scans as text is a string a deny rule can address, and
//! nothing a deny rule cannot reach is left for masking alone.
//!
//! A string is decoded when it holds a JSON object or array, directly or behind further layers
//! of JSON string encoding (`"\"{\\\"a\\\":1}\""`). Each layer counts toward [`MAX_LAYERS`] along
//! a path. A string that still holds a document past the limit cannot be inspected the way the
//! policy says, so it is withheld (`null`, and counted): fail closed.

use serde_json::Value;

use crate::path_trie::{PathTrie, Seg};

/// Layers of JSON-in-a-string decoded along any one path.
pub const MAX_LAYERS: u8 = 4;

/// Containers nested deeper than this, counting decoded layers, are withheld (`null`): every
/// walk over a document recurses, and a document built from many layers could otherwise exhaust
/// the stack. Parsing alone caps each layer at 128.
pub const MAX_NESTING: usize = 192;

/// Where strings were decoded, and how many string layers wrapped each.
pub type Embedded = PathTrie<u8>;

/// What [`decode_tree`] did.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Decoded positions (in the decoded document) with their layer counts.
    pub embedded: Embedded,
    /// Values withheld because they were too deep to inspect.
    pub withheld: u64,
}

/// Decodes `s` if it holds a JSON object or array within `budget` layers: the document and the
/// number of layers it took. `Err(())` when it still holds a document past the budget.
#[allow(clippy::result_unit_err)]
pub fn decode(s: &str, budget: u8) -> Result<Option<(Value, u8)>, ()> {
    let mut layers = 0u8;
    let mut owned: Option<String> = None;
    loop {
        let cur = owned.as_deref().unwrap_or(s);
        let t = cur.trim_ascii();
        let (Some(first), Some(last)) = (t.as_bytes().first(), t.as_bytes().last()) else { return Ok(None) };
        let doc = matches!((first, last), (b'{', b'}') | (b'[', b']'));
        let quoted = t.len() >= 2 && *first == b'"' && *last == b'"';
        if !doc && !quoted {
            return Ok(None);
        }
        let Ok(v) = serde_json::from_str::<Value>(t) else { return Ok(None) };
        if layers >= budget {
            // Something decodable is here, and the budget is spent.
            return match v {
                Value::Object(_) | Value::Array(_) => Err(()),
                Value::String(inner) if decode(&inner, MAX_LAYERS).ok().flatten().is_some() => Err(()),
                _ => Ok(None),
            };
        }
        layers += 1;
        match v {
            Value::Object(_) | Value::Array(_) => return Ok(Some((v, layers))),
            Value::String(inner) => owned = Some(inner),
            _ => return Ok(None),
        }
    }
}

/// What [`peel`] found in a string.
#[derive(Debug, PartialEq, Eq)]
pub enum Peeled<'a> {
    /// Not a document: scan the string as text.
    Text,
    /// The text of a JSON object or array, found under `layers` layers of JSON string. The
    /// text itself is not yet validated: a caller that finds it is not JSON treats the string as
    /// [`Peeled::Text`], as [`decode`] does.
    Doc { text: std::borrow::Cow<'a, str>, layers: u8 },
    /// A document is here past the budget: withhold it (what [`decode`] calls `Err`).
    PastBudget,
}

/// [`decode`] without building a tree: for the byte engine, which masks the document's text
/// directly. The decision (document or text, how many layers, past the budget) is the same as
/// [`decode`]'s once the caller has checked that the returned text parses.
pub fn peel(s: &str, budget: u8) -> Peeled<'_> {
    let mut layers = 0u8;
    let mut owned: Option<String> = None;
    loop {
        let cur = owned.as_deref().unwrap_or(s);
        let t = cur.trim_ascii();
        let (Some(first), Some(last)) = (t.as_bytes().first(), t.as_bytes().last()) else { return Peeled::Text };
        let doc = matches!((first, last), (b'{', b'}') | (b'[', b']'));
        let quoted = t.len() >= 2 && *first == b'"' && *last == b'"';
        if !doc && !quoted {
            return Peeled::Text;
        }
        if layers >= budget {
            // Rare: let the tree decoder decide exactly what it would.
            return match decode(s, budget) {
                Err(()) => Peeled::PastBudget,
                Ok(_) => Peeled::Text,
            };
        }
        if doc {
            let text = match owned {
                Some(o) => {
                    let t = o.trim_ascii();
                    if t.len() == o.len() {
                        std::borrow::Cow::Owned(o)
                    } else {
                        std::borrow::Cow::Owned(t.to_owned())
                    }
                }
                None => std::borrow::Cow::Borrowed(s.trim_ascii()),
            };
            return Peeled::Doc { text, layers: layers + 1 };
        }
        let Ok(inner) = serde_json::from_str::<String>(t) else { return Peeled::Text };
        layers += 1;
        owned = Some(inner);
    }
}

/// Encodes a decoded value back into `layers` layers of JSON string.
pub fn encode(v: &Value, layers: u8) -> Value {
    let mut s = v.to_string();
    for _ in 1..layers {
        s = Value::String(s).to_string();
    }
    Value::String(s)
}

/// Decodes, in place, every string of `doc` that holds a document, recording where.
pub fn decode_tree(doc: &mut Value) -> Decoded {
    let mut out = Decoded::default();
    walk(doc, None, 0, 0, &mut out);
    out
}

/// The path walked so far, one borrowed step per stack frame: copied into owned segments only
/// where a document is found (rarely), not one key copy per member visited.
struct At<'a> {
    up: Option<&'a At<'a>>,
    seg: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn path_of(at: Option<&At<'_>>) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut node = at;
    while let Some(a) = node {
        segs.push(match a.seg {
            Step::Key(k) => Seg::Key(k.to_owned()),
            Step::Index(i) => Seg::Index(i),
        });
        node = a.up;
    }
    segs.reverse();
    segs
}

fn walk(v: &mut Value, at: Option<&At<'_>>, layers: u8, nesting: usize, out: &mut Decoded) {
    match v {
        Value::String(s) => {
            if s.len() < 2 {
                return;
            }
            match decode(s, MAX_LAYERS - layers) {
                Ok(None) => {}
                Ok(Some((inner, n))) => {
                    *v = inner;
                    out.embedded.insert(&path_of(at), n);
                    walk(v, at, layers + n, nesting, out);
                }
                Err(()) => {
                    *v = Value::Null;
                    out.withheld += 1;
                }
            }
        }
        Value::Array(_) | Value::Object(_) if nesting >= MAX_NESTING => {
            *v = Value::Null;
            out.withheld += 1;
        }
        Value::Array(a) => {
            for (i, c) in a.iter_mut().enumerate() {
                walk(c, Some(&At { up: at, seg: Step::Index(i) }), layers, nesting + 1, out);
            }
        }
        Value::Object(m) => {
            for (k, c) in m.iter_mut() {
                walk(c, Some(&At { up: at, seg: Step::Key(k) }), layers, nesting + 1, out);
            }
        }
        _ => {}
    }
}

/// Encodes back, in place, what [`decode_tree`] decoded (at the positions `embedded` names).
pub fn encode_tree(doc: &mut Value, embedded: &Embedded) {
    if embedded.is_empty() {
        return;
    }
    if embedded.has_children() {
        match doc {
            Value::Object(m) => {
                for (k, c) in m.iter_mut() {
                    if let Some(t) = embedded.key(k) {
                        encode_tree(c, t);
                    }
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter_mut().enumerate() {
                    if let Some(t) = embedded.index(i) {
                        encode_tree(c, t);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(layers) = embedded.mark {
        if matches!(doc, Value::Object(_) | Value::Array(_)) {
            *doc = encode(doc, layers);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_objects_arrays_and_double_encoding() {
        assert_eq!(decode(r#"{"a":1}"#, 4), Ok(Some((json!({"a":1}), 1))));
        assert_eq!(decode(r#" [1,2] "#, 4), Ok(Some((json!([1, 2]), 1))));
        let twice = Value::String(r#"{"a":1}"#.into()).to_string();
        assert_eq!(decode(&twice, 4), Ok(Some((json!({"a":1}), 2))));
        assert_eq!(decode("hello", 4), Ok(None));
        assert_eq!(decode(r#""just a string""#, 4), Ok(None));
        assert_eq!(decode("{not json}", 4), Ok(None));
        assert_eq!(decode(r#"{"a":1}"#, 0), Err(()));
        assert_eq!(decode(&twice, 1), Err(()));
    }

    #[test]
    fn tree_round_trip_and_limit() {
        let inner = json!({"role": "user", "content": "hi"}).to_string();
        let mut doc = json!({"attrs": [{"value": {"stringValue": inner}}], "plain": "x"});
        let original = doc.clone();
        let d = decode_tree(&mut doc);
        assert_eq!(doc["attrs"][0]["value"]["stringValue"]["content"], "hi");
        assert_eq!(d.withheld, 0);
        encode_tree(&mut doc, &d.embedded);
        assert_eq!(doc, original);

        // Five layers: the fifth is past the limit and withheld.
        let mut s = json!({"deep": true}).to_string();
        for _ in 0..4 {
            s = json!({ "x": s }).to_string();
        }
        let mut doc = json!({ "v": s });
        let d = decode_tree(&mut doc);
        assert_eq!(d.withheld, 1);
        assert_eq!(doc["v"]["x"]["x"]["x"]["x"], Value::Null);
    }
}
