//! Policy rules walked directly: a rule whose segments hold only names, indices and wildcards
//! (`$.steps[*].output`, `$..reasoning`) marks the nodes it selects in one walk that keeps its
//! path on a stack of borrowed keys. `serde_json_path`'s located evaluation copies the path of
//! every node it visits (a descendant rule visits all of them, once per rule), which was most of
//! a projected read's CPU.
//!
//! A plan is only used when it is provably the query `serde_json_path` parsed: it is built from
//! the rule's [`Shape`], rendered back to JSONPath text (names escaped) and parsed again, and the
//! two syntax trees must be equal (`JsonPath: PartialEq`). So a plan cannot disagree with the
//! library on what a rule means — only on how such a query is evaluated, which the differential
//! test over generated documents and queries checks (`tests.rs`, `plans_select_what_the_library_selects`).
//! Anything else (filters, slices, a rendering that does not round-trip) is evaluated by the library.
//!
//! A plan depends on nothing but the rule, so it is built once, when the policy is compiled
//! ([`crate::policy::FieldRule`]), and read without a lock on every request.

use std::fmt::Write;

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::jsonpath::{scan, SegShape, Sel};
use crate::path_trie::{quote_name, segs_of, PathTrie, Seg};

/// Segments whose text has two forms (`.name` / `['name']`, `.*` / `[*]`) tried when a plan is
/// checked; a rule with more of them is left to the library.
const MAX_AMBIGUOUS: usize = 10;

/// Walked steps, then, for a rule that ends in filters or slices (`$..parts[?@.type == 'x']`),
/// the rest of the rule evaluated by the library at each node the steps reach.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    steps: Vec<Step>,
    tail: Option<JsonPath>,
}

#[derive(Debug, PartialEq, Eq)]
struct Step {
    descendant: bool,
    sels: Vec<Pick>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    Name(String),
    Index(i64),
    Wildcard,
}

impl Plan {
    /// The plan of `expr`, if it has one that provably is `path`: wholly walked, or walked up to
    /// a segment boundary with the rest left to the library ([`Plan::split`]).
    pub(crate) fn of(expr: &str, path: &JsonPath) -> Option<Plan> {
        Plan::walked(expr, path).or_else(|| Plan::split(expr, path))
    }

    fn walked(expr: &str, path: &JsonPath) -> Option<Plan> {
        let shape = scan(expr).ok()?;
        let steps = shape.segments.iter().map(Step::of).collect::<Option<Vec<_>>>()?;
        let plan = Plan { steps, tail: None };
        let ambiguous: Vec<usize> = (0..plan.steps.len()).filter(|&i| plan.steps[i].dottable()).collect();
        if ambiguous.len() > MAX_AMBIGUOUS {
            return None;
        }
        for forms in 0u32..(1 << ambiguous.len()) {
            let dotted = |i: usize| ambiguous.iter().position(|&a| a == i).is_some_and(|bit| forms & (1 << bit) != 0);
            let text = plan.render(dotted);
            if crate::jsonpath::parse(&text).is_ok_and(|p| p == *path) {
                return Some(plan);
            }
        }
        None
    }

    /// `expr` cut where a segment starts (`.` or `[`, the longest walkable head first): the head
    /// must have a walked plan, and `$` followed by the rest must parse on its own. A query is
    /// `$` and a sequence of segments, parsed unambiguously, so the two parses are `path`'s
    /// segments split in two (and their displays must join to `path`'s, a second check). The
    /// rest is evaluated with each reached node as its root, so it may not mention `$` at all.
    fn split(expr: &str, path: &JsonPath) -> Option<Plan> {
        let whole = path.to_string();
        for (j, b) in expr.bytes().enumerate().rev() {
            if !matches!(b, b'.' | b'[') || j < 2 || expr[j..].contains('$') {
                continue;
            }
            let (head, rest) = expr.split_at(j);
            let Ok(head_path) = crate::jsonpath::parse(head) else { continue };
            let Ok(tail) = crate::jsonpath::parse(&format!("${rest}")) else { continue };
            let shown = format!("{head_path}{}", tail.to_string().get(1..).unwrap_or_default());
            if shown != whole {
                continue;
            }
            if let Some(Plan { steps, .. }) = Plan::walked(head, &head_path) {
                return Some(Plan { steps, tail: Some(tail) });
            }
        }
        None
    }

    /// Marks with `mark` every node of `doc` the rule selects (an existing mark is kept, as
    /// [`PathTrie::insert`] does).
    pub(crate) fn mark(&self, doc: &Value, trie: &mut PathTrie<usize>, mark: usize) {
        let mut at = Vec::new();
        run(&self.steps, doc, &mut at, &mut Out { trie, mark, tail: self.tail.as_ref() });
    }

    /// The selectors of a plan that is one descendant segment and nothing else (`$..reasoning`,
    /// `$..['a','b']`): it marks exactly the child edges they pick, anywhere, so such plans can
    /// share one walk ([`mark_descendants`]).
    pub(crate) fn descendant_only(&self) -> Option<&[Pick]> {
        match (self.steps.as_slice(), &self.tail) {
            ([step], None) if step.descendant => Some(&step.sels),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_split(&self) -> bool {
        self.tail.is_some()
    }

    fn render(&self, dotted: impl Fn(usize) -> bool) -> String {
        let mut s = String::from("$");
        for (i, step) in self.steps.iter().enumerate() {
            if step.descendant {
                s.push_str("..");
            }
            if dotted(i) {
                if !step.descendant {
                    s.push('.');
                }
                match step.sels.first() {
                    Some(Pick::Name(n)) => s.push_str(n),
                    _ => s.push('*'),
                }
                continue;
            }
            s.push('[');
            for (j, sel) in step.sels.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                match sel {
                    Pick::Name(n) => quote_name(&mut s, n),
                    Pick::Index(x) => {
                        let _ = write!(s, "{x}");
                    }
                    Pick::Wildcard => s.push('*'),
                }
            }
            s.push(']');
        }
        s
    }
}

impl Step {
    fn of(seg: &SegShape) -> Option<Step> {
        let sels = seg
            .selectors
            .iter()
            .map(|s| match s {
                Sel::Name(n) => Some(Pick::Name(n.clone())),
                Sel::Index(i) => Some(Pick::Index(*i)),
                Sel::Wildcard => Some(Pick::Wildcard),
                Sel::Slice | Sel::Filter => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Step {
            descendant: seg.descendant,
            sels,
        })
    }

    /// Whether the segment could also have been written in dot form.
    fn dottable(&self) -> bool {
        match self.sels.as_slice() {
            [Pick::Wildcard] => true,
            [Pick::Name(n)] => shorthand(n),
            _ => false,
        }
    }
}

/// RFC 9535 `member-name-shorthand`.
fn shorthand(n: &str) -> bool {
    let mut cs = n.chars();
    let first = |c: char| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii();
    cs.next().is_some_and(first) && cs.all(|c| first(c) || c.is_ascii_digit())
}

/// Where a walk marks what it selects.
struct Out<'t> {
    trie: &'t mut PathTrie<usize>,
    mark: usize,
    tail: Option<&'t JsonPath>,
}

impl Out<'_> {
    /// Marks the node at `at` then `more` (an existing mark is kept).
    fn set(&mut self, at: &[At<'_>], more: &[Seg]) {
        let mut node = &mut *self.trie;
        for a in at {
            node = match a {
                At::Key(k) => node.key_entry(k),
                At::Index(i) => node.index_entry(*i),
            };
        }
        for seg in more {
            node = match seg {
                Seg::Key(k) => node.key_entry(k),
                Seg::Index(i) => node.index_entry(*i),
            };
        }
        if node.mark.is_none() {
            node.mark = Some(self.mark);
        }
    }
}

/// One step of the path walked so far, borrowed from the document.
enum At<'a> {
    Key(&'a str),
    Index(usize),
}

fn run<'a>(
    steps: &[Step],
    v: &'a Value,
    at: &mut Vec<At<'a>>,
    out: &mut Out<'_>) {
    let Some((step, rest)) = steps.split_first() else {
        match out.tail {
            None => out.set(at, &[]),
            Some(tail) => {
                for loc in tail.query_located(v).locations() {
                    out.set(at, &segs_of(loc));
                }
            }
        }
        return;
    };
    if step.descendant {
        descend(step, rest, v, at, out);
    } else {
        select(step, rest, v, at, out);
    }
}

/// A descendant segment: its selectors applied to `v` and to every node below it, i.e. every
/// child edge under `v` that a selector picks. Names are compared while the children are
/// walked anyway, rather than looked up (hashed) in every object below.
fn descend<'a>(step: &Step, rest: &[Step], v: &'a Value, at: &mut Vec<At<'a>>, out: &mut Out<'_>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                at.push(At::Key(k));
                let picked = step.sels.iter().any(|s| match s {
                    Pick::Name(n) => n == k,
                    Pick::Wildcard => true,
                    Pick::Index(_) => false,
                });
                if picked {
                    run(rest, c, at, out);
                }
                descend(step, rest, c, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                at.push(At::Index(i));
                let picked = step.sels.iter().any(|s| match s {
                    Pick::Index(x) => element(*x, a.len()) == Some(i),
                    Pick::Wildcard => true,
                    Pick::Name(_) => false,
                });
                if picked {
                    run(rest, c, at, out);
                }
                descend(step, rest, c, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Marks what several [`Plan::descendant_only`] plans select, each with its own mark, in one walk
/// of `doc` instead of one walk per rule (a role's deny list is mostly `$..name` rules, and each
/// walk visits every node). The trie is the one their walks in turn would leave: such a plan
/// marks a node only at its own edge, and at each edge the plans are tried in the given order,
/// so the first of them to pick a node names it, as it would have marked it first.
pub(crate) fn mark_descendants(group: &[(&[Pick], usize)], doc: &Value, trie: &mut PathTrie<usize>) {
    fn walk<'a>(group: &[(&[Pick], usize)], v: &'a Value, at: &mut Vec<At<'a>>, trie: &mut PathTrie<usize>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    at.push(At::Key(k));
                    mark_edge(group, at, trie, |s| match s {
                        Pick::Name(n) => n == k,
                        Pick::Wildcard => true,
                        Pick::Index(_) => false,
                    });
                    walk(group, c, at, trie);
                    at.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    at.push(At::Index(i));
                    mark_edge(group, at, trie, |s| match s {
                        Pick::Index(x) => element(*x, a.len()) == Some(i),
                        Pick::Wildcard => true,
                        Pick::Name(_) => false,
                    });
                    walk(group, c, at, trie);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    /// Marks the edge just pushed onto `at` for each plan of the group (in order) that picks it.
    fn mark_edge(group: &[(&[Pick], usize)], at: &[At<'_>], trie: &mut PathTrie<usize>, picks: impl Fn(&Pick) -> bool) {
        for (sels, mark) in group {
            if sels.iter().any(&picks) {
                Out { trie: &mut *trie, mark: *mark, tail: None }.set(at, &[]);
            }
        }
    }
    walk(group, doc, &mut Vec::new(), trie);
}

/// The element an index selector picks in an array of `len` (negative counts from the end).
fn element(x: i64, len: usize) -> Option<usize> {
    let i = if x < 0 { usize::try_from(x.unsigned_abs()).ok().and_then(|n| len.checked_sub(n)) } else { usize::try_from(x).ok() };
    i.filter(|&i| i < len)
}

/// A child segment's selectors applied to `v`, each selected child carried into `rest`.
fn select<'a>(
    step: &Step,
    rest: &[Step],
    v: &'a Value,
    at: &mut Vec<At<'a>>,
    out: &mut Out<'_>) {
    for sel in &step.sels {
        match (sel, v) {
            (Pick::Name(n), Value::Object(m)) => {
                if let Some((k, c)) = m.get_key_value(n.as_str()) {
                    at.push(At::Key(k));
                    run(rest, c, at, out);
                    at.pop();
                }
            }
            (Pick::Index(x), Value::Array(a)) => {
                if let Some((i, c)) = element(*x, a.len()).and_then(|i| a.get(i).map(|c| (i, c))) {
                    at.push(At::Index(i));
                    run(rest, c, at, out);
                    at.pop();
                }
            }
            (Pick::Wildcard, Value::Object(m)) => {
                for (k, c) in m {
                    at.push(At::Key(k));
                    run(rest, c, at, out);
                    at.pop();
                }
            }
            (Pick::Wildcard, Value::Array(a)) => {
                for (i, c) in a.iter().enumerate() {
                    at.push(At::Index(i));
                    run(rest, c, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
}
