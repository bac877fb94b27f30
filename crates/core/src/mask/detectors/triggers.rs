//! The trigger pass: which secret rules a text can wake, from the trigger literals it holds.
//!
//! Every rule names literals (`AKIA`, `ghp_`, `password`, `-----BEGIN`, ...) of which one must
//! occur, ASCII case-insensitively, for the rule to match; one Aho-Corasick DFA over all of
//! them answers, in one pass, which rules need to run.
//!
//! Why a table of our own: only the union of the woken rules is needed, not each match, and
//! this pass reads every byte of every string. The crate builds the automaton (trie, failure
//! links, case folding, byte classes); we copy its transitions into a table laid out for one
//! loop — states premultiplied by the class count, match states numbered last so one compare
//! tells them apart, each match state carrying the union of the rules its patterns wake, and
//! a fixed power-of-two size so the lookup needs no bounds check. The crate's overlapping
//! iterator, which keeps per-match search state and returns to its caller for every match,
//! cost ~14 instructions per byte; this loop costs about half.

use std::collections::HashMap;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

use super::secrets::Rule;
use super::RuleSet;

/// Bits of a table index: states × classes must stay below `1 << TABLE_BITS` (checked at
/// build; ~1,400 states × ~50 classes today, a quarter of it).
const TABLE_BITS: u32 = 18;
const TABLE_MASK: usize = (1 << TABLE_BITS) - 1;

#[derive(Debug)]
pub struct Triggers {
    /// `next[state + class]`: states are premultiplied by `classes`, the start state is 0.
    next: Box<[u32; 1 << TABLE_BITS]>,
    /// The byte class of every byte.
    class: [u8; 256],
    /// States at or above this are match states.
    first_match: u32,
    /// The class count: the distance between two states.
    classes: u32,
    /// For each match state, in order, the union of the rules its patterns wake.
    woken: Vec<RuleSet>,
    /// The longest trigger, in bytes: how far before its half a second walker must start.
    longest: usize,
}

/// Texts at least this long are walked as two halves at once ([`Triggers::fired`]).
const SPLIT_AT: usize = 96;

impl Triggers {
    pub fn build(rules: &[Rule]) -> Result<Triggers, String> {
        let (patterns, rules_of) = patterns(rules);
        // Standard semantics: every match state lists every pattern ending there (a trigger
        // inside another, `sk-` in `sk-ant-`, included).
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(&patterns)
            .map_err(|e| format!("masking triggers do not compile: {e}"))?;
        let start = dfa.start_state(Anchored::No).map_err(|e| format!("masking triggers have no start state: {e}"))?;
        let step = |s: StateID, b: u8| dfa.next_state(Anchored::No, s, b);

        // Every state an unanchored search can reach, start first.
        let mut states = vec![start];
        let mut index: HashMap<StateID, usize> = HashMap::from([(start, 0)]);
        let mut i = 0;
        while let Some(&s) = states.get(i) {
            for b in 0..=255u8 {
                let n = step(s, b);
                if let std::collections::hash_map::Entry::Vacant(e) = index.entry(n) {
                    e.insert(states.len());
                    states.push(n);
                }
            }
            i += 1;
        }
        if states.iter().any(|&s| dfa.is_dead(s) || s == start && dfa.is_match(s)) {
            return Err("masking triggers: an empty trigger or a dead state".into());
        }
        // Byte classes: bytes with the same transition from every state.
        let mut class = [0u8; 256];
        let mut columns: HashMap<Vec<StateID>, u8> = HashMap::new();
        for b in 0..=255u8 {
            let column: Vec<StateID> = states.iter().map(|&s| step(s, b)).collect();
            let n = columns.len();
            let c = *columns.entry(column).or_insert_with(|| u8::try_from(n).unwrap_or(u8::MAX));
            class[usize::from(b)] = c;
        }
        let classes = columns.len();
        // Our numbering: non-match states first (start at 0), then match states.
        let (plain, matching): (Vec<StateID>, Vec<StateID>) = states.iter().partition(|&&s| !dfa.is_match(s));
        let order: Vec<StateID> = plain.iter().chain(matching.iter()).copied().collect();
        if classes > 256 || order.len() * classes > TABLE_MASK + 1 || order.first() != Some(&start) {
            return Err(format!("masking triggers: {} states of {classes} classes do not fit the table", order.len()));
        }
        let id: HashMap<StateID, u32> =
            order.iter().enumerate().map(|(k, &s)| (s, (k * classes) as u32)).collect();
        let mut next: Box<[u32; 1 << TABLE_BITS]> = vec![0u32; 1 << TABLE_BITS]
            .into_boxed_slice()
            .try_into()
            .map_err(|_| "masking triggers: table size".to_string())?;
        for (k, &s) in order.iter().enumerate() {
            for b in 0..=255u8 {
                let at = k * classes + usize::from(class[usize::from(b)]);
                if let (Some(slot), Some(&to)) = (next.get_mut(at), id.get(&step(s, b))) {
                    *slot = to;
                }
            }
        }
        let woken = matching
            .iter()
            .map(|&s| {
                let mut w = RuleSet::default();
                for i in 0..dfa.match_len(s) {
                    if let Some(r) = rules_of.get(dfa.match_pattern(s, i).as_usize()) {
                        w.union(r);
                    }
                }
                w
            })
            .collect();
        let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(1);
        Ok(Triggers { next, class, first_match: (plain.len() * classes) as u32, classes: classes as u32, woken, longest })
    }

    /// The rules woken by the triggers occurring in `b`: the union over every occurrence of
    /// every trigger, overlapping ones included.
    /// The rules `text` wakes through look-alikes only: under `(?i)` the rules' regexes also
    /// accept the two non-ASCII characters Unicode folds to ASCII letters (the Kelvin sign
    /// `\u{212A}` for `k`, the long s `\u{17F}` for `s`), which [`Triggers::fired`]'s ASCII
    /// pass cannot see; a text holding one is passed again with them folded. For texts with a
    /// non-ASCII byte only (the gate's `HIGH`), so ASCII text pays nothing.
    pub fn fired_by_lookalikes(&self, text: &str) -> RuleSet {
        if !text.contains(['\u{212A}', '\u{17F}']) {
            return RuleSet::default();
        }
        self.fired(text.replace('\u{212A}', "k").replace('\u{17F}', "s").as_bytes())
    }

    pub fn fired(&self, b: &[u8]) -> RuleSet {
        if b.len() < SPLIT_AT {
            let mut fire = RuleSet::default();
            let mut sid = 0u32;
            for &c in b {
                sid = self.step(sid, c, &mut fire);
            }
            return fire;
        }
        // Each byte's step waits for the last one's table load, so one walker runs at the
        // latency of a load per byte. Two walkers over the two halves, stepped in turn, keep two
        // loads in flight. The second starts `longest - 1` bytes before its half, so every
        // occurrence ending in its half lies wholly inside what it walks, and a walker started
        // from the start state reports exactly the occurrences that begin after its start.
        let mid = b.len() / 2;
        let (lo, hi) = (&b[..mid], &b[mid - (self.longest - 1).min(mid)..]);
        let (mut fire_lo, mut fire_hi) = (RuleSet::default(), RuleSet::default());
        let (mut s_lo, mut s_hi) = (0u32, 0u32);
        for (&x, &y) in lo.iter().zip(hi) {
            s_lo = self.step(s_lo, x, &mut fire_lo);
            s_hi = self.step(s_hi, y, &mut fire_hi);
        }
        for &y in hi.get(lo.len()..).unwrap_or_default() {
            s_hi = self.step(s_hi, y, &mut fire_hi);
        }
        fire_lo.union(&fire_hi);
        fire_lo
    }

    /// One byte of a walk: the next state, and the rules its matches wake added to `fire`.
    #[inline(always)]
    fn step(&self, sid: u32, c: u8, fire: &mut RuleSet) -> u32 {
        let sid = self.next[(sid as usize + usize::from(self.class[usize::from(c)])) & TABLE_MASK];
        if sid >= self.first_match {
            if let Some(w) = self.woken.get(((sid - self.first_match) / self.classes) as usize) {
                fire.union(w);
            }
        }
        sid
    }
}

fn patterns(rules: &[Rule]) -> (Vec<&'static str>, Vec<RuleSet>) {
    let mut patterns: Vec<&'static str> = Vec::new();
    let mut rules_of: Vec<RuleSet> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for t in rule.triggers {
            match patterns.iter().position(|p| p.eq_ignore_ascii_case(t)) {
                Some(j) => {
                    if let Some(r) = rules_of.get_mut(j) {
                        r.set(i);
                    }
                }
                None => {
                    let mut s = RuleSet::default();
                    s.set(i);
                    patterns.push(t);
                    rules_of.push(s);
                }
            }
        }
    }
    (patterns, rules_of)
}

#[cfg(test)]
mod tests {
    use aho_corasick::AhoCorasick;

    use super::*;
    use crate::mask::detectors::secrets;

    /// The reference: the crate's own overlapping iterator over the same patterns.
    fn reference(ac: &AhoCorasick, rules_of: &[RuleSet], b: &[u8]) -> RuleSet {
        let mut fire = RuleSet::default();
        for m in ac.find_overlapping_iter(b) {
            fire.union(&rules_of[m.pattern().as_usize()]);
        }
        fire
    }

    /// Texts built of trigger literals in random case (whole, cut short, glued together, at
    /// either edge, inside one another) and filler bytes, ASCII and not.
    fn texts(patterns: &[&str]) -> Vec<Vec<u8>> {
        let filler: &[&[u8]] = &[b" ", b"a", b"Z", b"_", b"-", b".", b":", b"\n", b"9", "é".as_bytes(), b"\xff", b"\""];
        let mut rng = crate::mask::test_rng::Rng::new(0x2545_f491_4f6c_dd1d);
        let mut out: Vec<Vec<u8>> = vec![Vec::new()];
        for p in patterns {
            out.push(p.as_bytes().to_vec());
            out.push(p.to_ascii_uppercase().into_bytes());
        }
        for _ in 0..20_000 {
            let mut t = Vec::new();
            for _ in 0..1 + rng.below(6) {
                if rng.below(3) == 0 {
                    t.extend_from_slice(filler[rng.below(filler.len())]);
                    continue;
                }
                let p = patterns[rng.below(patterns.len())].as_bytes();
                // Whole most of the time; cut short (a near miss) otherwise.
                let keep = if rng.below(4) == 0 { rng.below(p.len() + 1) } else { p.len() };
                for &c in &p[..keep] {
                    t.push(if rng.below(2) == 0 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() });
                }
            }
            out.push(t);
        }
        out
    }

    /// Removing the per-pattern loop, the match test or the union makes this fail: the rules
    /// the loop wakes are exactly those the crate's overlapping iterator reports.
    /// Every trigger written with the look-alikes the regexes accept for its `k`s and `s`s
    /// (all of them, and each alone) still wakes its rule, inside other text too.
    #[test]
    fn lookalike_spellings_of_a_trigger_wake_its_rule() {
        let rules = secrets::rules().unwrap_or_else(|e| unreachable!("{e}"));
        let triggers = Triggers::build(&rules).unwrap_or_else(|e| unreachable!("{e}"));
        let mut tried = 0;
        for (i, rule) in rules.iter().enumerate() {
            for t in rule.triggers {
                let spots: Vec<usize> = t.char_indices().filter(|(_, c)| matches!(c, 'k' | 'K' | 's' | 'S')).map(|(p, _)| p).collect();
                let variants = spots.iter().map(|&p| vec![p]).chain(std::iter::once(spots.clone())).filter(|v| !v.is_empty());
                for at in variants {
                    let spelled: String = t
                        .char_indices()
                        .map(|(p, c)| match c {
                            'k' | 'K' if at.contains(&p) => '\u{212A}',
                            's' | 'S' if at.contains(&p) => '\u{17F}',
                            c => c,
                        })
                        .collect();
                    let text = format!("é {spelled} x");
                    assert!(triggers.fired_by_lookalikes(&text).has(i), "rule {i} ({}) not woken by {text:?}", rule.detector.name());
                    tried += 1;
                }
            }
        }
        assert!(tried > 100, "{tried}");
    }

    /// The rules, their trigger pass, its patterns with the rules each wakes, and the crate's own
    /// overlapping automaton over the same patterns (the reference).
    fn built() -> (Vec<secrets::Rule>, Triggers, Vec<&'static str>, Vec<RuleSet>, AhoCorasick) {
        let rules = secrets::rules().unwrap_or_else(|e| unreachable!("{e}"));
        let triggers = Triggers::build(&rules).unwrap_or_else(|e| unreachable!("{e}"));
        let (patterns, rules_of) = patterns(&rules);
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .unwrap_or_else(|e| unreachable!("{e}"));
        (rules, triggers, patterns, rules_of, ac)
    }

    /// Texts long enough to be walked in two halves, with triggers at every offset around the
    /// midpoint (straddling it, ending on it, starting on it) as well as anywhere else: cutting
    /// the second walker's overlap short by one byte makes this fail.
    #[test]
    fn split_walks_find_what_one_walk_finds() {
        let (_, triggers, patterns, rules_of, ac) = built();
        let mut rng = crate::mask::test_rng::Rng::new(0x9e37_79b9_7f4a_7c15);
        let filler = |rng: &mut crate::mask::test_rng::Rng, len: usize| -> Vec<u8> { (0..len).map(|_| b"ab xyz.-_9"[rng.below(10)]).collect() };
        let check = |t: &[u8]| assert_eq!(triggers.fired(t), reference(&ac, &rules_of, t), "{:?}", String::from_utf8_lossy(t));
        // Every trigger with its last byte just before, on and just after the midpoint, and
        // starting on it.
        let mut straddled = 0;
        for p in &patterns {
            let p = p.as_bytes();
            for len in [SPLIT_AT, SPLIT_AT + 1, 301] {
                let mid = len / 2;
                assert!(p.len() < mid, "a trigger longer than half of SPLIT_AT: raise it");
                for at in [mid - p.len(), mid + 1 - p.len(), mid + 2 - p.len(), mid] {
                    let mut t = filler(&mut rng, len);
                    t[at..at + p.len()].copy_from_slice(p);
                    straddled += usize::from(at < mid && at + p.len() > mid);
                    check(&t);
                }
            }
        }
        // And anywhere, in texts of any length past the split.
        for _ in 0..5_000 {
            let len = SPLIT_AT + rng.below(400);
            let mut t = filler(&mut rng, len);
            let p = patterns[rng.below(patterns.len())].as_bytes();
            let at = rng.below(len);
            let end = (at + p.len()).min(len);
            t[at..end].copy_from_slice(&p[..end - at]);
            check(&t);
        }
        assert!(straddled > patterns.len(), "{straddled}");
    }

    #[test]
    fn fired_is_the_union_of_every_overlapping_match() {
        let (rules, triggers, patterns, rules_of, ac) = built();
        let mut woken = 0;
        for t in texts(&patterns) {
            let want = reference(&ac, &rules_of, &t);
            assert_eq!(triggers.fired(&t), want, "{:?}", String::from_utf8_lossy(&t));
            woken += usize::from(!want.is_empty());
        }
        // The generated texts do wake rules (most of them), so the comparison is not vacuous.
        assert!(woken > 15_000, "{woken}");
        // A trigger inside another wakes both rules: `sk-ant-` is also `sk-`.
        let both = triggers.fired(b"key sk-ant-api03-x");
        let rule = |d: super::super::Detector| rules.iter().position(|r| r.detector == d).unwrap_or(usize::MAX);
        assert!(both.has(rule(super::super::Detector::AnthropicApiKey)));
        assert!(both.has(rule(super::super::Detector::OpenaiApiKey)));
    }
}
