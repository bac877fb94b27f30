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
//! Provider tokens with a long bounded tail (`sk-…{20,255}`, `ATATT3…{60,300}`) are relaxed
//! too, for another reason: a rule is woken a few times per document, so its automaton's states
//! are cold in the CPU cache each time, and a counted repeat walks a distinct state per
//! character where `{m,}` loops on one. Fresh realistic 2 KB documents, per call: OpenAI keys
//! 7.3–8.4 → 4.3–4.7 µs, Atlassian tokens 10.2–10.6 → 5.6–6.9 µs, Anthropic keys 6.2–7.4 → 3.6–3.9 µs.

use regex::Regex;

use super::{gate, Detector, Span};
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

/// Written in a pattern after its keyword part (`(?i)\b(?:secret|token|…)\b` + `LEAD` + the
/// rest), at its top level: the rule is then searched as [`Led`] describes. An empty group, so
/// the pattern compiles to the same language with it.
pub const LEAD: &str = "(?:)";

/// A rule searched from its keywords: the keyword part alone (`lead`) finds where a match can
/// start, and the whole pattern runs anchored there.
///
/// Why: a context rule searched unanchored keeps, at every byte, a thread for a match starting
/// there beside the ones in flight (a keyword, up to four skipped words, a value), so its lazy
/// DFA meets new states on new text and builds them while it searches: on realistic traces
/// the engine had not seen, building the states of `secret_in_text` and `generic_secret` cost
/// more than searching. The keyword automaton is small and an anchored search has one start,
/// so both stop growing after a few documents. Exact: every match of `lead` + rest starts with a
/// match of `lead`, so the first start (in order) where the anchored pattern matches is where
/// the unanchored search's leftmost-first match starts, and the anchored search there returns
/// that match.
#[derive(Debug)]
struct Led {
    lead: regex_automata::meta::Regex,
    full: regex_automata::meta::Regex,
    /// Capture slots for `full`, reused across calls ([`Scratch`]).
    caps: Scratch<regex_automata::util::captures::Captures>,
}

/// Per-thread scratch of a rule's searches, taken for one call and given back: a rule is
/// searched tens of thousands of times per megabyte of trace, and allocating its capture slots
/// on every call cost 2–3% of masking. The crate's own pool (what its regexes keep their
/// caches in): the thread that made it gets its value without a lock. Every search rewrites
/// the slots it reports, so values left from an earlier call are never read (the loops below
/// already reuse one value across the matches of a call).
type Scratch<T> = regex_automata::util::pool::Pool<T, Box<dyn Fn() -> T + Send + Sync>>;

#[derive(Debug)]
pub struct Rule {
    pub detector: Detector,
    pub triggers: &'static [&'static str],
    /// The pattern with its relaxed repeats (`{m,N~}` written, `{m,}` compiled): what runs.
    re: Regex,
    /// The pattern as counted (`{m,N}`), when some repeat is relaxed: run only from a match of
    /// `re` whose captures are longer than `limit` characters, which is the only case where
    /// the two can disagree.
    exact: Option<Regex>,
    /// The smallest upper bound of a relaxed repeat, in characters.
    limit: usize,
    /// Capture slots for `re`, reused across calls ([`Scratch`]).
    locs: Scratch<regex::CaptureLocations>,
    /// Capture groups that can hold the secret (unnamed ones; named groups only carry a
    /// relaxed repeat for the `limit` test), in order: the first that took part is the secret.
    secret_groups: Vec<usize>,
    check: Check,
    /// The byte after the secret must not continue the token (so `{40}` does not cut a longer word).
    bounded: bool,
    /// When the pattern marks its keyword part ([`LEAD`]): the relaxed pattern, searched from
    /// its keywords.
    led: Option<Led>,
    /// Byte classes of which every match holds a byte, one entry per requirement
    /// ([`needed_classes`]): a text lacking one is not searched.
    needs: Vec<gate::Classes>,
}

/// The class groups [`needed_classes`] tries: the gate's classes alone, and the separators of
/// an assignment together (`key=value`, `key: value`, `key is value`).
const NEED_CANDIDATES: &[gate::Classes] = &[
    gate::LOWER,
    gate::UPPER,
    gate::DIGIT,
    gate::AT,
    gate::COLON,
    gate::DASH,
    gate::EQUALS,
    gate::BLANK,
    gate::COLON | gate::EQUALS,
    gate::COLON | gate::EQUALS | gate::BLANK,
];

/// Which of [`NEED_CANDIDATES`] every match of `pattern` holds a byte of, smallest groups
/// only. Exact, from the pattern's syntax: the pattern with every byte of the group taken out
/// of its literals and classes matches nothing.
///
/// Why: a rule is woken by its trigger alone, and most of the texts that wake the
/// assignment-shaped rules (`gen_ai.usage.input_tokens` wakes `generic_secret` through
/// `token`) lack the `=`, `:` or blank every match of theirs needs; the gate's byte classes,
/// already found for the text, answer that before any regex runs.
fn needed_classes(pattern: &str) -> Result<Vec<gate::Classes>, String> {
    use regex_syntax::hir::{Capture, Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Repetition};
    fn without(h: &Hir, bytes: &[u8]) -> Hir {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => h.clone(),
            HirKind::Literal(l) => if l.0.iter().any(|b| bytes.contains(b)) { Hir::fail() } else { h.clone() },
            HirKind::Class(Class::Unicode(c)) => {
                let mut c = c.clone();
                c.difference(&ClassUnicode::new(bytes.iter().map(|&b| ClassUnicodeRange::new(char::from(b), char::from(b)))));
                Hir::class(Class::Unicode(c))
            }
            HirKind::Class(Class::Bytes(c)) => {
                let mut c = c.clone();
                c.difference(&ClassBytes::new(bytes.iter().map(|&b| ClassBytesRange::new(b, b))));
                Hir::class(Class::Bytes(c))
            }
            HirKind::Repetition(r) => Hir::repetition(Repetition { sub: Box::new(without(&r.sub, bytes)), ..r.clone() }),
            HirKind::Capture(c) => Hir::capture(Capture { sub: Box::new(without(&c.sub, bytes)), ..c.clone() }),
            HirKind::Concat(v) => Hir::concat(v.iter().map(|x| without(x, bytes)).collect()),
            HirKind::Alternation(v) => Hir::alternation(v.iter().map(|x| without(x, bytes)).collect()),
        }
    }
    /// True when `h` matches nothing. Our own walk: regex-syntax's `minimum_len` calls
    /// `x{0,n}` of a class emptied this way unmatchable too, where it matches the empty string.
    fn never(h: &Hir) -> bool {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) | HirKind::Literal(_) => false,
            HirKind::Class(Class::Unicode(c)) => c.ranges().is_empty(),
            HirKind::Class(Class::Bytes(c)) => c.ranges().is_empty(),
            HirKind::Repetition(r) => r.min > 0 && never(&r.sub),
            HirKind::Capture(c) => never(&c.sub),
            HirKind::Concat(v) => v.iter().any(never),
            HirKind::Alternation(v) => v.iter().all(never),
        }
    }
    let hir = regex_syntax::Parser::new().parse(pattern).map_err(|e| e.to_string())?;
    let needed: Vec<gate::Classes> = NEED_CANDIDATES
        .iter()
        .copied()
        .filter(|&c| never(&without(&hir, &gate::bytes_of(c))))
        .collect();
    Ok(needed.iter().copied().filter(|&c| !needed.iter().any(|&d| d != c && d & c == d)).collect())
}

/// Keyword starts a led search tries and fails before it hands the rest of a text to the
/// unanchored search ([`Rule::find_led`]).
const MAX_FAILED_STARTS: usize = 32;

/// The position after the character at `at` (`at + 1` at the end, ending a search loop).
fn next_char(text: &str, at: usize) -> usize {
    at + text.get(at..).and_then(|r| r.chars().next()).map_or(1, char::len_utf8)
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

impl Rule {
    fn new(detector: Detector, triggers: &'static [&'static str], pattern: &str, check: Check, bounded: bool) -> Result<Rule, String> {
        let bad = |e: String| format!("detector `{}` does not compile: {e}", detector.name());
        let (re, exact, limit) = match relax(pattern) {
            Some((fast, exact, limit)) => (
                Regex::new(&fast).map_err(|e| bad(e.to_string()))?,
                Some(Regex::new(&exact).map_err(|e| bad(e.to_string()))?),
                limit,
            ),
            None if pattern.contains("~}") => return Err(bad("malformed relaxed repeat".into())),
            None => (Regex::new(pattern).map_err(|e| bad(e.to_string()))?, None, usize::MAX),
        };
        let secret_groups = re.capture_names().enumerate().skip(1).filter(|(_, n)| n.is_none()).map(|(i, _)| i).collect();
        let led = match pattern.split_once(LEAD) {
            None => None,
            Some((lead, _)) => {
                let full = regex_automata::meta::Regex::new(re.as_str()).map_err(|e| bad(e.to_string()))?;
                let for_caps = full.clone();
                Some(Led {
                    lead: regex_automata::meta::Regex::new(lead).map_err(|e| bad(e.to_string()))?,
                    full,
                    caps: Scratch::new(Box::new(move || for_caps.create_captures())),
                })
            }
        };
        let needs = needed_classes(re.as_str()).map_err(bad)?;
        let for_locs = re.clone();
        let locs = Scratch::new(Box::new(move || for_locs.capture_locations()));
        Ok(Rule { detector, triggers, re, exact, limit, locs, secret_groups, check, bounded, led, needs })
    }

    /// False when a text of byte classes `seen` lacks a class every match needs.
    pub fn may_match(&self, seen: gate::Classes) -> bool {
        self.needs.iter().all(|&c| seen & c != 0)
    }

    pub fn find(&self, text: &str, out: &mut Vec<Span>) {
        match &self.led {
            Some(led) => self.find_led(led, text, out),
            None => self.find_plain(text, out),
        }
    }

    /// The relaxed pattern searched unanchored (with the exact one where a capture is long).
    fn find_plain(&self, text: &str, out: &mut Vec<Span>) {
        self.find_plain_from(text, 0, out);
    }

    /// [`Rule::find_plain`] for the matches that start at or after `at`.
    fn find_plain_from(&self, text: &str, mut at: usize, out: &mut Vec<Span>) {
        if self.re.captures_len() == 1 {
            while at <= text.len() {
                let Some(m) = self.re.find_at(text, at) else { break };
                self.push(text, m.start(), m.end(), out);
                at = if m.end() > m.start() { m.end() } else { next_char(text, m.end()) };
            }
            return;
        }
        let mut locs = self.locs.get();
        while at <= text.len() {
            let Some(m) = self.re.captures_read_at(&mut locs, text, at) else { break };
            let (mut start, mut end) = (m.start(), m.end());
            if let Some(exact) = self.exact.as_ref().filter(|_| self.too_long(text, &locs)) {
                // The exact pattern cannot match earlier than the relaxed one (it matches
                // less), so searching from here finds exactly its next match.
                let Some(m) = exact.captures_read_at(&mut locs, text, start) else { break };
                (start, end) = (m.start(), m.end());
            }
            if let Some((s, e)) = self.secret_groups.iter().find_map(|&i| locs.get(i)) {
                self.push(text, s, e, out);
            }
            at = if end > start { end } else { next_char(text, end) };
        }
    }

    /// [`Rule::find`] for a rule with a keyword part: the same matches, in the same order.
    fn find_led(&self, led: &Led, text: &str, out: &mut Vec<Span>) {
        use regex_automata::{Anchored, Input};
        let mut caps = led.caps.get();
        // Only for a relaxed match with a long capture: most calls never need it.
        let mut locs = None;
        let mut at = 0;
        // Keyword starts where the anchored pattern failed. Each such search can read to the
        // end of the text (`token.token.token…` followed by a long run the value class takes),
        // so past a few of them the rest of the text goes to the one unanchored search, which
        // reads it once: the same matches, and never quadratic in the number of keywords.
        let mut failed = 0usize;
        'matches: while at <= text.len() {
            // The leftmost match at or after `at`: the first keyword start where the whole
            // pattern matches, anchored.
            let mut from = at;
            loop {
                let Some(key) = led.lead.search(&Input::new(text).range(from..)) else { break 'matches };
                led.full.search_captures(&Input::new(text).range(key.start()..).anchored(Anchored::Yes), &mut caps);
                if caps.is_match() {
                    break;
                }
                failed += 1;
                if failed > MAX_FAILED_STARTS {
                    return self.find_plain_from(text, at, out);
                }
                from = next_char(text, key.start());
                if from > text.len() {
                    break 'matches;
                }
            }
            let Some(m) = caps.get_match() else { break };
            let (mut start, mut end) = (m.start(), m.end());
            let long = (1..caps.group_len()).filter_map(|i| caps.get_group(i)).any(|g| self.over_limit(text, g.start, g.end));
            let secret = match self.exact.as_ref().filter(|_| long) {
                // As in `find`: the exact pattern's next match, from the relaxed one's start.
                Some(exact) => {
                    let locs = locs.get_or_insert_with(|| self.re.capture_locations());
                    let Some(m) = exact.captures_read_at(locs, text, start) else { break };
                    (start, end) = (m.start(), m.end());
                    self.secret_groups.iter().find_map(|&i| locs.get(i))
                }
                None => self.secret_groups.iter().find_map(|&i| caps.get_group(i)).map(|g| (g.start, g.end)),
            };
            if let Some((s, e)) = secret {
                self.push(text, s, e, out);
            }
            at = if end > start { end } else { next_char(text, end) };
        }
    }

    /// True when some capture is longer than `limit` characters: a relaxed repeat may have
    /// run past its bound.
    fn too_long(&self, text: &str, locs: &regex::CaptureLocations) -> bool {
        (1..locs.len()).filter_map(|i| locs.get(i)).any(|(s, e)| self.over_limit(text, s, e))
    }

    fn over_limit(&self, text: &str, s: usize, e: usize) -> bool {
        e - s > self.limit && text.get(s..e).is_none_or(|v| v.chars().count() > self.limit)
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
        (D::AnthropicApiKey, &["sk-ant-"], r"(sk-ant-[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_\-]{20,255~})".into(), Check::None, false),
        (D::OpenaiApiKey, &["sk-"],
            r"(?-u:\b)(sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,255~})".into(), Check::Random(3.0), false),
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
            format!(r#"(?i){generic_names}{LEAD}(?-u:[a-z0-9_\-.]){{0,20}}(?:{ASSIGN}|[ \t]+(?:is|was)[ \t]+)\\?["']?((?-u:[A-Za-z0-9_\-+/=.~]){{16,512~}})"#),
            Check::Random(3.0), true),
    ];
    specs.extend(super::providers::specs());
    specs.extend(super::context::specs());
    specs
        .into_iter()
        .map(|(detector, triggers, pattern, check, bounded)| Rule::new(detector, triggers, &pattern, check, bounded))
        .collect()
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
            if let Some(m) = rule.secret_groups.iter().find_map(|&i| caps.get(i)) {
                rule.push(text, m.start(), m.end(), &mut out);
            }
        }
        out
    }

    /// A rule searched from its keywords finds what its pattern searched unanchored finds, on
    /// generated prose around every keyword spelling (case-folded and look-alike ones too),
    /// connectors, skipped words, values of every form and length (past the relaxed bounds),
    /// keywords back to back and overlapping, and text without any.
    #[test]
    fn led_rules_find_what_their_patterns_find() {
        use crate::mask::test_rng::Rng;
        const PIECES: &[&str] = &[
            "secret", "Secret Key", "secret_access_key", "client secret", "app-secret", "api key", "API_KEY", "apikeys",
            "access token", "personal access token", "github token", "bot_token", "tokens", "TOKEN", "credential",
            "credentials", "passkey", "private key", "signing-key", "auth_token", "refresh.token", "session-token",
            "ſecret", "\u{212a}ey", "tokenizer", "keys", "monkey", "is", "was", "of", ":", "=", "->", "=>", " ", "  ", "\t",
            "\n", "for", "the", "staging", "cluster", "averyveryverylongword", "kq3V9x9TbLm2Pq", "AbCdEf1234567890XyZ",
            "sk_9f8e7d6c5b4a39281706", "\"", "'", "`", "(", ")", "[", "]", "<", ">", ".", ",", "é", "日本", "\\\"",
        ];
        let rules = rules().unwrap_or_else(|e| unreachable!("{e}"));
        let led: Vec<&Rule> = rules.iter().filter(|r| r.led.is_some()).collect();
        assert!(led.len() >= 2, "only {} led rules", led.len());
        let mut rng = Rng::new(0x510E_527F_ADE6_82D1);
        let long = "Zq9".repeat(200);
        // The led search's spans against the unanchored search's, for each led rule; how many.
        let same = |t: &str| -> usize {
            let spans = |v: &[Span]| v.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>();
            let mut n = 0;
            for r in &led {
                let (mut got, mut want) = (Vec::new(), Vec::new());
                r.find(t, &mut got);
                r.find_plain(t, &mut want);
                assert_eq!(spans(&got), spans(&want), "{} on {t:?}", r.detector.name());
                n += want.len();
            }
            n
        };
        let mut found = 0usize;
        for n in 0..15_000 {
            let mut t = String::new();
            for _ in 0..rng.below(16) {
                t.push_str(PIECES[rng.below(PIECES.len())]);
                if rng.below(3) > 0 {
                    t.push(' ');
                }
            }
            if n % 50 == 0 {
                t.push_str(&long);
            }
            found += same(&t);
        }
        assert!(found > 1_500, "only {found} matches: the texts test little");
        // Past MAX_FAILED_STARTS failed keyword starts the rest goes to the unanchored search:
        // many keywords before a long value-class run, then matches after it.
        let hostile = format!("{}{} then token is kq3V9x9TbLm2Pq and api_key=AbCdEf1234567890XyZ", "token.".repeat(200), "a".repeat(5000));
        assert!(same(&hostile) >= 2, "the matches after the run are found");
    }

    /// The class requirements are found, and hold: on generated texts around every rule's
    /// triggers, a rule whose requirement the text lacks finds nothing when searched anyway.
    #[test]
    fn a_rule_never_matches_a_text_lacking_a_class_it_needs() {
        use crate::mask::test_rng::Rng;
        let rules = rules().unwrap_or_else(|e| unreachable!("{e}"));
        let of = |d: Detector| rules.iter().find(|r| r.detector == d).map(|r| r.needs.clone()).unwrap_or_default();
        // The assignment-shaped rules need a separator; a prefix token needs its prefix's
        // classes; a rule with a bare alternative needs nothing the alternatives do not share.
        assert_eq!(of(Detector::GenericSecret), vec![gate::COLON | gate::EQUALS | gate::BLANK]);
        assert_eq!(of(Detector::PasswordAssignment), vec![gate::COLON | gate::EQUALS]);
        assert!(of(Detector::GroqApiKey).contains(&gate::LOWER), "{:?}", of(Detector::GroqApiKey));
        assert!(of(Detector::AwsAccessKeyId).contains(&gate::UPPER));
        assert!(!of(Detector::Jwt).contains(&gate::DIGIT));
        let with_needs = rules.iter().filter(|r| !r.needs.is_empty()).count();
        assert!(with_needs > rules.len() / 2, "only {with_needs} of {} rules need a class", rules.len());
        const FILL: &[&str] = &[
            " ", "\t", "=", ":", ":=", "=>", "-", "_", ".", "@", "\"", "'", "/", "+", "(", ")", "[", "]", "\n", " is ", " was ",
            "é", "\u{212a}", "ſ", "0", "42", "1234567890", "abcdefghijklmnop", "ABCDEFGHIJKLMNOP", "Zq9xW3kP7mN2vB5tR8yL", "0123abcd",
            "abcdefghijklmnopQRSTUVWXYZabcdefghijklmnopQRSTUVWXYZabcdefghijklmnopQRSTUVWXYZabcdefghijklmnop",
            "QWERTYUIOPASDFGHJKLZXCVBNMQWERTYUIOPASDFGHJKLZXCVBNM", "qwertyuiopasdfghjklzxcvbnmqwertyuiopasdfghjklzxcvbnm",
            "12345678901234567890123456789012345678901234567890", "0123456789abcdef0123456789abcdef0123456789abcdef",
        ];
        let mut rng = Rng::new(0x6A09_E667_F3BC_C908);
        let mut skipped = 0usize;
        let mut matched = 0usize;
        for n in 0..60_000 {
            let rule = &rules[n % rules.len()];
            let mut t = String::new();
            for k in 0..rng.below(6) + 1 {
                if k == 0 || rng.below(3) == 0 {
                    let trig = rule.triggers[rng.below(rule.triggers.len())];
                    t.push_str(&if rng.below(2) == 0 { trig.to_ascii_uppercase() } else { trig.to_string() });
                } else {
                    t.push_str(FILL[rng.below(FILL.len())]);
                }
            }
            let seen = gate::classes(t.as_bytes());
            let mut found = Vec::new();
            rule.find(&t, &mut found);
            matched += usize::from(!found.is_empty());
            if !rule.may_match(seen) {
                skipped += 1;
                assert!(found.is_empty(), "`{}` needs {:?}, matched {t:?} of classes {seen:#x}", rule.detector.name(), rule.needs);
            }
        }
        assert!(skipped > 5_000 && matched > 500, "{skipped} texts lacked a class, {matched} matched: the test tests little");
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
            // Provider prefixes whose token repeat is relaxed.
            "sk-", "key sk-proj-", "sk-admin-", "sk-ant-api03-", "ATATT3", "xATCTT3",
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
                // Token characters only, so runs pass the bounds of the ASCII-class repeats.
                let ascii: String = (0..n).map(|i| ["aB3", "x9Q", "K-", "_z", "7Zq"][i % 5]).collect::<String>().chars().take(n).collect();
                for tail in ["", " ok.", "é", "=="] {
                    texts.push(format!("{h}{ascii}{tail}"));
                    texts.push(format!("{h}{ascii}{tail} {h}{ascii}{tail}"));
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
