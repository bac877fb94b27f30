//! Secret rules: one regex per credential format, woken up by trigger literals.
//!
//! The formats are public facts about each vendor's tokens (prefixes, alphabets, lengths),
//! expressed here in our own patterns. A rule either masks its whole match or, when the match
//! includes context such as `password=`, only its capture group(s): the first unnamed group that
//! took part in the match is the secret.
//!
//! Long bounded repeats are written relaxed, `{m,N~}`: the rule runs `{m,}` and counts after the
//! match (see [`relax`]), because `N` copies of a class, Unicode or case-folded, made the
//! context rules' automata (and the visited set the capture search clears per match) large.
//! Classes that only mean ASCII are written `(?-u:…)` under `(?i)`, so case folding does not add
//! the Kelvin sign and the long s to every copy.
//!
//! A woken rule searches a long text only where a match can start: in the window before each
//! occurrence of one of its triggers, as wide as its syntax tree lets a match run before the
//! trigger it holds ([`Near`]), and finds exactly what a search of the whole text finds.

use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{meta, Anchored, Input, MatchKind, PatternID};
use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind};

use super::{Detector, Span};
use crate::mask::validate::looks_random;

/// After-the-fact checks that keep keyword-driven rules off ordinary words.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    None,
    /// Letters and digits mixed, entropy at least this many bits per byte.
    Random(f64),
    /// A credential rather than a word: has a digit or a symbol, or is at least this long.
    TokenLike(usize),
    /// Not a literal placeholder such as `null` or `true`.
    NotPlaceholder,
    /// A validator over the secret's bytes (checksums, password shape, ...).
    Valid(fn(&[u8]) -> bool),
}

/// One rule as written: detector, trigger literals, pattern, check, bounded.
pub type Spec = (Detector, &'static [&'static str], String, Check, bool);

/// Capture slots of one search, kept on the stack (two per group; every rule fits, checked
/// when it is compiled), so a search allocates nothing.
const SLOTS: usize = 32;

/// The most bytes a match may run before the trigger it holds for the trigger-window search
/// to be used (a larger one makes the window regex large and saves little).
const MAX_LEAD: usize = 64;

#[derive(Debug)]
pub struct Rule {
    pub detector: Detector,
    pub triggers: &'static [&'static str],
    /// The pattern with its relaxed repeats (`{m,N~}` written, `{m,}` compiled): what runs.
    re: meta::Regex,
    /// The pattern as counted (`{m,N}`), when some repeat is relaxed: run only from a match of
    /// `re` whose captures are longer than `limit` characters, which is the only case where
    /// the two can disagree.
    exact: Option<meta::Regex>,
    /// The smallest upper bound of a relaxed repeat, in characters.
    limit: usize,
    /// Where `re`'s next match can start, from the triggers in the text (see [`Near`]);
    /// `None` when the pattern does not bound how far a match runs before its trigger.
    near: Option<Near>,
    /// Capture groups that can hold the secret (unnamed ones; named groups only carry a
    /// relaxed repeat for the `limit` test), in order: the first that took part is the secret
    /// (the whole match, group 0, when the pattern has no groups).
    secret_groups: Vec<usize>,
    check: Check,
    /// The byte after the secret must not continue the token (so `{40}` does not cut a longer word).
    bounded: bool,
}

/// The trigger-window search: a rule is woken when one of its triggers occurs anywhere in a
/// text, but its match holds that trigger, and for most patterns no match runs more than
/// `lead` bytes before the trigger it holds. So the search for the next match need not scan
/// the whole text: only the `lead` bytes before each trigger occurrence can start a match.
///
/// Why: the unanchored search reads every byte of the text from where it starts, ~9
/// instructions a byte, and a woken rule usually does not match (`key: value` in prose,
/// `input_tokens`); finding the triggers and asking, anchored, whether a match starts in
/// the window before each one reads a few dozen bytes per occurrence instead.
///
/// Exactness: `lead` is derived from the pattern's syntax tree ([`lead`]) and the triggers are
/// found with the same Unicode case folding the pattern uses (`(?i)` lets `k` be the Kelvin
/// sign), so every match starts in some window. The first window holding a match start holds
/// the leftmost one, and from there the ordinary search finds the very match the unanchored
/// search from the current position finds (look-around sees the whole text either way).
#[derive(Debug)]
struct Near {
    /// Finds the first characters of every trigger, spelled every way `(?i)` folds them
    /// (leftmost-first, so each search from a point finds the next start): a superset of
    /// the trigger starts, which only costs a window more.
    finder: aho_corasick::packed::Searcher,
    /// `(?s:.){0,lead}?(?:pattern)`, run anchored: does a match start within `lead` bytes?
    start: meta::Regex,
    lead: usize,
}

/// Token bytes for the `bounded` test.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=')
}

/// Splits a pattern with relaxed repeats into the pattern to run (`{m,}`), the exact pattern
/// (`{m,N}`) and the smallest `N`; `None` when nothing is relaxed.
///
/// Why: a counted repeat of `N` copies of a class is `N` copies of its automaton, and the
/// capture search clears a visited set the size of the automaton for every match. Counting
/// after the match is the same language on every match short enough, so the exact pattern
/// runs only on the rare longer one. Every relaxed repeat must sit inside a capture group
/// (named when it is not the secret), so that its length bounds the repeat's count.
fn relax(pattern: &str) -> Option<(String, String, usize)> {
    if !pattern.contains("~}") {
        return None;
    }
    let (mut fast, mut exact, mut limit) = (String::new(), String::new(), usize::MAX);
    let mut rest = pattern;
    while let Some(end) = rest.find("~}") {
        let open = rest[..end].rfind('{')?;
        let (min, max) = rest[open + 1..end].split_once(',')?;
        let max: usize = max.parse().ok()?;
        if min.parse::<usize>().is_err() {
            return None;
        }
        limit = limit.min(max);
        fast.push_str(&rest[..open]);
        fast.push_str(&format!("{{{min},}}"));
        exact.push_str(&rest[..end]);
        exact.push('}');
        rest = &rest[end + 2..];
    }
    fast.push_str(rest);
    exact.push_str(rest);
    Some((fast, exact, limit))
}

/// Compiles as `regex::Regex::new` does (leftmost-first, no empty match inside a UTF-8
/// character, the same size limits), so the rules match exactly as they did with it.
fn compile(pattern: &str) -> Result<meta::Regex, String> {
    let config = meta::Config::new()
        .match_kind(MatchKind::LeftmostFirst)
        .utf8_empty(true)
        .nfa_size_limit(Some(10 * (1 << 20)))
        .hybrid_cache_capacity(2 * (1 << 20));
    meta::Builder::new().configure(config).build(pattern).map_err(|e| e.to_string())
}

/// The shortest text searched by trigger windows: on a shorter one, finding the triggers and
/// testing each window costs more than scanning it.
const WINDOWED_TEXT: usize = 128;

/// Most trigger windows tested in one text before the rest is searched whole.
const MAX_WINDOWS: usize = 16;

/// Most character combinations a run of classes may spell for [`lead`] to check each one.
const MAX_SPELLINGS: usize = 64;

/// The trigger characters the finder looks for: enough to be rare in prose, few enough that
/// their spellings fit one SIMD searcher.
const NEEDLE_CHARS: usize = 3;

/// Most alternation branches [`lead`] follows into the rest of a concatenation.
const MAX_BRANCHES: usize = 4096;

/// One step of a flattened concatenation: a character from a set, or a sub-pattern.
enum Unit<'h> {
    Char(ClassUnicode),
    Other(&'h Hir),
}

impl Unit<'_> {
    fn max_len(&self) -> Option<usize> {
        match self {
            Unit::Char(c) => c.ranges().last().map(|r| r.end().len_utf8()),
            Unit::Other(h) => h.properties().maximum_len(),
        }
    }
}

fn unit<'h>(h: &'h Hir, out: &mut Vec<Unit<'h>>) {
    match h.kind() {
        HirKind::Literal(l) => match std::str::from_utf8(&l.0) {
            Ok(s) => out.extend(s.chars().map(|c| Unit::Char(ClassUnicode::new([ClassUnicodeRange::new(c, c)])))),
            Err(_) => out.push(Unit::Other(h)),
        },
        HirKind::Class(Class::Unicode(c)) => out.push(Unit::Char(c.clone())),
        HirKind::Class(Class::Bytes(b)) => match b.to_unicode_class() {
            Some(c) => out.push(Unit::Char(c)),
            None => out.push(Unit::Other(h)),
        },
        _ => out.push(Unit::Other(h)),
    }
}

/// A trigger as its characters' case-folding classes: what `(?i)` lets each one be.
type Folded = Vec<ClassUnicode>;

/// True when every string the character sets in `run` spell is some trigger (each character
/// within the trigger's class for it): each set within one trigger's classes, or each of at
/// most [`MAX_SPELLINGS`] spellings (`gh[pousr]_`) a trigger.
fn spells_triggers(run: &[&ClassUnicode], folds: &[Folded]) -> bool {
    // One trigger whose classes hold the sets, as `(?i)` writes them: no need to spell.
    let within = |c: &ClassUnicode, f: &ClassUnicode| {
        let mut rest = c.clone();
        rest.difference(f);
        rest.ranges().is_empty()
    };
    if folds.iter().any(|t| t.len() == run.len() && t.iter().zip(run).all(|(f, c)| within(c, f))) {
        return true;
    }
    let mut count = 1usize;
    for c in run {
        let n: usize = c.ranges().iter().map(|r| (r.end() as usize).saturating_sub(r.start() as usize) + 1).sum();
        count = count.saturating_mul(n);
    }
    if count > MAX_SPELLINGS {
        return false;
    }
    let sets: Vec<Vec<char>> = run.iter().map(|c| c.iter().flat_map(|r| r.start()..=r.end()).collect()).collect();
    let mut pick = vec![0usize; run.len()];
    loop {
        let word: Vec<char> = pick.iter().zip(&sets).filter_map(|(&k, s)| s.get(k).copied()).collect();
        let is_trigger = folds.iter().any(|t| {
            t.len() == word.len() && t.iter().zip(&word).all(|(f, &c)| f.iter().any(|r| r.start() <= c && c <= r.end()))
        });
        if !is_trigger {
            return false;
        }
        // The next combination, last position fastest.
        let mut i = run.len();
        loop {
            if i == 0 {
                return true;
            }
            i -= 1;
            if let (Some(k), Some(s)) = (pick.get_mut(i), sets.get(i)) {
                *k += 1;
                if *k < s.len() {
                    break;
                }
                *k = 0;
            }
        }
    }
}

/// The most UTF-8 bytes a match of the concatenation `seq` runs before the start of a trigger
/// it is sure to hold, or `None` when some match may hold none that this can see.
///
/// Conservative by construction: a run of character sets counts only when every string it
/// spells is a trigger as `(?i)` folds it; a repeat counts with at least one copy; an
/// alternation (or an optional part, `x?`: with and without it) counts when every branch,
/// followed by the rest of the concatenation, does (at most [`MAX_BRANCHES`] branches
/// followed); every earlier part adds its longest
/// length, and a part of unbounded length ends the search.
fn lead(seq: &[&Hir], folds: &[Folded], branches: &mut usize) -> Option<usize> {
    let longest = folds.iter().map(Vec::len).max().unwrap_or(0);
    let mut units: Vec<Unit<'_>> = Vec::new();
    // The leaves flattened into `units`, and what is left to flatten (in reverse).
    let mut done: Vec<&Hir> = Vec::new();
    let mut rest: Vec<&Hir> = seq.iter().rev().copied().collect();
    // The branches to follow (`None`: an optional part left out).
    let mut fork: Option<Vec<Option<&Hir>>> = None;
    while let Some(h) = rest.pop() {
        let bounded = units.iter().all(|u| u.max_len().is_some());
        match h.kind() {
            HirKind::Concat(hs) => rest.extend(hs.iter().rev()),
            HirKind::Capture(c) => rest.push(&c.sub),
            HirKind::Alternation(bs) if bounded => {
                fork = Some(bs.iter().map(Some).collect());
                break;
            }
            HirKind::Repetition(r) if bounded && r.min == 0 && r.max == Some(1) => {
                fork = Some(vec![Some(&*r.sub), None]);
                break;
            }
            _ => {
                done.push(h);
                unit(h, &mut units);
            }
        }
    }
    let mut best: Option<usize> = None;
    let mut offset = 0usize;
    for (i, u) in units.iter().enumerate() {
        let here = match u {
            Unit::Char(_) => (1..=longest.min(units.len() - i))
                .any(|k| {
                    let run: Option<Vec<&ClassUnicode>> =
                        units.get(i..i + k).map(|r| r.iter().map_while(|u| if let Unit::Char(c) = u { Some(c) } else { None }).collect());
                    run.is_some_and(|run| run.len() == k && spells_triggers(&run, folds))
                })
                .then_some(offset),
            Unit::Other(h) => match h.kind() {
                HirKind::Repetition(r) if r.min >= 1 => lead(&[&r.sub], folds, branches).map(|l| offset + l),
                _ => None,
            },
        };
        if let Some(l) = here {
            best = Some(best.map_or(l, |b| b.min(l)));
            break;
        }
        match u.max_len() {
            Some(n) => offset += n,
            None => return best,
        }
    }
    if best.is_some() {
        return best;
    }
    let bs = fork?;
    let mut worst = 0;
    for b in bs {
        *branches = branches.checked_sub(1)?;
        // The leaves before the alternation, this branch, then what follows it.
        let seq: Vec<&Hir> = done.iter().copied().chain(b).chain(rest.iter().rev().copied()).collect();
        worst = worst.max(lead(&seq, folds, branches)?);
    }
    Some(worst)
}
impl Near {
    /// The window search for `pattern` woken by `triggers`, when its lead is bounded.
    fn new(pattern: &str, triggers: &[&str]) -> Result<Option<Near>, String> {
        let syntax = regex_automata::util::syntax::Config::new();
        let hir = regex_automata::util::syntax::parse_with(pattern, &syntax).map_err(|e| e.to_string())?;
        // Each trigger as its characters' `(?i)` classes, and every spelling of its first
        // characters (`sec`, `SEC`, `ſec`, ...): where the finder looks for it.
        let mut folds = Vec::new();
        let mut needles: Vec<String> = Vec::new();
        for t in triggers {
            let mut classes = Vec::new();
            let mut words = vec![String::new()];
            for (i, c) in t.chars().enumerate() {
                let one = regex_automata::util::syntax::parse_with(&format!("(?i){}", regex_syntax::escape(&c.to_string())), &syntax)
                    .map_err(|e| e.to_string())?;
                let mut us = Vec::new();
                unit(&one, &mut us);
                let [Unit::Char(class)] = us.as_slice() else { return Ok(None) };
                if i < NEEDLE_CHARS {
                    let spellings: Vec<char> = class.iter().flat_map(|r| r.start()..=r.end()).collect();
                    words = words.iter().flat_map(|w| spellings.iter().map(move |o| format!("{w}{o}"))).collect();
                }
                classes.push(class.clone());
            }
            folds.push(classes);
            needles.extend(words.into_iter().filter(|w| !needles.contains(w)).collect::<Vec<_>>());
        }
        let Some(lead) = lead(&[&hir], &folds, &mut MAX_BRANCHES.clone()).filter(|&l| l <= MAX_LEAD) else { return Ok(None) };
        // Teddy (SIMD, a few dozen needles) or nothing: a slower finder would cost more than
        // the scan it saves.
        let Some(finder) = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&needles)
            .build()
        else {
            return Ok(None);
        };
        let start = compile(&format!("(?s:.){{0,{lead}}}?(?:{pattern})"))?;
        Ok(Some(Near { finder, start, lead }))
    }

    /// Where the search for the next match at or after `at` may begin: before the first
    /// trigger occurrence whose window holds a match start; `None` when no window does.
    /// After [`MAX_WINDOWS`] windows in one text (`tried` counts them) it answers `at`: the
    /// search from there is the whole-text search, and each window test may read far ahead,
    /// so a text of many triggers costs a bounded number of them, not one per trigger.
    fn next(&self, text: &str, at: usize, tried: &mut usize) -> Option<usize> {
        let mut from = at;
        loop {
            if *tried >= MAX_WINDOWS {
                return Some(at);
            }
            *tried += 1;
            let t = self.finder.find_in(text, aho_corasick::Span::from(from..text.len()))?;
            let mut begin = t.start().saturating_sub(self.lead).max(at);
            while !text.is_char_boundary(begin) {
                begin -= 1;
            }
            if self.start.is_match(Input::new(text).span(begin..text.len()).anchored(Anchored::Yes)) {
                return Some(begin);
            }
            from = t.start() + text.get(t.start()..).and_then(|r| r.chars().next()).map_or(1, char::len_utf8);
        }
    }
}

/// The span of group `i` in `slots`.
fn group(slots: &[Option<NonMaxUsize>], i: usize) -> Option<(usize, usize)> {
    match (slots.get(2 * i).copied().flatten(), slots.get(2 * i + 1).copied().flatten()) {
        (Some(s), Some(e)) => Some((s.get(), e.get())),
        _ => None,
    }
}

impl Rule {
    fn new(detector: Detector, triggers: &'static [&'static str], pattern: &str, check: Check, bounded: bool) -> Result<Rule, String> {
        let bad = |e: String| format!("detector `{}` does not compile: {e}", detector.name());
        let (re, exact, limit, fast) = match relax(pattern) {
            Some((fast, exact, limit)) => (compile(&fast).map_err(bad)?, Some(compile(&exact).map_err(bad)?), limit, fast),
            None if pattern.contains("~}") => return Err(bad("malformed relaxed repeat".into())),
            None => (compile(pattern).map_err(bad)?, None, usize::MAX, pattern.to_string()),
        };
        if re.group_info().slot_len() > SLOTS || exact.as_ref().is_some_and(|e| e.group_info().slot_len() > SLOTS) {
            return Err(bad(format!("more than {} capture groups", SLOTS / 2 - 1)));
        }
        let near = Near::new(&fast, triggers).map_err(bad)?;
        // A pattern without groups masks its whole match (group 0).
        let secret_groups = if re.group_info().group_len(PatternID::ZERO) == 1 {
            vec![0]
        } else {
            re.group_info().pattern_names(PatternID::ZERO).enumerate().skip(1).filter(|(_, n)| n.is_none()).map(|(i, _)| i).collect()
        };
        Ok(Rule { detector, triggers, re, exact, limit, near, secret_groups, check, bounded })
    }

    pub fn find(&self, text: &str, out: &mut Vec<Span>) {
        self.secrets(text, text.len() >= WINDOWED_TEXT, |s, e| self.push(text, s, e, out));
    }

    /// Every secret the pattern finds in `text` (before the check), with or without the
    /// trigger-window search (the tests compare the two).
    fn secrets(&self, text: &str, windows: bool, mut found: impl FnMut(usize, usize)) {
        let mut buf = [None; SLOTS];
        let Some(slots) = buf.get_mut(..self.re.group_info().slot_len()) else { return };
        let (mut at, mut tried) = (0, 0);
        while at <= text.len() {
            let from = match self.near.as_ref().filter(|_| windows) {
                Some(near) => match near.next(text, at, &mut tried) {
                    Some(from) => from,
                    None => break,
                },
                None => at,
            };
            if self.re.search_slots(&Input::new(text).span(from..text.len()), slots).is_none() {
                break;
            }
            let Some((mut start, mut end)) = group(slots, 0) else { break };
            if let Some(exact) = self.exact.as_ref().filter(|_| self.too_long(text, slots)) {
                // The exact pattern cannot match earlier than the relaxed one (it matches
                // less), so searching from here finds exactly its next match.
                if exact.search_slots(&Input::new(text).span(start..text.len()), slots).is_none() {
                    break;
                }
                let Some(m) = group(slots, 0) else { break };
                (start, end) = m;
            }
            if let Some((s, e)) = self.secret_groups.iter().find_map(|&i| group(slots, i)) {
                found(s, e);
            }
            at = if end > start { end } else { end + text.get(end..).and_then(|r| r.chars().next()).map_or(1, char::len_utf8) };
        }
    }

    /// True when some capture is longer than `limit` characters: a relaxed repeat may have
    /// run past its bound.
    fn too_long(&self, text: &str, slots: &[Option<NonMaxUsize>]) -> bool {
        (1..slots.len() / 2).filter_map(|i| group(slots, i)).any(|(s, e)| {
            e - s > self.limit && text.get(s..e).is_none_or(|v| v.chars().count() > self.limit)
        })
    }

    fn push(&self, text: &str, start: usize, end: usize, out: &mut Vec<Span>) {
        let b = text.as_bytes();
        let Some(value) = b.get(start..end) else { return };
        if value.is_empty() {
            return;
        }
        if self.bounded && b.get(end).is_some_and(|&c| token_byte(c)) {
            return;
        }
        let ok = match self.check {
            Check::None => true,
            Check::Random(min) => looks_random(value, min),
            Check::TokenLike(len) => {
                value.len() >= len || value.iter().any(|c| !c.is_ascii_alphabetic())
            }
            Check::NotPlaceholder => {
                let v = String::from_utf8_lossy(value).to_ascii_lowercase();
                !matches!(v.as_str(), "null" | "none" | "true" | "false" | "undefined" | "nil")
            }
            Check::Valid(f) => f(value),
        };
        if ok {
            out.push(Span { start, end, detector: self.detector });
        }
    }
}

/// The separator between a name and its value: `=`, `:`, `:=`, `=>`, optional quotes and blanks.
/// A quote may be escaped (`\"`), as in JSON or logfmt embedded in text.
const ASSIGN: &str = r#"\\?["']?[ \t]*(?::=|=>|[:=])[ \t]*"#;

pub fn rules() -> Result<Vec<Rule>, String> {
    specs()
        .into_iter()
        .map(|(detector, triggers, pattern, check, bounded)| Rule::new(detector, triggers, &pattern, check, bounded))
        .collect()
}

/// Every rule as written, in priority order.
fn specs() -> Vec<Spec> {
    use Detector as D;
    let generic_names = r"(?:api[_\-.]?key|apikey|access[_\-.]?key|secret[_\-.]?key|private[_\-.]?key|client[_\-.]?secret|auth[_\-.]?token|access[_\-.]?token|refresh[_\-.]?token|session[_\-.]?token|api[_\-.]?token|token|credentials?|signing[_\-.]?key|encryption[_\-.]?key|master[_\-.]?key|secret)";
    let mut specs: Vec<Spec> = vec![
        (D::PrivateKey, &["-----BEGIN"],
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)".into(),
            Check::None, false),
        (D::PrivateKey, &["---- BEGIN SSH2"],
            r"---- BEGIN SSH2 (?:ENCRYPTED )?PRIVATE KEY ----(?:[\s\S]*?---- END SSH2 (?:ENCRYPTED )?PRIVATE KEY ----|[\s\S]*)".into(),
            Check::None, false),
        (D::PrivateKey, &["PuTTY-User-Key-File-"],
            r"PuTTY-User-Key-File-[0-9]+:[^\n]*(?:[\s\S]*?Private-(?:MAC|Hash):[ \t]*[0-9a-fA-F]+|[\s\S]*)".into(),
            Check::None, false),
        (D::AwsAccessKeyId, &["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
            r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?-u:\b)".into(), Check::None, false),
        (D::AwsSecretAccessKey, &["aws"],
            format!(r"(?i)aws(?-u:[a-z0-9_\-. ]){{0,20}}(?:secret|sk)(?-u:[a-z0-9_\-. ]){{0,20}}{ASSIGN}\\?[\x22']?((?-u:[A-Za-z0-9/+]){{40}})"),
            Check::None, true),
        (D::GithubToken, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
            r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{36,255}".into(), Check::None, true),
        (D::GithubPat, &["github_pat_"], r"github_pat_[A-Za-z0-9_]{22,255}".into(), Check::None, true),
        (D::GitlabToken, &["glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glft-", "glimt-", "gloas-", "glsoat-", "glagent-"],
            r"gl(?:pat|dt|ptt|rt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_\-]{20,255}".into(), Check::None, true),
        (D::SlackToken, &["xox", "xapp-"],
            r"xox[abposre]-[A-Za-z0-9\-]{10,255}|xoxe\.xox[bp]-[A-Za-z0-9\-]{10,255}|xapp-[0-9]-[A-Za-z0-9\-]{10,255}".into(),
            Check::None, false),
        (D::SlackWebhook, &["hooks.slack.com"],
            r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,}".into(), Check::None, false),
        (D::AnthropicApiKey, &["sk-ant-"], r"sk-ant-[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_\-]{20,255}".into(), Check::None, false),
        (D::OpenaiApiKey, &["sk-"],
            r"(?-u:\b)sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,255}".into(), Check::Random(3.0), false),
        (D::StripeKey, &["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"],
            r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9+/=]{24,}".into(), Check::None, false),
        (D::GoogleApiKey, &["AIza"], r"AIza[0-9A-Za-z_\-]{35}".into(), Check::None, true),
        (D::NpmToken, &["npm_"], r"(?-u:\b)npm_[A-Za-z0-9]{36}".into(), Check::None, true),
        (D::PypiToken, &["pypi-AgEIcHlwaS5vcmc"], r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}".into(), Check::None, false),
        (D::SendgridApiKey, &["SG."], r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}".into(), Check::None, true),
        (D::HuggingfaceToken, &["hf_"], r"(?-u:\b)hf_[A-Za-z]{34}".into(), Check::None, true),
        (D::DigitaloceanToken, &["dop_v1_", "doo_v1_", "dor_v1_"], r"do[por]_v1_[a-f0-9]{64}".into(), Check::None, true),
        (D::ShopifyToken, &["shpat_", "shpca_", "shppa_", "shpss_"], r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}".into(), Check::None, true),
        (D::AzureStorageKey, &["AccountKey="], r"(?i-u)AccountKey=([A-Za-z0-9+/]{86}==)".into(), Check::None, false),
        (D::AzureAdClientSecret, &["Q~"],
            r"(?-u:\b)[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}".into(), Check::None, true),
        (D::MailgunApiKey, &["key-"], r"(?-u:\b)key-[0-9a-zA-Z]{32}".into(), Check::Random(3.0), true),
        (D::SquareToken, &["sq0atp-", "sq0csp-"], r"sq0atp-[0-9A-Za-z_\-]{22}|sq0csp-[0-9A-Za-z_\-]{43}".into(), Check::None, true),
        (D::DatabricksToken, &["dapi"], r"(?-u:\b)dapi[a-f0-9]{32}(?:-[0-9])?".into(), Check::None, true),
        (D::LinearApiKey, &["lin_api_"], r"lin_api_[A-Za-z0-9]{40}".into(), Check::None, true),
        (D::GrafanaToken, &["glc_", "glsa_"],
            r"glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}".into(), Check::None, false),
        (D::NewRelicKey, &["NRAK-"], r"NRAK-[A-Z0-9]{27}".into(), Check::None, true),
        (D::PostmanApiKey, &["PMAK-"], r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}".into(), Check::None, true),
        (D::DopplerToken, &["dp."], r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}".into(), Check::None, true),
        (D::VaultToken, &["hvs.", "hvb."], r"hv[sb]\.[A-Za-z0-9_\-]{24,400}".into(), Check::None, true),
        (D::AgeSecretKey, &["AGE-SECRET-KEY-1"], r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}".into(), Check::None, false),
        (D::Jwt, &["eyJ"],
            r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*".into(), Check::None, false),
        (D::BearerToken, &["bearer"],
            r"(?i)(?-u:\b)bearer[ \t]+((?-u:[A-Za-z0-9\-._~+/]){8,}=*)".into(), Check::TokenLike(24), false),
        (D::AuthorizationHeader, &["authorization"],
            r#"(?i)authorization["']?[ \t]*[:=][ \t]*["']?(?:(?:bearer|basic|token|digest|negotiate|apikey|sso-key)[ \t]+)?([^\s"',;]{6,})"#.into(),
            Check::TokenLike(16), false),
        (D::ConnectionStringPassword, &["://"],
            r#"(?i-u:[a-z][a-z0-9+.\-]{1,30})://(?P<user>[^\s:/@"'<>]{0,128~}):([^\s@/"'<>]{1,256~})@[A-Za-z0-9\[]"#.into(), Check::None, false),
        (D::PasswordAssignment, &["passw", "passphrase", "pwd", "secret"],
            format!(r#"(?i)(?:password|passwd|passphrase|pwd|secret)(?-u:[a-z0-9_\-.]){{0,30}}{ASSIGN}(?:\\?"([^"\\\r\n]{{1,256~}})\\?"|'([^'\r\n]{{1,256~}})'|([^\s"',;&<>\\]{{1,256~}}))"#),
            Check::NotPlaceholder, false),
        (D::GenericSecret, &["key", "token", "secret", "credential"],
            format!(r#"(?i){generic_names}(?-u:[a-z0-9_\-.]){{0,20}}(?:{ASSIGN}|[ \t]+(?:is|was)[ \t]+)\\?["']?((?-u:[A-Za-z0-9_\-+/=.~]){{16,512~}})"#),
            Check::Random(3.0), true),
    ];
    specs.extend(super::providers::specs());
    specs.extend(super::context::specs());
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the rule finds when only its exact (counted) pattern runs: the reference the
    /// relaxed pattern plus fallback must reproduce.
    fn find_exact(rule: &Rule, text: &str) -> Vec<Span> {
        let mut out = Vec::new();
        let Some(exact) = rule.exact.as_ref() else { return out };
        for caps in exact.captures_iter(text) {
            if let Some(m) = rule.secret_groups.iter().find_map(|&i| caps.get_group(i)) {
                rule.push(text, m.start, m.end, &mut out);
            }
        }
        out
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// One of the rule's triggers in random case, now and then spelled with the Kelvin sign
    /// or the long s (`(?i)` matches those too).
    fn spell(t: &mut String, triggers: &[&str], rng: &mut Rng) {
        let w = triggers[rng.below(triggers.len())];
        for c in w.chars() {
            let r = rng.below(16);
            t.push(match c {
                'k' | 'K' if r == 0 => '\u{212A}',
                's' | 'S' if r == 0 => 'ſ',
                _ if r < 8 => c.to_ascii_uppercase(),
                _ => c.to_ascii_lowercase(),
            });
        }
    }

    /// A random string of the pattern's language (look-around left out): the generator's
    /// positives. Mostly ASCII members of a class, now and then any member.
    fn sample(h: &Hir, rng: &mut Rng, out: &mut String) {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(l) => out.push_str(&String::from_utf8_lossy(&l.0)),
            HirKind::Class(c) => {
                let ranges: Vec<(u32, u32)> = match c {
                    Class::Unicode(c) => c.iter().map(|r| (r.start() as u32, r.end() as u32)).collect(),
                    Class::Bytes(b) => b.iter().map(|r| (u32::from(r.start()), u32::from(r.end()))).collect(),
                };
                let ascii: Vec<(u32, u32)> = ranges.iter().filter(|r| r.0 < 0x80).map(|&(a, b)| (a, b.min(0x7f))).collect();
                let pool = if !ascii.is_empty() && rng.below(8) != 0 { &ascii } else { &ranges };
                if let Some(&(a, b)) = pool.get(rng.below(pool.len().max(1))) {
                    let c = a + (rng.next() % u64::from(b - a + 1)) as u32;
                    out.extend(char::from_u32(c));
                }
            }
            HirKind::Repetition(r) => {
                let spread = r.max.map_or(6, |m| (m - r.min).min(6)) as usize;
                for _ in 0..r.min as usize + rng.below(spread + 1) {
                    sample(&r.sub, rng, out);
                }
            }
            HirKind::Capture(c) => sample(&c.sub, rng, out),
            HirKind::Concat(hs) => hs.iter().for_each(|h| sample(h, rng, out)),
            HirKind::Alternation(hs) => {
                if let Some(h) = hs.get(rng.below(hs.len())) {
                    sample(h, rng, out);
                }
            }
        }
    }

    /// Texts around a rule's triggers: half of them shaped like a detection (a name around a
    /// trigger, an assignment, a quote, a value of one of the rules' alphabets whose length is
    /// one the pattern counts, give or take one), half pieces in random order; between them
    /// separators, words and non-ASCII characters.
    fn texts_around(triggers: &[&str], pattern: &str, hir: &Hir, rng: &mut Rng, n: usize) -> Vec<String> {
        let seps = [" ", "=", ": ", ":=", "=>", "\"", "'", "\\\"", " is ", " was ", "\n", "_", "-", ".", "/", "@", ":", "://", "(", ")", "[", "`", ",", ";", "\t", "  ", "$", "!", "#"];
        let words = ["the", "password", "token", "key", "secret", "api", "for", "admin", "is", "of", "Bearer", "user", "db", "AKIA", "sk-", "ghp_", "eyJ", "my_", "_id", "s"];
        let odd = ["é", "ä", "\u{212A}", "ſ", "ß", "日本", "\u{a0}", "\u{2003}"];
        let alphabets: [&[u8]; 7] = [
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            b"0123456789abcdef",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
            b"0123456789",
            b"aB3x9Q7K-_z.~!",
        ];
        // The counts the pattern names (`{16}`, `{36,255}`): value lengths that can match.
        let counts: Vec<usize> = pattern
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|d| d.parse().ok())
            .filter(|&d| (4..=300).contains(&d))
            .collect();
        let value = |t: &mut String, rng: &mut Rng| {
            let a = alphabets[rng.below(alphabets.len())];
            let len = match counts.get(rng.below(counts.len() + 1)) {
                Some(&c) => (c + rng.below(3)).saturating_sub(1).max(1),
                None => 1 + rng.below(60),
            };
            t.extend((0..len).map(|_| char::from(a[rng.below(a.len())])));
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut t = String::new();
            match rng.below(6) {
                // The pattern's own strings, whole, cut short, or with a character changed.
                3 | 4 => {
                    let mut m = String::new();
                    sample(hir, rng, &mut m);
                    let cut = m.char_indices().map(|(i, _)| i).nth(rng.below(m.chars().count() + 1)).unwrap_or(m.len());
                    match rng.below(6) {
                        0 => m.truncate(cut),
                        1 => m.insert_str(cut, seps[rng.below(seps.len())]),
                        _ => {}
                    }
                    if rng.below(2) == 0 {
                        t.push_str(words[rng.below(words.len())]);
                        t.push_str(seps[rng.below(seps.len())]);
                    }
                    t.push_str(&m);
                }
                // A token: the trigger, then its value.
                0 => {
                    if rng.below(2) == 0 {
                        t.push_str(seps[rng.below(seps.len())]);
                    }
                    spell(&mut t, triggers, rng);
                    value(&mut t, rng);
                    if rng.below(2) == 0 {
                        value(&mut t, rng);
                    }
                }
                // An assignment or prose: a name around the trigger, a separator or two, a value.
                1 | 2 => {
                    for _ in 0..rng.below(3) {
                        t.push_str(words[rng.below(words.len())]);
                        t.push_str(seps[rng.below(seps.len())]);
                    }
                    spell(&mut t, triggers, rng);
                    if rng.below(3) == 0 {
                        t.push_str(words[rng.below(words.len())]);
                    }
                    for _ in 0..1 + rng.below(2) {
                        t.push_str(seps[rng.below(seps.len())]);
                    }
                    value(&mut t, rng);
                    if rng.below(2) == 0 {
                        t.push_str(seps[rng.below(seps.len())]);
                    }
                }
                _ => {}
            }
            for _ in 0..rng.below(6) {
                match rng.below(6) {
                    0 | 1 => spell(&mut t, triggers, rng),
                    2 => t.push_str(seps[rng.below(seps.len())]),
                    3 => t.push_str(words[rng.below(words.len())]),
                    4 => t.push_str(odd[rng.below(odd.len())]),
                    _ => value(&mut t, rng),
                }
            }
            // Now and then many triggers in one text, past the window budget.
            if rng.below(64) == 0 {
                t = t.repeat(MAX_WINDOWS + 1);
            }
            out.push(t);
        }
        out
    }

    /// The trigger-window search finds exactly what the unanchored search finds, for every
    /// rule it serves, on 20,000 generated texts around each rule's triggers. Halving a
    /// rule's lead, or finding only ASCII spellings of the triggers, makes this fail.
    #[test]
    fn trigger_windows_find_what_the_whole_text_search_finds() {
        let rules = rules().unwrap_or_else(|e| unreachable!("{e}"));
        let specs = specs();
        let windowed: Vec<(&Rule, &str)> =
            rules.iter().zip(&specs).filter(|(r, _)| r.near.is_some()).map(|(r, s)| (r, s.2.as_str())).collect();
        assert!(windowed.len() >= 100, "only {} rules use windows", windowed.len());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut found, mut rules_found) = (0usize, 0usize);
        for &(rule, pattern) in &windowed {
            let before = found;
            let exact = relax(pattern).map_or_else(|| pattern.to_string(), |(_, exact, _)| exact);
            let hir = regex_automata::util::syntax::parse(&exact).unwrap_or_else(|e| unreachable!("{e}"));
            for t in texts_around(rule.triggers, pattern, &hir, &mut rng, 20_000) {
                let (mut got, mut want) = (Vec::new(), Vec::new());
                rule.secrets(&t, true, |s, e| got.push((s, e)));
                rule.secrets(&t, false, |s, e| want.push((s, e)));
                assert_eq!(got, want, "`{}` on {t:?}", rule.detector.name());
                found += usize::from(!want.is_empty());
            }
            rules_found += usize::from(found - before >= 200);
        }
        // The texts hold matches (~700,000 of them), 200 or more for every rule, so the
        // comparison is not vacuous.
        assert!(found > 500_000, "{found}");
        assert_eq!(rules_found, windowed.len());
    }

    #[test]
    fn relax_splits_marked_repeats_only() {
        let (fast, exact, limit) = relax(r"a(?P<g>[^x]{0,16~})([0-9]{4,80~})b{2,3}").unwrap_or_default();
        assert_eq!(fast, r"a(?P<g>[^x]{0,})([0-9]{4,})b{2,3}");
        assert_eq!(exact, r"a(?P<g>[^x]{0,16})([0-9]{4,80})b{2,3}");
        assert_eq!(limit, 16);
        assert!(relax(r"a{2,3}").is_none());
        assert!(relax(r"a{x,3~}").is_none());
    }

    /// Values at, under and over every relaxed bound, in every quoting, after every keyword
    /// of a relaxed rule, with Unicode and glued text around them: the relaxed pattern with its
    /// fallback finds exactly what the counted pattern finds.
    #[test]
    fn relaxed_rules_find_what_the_counted_patterns_find() {
        let rules = rules().unwrap_or_else(|e| unreachable!("{e}"));
        let relaxed: Vec<&Rule> = rules.iter().filter(|r| r.exact.is_some()).collect();
        assert!(relaxed.len() >= 10, "only {} relaxed rules", relaxed.len());
        let heads = [
            "with password ", "the password is ", "password for the admin account is ", "pwd: ", "pass=", "DB_PASS: ",
            "password=", "secret: ", "client_secret = ", "api_key=", "token is ", "the secret key ", "--token ", "--api-key=",
            "Cookie: ", "set-cookie: ", "postgres://app:", "redis://:", "Steuer-IdNr ", "tax id: ", "Aadhaar ", "aadhaar no. ",
        ];
        let lens = [1usize, 3, 4, 15, 16, 17, 78, 79, 80, 81, 127, 128, 129, 255, 256, 257, 511, 512, 513, 700, 4100];
        let mut texts = Vec::new();
        for h in heads {
            for &n in &lens {
                let word: String = (0..n).map(|i| ["aB3", "x9Q", "é7", "K-", "_z"][i % 5]).collect::<String>().chars().take(n).collect();
                for (open, close) in [("", ""), ("\"", "\""), ("'", "'"), ("`", "`"), ("(", ")"), ("[", "]"), ("\\\"", "\\\"")] {
                    for tail in [" ok.", "@db.internal:5432/x", " password=hunter2x9 and"] {
                        texts.push(format!("{h}{open}{word}{close}{tail}"));
                    }
                    texts.push(format!("log: {h}{open}{word}{close} {h}{open}0123456789abcdefXYZ{close}"));
                }
                texts.push(format!("{h}{} 12 345 678 901", "ä".repeat(n)));
                texts.push(format!("{h}{} 1234 5678 9012", "x".repeat(n)));
            }
        }
        for rule in relaxed {
            for t in &texts {
                let mut got = Vec::new();
                rule.find(t, &mut got);
                assert_eq!(got, find_exact(rule, t), "`{}` on {t:?}", rule.detector.name());
            }
        }
    }
}
