//! What masking one text gave, remembered for the rest of the document.
//!
//! Agent traces repeat themselves: every model call's span carries the conversation so far, so
//! the system prompt, earlier turns and tool results come back again and again, and every span
//! repeats the same attribute keys. On the labeled corpus's ~100 KB traces nine texts in ten
//! (three quarters of the scanned bytes) are exact repeats of a text seen earlier in the same
//! document. Masking a text is a pure function of the text, the role's masker and the
//! document's operators (no detector or operator keeps state between texts), so the answer for
//! a repeat is the first answer: the same output and the same detections, which the caller
//! still logs under the repeat's own path.
//!
//! Bounded: at most [`BUDGET`] bytes of texts and answers (with a per-entry overhead counted),
//! and no text longer than [`MAX_TEXT`] is kept. A full memo keeps what it has and learns
//! nothing more, so a document of all-distinct texts costs one lookup per text and no more
//! memory. Entries are compared by their whole text, never by hash alone, and the hasher is
//! `ahash` keyed from the OS's random source per memo (fast on short texts, which most are; the
//! standard library's SipHash cost a tenth of the realistic trace's time), so a document
//! cannot be built to make its texts collide.
//! One memo lives for one document (one [`super::walk::Cx`]): nothing is shared between
//! requests, roles or callers.

use super::detectors::Detector;
use super::operators::Op;

/// Bytes of texts, answers and detections the memo may hold per document.
pub const BUDGET: usize = 64 * 1024;
/// Longest text remembered.
pub const MAX_TEXT: usize = BUDGET / 16;
/// Bytes counted per entry beyond its texts: the map slot, the boxes' headers.
const OVERHEAD: usize = 64;

/// The remembered answer for one text.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    Keep,
    /// The masked text, and the detections that masked it (in the order they were logged).
    Replace(Box<str>, Box<[(Detector, Op)]>),
    /// The text's member or element goes, for these detections.
    Drop(Box<[(Detector, Op)]>),
}

#[cfg(test)]
thread_local! {
    /// Set by tests that compare the memo's answers with fresh scans.
    pub(super) static OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[derive(Debug, Default)]
pub(super) struct Memo {
    /// A table rather than a map, so a text is hashed once for its lookup and its insertion.
    table: hashbrown::HashTable<(Box<str>, Answer)>,
    hasher: ahash::RandomState,
    used: usize,
}

impl Memo {
    /// The answer remembered for `text`, if any, and the text's hash for [`Memo::remember`].
    pub(super) fn get(&self, text: &str) -> (u64, Option<&Answer>) {
        if text.len() > MAX_TEXT {
            return (0, None);
        }
        let hash = self.hasher.hash_one(text);
        #[cfg(test)]
        if OFF.with(std::cell::Cell::get) {
            return (hash, None);
        }
        (hash, self.table.find(hash, |(k, _)| **k == *text).map(|(_, a)| a))
    }

    /// Remembers `answer` for `text` (whose hash [`Memo::get`] gave), if it fits.
    pub(super) fn remember(&mut self, text: &str, hash: u64, answer: Answer) {
        if text.len() > MAX_TEXT {
            return;
        }
        let size = text.len()
            + OVERHEAD
            + match &answer {
                Answer::Keep => 0,
                Answer::Replace(s, hits) => s.len() + hits.len() * 2,
                Answer::Drop(hits) => hits.len() * 2,
            };
        if self.used + size > BUDGET {
            return;
        }
        self.used += size;
        let hasher = &self.hasher;
        self.table.insert_unique(hash, (text.into(), answer), |(k, _)| hasher.hash_one(&**k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memo_learns_nothing_more_and_keeps_what_it_has() {
        let mut m = Memo::default();
        let long = "x".repeat(MAX_TEXT + 1);
        m.remember(&long, 0, Answer::Keep);
        assert!(m.get(&long).1.is_none(), "a text past MAX_TEXT is not kept");
        let mut n = 0usize;
        loop {
            let before = m.used;
            let t = format!("{n:0100}");
            let (h, _) = m.get(&t);
            m.remember(&t, h, Answer::Keep);
            if m.used == before {
                break;
            }
            n += 1;
        }
        assert!(m.used <= BUDGET && n == BUDGET / (100 + OVERHEAD), "{} bytes, {n} texts", m.used);
        assert!(m.get(&format!("{n:0100}")).1.is_none(), "nothing is learnt past the budget");
        assert!(m.get(&format!("{:0100}", 0)).1.is_some(), "what was learnt stays");
        assert!(m.get(&format!("{:0100}", n - 1)).1.is_some());
    }
}
