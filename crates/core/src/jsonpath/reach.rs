//! Can a requested query reach inside a view at all? Decided from the query and the policy
//! alone — never from a document — so a refusal tells the caller nothing about content.
//!
//! Each query is read as a pattern over paths (keys and indices): a child segment is one step
//! matching its selectors, a descendant segment is any number of steps and then one. A node the
//! request selects is *inside* the view when no deny pattern matches it or an ancestor, and
//! some allow pattern matches it, an ancestor or a descendant (an ancestor of an allowed node is
//! served with only its allowed parts). The product of the three automata is explored over a
//! finite alphabet: every name and index the patterns mention, plus "any other key" and "any
//! other index".
//!
//! Filters depend on values, so they are approximated on the safe side for refusals: in the
//! request and in allow rules a filter may match anything; in deny rules it matches nothing (a
//! deny rule with a filter never makes a request refusable by itself). Whatever this decides,
//! the request is then evaluated over the caller's view, so an approximation can only make a
//! refusal too lenient, never let hidden content through.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::shape::{SegShape, Sel, Shape};

/// Why a request cannot reach inside the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// Every node it can select is at or below a node this deny rule (index) selects.
    Denied(usize),
    /// No node it can select is related to any allowed node.
    Outside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sym {
    Key(usize),
    OtherKey,
    Index(u64),
    OtherIndex,
}

/// Exploration stops here and the request is let through to evaluation over the view.
const MAX_STATES: usize = 20_000;

/// Checks `request` against a view of `allow` minus `deny` patterns.
pub fn check(request: &Shape, allow: &[&Shape], deny: &[&Shape]) -> Result<(), Unreachable> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut indices: BTreeSet<u64> = BTreeSet::new();
    for s in std::iter::once(request).chain(allow.iter().copied()).chain(deny.iter().copied()) {
        for seg in &s.segments {
            for sel in &seg.selectors {
                match sel {
                    Sel::Name(n) => {
                        let next = names.len();
                        names.entry(n.as_str()).or_insert(next);
                    }
                    Sel::Index(i) if *i >= 0 => {
                        indices.insert(*i as u64);
                    }
                    _ => {}
                }
            }
        }
    }
    let mut alphabet: Vec<Sym> = (0..names.len()).map(Sym::Key).collect();
    alphabet.push(Sym::OtherKey);
    alphabet.extend(indices.iter().map(|i| Sym::Index(*i)));
    alphabet.push(Sym::OtherIndex);
    let key_of = |n: &str| names.get(n).copied();

    let p = &request.segments;
    let start = State {
        p: BTreeSet::from([0]),
        a: allow.iter().enumerate().map(|(r, _)| (r, 0)).collect(),
        a_acc: allow.iter().any(|s| s.segments.is_empty()),
        d: deny.iter().enumerate().map(|(r, _)| (r, 0)).collect(),
        d_acc: deny.iter().position(|s| s.segments.is_empty()),
    };
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([start]);
    let mut denied_by: Option<usize> = None;
    let mut outside = false;
    while let Some(st) = queue.pop_front() {
        if !seen.insert(st.clone()) {
            continue;
        }
        if seen.len() > MAX_STATES {
            return Ok(());
        }
        let matched = st.p.contains(&p.len());
        let no_allow_left = !st.a_acc && st.a.is_empty();
        if let Some(r) = st.d_acc {
            // Everything at or below is denied.
            denied_by = Some(denied_by.map_or(r, |d| d.min(r)));
            continue;
        }
        if matched {
            if !no_allow_left {
                return Ok(());
            }
            // Selectable, not denied, and outside every allow rule.
            outside = true;
        }
        for sym in &alphabet {
            let np: BTreeSet<usize> = step(p, &st.p, *sym, Approx::Over, &key_of);
            if np.is_empty() {
                continue;
            }
            let mut na = BTreeSet::new();
            let mut a_acc = st.a_acc;
            if !a_acc {
                for (r, s) in &st.a {
                    for t in step(&allow[*r].segments, &BTreeSet::from([*s]), *sym, Approx::Over, &key_of) {
                        if t == allow[*r].segments.len() {
                            a_acc = true;
                        } else {
                            na.insert((*r, t));
                        }
                    }
                }
            }
            if a_acc {
                na.clear();
            }
            let mut nd = BTreeSet::new();
            let mut d_acc = None;
            for (r, s) in &st.d {
                for t in step(&deny[*r].segments, &BTreeSet::from([*s]), *sym, Approx::Under, &key_of) {
                    if t == deny[*r].segments.len() {
                        d_acc = Some(d_acc.map_or(*r, |d: usize| d.min(*r)));
                    } else {
                        nd.insert((*r, t));
                    }
                }
            }
            queue.push_back(State { p: np, a: na, a_acc, d: nd, d_acc });
        }
    }
    // Where some selectable node is simply outside the allow rules, say so; otherwise name the
    // first deny rule that covers what it can select.
    Err(match denied_by {
        Some(r) if !outside => Unreachable::Denied(r),
        _ => Unreachable::Outside,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    p: BTreeSet<usize>,
    a: BTreeSet<(usize, usize)>,
    a_acc: bool,
    d: BTreeSet<(usize, usize)>,
    d_acc: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Approx {
    /// May match more than the selector does (requests, allow rules).
    Over,
    /// May match less (deny rules).
    Under,
}

fn step(segs: &[SegShape], from: &BTreeSet<usize>, sym: Sym, approx: Approx, key_of: &impl Fn(&str) -> Option<usize>) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for &s in from {
        let Some(seg) = segs.get(s) else { continue };
        if seg.descendant {
            out.insert(s);
        }
        if seg.selectors.iter().any(|sel| matches(sel, sym, approx, key_of)) {
            out.insert(s + 1);
        }
    }
    out
}

fn matches(sel: &Sel, sym: Sym, approx: Approx, key_of: &impl Fn(&str) -> Option<usize>) -> bool {
    let index = matches!(sym, Sym::Index(_) | Sym::OtherIndex);
    match sel {
        Sel::Wildcard => true,
        Sel::Name(n) => matches!(sym, Sym::Key(k) if key_of(n) == Some(k)),
        Sel::Index(i) if *i >= 0 => matches!(sym, Sym::Index(j) if j == *i as u64),
        Sel::Index(_) | Sel::Slice => approx == Approx::Over && index,
        Sel::Filter => approx == Approx::Over,
    }
}

#[cfg(test)]
mod tests {
    use super::super::shape::scan;
    use super::*;

    fn sh(q: &str) -> Shape {
        scan(q).unwrap_or_else(|e| unreachable!("{q}: {e:?}"))
    }

    fn run(req: &str, allow: &[&str], deny: &[&str]) -> Result<(), Unreachable> {
        let a: Vec<Shape> = allow.iter().map(|q| sh(q)).collect();
        let d: Vec<Shape> = deny.iter().map(|q| sh(q)).collect();
        check(&sh(req), &a.iter().collect::<Vec<_>>(), &d.iter().collect::<Vec<_>>())
    }

    const ALLOW: &[&str] = &["$.trace_id", "$.metadata", "$.steps[*].index", "$.steps[*].output", "$.final_output"];
    const DENY: &[&str] = &["$..reasoning", "$..tool_calls", "$..parts[?@.type == 'reasoning']"];

    #[test]
    fn denied_paths_are_refused_whatever_the_document() {
        assert_eq!(run("$..reasoning", ALLOW, DENY), Err(Unreachable::Denied(0)));
        assert_eq!(run("$.steps[0].reasoning", ALLOW, DENY), Err(Unreachable::Denied(0)));
        assert_eq!(run("$.steps[*].reasoning.text", ALLOW, DENY), Err(Unreachable::Denied(0)));
        assert!(matches!(run("$['steps'][?@.x]['tool_calls']", ALLOW, DENY), Err(Unreachable::Denied(_))));
    }

    #[test]
    fn outside_the_allow_list_is_refused() {
        assert_eq!(run("$.secret_stuff", ALLOW, DENY), Err(Unreachable::Outside));
        assert_eq!(run("$.steps[*].messages", ALLOW, DENY), Err(Unreachable::Outside));
    }

    #[test]
    fn requests_that_can_reach_inside_are_served_over_the_view() {
        for ok in [
            "$",
            "$.steps",
            "$.steps[*]",
            "$.steps[?search(@.reasoning, 'dup')].output",
            "$..output",
            "$.metadata.tenant",
            "$.steps[2:5].index",
            "$..*",
            "$..parts",
        ] {
            assert_eq!(run(ok, ALLOW, DENY), Ok(()), "{ok}");
        }
        assert_eq!(run("$.anything[0]", &["$"], &[]), Ok(()));
    }
}
