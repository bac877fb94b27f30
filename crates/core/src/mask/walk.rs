//! The JSON walk: masks string values, numbers and object keys in place, sees `\uXXXX` / `%40`
//! escapes in text, and records what it did.
//!
//! JSON documents encoded in strings are decoded before the walk, by the one decoder
//! ([`crate::embedded`]) that projection uses too, so the walk sees exactly the strings deny
//! rules can address. When a masked key renames a member, the decoded-position marks move with
//! it, so the document is encoded back in its input's shape.
//!
//! Strings that need no change are never copied: a string is rewritten only when a detector
//! fired in it, and an object is rebuilt only when one of its keys was masked or a member dropped.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::detectors::{gate, merge, too_plain, Detector, Engine, Span, MIN_SCAN_LEN};
use crate::embedded::Embedded;
use super::memo::{Answer, Memo};
use super::operators::{Op, Operators};
use super::{MaskHit, MaskReport, Masker};

/// Containers nested deeper than this (counting JSON-in-strings) are replaced by `null`: the
/// walk recurses, and a document built in memory (not parsed, which caps depth at 128) could
/// otherwise exhaust the stack. Fail closed: what cannot be inspected is not served.
const MAX_LEVEL: u32 = 256;
/// Paths kept per (detector, operator) in the report; `count` keeps counting past it.
pub const MAX_REPORT_PATHS: usize = 64;

/// A JSON path as a linked list on the stack, so descending allocates nothing; it is only
/// rendered when something is masked.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    seg: Seg<'a>,
    parent: Option<&'a Path<'a>>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub fn root() -> Path<'static> {
        Path { seg: Seg::Root, parent: None }
    }

    pub(super) fn key<'b>(&'b self, k: &'b str) -> Path<'b> {
        Path { seg: Seg::Key(k), parent: Some(self) }
    }

    pub(super) fn index(&self, i: usize) -> Path<'_> {
        Path { seg: Seg::Index(i), parent: Some(self) }
    }

    /// `$.messages[0].content`, `$['gen_ai.input.messages']` (normalized-path style), appended
    /// to `out`: root first, by recursion up the parent links, so rendering allocates nothing
    /// beyond `out`'s growth. The reference [`Rendered`] must equal.
    #[cfg(test)]
    fn render_onto(&self, out: &mut String) {
        out.push('$');
        self.write(out);
    }

    #[cfg(test)]
    fn write(&self, out: &mut String) {
        if let Some(p) = self.parent {
            p.write(out);
        }
        self.seg.write(out);
    }
}

impl Seg<'_> {
    /// This segment's part of a rendered path.
    fn write(&self, out: &mut String) {
        match *self {
            Seg::Root => {}
            Seg::Index(i) => {
                // Digits by hand: `write!` goes through `core::fmt`, a tenth of the cost of
                // logging a masked value.
                let mut digits = [0u8; 20];
                let mut n = i;
                let mut k = digits.len();
                loop {
                    k -= 1;
                    digits[k] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                out.push('[');
                out.extend(digits.get(k..).unwrap_or_default().iter().map(|&d| char::from(d)));
                out.push(']');
            }
            Seg::Key(k) => {
                let plain = !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !k.as_bytes()[0].is_ascii_digit();
                if plain {
                    out.push('.');
                    out.push_str(k);
                } else {
                    out.push_str("['");
                    for c in k.chars() {
                        if c == '\'' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push_str("']");
                }
            }
        }
    }
}

/// The last path rendered, segment by segment, so the next one renders only from where the two
/// differ: masked values sit in a few deep subtrees (`$.resourceSpans[0].scopeSpans[0].spans[3]
/// .attributes[2].value.stringValue[1].parts[0].content`), and rendering every path from the
/// root cost 4% of a realistic trace.
#[derive(Default)]
struct Rendered {
    /// The path, `$` first.
    text: String,
    /// Below the root, each segment: what it is, and where it ends in `text` and in `keys`.
    segs: Vec<(SegKey, usize, usize)>,
    /// The keys of the `SegKey::Key` segments, one after another.
    keys: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SegKey {
    Key,
    Index(usize),
}

/// Paths deeper than this are rendered whole (the byte engine nests at most 128 containers per
/// layer; real traces stay far below this).
const CACHED_DEPTH: usize = 48;

impl Rendered {
    /// Renders `path`, reusing the longest prefix it shares with the last one, and returns it.
    fn render(&mut self, path: &Path<'_>) -> &str {
        let mut chain: [Option<&Seg<'_>>; CACHED_DEPTH] = [None; CACHED_DEPTH];
        let mut n = 0usize;
        let mut node = Some(path);
        while let Some(p) = node {
            if !matches!(p.seg, Seg::Root) {
                if n == CACHED_DEPTH {
                    return self.whole(path);
                }
                chain[n] = Some(&p.seg);
                n += 1;
            }
            node = p.parent;
        }
        chain[..n].reverse();
        let segs = chain.get(..n).unwrap_or_default();
        // The longest common prefix, segment by segment.
        let mut same = 0usize;
        let mut key_at = 0;
        for (seg, &(kind, _, keys_end)) in segs.iter().zip(&self.segs) {
            let equal = match (seg, kind) {
                (Some(Seg::Index(i)), SegKey::Index(j)) => *i == j,
                (Some(Seg::Key(k)), SegKey::Key) => self.keys.get(key_at..keys_end) == Some(*k),
                _ => false,
            };
            if !equal {
                break;
            }
            key_at = keys_end;
            same += 1;
        }
        let (text_end, keys_end) = same.checked_sub(1).and_then(|i| self.segs.get(i)).map_or((1, 0), |&(_, t, k)| (t, k));
        self.segs.truncate(same);
        self.keys.truncate(keys_end);
        if self.text.is_empty() {
            self.text.push('$');
        }
        self.text.truncate(text_end);
        for seg in segs.iter().skip(same).flatten() {
            seg.write(&mut self.text);
            let kind = match seg {
                Seg::Index(i) => SegKey::Index(*i),
                Seg::Key(k) => {
                    self.keys.push_str(k);
                    SegKey::Key
                }
                Seg::Root => continue,
            };
            self.segs.push((kind, self.text.len(), self.keys.len()));
        }
        &self.text
    }

    /// Renders a path too deep to cache, and forgets the last one.
    fn whole(&mut self, path: &Path<'_>) -> &str {
        fn write(p: &Path<'_>, out: &mut String) {
            if let Some(parent) = p.parent {
                write(parent, out);
            }
            p.seg.write(out);
        }
        self.segs.clear();
        self.keys.clear();
        self.text.clear();
        self.text.push('$');
        write(path, &mut self.text);
        // The next path starts over: `segs` is empty, so nothing is reused.
        &self.text
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
}

pub(super) enum TextFate {
    Keep,
    Replace(String),
    Drop,
}

/// How many times [`Cx::text`] rescans a text it masked; each rescan that finds something
/// shortens what is left to find. Ordinary text needs at most one; a text built to need more
/// (unterminated private keys, each cut short at a label and hiding the next: found by the
/// fuzzer) is masked whole once this many rescans still find something.
const MAX_RESCANS: usize = 8;

pub struct Cx<'m> {
    m: &'m Masker,
    engine: &'m Engine,
    ops: Operators,
    spans: Vec<Span>,
    pending: Vec<(Detector, Op)>,
    /// Every masked value in document order, with its rendered path (a range of `paths`).
    /// Aggregated only by [`Cx::report`], so the byte engine can take back what it logged for
    /// a string that turned out not to hold valid JSON ([`Cx::mark`], [`Cx::rewind`]).
    log: Vec<(Detector, Op, u32, u32)>,
    /// The rendered paths of `log`, one after another: one buffer rather than an allocation
    /// per masked value (a 10 MB trace logs tens of thousands).
    paths: String,
    /// The last path rendered, to render the next from where they differ.
    rendered: Rendered,
    changed: u64,
    level: u32,
    too_deep: u64,
    /// [`Cx::text`]'s answers for texts seen earlier in this document.
    memo: Memo,
}

/// A point in a [`Cx`]'s log to rewind to.
#[derive(Clone, Copy)]
pub(super) struct Mark {
    log: usize,
    paths: usize,
    too_deep: u64,
    changed: u64,
}

impl<'m> Cx<'m> {
    pub fn new(m: &'m Masker, engine: &'m Engine, ops: Operators) -> Cx<'m> {
        // Sized for a realistic 2 KB trace's log (a dozen masked values, paths ~100 bytes
        // each), so a document's first detections do not grow every buffer from empty (45
        // reallocations per document; ~1.5% of masking).
        let rendered = Rendered { text: String::with_capacity(256), segs: Vec::with_capacity(16), keys: String::with_capacity(128) };
        Cx {
            m,
            engine,
            ops,
            spans: Vec::with_capacity(16),
            pending: Vec::with_capacity(16),
            log: Vec::with_capacity(32),
            paths: String::with_capacity(2048),
            rendered,
            changed: 0,
            level: 0,
            too_deep: 0,
            memo: Memo::default(),
        }
    }

    pub(super) fn masker(&self) -> &'m Masker {
        self.m
    }

    pub(super) fn ops(&self) -> &Operators {
        &self.ops
    }

    /// How many changes were made so far (masked values, dropped members, withheld values):
    /// the byte engine copies a JSON text in a string verbatim when this did not move.
    pub(super) fn changes(&self) -> u64 {
        self.changed + self.too_deep
    }

    pub(super) fn bump(&mut self) {
        self.changed += 1;
    }

    pub(super) fn mark(&self) -> Mark {
        Mark { log: self.log.len(), paths: self.paths.len(), too_deep: self.too_deep, changed: self.changed }
    }

    pub(super) fn rewind(&mut self, m: Mark) {
        self.log.truncate(m.log);
        self.paths.truncate(m.paths);
        self.too_deep = m.too_deep;
        self.changed = m.changed;
        self.pending.clear();
    }

    /// Logs one change the byte engine made itself (a masked key's value, a dropped member).
    pub(super) fn hit(&mut self, d: Detector, op: Op, path: &Path<'_>) {
        self.pending.push((d, op));
        self.changed += 1;
        self.flush(path);
    }

    pub(super) fn flush(&mut self, path: &Path<'_>) {
        if self.pending.is_empty() {
            return;
        }
        let at = self.paths.len();
        self.paths.push_str(self.rendered.render(path));
        // Offsets are 32 bits, so a log entry is 12 bytes. Past 4 GiB of paths (no document
        // the gateway accepts comes near) the values are still counted, under an empty path.
        let (mut start, mut end) = match (u32::try_from(at), u32::try_from(self.paths.len())) {
            (Ok(s), Ok(e)) => (s, e),
            _ => {
                self.paths.truncate(at);
                (0, 0)
            }
        };
        // A path logged just before (several texts of one value, a key and its value's
        // detections) is not written twice.
        if let Some(&(_, _, s, e)) = self.log.last() {
            if e <= start && self.path_at(s, e) == self.path_at(start, end) {
                self.paths.truncate(at);
                (start, end) = (s, e);
            }
        }
        for (d, op) in self.pending.drain(..) {
            self.log.push((d, op, start, end));
        }
    }

    fn path_at(&self, start: u32, end: u32) -> &str {
        let (s, e) = (start as usize, end as usize);
        self.paths.get(s..e).unwrap_or_default()
    }

    pub fn report(self) -> MaskReport {
        // Paths are kept distinct, not only unlike their predecessor: the two engines log a
        // masked key and its members in different orders, and the report must not depend on it.
        let mut acc: BTreeMap<(Detector, Op), (u64, Vec<String>)> = BTreeMap::new();
        for &(d, op, s, e) in &self.log {
            let rendered = self.path_at(s, e);
            let e = acc.entry((d, op)).or_insert((0, Vec::new()));
            e.0 += 1;
            if e.1.len() < MAX_REPORT_PATHS && !e.1.iter().any(|p| p == rendered) {
                e.1.push(rendered.to_owned());
            }
        }
        let mut hits: Vec<MaskHit> = acc
            .into_iter()
            .map(|((d, op), (count, paths))| MaskHit {
                detector: d.name().to_owned(),
                operator: op.name().to_owned(),
                count,
                paths,
            })
            .collect();
        if self.too_deep > 0 {
            hits.push(MaskHit { detector: "depth_limit".into(), operator: "drop".into(), count: self.too_deep, paths: vec![] });
        }
        MaskReport { hits }
    }

    /// Masks a decoded `doc` in place; a root that must be dropped becomes `null`. `exp` marks
    /// where strings were decoded; masked keys move their marks.
    pub fn document(&mut self, doc: &mut Value, exp: &mut Embedded) {
        if self.value(doc, &Path::root(), Some(exp)) == Fate::Drop {
            *doc = Value::Null;
        }
    }

    /// Values withheld before the walk (too deep to decode) are reported with its own.
    pub fn withheld(&mut self, n: u64) {
        self.too_deep += n;
    }

    fn value(&mut self, v: &mut Value, path: &Path<'_>, exp: Option<&mut Embedded>) -> Fate {
        if matches!(v, Value::Array(_) | Value::Object(_)) {
            if self.level >= MAX_LEVEL {
                *v = Value::Null;
                self.changed += 1;
                self.too_deep += 1;
                return Fate::Keep;
            }
            self.level += 1;
            self.container(v, path, exp);
            self.level -= 1;
            return Fate::Keep;
        }
        match v {
            Value::Number(n) => {
                // A number a detector flags (a card number, an account id) becomes a masked string.
                let text = n.to_string();
                match self.string(&text, path) {
                    TextFate::Keep => Fate::Keep,
                    TextFate::Replace(masked) => {
                        *v = Value::String(masked);
                        self.changed += 1;
                        Fate::Keep
                    }
                    TextFate::Drop => Fate::Drop,
                }
            }
            Value::String(s) => match self.string(s, path) {
                TextFate::Keep => Fate::Keep,
                TextFate::Replace(n) => {
                    *s = n;
                    self.changed += 1;
                    Fate::Keep
                }
                TextFate::Drop => Fate::Drop,
            },
            Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => Fate::Keep,
        }
    }

    fn container(&mut self, v: &mut Value, path: &Path<'_>, mut exp: Option<&mut Embedded>) {
        let exp_kids = exp.as_ref().is_some_and(|e| e.has_children());
        match v {
            Value::Array(a) => {
                for (i, e) in a.iter_mut().enumerate() {
                    let kid = if exp_kids { exp.as_deref_mut().and_then(|x| x.index_mut(i)) } else { None };
                    if self.value(e, &path.index(i), kid) == Fate::Drop {
                        *e = Value::Null;
                        self.changed += 1;
                    }
                }
            }
            Value::Object(m) => self.object(m, path, if exp_kids { exp } else { None }),
            _ => {}
        }
    }

    fn object(&mut self, m: &mut Map<String, Value>, path: &Path<'_>, mut exp: Option<&mut Embedded>) {
        let masker = self.m;
        let n = m.len();
        let mut new_keys: Vec<Option<String>> = Vec::new();
        let mut drops: Vec<bool> = Vec::new();
        for (i, k) in m.keys().enumerate() {
            match self.text(k) {
                TextFate::Keep => {}
                TextFate::Replace(nk) => {
                    self.flush(&path.key(&nk));
                    new_keys.resize(n, None);
                    new_keys[i] = Some(nk);
                }
                TextFate::Drop => {
                    self.flush(path);
                    drops.resize(n, false);
                    drops[i] = true;
                }
            }
        }
        let key_op = masker.key_op;
        // OpenTelemetry attributes name their key in a sibling: {"key": "...authorization", "value": {...}}.
        // Checked by position, not by lookup: hashing every object's keys would cost more.
        let attr_secret = key_op != Op::Off
            && m.len() <= 4
            && m.iter().any(|(k, v)| k == "key" && v.as_str().is_some_and(|s| masker.key_names.matches(s)))
            && m.keys().any(|k| k == "value");
        for (i, (k, v)) in m.iter_mut().enumerate() {
            if drops.get(i) == Some(&true) {
                continue;
            }
            let shown = new_keys.get(i).and_then(|o| o.as_deref()).unwrap_or(k);
            let p = path.key(shown);
            let secret = key_op != Op::Off && (masker.key_names.matches(k) || (attr_secret && k == "value"));
            let kid = exp.as_deref_mut().and_then(|x| x.key_mut(k));
            let fate = if secret { self.whole(v, &p, key_op) } else { self.value(v, &p, kid) };
            if fate == Fate::Drop {
                drops.resize(n, false);
                drops[i] = true;
            }
        }
        if new_keys.is_empty() && !drops.contains(&true) {
            return;
        }
        self.changed += 1;
        let old = std::mem::take(m);
        for (i, (k, v)) in old.into_iter().enumerate() {
            if drops.get(i) == Some(&true) {
                if let Some(x) = exp.as_deref_mut() {
                    x.remove_key(&k);
                }
                continue;
            }
            let renamed = new_keys.get_mut(i).and_then(Option::take);
            let old_key = renamed.as_ref().map(|_| k.clone());
            let mut key = renamed.unwrap_or(k);
            if m.contains_key(&key) {
                // Two keys masked to the same text: keep both members.
                let base = key.clone();
                let mut n = 2;
                while m.contains_key(&key) {
                    key = format!("{base}#{n}");
                    n += 1;
                }
            }
            if let (Some(x), Some(old_key)) = (exp.as_deref_mut(), old_key) {
                x.rename_key(&old_key, &key);
            }
            m.insert(key, v);
        }
    }

    /// Masks every scalar under a credential-like key, whatever it looks like.
    fn whole(&mut self, v: &mut Value, path: &Path<'_>, op: Op) -> Fate {
        let op = self.ops.effective(op);
        if op == Op::Drop {
            self.pending.push((Detector::KeyName, op));
            self.flush(path);
            return Fate::Drop;
        }
        let label = Detector::KeyName.label();
        let text = match v {
            Value::String(s) if is_masked(s) => return Fate::Keep,
            Value::String(s) => std::mem::take(s),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) if self.level >= MAX_LEVEL => {
                *v = Value::Null;
                self.too_deep += 1;
                return Fate::Keep;
            }
            Value::Array(a) => {
                self.level += 1;
                for (i, e) in a.iter_mut().enumerate() {
                    self.whole(e, &path.index(i), op);
                }
                self.level -= 1;
                return Fate::Keep;
            }
            Value::Object(m) => {
                self.level += 1;
                for (k, e) in m.iter_mut() {
                    self.whole(e, &path.key(k), op);
                }
                self.level -= 1;
                return Fate::Keep;
            }
            Value::Null | Value::Bool(_) => return Fate::Keep,
        };
        let mut out = String::new();
        self.ops.apply(op, label, &text, &mut out);
        *v = Value::String(out);
        self.changed += 1;
        self.pending.push((Detector::KeyName, op));
        self.flush(path);
        Fate::Keep
    }

    pub(super) fn string(&mut self, s: &str, path: &Path<'_>) -> TextFate {
        if s.len() < MIN_SCAN_LEN {
            return TextFate::Keep;
        }
        let fate = self.text(s);
        self.flush(path);
        fate
    }

    /// Detects and masks inside one piece of text, queueing its hits in `pending`.
    ///
    /// Masking changes what surrounds the values a scan rejected: a card number glued to the
    /// password in front of it, an address glued to a token, stand alone once the password or
    /// token is a label. So the masked text is scanned again until a scan finds nothing new
    /// (at most [`MAX_RESCANS`] more times): what a second masking pass would find is masked by
    /// the first, and masking masked text changes nothing.
    ///
    /// A text seen before in this document gets the answer it got then, from the memo
    /// ([`super::memo`]): the same output and the same detections queued.
    pub(super) fn text(&mut self, s: &str) -> TextFate {
        if s.len() < MIN_SCAN_LEN || self.m.enabled.is_empty() || too_plain(s.as_bytes()) {
            // Most object keys (`attributes`, `stringValue`): nothing to find, and not worth
            // a memo lookup, let alone an entry.
            return TextFate::Keep;
        }
        let (hash, found) = self.memo.get(s);
        if let Some(answer) = found {
            return match answer {
                Answer::Keep => TextFate::Keep,
                Answer::Replace(masked, hits) => {
                    self.pending.extend_from_slice(hits);
                    TextFate::Replace(masked.to_string())
                }
                Answer::Drop(hits) => {
                    self.pending.extend_from_slice(hits);
                    TextFate::Drop
                }
            };
        }
        let logged = self.pending.len();
        let fate = self.scan(s);
        let hits = || -> Box<[(Detector, Op)]> { self.pending.get(logged..).unwrap_or_default().into() };
        let answer = match &fate {
            TextFate::Keep => Answer::Keep,
            TextFate::Replace(masked) => Answer::Replace(masked.as_str().into(), hits()),
            TextFate::Drop => Answer::Drop(hits()),
        };
        self.memo.remember(s, hash, answer);
        fate
    }

    /// [`Cx::text`] without the memo.
    fn scan(&mut self, s: &str) -> TextFate {
        let mut fate = self.scan_once(s);
        for _ in 0..MAX_RESCANS {
            let TextFate::Replace(masked) = &fate else { return fate };
            match self.scan_once(masked) {
                TextFate::Keep => return fate,
                next => fate = next,
            }
        }
        let TextFate::Replace(_) = fate else { return fate };
        // Still finding after every rescan: what is left of the text is not to be trusted, so
        // all of it goes, under the last detection's label and operator (fail closed; a second
        // masking then finds nothing).
        let Some(&(d, op)) = self.pending.last() else { return fate };
        self.pending.push((d, op));
        let mut out = String::new();
        self.ops.apply(op, d.label(), s, &mut out);
        TextFate::Replace(out)
    }

    fn scan_once(&mut self, s: &str) -> TextFate {
        if s.len() < MIN_SCAN_LEN || self.m.enabled.is_empty() {
            return TextFate::Keep;
        }
        // One table pass gives the classes the detectors gate on and whether an escape can
        // start anywhere (a `memchr2` for it cost more than the pass on these short texts).
        let seen = gate::classes(s.as_bytes());
        let decoded = if seen & gate::ESCAPE != 0 { decode_escapes(s) } else { None };
        let (src, seen) = match decoded.as_deref() {
            Some(d) => (d, gate::classes(d.as_bytes())),
            None => (s, seen),
        };
        self.spans.clear();
        self.engine.scan_classified(src, seen, self.m.enabled, &mut self.spans);
        if self.spans.is_empty() {
            return TextFate::Keep;
        }
        // Labels first, merge second: a detection cut short at a label must not take with it
        // the detections it was merged with beyond the label (an email after a label inside an
        // unterminated private key block was lost that way, and found only by a second pass).
        drop_inside_labels(src, &mut self.spans);
        if self.spans.is_empty() {
            return TextFate::Keep;
        }
        merge(&mut self.spans);
        let mut drop = false;
        for sp in &self.spans {
            let op = self.ops.effective(self.m.op(sp.detector));
            drop |= op == Op::Drop;
            self.pending.push((sp.detector, op));
        }
        if drop {
            return TextFate::Drop;
        }
        let mut out = String::with_capacity(src.len() + 16 * self.spans.len());
        let mut at = 0;
        for sp in &self.spans {
            let (Some(before), Some(val)) = (src.get(at..sp.start), src.get(sp.start..sp.end)) else {
                // Spans come from byte scanners on ASCII boundaries; if one ever were not on a
                // char boundary, mask the whole text rather than risk serving it.
                out.clear();
                self.ops.apply(Op::Redact, sp.detector.label(), "", &mut out);
                return TextFate::Replace(out);
            };
            out.push_str(before);
            self.ops.apply(self.m.op(sp.detector), sp.detector.label(), val, &mut out);
            at = sp.end;
        }
        out.push_str(src.get(at..).unwrap_or(""));
        TextFate::Replace(out)
    }
}

/// Decodes `\uXXXX` (with surrogate pairs) and ASCII `%XX` escapes, so `alice\u0040example.com`
/// and `alice%40example.com` are seen as the email they spell. `None` when nothing decodes.
pub fn decode_escapes(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let hex4 = |i: usize| -> Option<u32> {
        let h = b.get(i..i + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let hex2 = |i: usize| -> Option<u8> {
        let h = b.get(i..i + 2)?;
        u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let (ch, len) = match b[i] {
            b'\\' if b.get(i + 1) == Some(&b'u') => match hex4(i + 2) {
                Some(hi @ 0xD800..=0xDBFF) => match (b.get(i + 6..i + 8), hex4(i + 8)) {
                    (Some(b"\\u"), Some(lo @ 0xDC00..=0xDFFF)) => {
                        (char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)), 12)
                    }
                    _ => (None, 0),
                },
                Some(cp) => (char::from_u32(cp), 6),
                None => (None, 0),
            },
            b'%' => match hex2(i + 1) {
                Some(v) if v.is_ascii() && !v.is_ascii_control() => (Some(char::from(v)), 3),
                _ => (None, 0),
            },
            _ => (None, 0),
        };
        match ch {
            Some(c) if len > 0 => {
                out.push_str(s.get(last..i).unwrap_or(""));
                out.push(c);
                i += len;
                last = i;
                changed = true;
            }
            _ => i += 1,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    Some(out)
}

/// Keeps detections out of redaction labels already in the text (`[REDACTED:PASSWORD]` after
/// "password was"): a span that starts inside a label is forgotten, and one that runs into a
/// label stops before it. Masking masked output must not relabel, nest or extend what it masked
/// before, so a trace masked on write and again on read reports only what was really found.
///
/// Only what the `redact` operator writes is a label: `[REDACTED:NAME]` with the label of a
/// detector ([`label_end`]). Anything looser would let a text shield whatever follows it from
/// every detector by writing `[REDACTED` in front of it (`[REDACTED note: password is …]`).
/// Runs on the detections as found, before [`merge`].
fn drop_inside_labels(src: &str, spans: &mut Vec<super::detectors::Span>) {
    // Built once: `memmem::find` builds its searcher on every call, which cost more than the
    // search on these short texts.
    static OPEN: std::sync::LazyLock<memchr::memmem::Finder<'static>> = std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"[REDACTED:"));
    let b = src.as_bytes();
    let mut labels = Vec::new();
    let mut from = 0;
    while let Some(i) = OPEN.find(b.get(from..).unwrap_or_default()) {
        let start = from + i;
        match label_end(b, start) {
            Some(end) => {
                labels.push((start, end));
                from = end;
            }
            None => from = start + 1,
        }
    }
    if labels.is_empty() {
        return;
    }
    spans.retain_mut(|sp| {
        if labels.iter().any(|(a, z)| sp.start >= *a && sp.start < *z) {
            return false;
        }
        if let Some((a, _)) = labels.iter().find(|(a, _)| sp.start < *a && *a < sp.end) {
            sp.end = *a;
        }
        sp.end > sp.start
    });
}

/// The end of the label `[REDACTED:NAME]` starting at `start` in `b`, when NAME is a
/// detector's label (what [`super::operators::Operators::apply`] writes for `redact`).
fn label_end(b: &[u8], start: usize) -> Option<usize> {
    const OPEN: &[u8] = b"[REDACTED:";
    let rest = b.get(start..)?.strip_prefix(OPEN)?;
    // Detector names are at most 40 bytes; a longer run is no label.
    let len = rest.iter().take(41).take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_').count();
    if rest.get(len) != Some(&b']') {
        return None;
    }
    let name = std::str::from_utf8(rest.get(..len)?).ok()?;
    Detector::from_label(name)?;
    Some(start + OPEN.len() + len + 1)
}

/// True when `s` is exactly what an operator wrote: `[REDACTED:NAME]` or a pseudonym
/// `NAME_<12 hex>`, NAME a detector's label. Masking it again under a credential key would only
/// relabel or re-hash it. Any other NAME is masked like any value: a password shaped like a
/// pseudonym (`HUNTER_0123456789ab`) is still a password.
pub(super) fn is_masked(s: &str) -> bool {
    if s.starts_with("[REDACTED:") {
        return label_end(s.as_bytes(), 0) == Some(s.len());
    }
    match s.rsplit_once('_') {
        Some((label, hex)) => {
            hex.len() == 12 && hex.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) && Detector::from_label(label).is_some()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `f` with the path `parent` + `segs`, built on the stack as the engines build it.
    fn with_path(segs: &[Seg<'_>], parent: &Path<'_>, f: &mut dyn FnMut(&Path<'_>)) {
        match segs.split_first() {
            None => f(parent),
            Some((s, rest)) => with_path(rest, &Path { seg: *s, parent: Some(parent) }, f),
        }
    }

    /// Paths rendered from the last one's prefix equal paths rendered whole: each path is the
    /// last one cut back and grown again (as a walk moves through a document), with keys that
    /// need quoting, empty keys, non-ASCII keys, and now and then a path past `CACHED_DEPTH`.
    #[test]
    fn paths_rendered_from_a_shared_prefix_equal_paths_rendered_whole() {
        let keys = ["content", "parts", "a b", "it's", "x\\y", "日本", "", "0abc", "_k", "stringValue", "$", "[0]", "a.b"];
        let mut r = super::super::test_rng::Rng::new(0x7061_7468_7321);
        let mut rendered = Rendered::default();
        let mut segs: Vec<Seg<'_>> = Vec::new();
        let mut deep = 0;
        for _ in 0..20_000 {
            let cut = r.below(segs.len() + 1);
            segs.truncate(segs.len() - cut.min(segs.len()));
            let grow = if r.below(200) == 0 { 60 } else { r.below(5) };
            for _ in 0..grow {
                segs.push(if r.below(2) == 0 { Seg::Index(r.below(12)) } else { Seg::Key(r.pick::<&str>(&keys)) });
            }
            deep += usize::from(segs.len() > CACHED_DEPTH);
            with_path(&segs, &Path::root(), &mut |p| {
                let mut want = String::new();
                p.render_onto(&mut want);
                assert_eq!(rendered.render(p), want);
            });
        }
        assert!(deep > 10, "{deep} paths past the cached depth");
    }
}
