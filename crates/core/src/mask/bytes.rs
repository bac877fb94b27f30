//! The byte engine: masks a JSON text in one pass over its bytes, without building a tree.
//!
//! The walk ([`super::walk`]) masks a `serde_json::Value`; a read that shows the whole trace
//! (a role whose view is everything, `tracegate mask` without a role) does not need one. This
//! engine reads the text once with its own validating scanner (same grammar and nesting limit
//! as `serde_json`), finds string tokens with `memchr`, decodes escapes only in strings that
//! have them (into a reused buffer), and hands each string to the same detector code the walk
//! uses ([`Cx::string`], [`Cx::text`]): one implementation of every detector and operator.
//! Unchanged strings and numbers are copied verbatim; the output is the input made compact,
//! with masked values replaced.
//!
//! JSON in strings is found by the one decoder's [`crate::embedded::peel`] and masked by
//! running this engine on the inner text, then encoding the result back into as many string
//! layers; an inner document with nothing masked is copied as it was. When the inner text turns
//! out not to be JSON, what was logged for it is taken back ([`Cx::rewind`]) and the string is
//! scanned as text, exactly as the walk would.
//!
//! Semantics follow the walk rule for rule (credential-like keys mask everything under them,
//! OpenTelemetry `{"key": …, "value": …}` attributes, masked keys, `drop`, the nesting and
//! layer limits); `tests/mask_differential.rs` checks it against the walk on generated
//! documents and requires the same document and the same counts. Numbers are scanned as
//! `serde_json` prints them, as the walk scans them. A text in which some object repeats a key
//! is masked by the walk instead ([`Engine::repeated_key`]): its parser keeps only the last
//! member of a name, so it serves (and counts) fewer values than the text holds.

use std::borrow::Cow;

use memchr::memchr2;

use super::operators::Op;
use super::walk::{is_masked, Cx, Path, TextFate};
use super::Detector;
use crate::embedded::{peel, Peeled, MAX_LAYERS, MAX_NESTING};

/// `serde_json`'s nesting limit per document (it refuses the 128th nested container).
const MAX_DEPTH: u32 = 127;

/// Why a text is not masked: it is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("not JSON: {what} at byte {at}")]
    NotJson { what: &'static str, at: usize },
}

/// Invalid JSON somewhere in the current text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bad {
    what: &'static str,
    at: usize,
}

type R<T> = Result<T, Bad>;

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fate {
    Keep,
    Drop,
}

/// How values are treated: scanned by the detectors, or masked whole under a credential key.
#[derive(Clone, Copy)]
enum Mode {
    Scan,
    Whole(Op),
}

/// Scratch buffers reused across strings: a decoded string per nesting of JSON-in-string
/// layers (a string being scanned may be inside a document inside a string), and output
/// buffers for inner documents.
#[derive(Default)]
pub(super) struct Scratch {
    strs: Vec<String>,
    outs: Vec<Vec<u8>>,
    /// Hashes of the keys of the objects being read, innermost last ([`Engine::seen_key`]).
    keys: Vec<u64>,
}

pub(super) struct Engine<'c, 'm> {
    cx: &'c mut Cx<'m>,
    scratch: Scratch,
    /// Some object repeats a key (or two keys' hashes collide). The walk's parser keeps the
    /// last member of each name, so its document, and what it counts, differ from what this
    /// engine reads; [`Masker::apply_json`](super::Masker::apply_json) then masks the text
    /// with the walk instead. Rare, and never wrong: the walk is the oracle.
    pub(super) repeated_key: bool,
}

/// A cursor over one JSON text (the document, or a document found in a string). The text is a
/// `str`, so a token between ASCII delimiters is sliced out of it as a `str` without checking
/// its UTF-8 again ([`In::text`]).
struct In<'i> {
    s: &'i str,
    b: &'i [u8],
    pos: usize,
}

impl<'i> In<'i> {
    fn new(s: &'i str, pos: usize) -> In<'i> {
        In { s, b: s.as_bytes(), pos }
    }

    /// The text from `start` to `end`, both at ASCII delimiters (quotes, number bounds).
    #[inline(always)]
    fn text(&self, start: usize, end: usize) -> &'i str {
        self.s.get(start..end).unwrap_or_default()
    }

    fn bad<T>(&self, what: &'static str) -> R<T> {
        Err(Bad { what, at: self.pos })
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.pos) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8, what: &'static str) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.bad(what)
        }
    }

    /// Reads a string token starting at its opening quote: the raw bytes between the quotes
    /// (validated: no raw control characters; escapes are checked when decoded) and whether
    /// it has escapes.
    ///
    /// Most strings (keys, roles, ids) end within a few words: their first [`SHORT`] bytes
    /// are searched 8 at a time for the quote, backslashes and control characters at once
    /// ([`next_escape`]), with no call. A longer string goes on with `memchr2` for the quote
    /// and backslashes, then one pass over the rest for control characters.
    #[inline(always)]
    fn string(&mut self) -> R<(usize, usize, bool)> {
        self.string_or(|_, _, _| None).map(|(s, e, esc, _)| (s, e, esc))
    }

    /// [`In::string`], offering the string to `decode` at its first backslash: `decode(start,
    /// clean, j)` gets the text's start, how far it is known free of control characters, and
    /// the backslash, and returns the closing quote's index when it has read (and decoded) the
    /// rest of the string itself ([`decode_from`]); the fourth value then is true. When it
    /// returns `None` the scan goes on as [`In::string`]'s, so every refusal is reported as
    /// that scan reports it.
    #[inline(always)]
    fn string_or(&mut self, mut decode: impl FnMut(usize, usize, usize) -> Option<usize>) -> R<(usize, usize, bool, bool)> {
        /// How far the word-at-a-time search goes before `memchr2` takes over.
        const SHORT: usize = 64;
        let start = self.pos + 1;
        let near = self.b.get(..start + SHORT).unwrap_or(self.b);
        let mut i = start;
        let mut esc = false;
        let mut ctl = false;
        while let Some(j) = next_escape(near, i) {
            match near.get(j) {
                Some(b'"') => {
                    if ctl {
                        self.pos = start;
                        return self.bad("control character in string");
                    }
                    self.pos = j + 1;
                    return Ok((start, j, esc, false));
                }
                Some(b'\\') => {
                    if !esc && !ctl {
                        if let Some(end) = decode(start, j, j) {
                            self.pos = end + 1;
                            return Ok((start, end, true, true));
                        }
                    }
                    // The escaped byte is never the closing quote, but is still checked.
                    esc = true;
                    ctl |= self.b.get(j + 1).is_some_and(|&c| c < 0x20);
                    i = j + 2;
                }
                _ => {
                    ctl = true;
                    i = j + 1;
                }
            }
        }
        let checked = i.max(near.len());
        i = checked;
        loop {
            let Some(rest) = self.b.get(i..) else { return self.bad("unterminated string") };
            let Some(j) = memchr2(b'"', b'\\', rest) else {
                self.pos = self.b.len();
                return self.bad("unterminated string");
            };
            i += j;
            if self.b.get(i) == Some(&b'"') {
                break;
            }
            if !esc && !ctl {
                if let Some(end) = decode(start, checked, i) {
                    self.pos = end + 1;
                    return Ok((start, end, true, true));
                }
            }
            esc = true;
            i += 2;
        }
        let rest = self.b.get(checked..i).unwrap_or_default();
        if ctl || rest.iter().fold(false, |acc, &c| acc | (c < 0x20)) {
            self.pos = start;
            return self.bad("control character in string");
        }
        self.pos = i + 1;
        Ok((start, i, esc, false))
    }

    fn number(&mut self) -> R<(usize, usize)> {
        let start = self.pos;
        let b = self.b;
        let mut i = start;
        let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while digit(i) {
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return self.bad("invalid number");
            }
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digit(i) {
                self.pos = i;
                return self.bad("invalid number");
            }
            while digit(i) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digit(i) {
                self.pos = i;
                return self.bad("invalid number");
            }
            while digit(i) {
                i += 1;
            }
        }
        self.pos = i;
        Ok((start, i))
    }

    fn literal(&mut self, word: &'static [u8]) -> R<()> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.bad("invalid literal")
        }
    }
}

/// Decodes the JSON escapes of `text` (a string's text between its quotes) into `out`.
///
/// In a document inside a string the runs between escapes are a few bytes long
/// (`{\\"role\\":\\"user\\"`): they are copied as bytes with fixed-size word writes
/// ([`copy_run`], which a `String` cannot take part-way through a character) and the result
/// is checked as UTF-8 once at the end, which costs less than a `memcpy` call per run.
fn unescape(text: &str, out: &mut String) -> Result<(), &'static str> {
    let mut bytes: Vec<u8> = std::mem::take(out).into_bytes();
    bytes.clear();
    let res = unescape_bytes(text.as_bytes(), &mut bytes);
    match String::from_utf8(bytes) {
        Ok(s) => {
            *out = s;
            res
        }
        // Cannot happen (escapes decode to whole characters and the rest is copied from a
        // `str`); refused rather than scanned as some other text.
        Err(_) => res.and(Err("invalid UTF-8 in string")),
    }
}

/// [`unescape`]'s decoding, into bytes.
fn unescape_bytes(raw: &[u8], bytes: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut i = 0;
    loop {
        let Some(rest) = raw.get(i..) else { return Ok(()) };
        let Some(j) = memchr::memchr(b'\\', rest) else {
            bytes.extend_from_slice(rest);
            return Ok(());
        };
        copy_run(raw, i, i + j, bytes);
        i = decode_escape(raw, i + j, bytes)?;
    }
}

/// Decodes the escape whose backslash is at `raw[i]` onto `bytes`; the index after it.
#[inline(always)]
fn decode_escape(raw: &[u8], i: usize, bytes: &mut Vec<u8>) -> Result<usize, &'static str> {
    let hex4 = |i: usize| -> Option<u32> {
        let h = raw.get(i..i + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + char::from(c).to_digit(16)?;
        }
        Some(v)
    };
    let simple = match raw.get(i + 1) {
        Some(b'"') => Some(b'"'),
        Some(b'\\') => Some(b'\\'),
        Some(b'/') => Some(b'/'),
        Some(b'b') => Some(0x08),
        Some(b'f') => Some(0x0c),
        Some(b'n') => Some(b'\n'),
        Some(b'r') => Some(b'\r'),
        Some(b't') => Some(b'\t'),
        Some(b'u') => None,
        _ => return Err("invalid escape"),
    };
    if let Some(c) = simple {
        bytes.push(c);
        return Ok(i + 2);
    }
    let Some(hi) = hex4(i + 2) else { return Err("invalid \\u escape") };
    let (cp, len) = match hi {
        0xD800..=0xDBFF => {
            if raw.get(i + 6..i + 8) != Some(b"\\u") {
                return Err("lone surrogate");
            }
            match hex4(i + 8) {
                Some(lo @ 0xDC00..=0xDFFF) => (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12),
                _ => return Err("lone surrogate"),
            }
        }
        0xDC00..=0xDFFF => return Err("lone surrogate"),
        cp => (cp, 6),
    };
    let Some(ch) = char::from_u32(cp) else { return Err("invalid \\u escape") };
    let mut enc = [0u8; 4];
    bytes.extend_from_slice(ch.encode_utf8(&mut enc).as_bytes());
    Ok(i + len)
}

/// Reads and decodes, in one pass, the rest of a string token whose text starts at `b[start]`
/// and whose first backslash is at `b[first]` (`b[start..clean]` known free of control
/// characters): the runs between escapes are found with `memchr2` for the closing quote and the
/// next backslash, checked for control characters and copied, the escapes decoded, into
/// `out` (cleared first). The closing quote's index, or `None` at anything [`In::string`] or
/// [`unescape`] would refuse (a control character, a bad escape, no closing quote), for them
/// to refuse it as they do.
///
/// A document inside a string has an escape every few bytes; reading it once to find its end
/// and again to decode it cost a `memchr2` and a `memchr` call per escape.
fn decode_from(b: &[u8], start: usize, clean: usize, first: usize, out: &mut Vec<u8>) -> Option<usize> {
    /// How far the word-at-a-time search for the next escape goes before `memchr2`.
    const NEAR: usize = 32;
    let has_ctl = |run: &[u8]| run.iter().fold(false, |acc, &c| acc | (c < 0x20));
    if has_ctl(b.get(clean..first)?) {
        return None;
    }
    out.clear();
    out.extend_from_slice(b.get(start..first)?);
    let mut i = first;
    loop {
        // A decoded escape's bytes are letters and hex digits: never a control character.
        i = decode_escape(b, i, out).ok()?;
        // The next quote or backslash: a few bytes on in a document, searched word at a time
        // (control characters found in the same pass); past [`NEAR`] bytes, `memchr2`.
        let near = b.get(..i + NEAR).unwrap_or(b);
        let j = match next_escape(near, i) {
            Some(j) => j,
            None => {
                let from = near.len().max(i);
                let j = from + memchr2(b'"', b'\\', b.get(from..)?)?;
                if has_ctl(b.get(from..j)?) {
                    return None;
                }
                j
            }
        };
        copy_run(b, i, j, out);
        i = j;
        match b.get(i) {
            Some(b'"') => return Some(i),
            Some(b'\\') => {}
            _ => return None,
        }
    }
}

/// Appends `s` as a JSON string (quotes included), escaped as `serde_json` escapes — which is
/// also RFC 8785's escaping, so the audit trail's canonical form writes its strings with this
/// (`tracegate_core::mask::quote_json`).
///
/// Jumps from one byte that needs an escape to the next, eight bytes at a time
/// ([`next_escape`]), and copies the runs in between whole: re-quoting a masked JSON-in-string
/// document meets a `"` every few bytes, so a per-byte pass over each 8-byte chunk that holds
/// one (as before) was most of the cost.
pub fn quote(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut from = 0;
    while let Some(j) = next_escape(s, from) {
        let Some(&c) = s.get(j) else { break };
        copy_run(s, from, j, out);
        // Fixed-size writes, so no `memcpy` call per escape.
        let short = SHORT_ESCAPE.get(usize::from(c)).copied().unwrap_or(0);
        if short == 0 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            out.extend_from_slice(&[b'\\', short]);
        }
        from = j + 1;
    }
    out.extend_from_slice(s.get(from..).unwrap_or_default());
    out.push(b'"');
}

/// The letter of the two-byte escape of each byte [`quote`] escapes (`"`, `\\`, `\n`, …), 0 for
/// the control characters written as `\u00XX`: one load per escape instead of a `match`.
const SHORT_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

/// Appends `s[from..to]` to `out`. A re-quoted document has a run of a few bytes between
/// escapes (`{"role":"user"` …), and a `memcpy` call per run was most of its cost: a run
/// shorter than a word is written as the whole word from `from` (a fixed-size copy) and the
/// bytes past the run cut off again.
#[inline(always)]
fn copy_run(s: &[u8], from: usize, to: usize, out: &mut Vec<u8>) {
    let run = s.get(from..to).unwrap_or_default();
    if run.len() < 8 {
        if let Some(Ok(word)) = s.get(from..from + 8).map(<[u8; 8]>::try_from) {
            let at = out.len();
            out.extend_from_slice(&word);
            out.truncate(at + run.len());
            return;
        }
    }
    out.extend_from_slice(run);
}

/// The first byte at or after `from` that a JSON string must escape: `"`, `\\` or a control
/// character (below 0x20).
#[inline]
fn next_escape(s: &[u8], from: usize) -> Option<usize> {
    super::detectors::gate::find(s, from, needs_escape8, |c| matches!(c, b'"' | b'\\' | 0..=0x1f))
}

/// The bytes among 8 (little-endian in `v`) that are `"`, `\\` or a control character (below
/// 0x20), as the high bit of each: the usual bit tricks on one `u64` (a byte is zero after the
/// XOR exactly when it equals the target). Only the lowest set bit is exact (a borrow out of a
/// matching byte can mark the byte above it), which is all [`next_escape`] reads.
#[inline]
fn needs_escape8(v: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    // Bytes below 0x20 (ASCII only: bytes of 0x80 and up are masked off by `!v`).
    let below = v.wrapping_sub(LO * 0x20) & !v & HI;
    zero(v ^ (LO * u64::from(b'"'))) | zero(v ^ (LO * u64::from(b'\\'))) | below
}

/// Where a value sits: JSON-in-string layers above it and containers around it (across
/// layers, for [`MAX_NESTING`]), and containers around it in this text (for [`MAX_DEPTH`]).
#[derive(Clone, Copy)]
struct At {
    layers: u8,
    nest: usize,
    depth: u32,
}

impl<'c, 'm> Engine<'c, 'm> {
    pub(super) fn new(cx: &'c mut Cx<'m>) -> Self {
        Engine { cx, scratch: Scratch::default(), repeated_key: false }
    }

    /// Masks the whole text `input` into `out`.
    pub(super) fn document(&mut self, input: &str, out: &mut Vec<u8>) -> Result<(), MaskError> {
        let mut p = In::new(input, 0);
        let at = At { layers: 0, nest: 0, depth: 0 };
        let res = self.text_doc(&mut p, out, &Path::root(), at, Mode::Scan);
        res.map_err(|b| MaskError::NotJson { what: b.what, at: b.at })
    }

    /// One whole JSON text (a document): a value and nothing after it.
    fn text_doc(&mut self, p: &mut In<'_>, out: &mut Vec<u8>, path: &Path<'_>, at: At, mode: Mode) -> R<()> {
        let start = out.len();
        p.ws();
        if self.value(p, out, path, at, mode)? == Fate::Drop {
            out.truncate(start);
            out.extend_from_slice(b"null");
        }
        p.ws();
        if p.pos != p.b.len() {
            return p.bad("trailing characters");
        }
        Ok(())
    }

    fn value(&mut self, p: &mut In<'_>, out: &mut Vec<u8>, path: &Path<'_>, at: At, mode: Mode) -> R<Fate> {
        match p.peek() {
            Some(b'"') => self.string(p, out, path, at, mode),
            Some(c @ (b'{' | b'[')) => {
                if at.depth >= MAX_DEPTH {
                    return p.bad("recursion limit exceeded");
                }
                if at.nest >= MAX_NESTING {
                    // Too deep to inspect: withheld, as projection's decoder does. The
                    // container is still read, to know the text is JSON.
                    let mark = self.cx.mark();
                    let start = out.len();
                    let inner = At { depth: at.depth + 1, nest: at.nest + 1, ..at };
                    if c == b'{' {
                        self.object(p, out, path, inner, mode)?;
                    } else {
                        self.array(p, out, path, inner, mode)?;
                    }
                    out.truncate(start);
                    self.cx.rewind(mark);
                    self.cx.withheld(1);
                    out.extend_from_slice(b"null");
                    return Ok(Fate::Keep);
                }
                let inner = At { depth: at.depth + 1, nest: at.nest + 1, ..at };
                if c == b'{' {
                    self.object(p, out, path, inner, mode)?;
                } else {
                    self.array(p, out, path, inner, mode)?;
                }
                Ok(Fate::Keep)
            }
            Some(b't') => {
                p.literal(b"true")?;
                out.extend_from_slice(b"true");
                Ok(Fate::Keep)
            }
            Some(b'f') => {
                p.literal(b"false")?;
                out.extend_from_slice(b"false");
                Ok(Fate::Keep)
            }
            Some(b'n') => {
                p.literal(b"null")?;
                out.extend_from_slice(b"null");
                Ok(Fate::Keep)
            }
            Some(b'-' | b'0'..=b'9') => {
                let (s, e) = p.number()?;
                let raw = p.b.get(s..e).unwrap_or_default();
                // Number tokens are ASCII.
                let written = p.text(s, e);
                // The walk scans a number as `serde_json` prints it, so this engine scans that
                // text too: a float or a big integer is printed differently from how it is
                // written (`4111111111111111e0` is `4.111111111111111e15`). An integer that fits
                // 64 bits prints as written.
                let printed;
                let text = if plain_integer(written) {
                    written
                } else {
                    match written.parse::<serde_json::Number>() {
                        Ok(n) => {
                            printed = n.to_string();
                            printed.as_str()
                        }
                        Err(_) => {
                            p.pos = s;
                            return p.bad("number out of range");
                        }
                    }
                };
                match mode {
                    Mode::Whole(op) => {
                        self.whole_scalar(op, text, out, path);
                        Ok(Fate::Keep)
                    }
                    Mode::Scan => match self.cx.string(text, path) {
                        TextFate::Keep => {
                            out.extend_from_slice(raw);
                            Ok(Fate::Keep)
                        }
                        TextFate::Replace(n) => {
                            self.cx.bump();
                            quote(n.as_bytes(), out);
                            Ok(Fate::Keep)
                        }
                        TextFate::Drop => Ok(Fate::Drop),
                    },
                }
            }
            _ => p.bad("expected a value"),
        }
    }

    /// `[REDACTED:KEY_NAME]` (or the key-name operator's pseudonym) for one scalar under a
    /// credential key.
    fn whole_scalar(&mut self, op: Op, text: &str, out: &mut Vec<u8>, path: &Path<'_>) {
        if is_masked(text) {
            quote(text.as_bytes(), out);
            return;
        }
        let op = self.cx.ops().effective(op);
        let mut masked = String::new();
        self.cx.ops().apply(op, Detector::KeyName.label(), text, &mut masked);
        quote(masked.as_bytes(), out);
        self.cx.hit(Detector::KeyName, op, path);
    }

    fn string(&mut self, p: &mut In<'_>, out: &mut Vec<u8>, path: &Path<'_>, at: At, mode: Mode) -> R<Fate> {
        let tok_start = p.pos;
        let slot = usize::from(at.layers);
        let b = p.b;
        let mut taken: Option<Vec<u8>> = None;
        let (s, e, esc, decoded) = p.string_or(|start, clean, first| {
            let mut v = self.take_str(slot).into_bytes();
            let end = decode_from(b, start, clean, first, &mut v);
            taken = Some(v);
            end
        })?;
        let tok = p.b.get(tok_start..e + 1).unwrap_or_default();
        if !esc {
            // The input is a `str` and the token starts and ends at ASCII quotes.
            return Ok(self.string_value(p.text(s, e), tok, out, path, at, mode));
        }
        let mut buf = match taken.map(String::from_utf8) {
            Some(Ok(v)) => v,
            // Cannot happen (escapes decode to whole characters and the runs are cut from a
            // `str` at ASCII bytes); refused rather than scanned as some other text.
            Some(Err(_)) if decoded => {
                p.pos = s;
                return p.bad("invalid UTF-8 in string");
            }
            // A declined decode left bytes behind: `unescape` starts over in the same buffer.
            Some(Err(e)) => {
                let mut v = e.into_bytes();
                v.clear();
                String::from_utf8(v).unwrap_or_default()
            }
            None => self.take_str(slot),
        };
        if !decoded {
            if let Err(what) = unescape(p.text(s, e), &mut buf) {
                self.put_str(slot, buf);
                p.pos = s;
                return p.bad(what);
            }
        }
        let fate = self.string_value(&buf, tok, out, path, at, mode);
        self.put_str(slot, buf);
        Ok(fate)
    }

    /// A decoded string value: a document inside it, or text.
    fn string_value(&mut self, text: &str, tok: &[u8], out: &mut Vec<u8>, path: &Path<'_>, at: At, mode: Mode) -> Fate {
        if text.len() >= 2 && matches!(text.as_bytes().iter().find(|c| !c.is_ascii_whitespace()), Some(b'{' | b'[' | b'"')) {
            match peel(text, MAX_LAYERS - at.layers) {
                Peeled::Text => {}
                Peeled::PastBudget => {
                    self.cx.withheld(1);
                    out.extend_from_slice(b"null");
                    return Fate::Keep;
                }
                Peeled::Doc { text: inner, layers } => {
                    if self.embedded(&inner, layers, tok, out, path, at, mode) {
                        return Fate::Keep;
                    }
                }
            }
        }
        match mode {
            Mode::Whole(op) => {
                self.whole_scalar(op, text, out, path);
                Fate::Keep
            }
            Mode::Scan => match self.cx.string(text, path) {
                TextFate::Keep => {
                    out.extend_from_slice(tok);
                    Fate::Keep
                }
                TextFate::Replace(n) => {
                    self.cx.bump();
                    quote(n.as_bytes(), out);
                    Fate::Keep
                }
                TextFate::Drop => Fate::Drop,
            },
        }
    }

    /// Masks a document found in a string and writes it back as `layers` string layers.
    /// False (with nothing written or logged) when the text is not JSON after all.
    #[allow(clippy::too_many_arguments)]
    fn embedded(&mut self, inner: &str, layers: u8, tok: &[u8], out: &mut Vec<u8>, path: &Path<'_>, at: At, mode: Mode) -> bool {
        let mark = self.cx.mark();
        let before = self.cx.changes();
        let slot = usize::from(at.layers);
        let mut buf = self.take_out(slot);
        let mut p = In::new(inner, 0);
        let inner_at = At { layers: at.layers + layers, nest: at.nest, depth: 0 };
        let ok = self.text_doc(&mut p, &mut buf, path, inner_at, mode).is_ok();
        if !ok {
            self.cx.rewind(mark);
        } else if self.cx.changes() == before {
            out.extend_from_slice(tok);
        } else {
            let mut cur: Cow<'_, [u8]> = Cow::Borrowed(&buf);
            for _ in 1..layers {
                let mut next = Vec::with_capacity(cur.len() + 16);
                quote(&cur, &mut next);
                cur = Cow::Owned(next);
            }
            quote(&cur, out);
        }
        self.put_out(slot, buf);
        ok
    }

    fn array(&mut self, p: &mut In<'_>, out: &mut Vec<u8>, path: &Path<'_>, at: At, mode: Mode) -> R<()> {
        p.pos += 1;
        out.push(b'[');
        p.ws();
        if p.peek() == Some(b']') {
            p.pos += 1;
            out.push(b']');
            return Ok(());
        }
        let mut i = 0usize;
        loop {
            if i > 0 {
                out.push(b',');
            }
            p.ws();
            let start = out.len();
            if self.value(p, out, &path.index(i), at, mode)? == Fate::Drop {
                out.truncate(start);
                out.extend_from_slice(b"null");
                self.cx.bump();
            }
            i += 1;
            p.ws();
            match p.peek() {
                Some(b',') => p.pos += 1,
                Some(b']') => {
                    p.pos += 1;
                    out.push(b']');
                    return Ok(());
                }
                _ => return p.bad("expected `,` or `]`"),
            }
        }
    }

    fn object(&mut self, p: &mut In<'_>, out: &mut Vec<u8>, path: &Path<'_>, at: At, mode: Mode) -> R<()> {
        let obj_start = p.pos;
        let out_start = out.len();
        p.pos += 1;
        out.push(b'{');
        p.ws();
        if p.peek() == Some(b'}') {
            p.pos += 1;
            out.push(b'}');
            return Ok(());
        }
        let mut kbuf = String::new();
        let keys_base = self.scratch.keys.len();
        let r = self.members(p, out, path, at, mode, obj_start, out_start, &mut kbuf, keys_base);
        self.scratch.keys.truncate(keys_base);
        r
    }

    /// The members of the object opened at `obj_start` (its `{` read, not `}`).
    #[allow(clippy::too_many_arguments)]
    fn members(
        &mut self,
        p: &mut In<'_>,
        out: &mut Vec<u8>,
        path: &Path<'_>,
        at: At,
        mode: Mode,
        obj_start: usize,
        out_start: usize,
        kbuf: &mut String,
        keys_base: usize,
    ) -> R<()> {
        let masker = self.cx.masker();
        let key_op = masker.key_op;
        // Output ranges of the keys written so far, kept from the first renamed key on, so
        // two keys masked to the same text both stay (`#2`), as the walk keeps them.
        let mut written: Option<Vec<(usize, usize)>> = None;
        let mut emitted = 0usize;
        // OpenTelemetry attributes: whether the sibling `key` names a credential (and the
        // object is attribute-sized). Decided when the `value` member is reached.
        let mut attr: Option<bool> = None;
        // The key hashes of an object with many members, for [`Engine::seen_key`].
        let mut big: Option<std::collections::HashSet<u64>> = None;
        loop {
            p.ws();
            if p.peek() != Some(b'"') {
                return p.bad("expected a key");
            }
            let ktok_start = p.pos;
            let (ks, ke, kesc) = p.string()?;
            let ktok = p.b.get(ktok_start..ke + 1).unwrap_or_default();
            let key: &str = if kesc {
                if let Err(what) = unescape(p.text(ks, ke), kbuf) {
                    p.pos = ks;
                    return p.bad(what);
                }
                kbuf
            } else {
                p.text(ks, ke)
            };
            self.seen_key(key, keys_base, &mut big);
            p.eat(b':', "expected `:`")?;
            p.ws();
            let member_start = out.len();
            if emitted > 0 {
                out.push(b',');
            }
            if let Mode::Whole(op) = mode {
                // Under a credential key every scalar is masked; keys are kept.
                out.extend_from_slice(ktok);
                out.push(b':');
                self.value(p, out, &path.key(key), at, Mode::Whole(op))?;
                emitted += 1;
                if !self.next_member(p)? {
                    out.push(b'}');
                    return Ok(());
                }
                continue;
            }
            let (shown, renamed): (Cow<'_, str>, bool) = match self.cx.text(key) {
                TextFate::Keep => (Cow::Borrowed(key), false),
                TextFate::Replace(nk) => {
                    self.cx.flush(&path.key(&nk));
                    self.cx.bump();
                    (Cow::Owned(nk), true)
                }
                TextFate::Drop => {
                    self.cx.flush(path);
                    self.cx.bump();
                    // The member goes; its value is still read, to know the text is JSON.
                    self.skip(p, path, at)?;
                    out.truncate(member_start);
                    if self.next_member(p)? {
                        continue;
                    }
                    out.push(b'}');
                    return Ok(());
                }
            };
            if renamed && written.is_none() {
                written = Some(earlier_keys(out, out_start, member_start));
            }
            if let Some(ranges) = written.as_mut() {
                let key_at = out.len();
                let taken = |enc: &[u8], out: &[u8]| ranges.iter().any(|&(a, z)| out.get(a..z) == Some(enc));
                let mut enc = Vec::new();
                quote(shown.as_bytes(), &mut enc);
                let mut n = 2;
                while taken(&enc, out) {
                    enc.clear();
                    quote(format!("{shown}#{n}").as_bytes(), &mut enc);
                    n += 1;
                }
                out.extend_from_slice(&enc);
                ranges.push((key_at, out.len()));
            } else {
                out.extend_from_slice(ktok);
            }
            out.push(b':');
            let mut secret = key_op != Op::Off && masker.key_names.matches(key);
            if key_op != Op::Off {
                if key == "key" && attr.is_none() {
                    // Usually `key` comes first: a name that is no credential settles it.
                    if !self.names_credential(p) {
                        attr = Some(false);
                    }
                } else if !secret && key == "value" {
                    let a = *attr.get_or_insert_with(|| self.survey(p.s, obj_start));
                    secret = a;
                }
            }
            let kp = path.key(&shown);
            let fate = if secret {
                let op = self.cx.ops().effective(key_op);
                if op == Op::Drop {
                    self.skip(p, &kp, at)?;
                    self.cx.hit(Detector::KeyName, op, &kp);
                    Fate::Drop
                } else {
                    self.value(p, out, &kp, at, Mode::Whole(op))?
                }
            } else {
                self.value(p, out, &kp, at, Mode::Scan)?
            };
            if fate == Fate::Drop {
                out.truncate(member_start);
                if let Some(w) = written.as_mut() {
                    w.retain(|&(a, _)| a < member_start);
                }
                self.cx.bump();
            } else {
                emitted += 1;
            }
            if !self.next_member(p)? {
                out.push(b'}');
                return Ok(());
            }
        }
    }

    /// Notes the key `key` of the object whose keys start at `base` in the key stack, and sets
    /// [`Engine::repeated_key`] when the object already had it. Hashes, not strings, so nothing
    /// is allocated per key; a collision only sends the text to the walk. Small objects are
    /// searched linearly, large ones through a set.
    fn seen_key(&mut self, key: &str, base: usize, big: &mut Option<std::collections::HashSet<u64>>) {
        const LINEAR: usize = 32;
        let h = fnv1a(key.as_bytes());
        if let Some(set) = big.as_mut() {
            self.repeated_key |= !set.insert(h);
            return;
        }
        let mine = self.scratch.keys.get(base..).unwrap_or_default();
        self.repeated_key |= mine.contains(&h);
        if mine.len() >= LINEAR {
            let mut set: std::collections::HashSet<u64> = mine.iter().copied().collect();
            set.insert(h);
            *big = Some(set);
        } else {
            self.scratch.keys.push(h);
        }
    }

    /// After a member: true at `,` (another member follows), false at `}` (consumed).
    fn next_member(&mut self, p: &mut In<'_>) -> R<bool> {
        p.ws();
        match p.peek() {
            Some(b',') => {
                p.pos += 1;
                Ok(true)
            }
            Some(b'}') => {
                p.pos += 1;
                Ok(false)
            }
            _ => p.bad("expected `,` or `}`"),
        }
    }

    /// Reads one value (validating it) and forgets what masking it would have logged.
    fn skip(&mut self, p: &mut In<'_>, path: &Path<'_>, at: At) -> R<()> {
        const SLOT: usize = MAX_LAYERS as usize + 1;
        let mark = self.cx.mark();
        let mut sink = self.take_out(SLOT);
        let r = self.value(p, &mut sink, path, at, Mode::Whole(Op::Redact));
        self.put_out(SLOT, sink);
        self.cx.rewind(mark);
        r.map(|_| ())
    }

    /// Whether the value at `p` (not consumed) is a string naming a credential, as the walk
    /// reads a sibling `key`: a plain string, not a document in a string.
    fn names_credential(&self, p: &In<'_>) -> bool {
        if p.peek() != Some(b'"') {
            return false;
        }
        let mut q = In::new(p.s, p.pos);
        let Ok((s, e, esc)) = q.string() else { return false };
        let mut buf = String::new();
        let v: &str = if esc {
            if unescape(q.text(s, e), &mut buf).is_err() {
                return false;
            }
            &buf
        } else {
            q.text(s, e)
        };
        // The name first: it rejects nearly every value, and costs less than `peel`.
        self.cx.masker().key_names.matches(v) && (v.len() < 2 || matches!(peel(v, MAX_LAYERS), Peeled::Text))
    }

    /// Whether the object at `obj_start` (its `{`) is an attribute naming a credential: at
    /// most four members, one of them `key` with a credential-like name. Read without masking;
    /// false when it is not well formed (the real pass reports that).
    fn survey(&self, s: &str, obj_start: usize) -> bool {
        let mut q = In::new(s, obj_start + 1);
        let mut count = 0usize;
        let mut secret = false;
        q.ws();
        if q.peek() == Some(b'}') {
            return false;
        }
        loop {
            q.ws();
            let Ok((ks, ke, _)) = q.string() else { return false };
            let key = q.b.get(ks..ke).unwrap_or_default();
            if q.eat(b':', "").is_err() {
                return false;
            }
            q.ws();
            count += 1;
            if count > 4 {
                return false;
            }
            if key == b"key" && self.names_credential(&q) {
                secret = true;
            }
            if skim(&mut q).is_none() {
                return false;
            }
            q.ws();
            match q.peek() {
                Some(b',') => q.pos += 1,
                Some(b'}') => return secret,
                _ => return false,
            }
        }
    }

    fn take_str(&mut self, slot: usize) -> String {
        self.scratch.strs.get_mut(slot).map(std::mem::take).unwrap_or_default()
    }

    fn put_str(&mut self, slot: usize, s: String) {
        if self.scratch.strs.len() <= slot {
            self.scratch.strs.resize_with(slot + 1, String::new);
        }
        if let Some(x) = self.scratch.strs.get_mut(slot) {
            *x = s;
        }
    }

    fn take_out(&mut self, slot: usize) -> Vec<u8> {
        let mut v = self.scratch.outs.get_mut(slot).map(std::mem::take).unwrap_or_default();
        v.clear();
        v
    }

    fn put_out(&mut self, slot: usize, v: Vec<u8>) {
        if self.scratch.outs.len() <= slot {
            self.scratch.outs.resize_with(slot + 1, Vec::new);
        }
        if let Some(x) = self.scratch.outs.get_mut(slot) {
            *x = v;
        }
    }
}

/// The output ranges of the key tokens of the object written from `open` (its `{`) up to
/// `until`: read back from our own compact output.
fn earlier_keys(out: &[u8], open: usize, until: usize) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut k = open + 1;
    let mut level = 0i32;
    let mut expect_key = true;
    while k < until {
        match out.get(k) {
            Some(b'"') => {
                let s = k;
                k += 1;
                while let Some(&c) = out.get(k) {
                    if c == b'\\' {
                        k += 2;
                        continue;
                    }
                    if c == b'"' {
                        break;
                    }
                    k += 1;
                }
                if level == 0 && expect_key {
                    ranges.push((s, k + 1));
                    expect_key = false;
                }
            }
            Some(b'{' | b'[') => level += 1,
            Some(b'}' | b']') => level -= 1,
            Some(b',') if level == 0 => expect_key = true,
            _ => {}
        }
        k += 1;
    }
    ranges
}

/// 64-bit FNV-1a: a cheap hash for object keys (duplicates only need noticing).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| (h ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// True when the number token `t` is an integer `serde_json` keeps as an integer (fits `u64`,
/// or `i64` when negative), so it prints as written.
fn plain_integer(t: &str) -> bool {
    if t.bytes().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        return false;
    }
    if t.starts_with('-') {
        t.parse::<i64>().is_ok() && t != "-0"
    } else {
        t.parse::<u64>().is_ok()
    }
}

/// Skips one value without looking inside (brackets and strings only): for [`Engine::survey`].
fn skim(q: &mut In<'_>) -> Option<()> {
    let mut level = 0usize;
    loop {
        q.ws();
        match q.peek()? {
            b'"' => {
                q.string().ok()?;
            }
            b'{' | b'[' => {
                level += 1;
                q.pos += 1;
            }
            b'}' | b']' => {
                level = level.checked_sub(1)?;
                q.pos += 1;
            }
            b',' | b':' if level > 0 => q.pos += 1,
            _ => {
                // A scalar: run to the next delimiter.
                while let Some(c) = q.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    q.pos += 1;
                }
            }
        }
        if level == 0 {
            return Some(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::test_rng::Rng;

    /// String texts (what lies between a token's quotes: no raw `"` or control character, as
    /// the scanner guarantees) of ASCII, non-ASCII characters and every kind of escape, valid
    /// and not: `\u` with bad hex, paired, lone and reversed surrogates, unknown escapes, a
    /// backslash at the end.
    fn gen_text(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "a", "key", " ", "{", "}", ":", ",", "é", "日本", "😀", "\u{7f}", "\\\"", "\\\\", "\\/", "\\b", "\\f",
            "\\n", "\\r", "\\t", "\\u0041", "\\u00e9", "\\u65E5", "\\u0000", "\\u001f", "\\ud83d\\ude00",
            "\\uD83D\\uDE00", "\\ud83d", "\\ude00", "\\ude00\\ud83d", "\\ud83d\\u0041", "\\ud83dx", "\\u12", "\\u12g4",
            "\\x", "\\'", "\\U0041", "\\",
        ];
        let mut s = String::new();
        for _ in 0..rng.below(12) {
            let piece = PIECES[rng.below(PIECES.len())];
            s.push_str(piece);
            if piece == "\\" {
                // A lone backslash only ends a text: before `"` it would make the quote raw.
                break;
            }
        }
        s
    }

    /// A string token's bounds and escapes flag, or the error and where.
    type Scanned = Result<(usize, usize, bool), (&'static str, usize)>;

    /// The string scanner before its word-at-a-time start: `memchr2` for the quote and
    /// backslashes, then one pass for control characters. The oracle for [`In::string`].
    fn string_oracle(b: &[u8], pos: usize) -> (Scanned, usize) {
        let start = pos + 1;
        let mut i = start;
        let mut esc = false;
        loop {
            let Some(rest) = b.get(i..) else { return (Err(("unterminated string", pos)), pos) };
            let Some(j) = memchr2(b'"', b'\\', rest) else { return (Err(("unterminated string", b.len())), b.len()) };
            i += j;
            if b.get(i) == Some(&b'"') {
                break;
            }
            esc = true;
            i += 2;
        }
        let raw = b.get(start..i).unwrap_or_default();
        if raw.iter().any(|&c| c < 0x20) {
            return (Err(("control character in string", start)), start);
        }
        (Ok((start, i, esc)), i + 1)
    }

    /// [`In::string`] finds the same end, escapes flag, error and error position as the
    /// oracle, on strings of every length around the word-at-a-time limit, with quotes,
    /// backslashes (also escaping a control character, and last in the text) and control
    /// characters anywhere, terminated or not, inside longer texts.
    #[test]
    fn string_scanner_equals_the_oracle_on_generated_tokens() {
        const BYTES: &[&str] = &["a", "b", " ", "é", "😀", "\"", "\\", "\\\"", "\\\\", "\n", "\u{1}", "\u{1f}", "\\\u{1}", "\u{7f}", ":"];
        let mut rng = Rng::new(0xD1B5_4A32_D192_ED03);
        let mut kinds = [0usize; 3];
        for _ in 0..100_000 {
            let mut text = String::from(if rng.below(2) == 0 { "\"" } else { "{\"" });
            let len = rng.below(150);
            for _ in 0..len {
                // Mostly plain bytes, so long strings and late specials are common.
                let piece = if rng.below(10) < 8 { "x" } else { BYTES[rng.below(BYTES.len())] };
                text.push_str(piece);
            }
            if rng.below(4) != 0 {
                text.push('"');
                text.push_str(&":1".repeat(rng.below(12)));
            }
            let open = text.find('"').unwrap_or(0);
            let mut p = In::new(&text, open);
            let got = p.string().map_err(|b| (b.what, b.at));
            let (want, pos) = string_oracle(text.as_bytes(), open);
            assert_eq!(got, want, "{text:?}");
            if got.is_ok() {
                assert_eq!(p.pos, pos, "{text:?}");
            }
            kinds[match want {
                Ok(_) => 0,
                Err(("unterminated string", _)) => 1,
                Err(_) => 2,
            }] += 1;
        }
        assert!(kinds.iter().all(|&k| k > 5_000), "{kinds:?}");
    }

    /// A string token's bounds and decoded text, or the error and where.
    type Decoded = Result<(usize, usize, String), (&'static str, usize)>;

    /// A string token read and decoded as the engine reads it: scanned by [`In::string_or`]
    /// with [`decode_from`] offered at the first backslash, then decoded by [`unescape`] when
    /// `decode_from` declined it (as [`Engine::string`] does).
    fn fused(text: &str, open: usize) -> (Decoded, usize) {
        let mut p = In::new(text, open);
        let b = p.b;
        let mut taken = None;
        let r = p.string_or(|start, clean, first| {
            let mut v = Vec::from("left over");
            let end = decode_from(b, start, clean, first, &mut v);
            taken = Some(v);
            end
        });
        let res = match r {
            Err(bad) => Err((bad.what, bad.at)),
            Ok((s, e, _, true)) => match taken.map(String::from_utf8) {
                Some(Ok(v)) => Ok((s, e, v)),
                _ => Err(("invalid UTF-8 in string", s)),
            },
            Ok((s, e, esc, false)) => {
                let mut out = String::new();
                if !esc {
                    out.push_str(p.text(s, e));
                    Ok((s, e, out))
                } else {
                    match unescape(p.text(s, e), &mut out) {
                        Ok(()) => Ok((s, e, out)),
                        Err(what) => Err((what, s)),
                    }
                }
            }
        };
        (res, p.pos)
    }

    /// The one-pass read and decode ([`decode_from`] through [`In::string_or`]) finds the same
    /// end, the same decoded text, the same error at the same byte and leaves the cursor where
    /// the two passes it replaced ([`In::string`], then [`unescape`]) do, on generated tokens:
    /// every kind of escape, valid and not, raw control characters and quotes, runs long
    /// enough to pass the word-at-a-time window, terminated or not.
    #[test]
    fn one_pass_decode_equals_scan_then_unescape() {
        const RAW: &[&str] = &["\n", "\u{1}", "\u{1f}", "\"", "x", "é"];
        const VALID: &[&str] = &["\\\"", "\\\\", "\\/", "\\n", "\\t", "\\u00e9", "\\u003c", "\\ud83d\\ude00", "ab", "日本", "\\\"k\\\":"];
        let mut rng = Rng::new(0x6A09_E667_F3BC_C908);
        let mut kinds = [0usize; 3];
        for _ in 0..100_000 {
            let mut text = String::from(if rng.below(2) == 0 { "\"" } else { "{\"" });
            for _ in 0..rng.below(10) {
                match rng.below(16) {
                    0..=3 => text.push_str(&"x".repeat(rng.below(80))),
                    4 => text.push_str(RAW[rng.below(RAW.len())]),
                    5..=12 => text.push_str(VALID[rng.below(VALID.len())]),
                    _ => {
                        let piece = gen_text(&mut rng);
                        text.push_str(&piece);
                        if piece.ends_with('\\') && !piece.ends_with("\\\\") {
                            break;
                        }
                    }
                }
            }
            if rng.below(5) != 0 {
                text.push('"');
                text.push_str(&",1".repeat(rng.below(4)));
            }
            let open = text.find('"').unwrap_or(0);
            let (got, got_pos) = fused(&text, open);
            let mut p = In::new(&text, open);
            let want = match p.string() {
                Err(bad) => Err((bad.what, bad.at)),
                Ok((s, e, esc)) => {
                    let mut out = String::new();
                    if esc {
                        unescape(p.text(s, e), &mut out).map(|()| (s, e, out)).map_err(|what| (what, s))
                    } else {
                        out.push_str(p.text(s, e));
                        Ok((s, e, out))
                    }
                }
            };
            assert_eq!(got, want, "{text:?}");
            if want.is_ok() {
                assert_eq!(got_pos, p.pos, "{text:?}");
            }
            kinds[match &want {
                Ok((s, e, out)) if out.as_str() != &text[*s..*e] => 0,
                Ok(_) => 1,
                Err(_) => 2,
            }] += 1;
        }
        assert!(kinds.iter().all(|&k| k > 5_000), "{kinds:?}");
    }

    /// [`quote`] (its escape table, [`SHORT_ESCAPE`]) writes every ASCII character, alone and
    /// between others, as `serde_json` writes it.
    #[test]
    fn quote_writes_every_ascii_character_as_serde_json_does() {
        for c in (0u8..0x80).map(char::from) {
            for text in [c.to_string(), format!("ab{c}"), format!("{c}{c}abcdefgh{c}")] {
                let mut out = Vec::new();
                quote(text.as_bytes(), &mut out);
                let want = serde_json::to_string(&text).unwrap_or_default();
                assert_eq!(String::from_utf8_lossy(&out), want, "{text:?}");
            }
        }
    }

    /// `unescape` decodes exactly what `serde_json` decodes, and refuses exactly what it refuses.
    #[test]
    fn unescape_equals_serde_json_on_generated_strings() {
        let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
        let mut out = String::from("left over");
        let (mut ok, mut bad) = (0usize, 0usize);
        for _ in 0..50_000 {
            let text = gen_text(&mut rng);
            let want = serde_json::from_str::<String>(&format!("\"{text}\"")).ok();
            let got = unescape(&text, &mut out).ok().map(|()| out.clone());
            assert_eq!(got, want, "{text:?}");
            if want.is_some() {
                ok += 1;
            } else {
                bad += 1;
            }
        }
        assert!(ok > 5_000 && bad > 5_000, "{ok} decoded, {bad} refused");
    }
}
