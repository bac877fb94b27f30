//! The shape of a JSONPath query: its top-level segments as selector patterns, and the features
//! that drive its cost (descendant segments, filters and their nesting, regex calls, literals).
//!
//! `serde_json_path` parses and evaluates queries but keeps its syntax tree private, so this
//! scanner reads a query that has already been parsed by it (and so is valid RFC 9535). Nothing
//! here decides what a caller is shown — evaluation always runs over the caller's view — so a
//! scanner that misreads a query can only make a refusal wrong, never let content through; it
//! is still written to be exact for the grammar, and conservative where it cannot be.

/// One selector of a segment, as a pattern over object keys and array indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sel {
    /// `.name`, `['name']`.
    Name(String),
    /// `[3]`; negative indices count from the end.
    Index(i64),
    /// `[1:5]`, `[::2]`.
    Slice,
    /// `*`.
    Wildcard,
    /// `[?…]`: depends on the values it tests.
    Filter,
}

/// One segment: a child segment selects children, a descendant segment (`..`) selects
/// descendants at any depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegShape {
    pub descendant: bool,
    pub selectors: Vec<Sel>,
}

/// A scanned query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Top-level segments, in order.
    pub segments: Vec<SegShape>,
    /// Descendant segments at the top level.
    pub descendants: usize,
    /// Segments of queries inside filters, all levels.
    pub filter_segments: usize,
    /// Descendant segments inside filters, all levels.
    pub filter_descendants: usize,
    /// Filter selectors, all levels.
    pub filters: usize,
    /// Deepest nesting of filters (a filter inside a filter's query is 2).
    pub filter_depth: usize,
    /// Calls of `match` and `search`.
    pub regex_calls: usize,
    /// Longest string literal inside a filter, in bytes (regexes included).
    pub longest_literal: usize,
    /// A `match`/`search` whose pattern is not a string literal.
    pub computed_regex: bool,
}

/// The query could not be scanned (it was not valid RFC 9535 JSONPath after all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

/// Scans `query`, which `serde_json_path` has accepted.
pub fn scan(query: &str) -> Result<Shape, ShapeError> {
    let mut p = Scanner { s: query.as_bytes(), src: query, i: 0 };
    let mut shape = Shape::default();
    p.ws();
    if !p.eat(b'$') {
        return Err(ShapeError("a query starts with `$`".into()));
    }
    let segments = p.segments(&mut shape, 0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(ShapeError(format!("unexpected text at byte {}", p.i)));
    }
    shape.descendants = segments.iter().filter(|s| s.descendant).count();
    shape.segments = segments;
    Ok(shape)
}

struct Scanner<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, ShapeError> {
        Err(ShapeError(format!("{what} at byte {}", self.i)))
    }

    /// Segments after a root or current-node identifier. `filter_level` is 0 at the top.
    fn segments(&mut self, shape: &mut Shape, filter_level: usize) -> Result<Vec<SegShape>, ShapeError> {
        let mut out = Vec::new();
        loop {
            let save = self.i;
            self.ws();
            match (self.peek(), self.s.get(self.i + 1).copied()) {
                (Some(b'.'), Some(b'.')) => {
                    self.i += 2;
                    let selectors = match self.peek() {
                        Some(b'[') => self.bracketed(shape, filter_level)?,
                        Some(b'*') => {
                            self.i += 1;
                            vec![Sel::Wildcard]
                        }
                        _ => vec![Sel::Name(self.shorthand()?)],
                    };
                    out.push(SegShape { descendant: true, selectors });
                }
                (Some(b'.'), _) => {
                    self.i += 1;
                    let selectors = if self.eat(b'*') { vec![Sel::Wildcard] } else { vec![Sel::Name(self.shorthand()?)] };
                    out.push(SegShape { descendant: false, selectors });
                }
                (Some(b'['), _) => {
                    let selectors = self.bracketed(shape, filter_level)?;
                    out.push(SegShape { descendant: false, selectors });
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
            if filter_level > 0 {
                shape.filter_segments += 1;
                if out.last().is_some_and(|s| s.descendant) {
                    shape.filter_descendants += 1;
                }
            }
        }
        Ok(out)
    }

    fn shorthand(&mut self) -> Result<String, ShapeError> {
        let start = self.i;
        while let Some(b) = self.peek() {
            let ok = b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
            if !ok || (self.i == start && b.is_ascii_digit()) {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            return self.err("expected a member name");
        }
        Ok(self.src.get(start..self.i).unwrap_or_default().to_owned())
    }

    fn bracketed(&mut self, shape: &mut Shape, filter_level: usize) -> Result<Vec<Sel>, ShapeError> {
        if !self.eat(b'[') {
            return self.err("expected `[`");
        }
        let mut sels = Vec::new();
        loop {
            self.ws();
            let sel = match self.peek() {
                Some(q @ (b'\'' | b'"')) => Sel::Name(self.string(q)?),
                Some(b'*') => {
                    self.i += 1;
                    Sel::Wildcard
                }
                Some(b'?') => {
                    self.i += 1;
                    shape.filters += 1;
                    shape.filter_depth = shape.filter_depth.max(filter_level + 1);
                    self.filter(shape, filter_level + 1)?;
                    Sel::Filter
                }
                Some(_) => self.index_or_slice()?,
                None => return self.err("unterminated `[`"),
            };
            sels.push(sel);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(sels);
            }
            return self.err("expected `,` or `]`");
        }
    }

    fn index_or_slice(&mut self) -> Result<Sel, ShapeError> {
        let start = self.i;
        while matches!(self.peek(), Some(b'-' | b'0'..=b'9' | b':' | b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
        let text = self.src.get(start..self.i).unwrap_or_default().trim();
        if text.contains(':') {
            return Ok(Sel::Slice);
        }
        match text.parse::<i64>() {
            Ok(i) => Ok(Sel::Index(i)),
            Err(_) => self.err("expected an index, slice, name, `*` or filter"),
        }
    }

    /// A string literal starting at the quote `q`; returns its unescaped text.
    fn string(&mut self, q: u8) -> Result<String, ShapeError> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        while let Some(b) = self.peek() {
            self.i += 1;
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                let raw = self.src.get(start..self.i - 1).unwrap_or_default();
                return Ok(unescape(raw, q));
            }
        }
        self.err("unterminated string")
    }

    /// A filter's logical expression, up to the `,` or `]` that ends its selector.
    fn filter(&mut self, shape: &mut Shape, level: usize) -> Result<(), ShapeError> {
        // Open calls: (is a regex function, paren depth inside its parentheses, argument index).
        let mut calls: Vec<(bool, usize, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut expect_literal = false;
        loop {
            self.ws();
            let Some(b) = self.peek() else { return self.err("unterminated filter") };
            if expect_literal && !matches!(b, b'\'' | b'"') {
                shape.computed_regex = true;
            }
            expect_literal = false;
            match b {
                b',' | b']' if depth == 0 => return Ok(()),
                b'(' => {
                    depth += 1;
                    self.i += 1;
                }
                b')' => {
                    if calls.last().is_some_and(|c| c.1 == depth) {
                        calls.pop();
                    }
                    depth = depth.saturating_sub(1);
                    self.i += 1;
                }
                b',' => {
                    self.i += 1;
                    if let Some(c) = calls.last_mut().filter(|c| c.1 == depth) {
                        c.2 += 1;
                        expect_literal = c.0 && c.2 == 1;
                    }
                }
                b'\'' | b'"' => {
                    let s = self.string(b)?;
                    shape.longest_literal = shape.longest_literal.max(s.len());
                }
                b'@' | b'$' => {
                    self.i += 1;
                    self.segments(shape, level)?;
                }
                b'a'..=b'z' => {
                    let start = self.i;
                    while matches!(self.peek(), Some(b'a'..=b'z' | b'0'..=b'9' | b'_')) {
                        self.i += 1;
                    }
                    let name = self.src.get(start..self.i).unwrap_or_default();
                    if self.peek() == Some(b'(') {
                        let regex = matches!(name, "match" | "search");
                        shape.regex_calls += usize::from(regex);
                        self.i += 1;
                        depth += 1;
                        calls.push((regex, depth, 0));
                    }
                }
                _ => self.i += 1,
            }
        }
    }
}

/// Unescapes a JSONPath string literal's body (RFC 9535 §2.3.1.1); unknown escapes are kept.
fn unescape(raw: &str, _quote: u8) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let Ok(hi) = u32::from_str_radix(&hex, 16) else { continue };
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    let rest: String = chars.by_ref().take(6).collect();
                    let lo = rest.strip_prefix("\\u").and_then(|h| u32::from_str_radix(h, 16).ok()).unwrap_or(0);
                    0x10000 + ((hi - 0xD800) << 10) + lo.saturating_sub(0xDC00)
                } else {
                    hi
                };
                if let Some(ch) = char::from_u32(cp) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &Shape) -> Vec<(bool, Vec<Sel>)> {
        s.segments.iter().map(|g| (g.descendant, g.selectors.clone())).collect()
    }

    #[test]
    fn segments_and_selectors() {
        let s = scan("$.steps[*]['out put', 2]..reasoning[-1][1:3]").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(
            names(&s),
            vec![
                (false, vec![Sel::Name("steps".into())]),
                (false, vec![Sel::Wildcard]),
                (false, vec![Sel::Name("out put".into()), Sel::Index(2)]),
                (true, vec![Sel::Name("reasoning".into())]),
                (false, vec![Sel::Index(-1)]),
                (false, vec![Sel::Slice]),
            ]
        );
        assert_eq!(s.descendants, 1);
        assert_eq!(s.filters, 0);
    }

    #[test]
    fn filters_are_measured() {
        let s = scan("$.steps[?search(@.reasoning, 'dup[a-z]+') && @..x == 'y'].output").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(s.segments.len(), 3);
        assert_eq!(s.segments[1].selectors, vec![Sel::Filter]);
        assert_eq!((s.filters, s.filter_depth, s.regex_calls, s.filter_descendants), (1, 1, 1, 1));
        assert_eq!(s.longest_literal, 9);
        assert!(!s.computed_regex);
        let s = scan("$[?match(@.a, @.b)]").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert!(s.computed_regex);
        let s = scan("$..a[?@[?@.b]]").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(s.filter_depth, 2);
        let s = scan("$[?count(@.*) > 1, 'a']").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(s.segments[0].selectors, vec![Sel::Filter, Sel::Name("a".into())]);
        assert_eq!(s.regex_calls, 0);
    }

    #[test]
    fn quoted_names_unescape() {
        let s = scan(r#"$['a\'b']["c\"d"]['\u00e9']"#).unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(
            s.segments.iter().map(|g| g.selectors[0].clone()).collect::<Vec<_>>(),
            vec![Sel::Name("a'b".into()), Sel::Name("c\"d".into()), Sel::Name("é".into())]
        );
    }
}
