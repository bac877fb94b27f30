//! RFC 9535 JSONPath as tracegate uses it: queries a caller sends are compiled once, measured
//! against cost limits, and checked against the policy before any document is opened.
//!
//! Parsing and evaluation are `serde_json_path`'s. This module adds what a gateway needs around
//! them: [`shape`] (the segments and cost features of a query), [`reach`] (whether a query can
//! select anything inside a view, from the policy alone), [`functions`] (the `match` and
//! `search` functions, with regexes size-limited and compiled once), and the [`Limits`].

pub mod functions;
pub mod reach;
pub mod shape;

use serde_json::Value;

pub use shape::{scan, Sel, SegShape, Shape, ShapeError};

/// What one requested query may cost. Over any limit, the request is refused with 400 naming
/// the limit; nothing is evaluated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Top-level segments.
    pub max_segments: usize,
    /// Top-level descendant (`..`) segments.
    pub max_descendants: usize,
    /// Descendant segments inside filters (each multiplies the cost by a subtree walk).
    pub max_filter_descendants: usize,
    /// Filters nested inside filters' queries.
    pub max_filter_depth: usize,
    /// `match` / `search` calls.
    pub max_regex_calls: usize,
    /// Longest string literal (and so regex) inside a filter, in bytes.
    pub max_literal_bytes: usize,
    /// Estimated nodes visited evaluating the query over the view (see [`Limits::estimate`]).
    pub max_evaluated_nodes: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_segments: 16,
        max_descendants: 2,
        max_filter_descendants: 1,
        max_filter_depth: 2,
        max_regex_calls: 4,
        max_literal_bytes: 128,
        max_evaluated_nodes: 20_000_000,
    };

    /// The first static limit `shape` exceeds: `(name, maximum)`.
    pub fn exceeded(&self, shape: &Shape) -> Option<(&'static str, String)> {
        let checks: [(&'static str, usize, usize); 6] = [
            ("max_segments", shape.segments.len(), self.max_segments),
            ("max_descendants", shape.descendants, self.max_descendants),
            ("max_filter_descendants", shape.filter_descendants, self.max_filter_descendants),
            ("max_filter_depth", shape.filter_depth, self.max_filter_depth),
            ("max_regex_calls", shape.regex_calls, self.max_regex_calls),
            ("max_literal_bytes", shape.longest_literal, self.max_literal_bytes),
        ];
        if shape.computed_regex {
            return Some(("regex_literal", "a `match`/`search` pattern must be a string literal".into()));
        }
        checks.iter().find(|(_, have, max)| have > max).map(|(n, _, max)| (*n, max.to_string()))
    }

    /// Nodes evaluation may visit over a document of `nodes` nodes nested `depth` deep: every
    /// segment (top level and in filters) may visit every node; each descendant segment after
    /// the first, and each inside a filter, multiplies by a walk down to `depth`.
    pub fn estimate(shape: &Shape, nodes: u64, depth: u64) -> u64 {
        let segs = (shape.segments.len() + shape.filter_segments).max(1) as u64;
        let extra = shape.descendants.saturating_sub(1) + shape.filter_descendants;
        let mut e = segs.saturating_mul(nodes.max(1));
        for _ in 0..extra {
            e = e.saturating_mul(depth.max(1));
        }
        e
    }
}

/// Nodes in `v` and its depth (a scalar root is one node at depth 1).
pub fn size_of(v: &Value) -> (u64, u64) {
    fn go(v: &Value, d: u64, n: &mut u64, max: &mut u64) {
        *n += 1;
        *max = (*max).max(d);
        match v {
            Value::Array(a) => a.iter().for_each(|c| go(c, d + 1, n, max)),
            Value::Object(m) => m.values().for_each(|c| go(c, d + 1, n, max)),
            _ => {}
        }
    }
    let (mut n, mut max) = (0, 0);
    go(v, 1, &mut n, &mut max);
    (n, max)
}
