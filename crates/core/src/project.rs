//! Field projection: the caller's view of a trace, and narrower slices of it.
//!
//! Paths are RFC 9535 JSONPath. Strings that hold JSON documents are decoded first, through the
//! one decoder ([`crate::embedded`]), so a policy can address inside them (OpenTelemetry GenAI
//! attributes carry whole message arrays as JSON strings); after projection they are encoded
//! back, so the output has the input's shape.
//!
//! A read runs in this order, and the order is the security property:
//! 1. [`check_request`] — before anything is fetched: a requested query that can only select
//!    denied nodes or nodes outside every `allow` rule is refused, naming the rule. This is
//!    decided from the request and the policy alone ([`crate::jsonpath::reach`]).
//! 2. [`view`] — the role's view: nodes any `allow` rule selects, minus subtrees any `deny` rule
//!    selects. Then the role's maskers run over the view ([`crate::mask::Masker::apply_view`]).
//! 3. [`narrow`] — the caller's own queries are evaluated over that masked view, never over the
//!    stored document: filters, comparisons and functions see masked values and never see denied
//!    fields, so nothing outside the view can change what the caller gets.
//! 4. [`finish`] — decoded strings are encoded back.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::decision::{DenyCode, Denial};
use crate::embedded::{decode_tree, encode_tree, Embedded};
use crate::jsonpath::reach::{self, Unreachable};
use crate::jsonpath::{scan, size_of, Limits, Shape};
use crate::path_trie::{segs_of, PathTrie, Seg};
use crate::policy::{FieldView, Role};

/// Most paths one request may ask for, and the longest one.
pub const MAX_REQUESTED_FIELDS: usize = 32;
pub const MAX_FIELD_EXPR_LEN: usize = 512;

/// A field a caller asked for: parsed, measured and checked against the static limits once.
#[derive(Debug, Clone)]
pub struct FieldRequest {
    pub expr: String,
    pub path: JsonPath,
    pub shape: Shape,
}

/// A requested field that is not a valid path, or costs more than the limits allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldRequestError {
    #[error("`{expr}` is not an RFC 9535 JSONPath: {reason}")]
    Syntax { expr: String, reason: String },
    #[error("at most {MAX_REQUESTED_FIELDS} fields may be requested")]
    TooMany,
    #[error("a requested field is longer than {MAX_FIELD_EXPR_LEN} bytes")]
    TooLong,
    #[error("`{expr}` exceeds the query limit `{limit}` ({max})")]
    Limit { expr: String, limit: &'static str, max: String },
}

impl FieldRequest {
    /// Parses a caller's field list under the default [`Limits`].
    pub fn parse_all<'a>(exprs: impl IntoIterator<Item = &'a str>) -> Result<Vec<FieldRequest>, FieldRequestError> {
        Self::parse_all_with(exprs, &Limits::DEFAULT)
    }

    pub fn parse_all_with<'a>(exprs: impl IntoIterator<Item = &'a str>, limits: &Limits) -> Result<Vec<FieldRequest>, FieldRequestError> {
        let mut out = Vec::new();
        for e in exprs {
            if out.len() == MAX_REQUESTED_FIELDS {
                return Err(FieldRequestError::TooMany);
            }
            if e.len() > MAX_FIELD_EXPR_LEN {
                return Err(FieldRequestError::TooLong);
            }
            let syntax = |reason: String| FieldRequestError::Syntax { expr: e.to_owned(), reason };
            let path = crate::jsonpath::parse(e).map_err(syntax)?;
            let shape = scan(e).map_err(|err| syntax(err.0))?;
            if let Some((limit, max)) = limits.exceeded(&shape) {
                return Err(FieldRequestError::Limit { expr: e.to_owned(), limit, max });
            }
            out.push(FieldRequest { expr: e.to_owned(), path, shape });
        }
        Ok(out)
    }
}

/// Refuses requested fields that can only select outside `role`'s view. Decided from the
/// request and the policy alone: the same answer for every document.
pub fn check_request(role: &Role, requested: &[FieldRequest]) -> Result<(), Denial> {
    let view = &role.fields;
    if view.is_everything() {
        return Ok(());
    }
    let allow: Vec<&Shape> = view.allow.iter().map(|r| &r.shape).collect();
    let deny: Vec<&Shape> = view.deny.iter().map(|r| &r.shape).collect();
    for req in requested {
        match reach::check(&req.shape, &allow, &deny) {
            Ok(()) => {}
            Err(Unreachable::Denied(i)) => {
                let rule = view.deny.get(i);
                return Err(Denial::new(
                    DenyCode::FieldDenied,
                    Some(role),
                    format!(
                        "requested field `{}` can only select fields denied to role `{}` by `{}`",
                        req.expr,
                        role.name,
                        rule.map_or("?", |r| r.expr.as_str())
                    ),
                    vec![rule.map_or_else(|| role.rule("fields.deny"), |r| r.id.clone())],
                ));
            }
            Err(Unreachable::Outside) => {
                return Err(Denial::new(
                    DenyCode::FieldOutsideView,
                    Some(role),
                    format!("requested field `{}` can only select fields no `fields.allow` rule of role `{}` covers", req.expr, role.name),
                    vec![role.rule("fields.allow")],
                ));
            }
        }
    }
    Ok(())
}

/// A document as a role sees it, with JSON-in-strings decoded.
#[derive(Debug)]
pub struct View {
    pub doc: Value,
    pub embedded: Embedded,
    /// Values withheld because they were nested too deep to inspect.
    pub withheld: u64,
}

/// A requested query that would cost more than the limits allow over this view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{expr}` would visit about {estimate} nodes of this trace, over the limit `max_evaluated_nodes` ({max})")]
pub struct TooCostly {
    pub expr: String,
    pub estimate: u64,
    pub max: u64,
}

/// Decodes `doc` and projects it to `role`'s view.
pub fn view(doc: Value, role: &Role) -> View {
    view_with(doc, role, None)
}

/// What `role`'s view of `doc` leaves out: the top-most withheld paths, at most `cap` of them.
/// The same walk as [`view`] (one implementation of the view), noting where it drops a node
/// instead of building a second description of the view that could disagree with it.
pub fn withheld(doc: Value, role: &Role, cap: usize) -> Withheld {
    let mut trail = Trail::new(cap);
    let v = view_with(doc, role, Some(&mut trail));
    trail.finish(v.withheld)
}

fn view_with(doc: Value, role: &Role, trail: Option<&mut Trail>) -> View {
    let mut doc = doc;
    let decoded = decode_tree(&mut doc);
    let fields = &role.fields;
    if fields.is_everything() {
        return View { doc, embedded: decoded.embedded, withheld: decoded.withheld };
    }
    let allow = locate(&doc, fields, Kind::Allow);
    let deny = locate(&doc, fields, Kind::Deny);
    let mut embedded = Embedded::default();
    let out = build(doc, Some(&allow), false, Some(&deny), Some(&decoded.embedded), &mut embedded, trail)
        .unwrap_or(Value::Object(Map::new()));
    View { doc: out, embedded, withheld: decoded.withheld }
}

/// Narrows a (masked) view to the nodes the requested queries select in it.
pub fn narrow(view: View, requested: &[FieldRequest], limits: &Limits) -> Result<View, TooCostly> {
    let (nodes, depth) = size_of(&view.doc);
    for req in requested {
        let estimate = Limits::estimate(&req.shape, nodes, depth);
        if estimate > limits.max_evaluated_nodes {
            return Err(TooCostly { expr: req.expr.clone(), estimate, max: limits.max_evaluated_nodes });
        }
    }
    let mut sel = PathTrie::default();
    for req in requested {
        for loc in req.path.query_located(&view.doc).locations() {
            sel.insert(&segs_of(loc), 0usize);
        }
    }
    let mut embedded = Embedded::default();
    let doc = build(view.doc, Some(&sel), false, None, Some(&view.embedded), &mut embedded, None).unwrap_or(Value::Object(Map::new()));
    Ok(View { doc, embedded, withheld: view.withheld })
}

/// Encodes decoded strings back: the document in the input's shape.
pub fn finish(view: View) -> Value {
    let mut doc = view.doc;
    encode_tree(&mut doc, &view.embedded);
    doc
}

/// Projects `doc` to `role`'s view, or to `requested` within it, without masking: the shape
/// of a read for tests and tools. The server uses [`crate::pipeline::project_and_mask`].
pub fn project(doc: Value, role: &Role, requested: Option<&[FieldRequest]>) -> Result<Value, Denial> {
    if let Some(r) = requested {
        check_request(role, r)?;
    }
    let v = view(doc, role);
    let v = match requested {
        Some(r) => narrow(v, r, &Limits::DEFAULT)
            .map_err(|e| Denial::new(DenyCode::FieldOutsideView, Some(role), e.to_string(), vec![]))?,
        None => v,
    };
    Ok(finish(v))
}

enum Kind {
    Allow,
    Deny,
}

/// Marks every node the view's allow (or deny) rules select, with the index of the first rule.
/// A rule of names, indices and wildcards only is walked by its [`plan::Plan`], built when the
/// policy was compiled (the same nodes, without the evaluator's per-node path copies, which were
/// most of a projected read's CPU); any other rule by `serde_json_path`.
fn locate(doc: &Value, view: &FieldView, kind: Kind) -> PathTrie<usize> {
    let rules = match kind {
        Kind::Allow => &view.allow,
        Kind::Deny => &view.deny,
    };
    let mut trie = PathTrie::default();
    // Consecutive `$..name` rules share one walk ([`plan::mark_descendants`]); keeping them
    // consecutive keeps every rule's turn, so the first rule to reach a node still names it.
    let mut group: Vec<(&[plan::Pick], usize)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if let Some(sels) = rule.plan.as_ref().and_then(plan::Plan::descendant_only) {
            group.push((sels, i));
            continue;
        }
        if !group.is_empty() {
            plan::mark_descendants(&group, doc, &mut trie);
            group.clear();
        }
        match &rule.plan {
            Some(p) => p.mark(doc, &mut trie, i),
            None => {
                for loc in rule.path.query_located(doc).locations() {
                    trie.insert(&segs_of(loc), i);
                }
            }
        }
    }
    if !group.is_empty() {
        plan::mark_descendants(&group, doc, &mut trie);
    }
    trie
}

/// Keeps the selected parts of `v`, moving them out of it rather than copying them (the stored
/// document is parsed for this one read). `full` means an ancestor was selected whole. Decoded
/// positions (`exp`) are carried over to `out_exp` at the output's positions (array elements
/// that are not kept shift the ones after them). With a `trail`, every node left out is noted
/// at its stored path (the walk returns at the first one, so only top-most paths are noted).
fn build(
    v: Value,
    sel: Option<&PathTrie<usize>>,
    full: bool,
    deny: Option<&PathTrie<usize>>,
    exp: Option<&Embedded>,
    out_exp: &mut Embedded,
    mut trail: Option<&mut Trail>,
) -> Option<Value> {
    if deny.is_some_and(|d| d.mark.is_some()) {
        if let Some(t) = trail {
            t.withhold();
        }
        return None;
    }
    let full = full || sel.is_some_and(|s| s.mark.is_some());
    if !full && sel.is_none() {
        if let Some(t) = trail {
            t.withhold();
        }
        return None;
    }
    let deny = deny.filter(|d| d.has_children());
    if let Some(layers) = exp.and_then(|e| e.mark) {
        out_exp.mark = Some(layers);
    }
    let exp = exp.filter(|e| e.has_children());
    if full && deny.is_none() {
        if let Some(e) = exp {
            copy_marks(e, out_exp);
        }
        return Some(v);
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
                let mut kid_exp = Embedded::default();
                if let Some(t) = trail.as_deref_mut() {
                    t.enter(Seg::Key(k.clone()));
                }
                let kid = build(
                    c,
                    child_sel(full, sel.and_then(|s| s.key(&k))),
                    full,
                    deny.and_then(|d| d.key(&k)),
                    exp.and_then(|e| e.key(&k)),
                    &mut kid_exp,
                    trail.as_deref_mut(),
                );
                if let Some(t) = trail.as_deref_mut() {
                    t.leave();
                }
                if let Some(x) = kid {
                    if !kid_exp.is_empty() {
                        *out_exp.key_entry(&k) = kid_exp;
                    }
                    o.insert(k, x);
                }
            }
            Value::Object(o)
        }
        Value::Array(a) => {
            let mut out = Vec::new();
            for (i, c) in a.into_iter().enumerate() {
                let mut kid_exp = Embedded::default();
                if let Some(t) = trail.as_deref_mut() {
                    t.enter(Seg::Index(i));
                }
                let kid = build(
                    c,
                    child_sel(full, sel.and_then(|s| s.index(i))),
                    full,
                    deny.and_then(|d| d.index(i)),
                    exp.and_then(|e| e.index(i)),
                    &mut kid_exp,
                    trail.as_deref_mut(),
                );
                if let Some(t) = trail.as_deref_mut() {
                    t.leave();
                }
                if let Some(x) = kid {
                    if !kid_exp.is_empty() {
                        *out_exp.index_entry(out.len()) = kid_exp;
                    }
                    out.push(x);
                }
            }
            Value::Array(out)
        }
        scalar if full => scalar,
        _ => {
            if let Some(t) = trail {
                t.withhold();
            }
            return None;
        }
    };
    Some(out)
}

fn copy_marks(from: &Embedded, to: &mut Embedded) {
    if from.mark.is_some() {
        to.mark = from.mark;
    }
    from.for_each_child(|k, i, child| {
        let slot = match (k, i) {
            (Some(k), _) => to.key_entry(k),
            (None, Some(i)) => to.index_entry(i),
            (None, None) => return,
        };
        copy_marks(child, slot);
    });
}

/// The parts of a document a view leaves out, by stored path (keys and indices, never values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withheld {
    /// Top-most withheld paths, in document order, at most the cap.
    pub paths: Vec<Vec<Seg>>,
    /// Withheld paths beyond the cap.
    pub more: u64,
    /// Values withheld because they were nested too deep to inspect (see [`View::withheld`]).
    pub too_deep: u64,
}

/// The path being built and the withheld paths noted so far.
struct Trail {
    at: Vec<Seg>,
    out: Withheld,
    cap: usize,
}

impl Trail {
    fn new(cap: usize) -> Trail {
        Trail { at: Vec::new(), out: Withheld::default(), cap }
    }

    fn enter(&mut self, seg: Seg) {
        self.at.push(seg);
    }

    fn leave(&mut self) {
        self.at.pop();
    }

    fn withhold(&mut self) {
        if self.out.paths.len() < self.cap {
            self.out.paths.push(self.at.clone());
        } else {
            self.out.more += 1;
        }
    }

    fn finish(mut self, too_deep: u64) -> Withheld {
        self.out.too_deep = too_deep;
        self.out
    }
}

pub(crate) mod plan;

#[cfg(test)]
mod tests;
