//! Field projection: keep exactly the nodes a view allows, and block requests wider than it.
//!
//! Paths are RFC 9535 JSONPath. Before paths are evaluated, string values that hold a JSON object
//! or array are decoded in place, so a policy can address inside them (OpenTelemetry GenAI
//! attributes carry whole message arrays as JSON-encoded strings: a path such as
//! `$..parts[?@.type == 'reasoning']` must reach into them). After projection those values are
//! encoded back into strings, so the output has the input's shape.
//!
//! A caller may ask for a narrower slice with its own paths. Each requested node must lie under a
//! node some `allow` rule selects, and must neither lie under nor contain a node a `deny` rule
//! selects; otherwise the whole request is refused with the rule that refused it. A request is
//! never silently trimmed.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::decision::{DenyCode, Denial};
use crate::path_trie::{display, segs_of, PathTrie, Seg};
use crate::policy::{FieldView, Role};

/// Most paths one request may ask for, and the longest one.
pub const MAX_REQUESTED_FIELDS: usize = 32;
pub const MAX_FIELD_EXPR_LEN: usize = 512;

/// A field a caller asked for.
#[derive(Debug, Clone)]
pub struct FieldRequest {
    pub expr: String,
    pub path: JsonPath,
}

/// A requested field that is not a valid path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldRequestError {
    #[error("`{expr}` is not an RFC 9535 JSONPath: {reason}")]
    Syntax { expr: String, reason: String },
    #[error("at most {MAX_REQUESTED_FIELDS} fields may be requested")]
    TooMany,
    #[error("a requested field is longer than {MAX_FIELD_EXPR_LEN} bytes")]
    TooLong,
}

impl FieldRequest {
    /// Parses a caller's field list.
    pub fn parse_all<'a>(exprs: impl IntoIterator<Item = &'a str>) -> Result<Vec<FieldRequest>, FieldRequestError> {
        let mut out = Vec::new();
        for e in exprs {
            if out.len() == MAX_REQUESTED_FIELDS {
                return Err(FieldRequestError::TooMany);
            }
            if e.len() > MAX_FIELD_EXPR_LEN {
                return Err(FieldRequestError::TooLong);
            }
            let path = crate::jsonpath::parse(e).map_err(|reason| FieldRequestError::Syntax { expr: e.to_owned(), reason })?;
            out.push(FieldRequest { expr: e.to_owned(), path });
        }
        Ok(out)
    }
}

/// Projects `doc` to `role`'s view, or to `requested` if given and within the view.
pub fn project(doc: Value, role: &Role, requested: Option<&[FieldRequest]>) -> Result<Value, Denial> {
    let view = &role.fields;
    if requested.is_none() && view.is_everything() {
        return Ok(doc);
    }
    let mut doc = doc;
    let mut expanded = PathTrie::default();
    expand_json_strings(&mut doc, &mut Vec::new(), &mut expanded);

    let allow = locate(&doc, view, Kind::Allow);
    let deny = locate(&doc, view, Kind::Deny);
    let selected = match requested {
        None => allow,
        Some(reqs) => {
            let mut sel = PathTrie::default();
            for req in reqs {
                for loc in req.path.query_located(&doc).locations() {
                    let segs = segs_of(loc);
                    check_requested(role, view, &allow, &deny, &segs, &req.expr)?;
                    sel.insert(&segs, 0);
                }
            }
            sel
        }
    };
    Ok(build(&doc, Some(&selected), false, Some(&deny), Some(&expanded)).unwrap_or(Value::Object(Map::new())))
}

enum Kind {
    Allow,
    Deny,
}

/// Marks every node the view's allow (or deny) rules select, with the index of the first rule.
fn locate(doc: &Value, view: &FieldView, kind: Kind) -> PathTrie<usize> {
    let rules = match kind {
        Kind::Allow => &view.allow,
        Kind::Deny => &view.deny,
    };
    let mut trie = PathTrie::default();
    for (i, rule) in rules.iter().enumerate() {
        for loc in rule.path.query_located(doc).locations() {
            trie.insert(&segs_of(loc), i);
        }
    }
    trie
}

fn check_requested(
    role: &Role,
    view: &FieldView,
    allow: &PathTrie<usize>,
    deny: &PathTrie<usize>,
    segs: &[Seg],
    expr: &str,
) -> Result<(), Denial> {
    let at = display(segs);
    let hit = deny.marked_prefix(segs).map(|i| (*i, segs.to_vec())).or_else(|| deny.marked_at_or_below(segs).map(|(i, p)| (*i, p)));
    if let Some((i, denied_at)) = hit {
        let rule = view.deny.get(i);
        return Err(Denial::new(
            DenyCode::FieldDenied,
            Some(role),
            format!(
                "requested field `{expr}` selects `{at}`, which overlaps `{}` denied to role `{}` by `{}`",
                display(&denied_at),
                role.name,
                rule.map_or("?", |r| r.expr.as_str())
            ),
            vec![rule.map_or_else(|| role.rule("fields.deny"), |r| r.id.clone())],
        ));
    }
    if allow.marked_prefix(segs).is_none() {
        return Err(Denial::new(
            DenyCode::FieldOutsideView,
            Some(role),
            format!("requested field `{expr}` selects `{at}`, which no `fields.allow` rule of role `{}` covers", role.name),
            vec![role.rule("fields.allow")],
        ));
    }
    Ok(())
}

/// Decodes, in place, string values that hold a JSON object or array, recording where.
fn expand_json_strings(v: &mut Value, at: &mut Vec<Seg>, expanded: &mut PathTrie<()>) {
    match v {
        Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                if let Ok(inner @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s) {
                    *v = inner;
                    expanded.insert(at, ());
                    expand_json_strings(v, at, expanded);
                }
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter_mut().enumerate() {
                at.push(Seg::Index(i));
                expand_json_strings(c, at, expanded);
                at.pop();
            }
        }
        Value::Object(m) => {
            for (k, c) in m.iter_mut() {
                at.push(Seg::Key(k.clone()));
                expand_json_strings(c, at, expanded);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Copies the selected parts of `v`. `full` means an ancestor was selected whole.
fn build(
    v: &Value,
    sel: Option<&PathTrie<usize>>,
    full: bool,
    deny: Option<&PathTrie<usize>>,
    exp: Option<&PathTrie<()>>,
) -> Option<Value> {
    if deny.is_some_and(|d| d.mark.is_some()) {
        return None;
    }
    let full = full || sel.is_some_and(|s| s.mark.is_some());
    if !full && sel.is_none() {
        return None;
    }
    let deny = deny.filter(|d| d.has_children());
    let exp_here = exp.is_some_and(|e| e.mark.is_some());
    let exp = exp.filter(|e| e.has_children());
    let encode = |out: Value| if exp_here { Value::String(out.to_string()) } else { out };
    if full && deny.is_none() && exp.is_none() {
        return Some(encode(v.clone()));
    }
    fn child_sel(full: bool, s: Option<&PathTrie<usize>>) -> Option<&PathTrie<usize>> {
        if full {
            None
        } else {
            s
        }
    }
    let out = match v {
        Value::Object(m) => {
            let mut o = Map::new();
            for (k, c) in m {
                let kid = build(
                    c,
                    child_sel(full, sel.and_then(|s| s.key(k))),
                    full,
                    deny.and_then(|d| d.key(k)),
                    exp.and_then(|e| e.key(k)),
                );
                if let Some(x) = kid {
                    o.insert(k.clone(), x);
                }
            }
            Value::Object(o)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    build(
                        c,
                        child_sel(full, sel.and_then(|s| s.index(i))),
                        full,
                        deny.and_then(|d| d.index(i)),
                        exp.and_then(|e| e.index(i)),
                    )
                })
                .collect(),
        ),
        scalar if full => scalar.clone(),
        _ => return None,
    };
    Some(encode(out))
}

#[cfg(test)]
mod tests;
