//! Person names, offline: compiled-in census lists of given names and surnames, used with
//! context rules, so that "Priya Patel", "Hi Maria," and "my name is José García" are masked
//! and "May", "Will", "Grant access" and "Visual Studio" are not.
//!
//! Data: `names/given.txt` (5,163 given names) and `names/surnames.txt` (the 20,000 most
//! frequent surnames), from the US Census Bureau's 1990 name lists (public domain) as shipped
//! by the PyPI package `names` 0.3.0; plus a short hand-written list of given names and
//! surnames those lists lack (non-English and non-ASCII ones). Nothing is fetched at run time.
//!
//! A capitalised word alone is never enough. A name is masked when it is
//! - a given name followed by a surname (with an optional middle name or initial), unless both
//!   are ordinary words (`Will Power`) or a technology word is involved (`Ruby Rails`); or
//! - announced: after a greeting or sign-off (`Hi`, `Dear`, `Thanks,`, `Regards,\n`), after
//!   `my name is`, `I'm`, `Mr.`/`Dr.`, or after a `name`/`full_name`/`author` key in text.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use super::{gate, Detector, Span};

const GIVEN: &str = include_str!("names/given.txt");
const SURNAMES: &str = include_str!("names/surnames.txt");

/// Given names missing from the 1990 census lists, upper-cased (non-ASCII as written).
const EXTRA_GIVEN: &[&str] = &[
    "LIAM", "NOAH", "MATEO", "SANTIAGO", "CAMILA", "AVA", "MIA", "LUNA", "AIDEN", "JAYDEN", "HARPER", "ELIJAH",
    "ISABELLA", "SOPHIA", "OLIVIA", "EMMA", "ETHAN", "MASON", "LOGAN", "ZOE", "CHLOE", "RAJ", "RAVI", "NEHA", "AMIT",
    "PRIYA", "ANANYA", "AARAV", "ARJUN", "ROHAN", "VIKRAM", "RAHUL", "SANJAY", "DEEPAK", "ANIL", "SUNITA", "LAKSHMI",
    "MOHAMMED", "MUHAMMAD", "AHMED", "FATIMA", "AISHA", "OMAR", "YUSUF", "LAYLA", "HASSAN", "ZAINAB", "MEHMET", "AYŞE",
    "EMRE", "ZEYNEP", "WEI", "MEI", "JING", "XIAO", "YAN", "HUI", "MING", "JUN", "HIROSHI", "YUKI", "HARUTO", "SAKURA",
    "KENJI", "AKIKO", "TAKESHI", "MINH", "ANH", "LINH", "THANH", "JI-WOO", "MIN-JUN", "SEO-YEON", "HYUN", "JOSÉ",
    "JOSÉE", "JESÚS", "MARÍA", "LUCÍA", "SOFÍA", "ANDRÉS", "RAMÓN", "JOAQUÍN", "MATÍAS", "VALENTINA", "FRANÇOIS",
    "FRANÇOISE", "CÉLINE", "HÉLÈNE", "AMÉLIE", "CHLOÉ", "RENÉE", "ANDRÉ", "JÉRÔME", "THÉO", "LÉA", "NOÉMIE", "ZOË",
    "JÜRGEN", "JÖRG", "BJÖRN", "SØREN", "MAËLLE", "LUKAS", "FELIX", "JONAS", "LEON", "MAXIMILIAN", "SEBASTIAN",
    "NIKLAS", "JANNIK", "LENA", "SVEN", "INGRID", "ASTRID", "SIGRID", "MAGNUS", "FREYA", "ÓLAFUR", "SIOBHÁN",
    "SEÁN", "NIAMH", "AOIFE", "CIARÁN", "EOIN", "ŁUKASZ", "MAŁGORZATA", "AGNIESZKA", "KRZYSZTOF", "WOJCIECH",
    "JIŘÍ", "TOMÁŠ", "DUŠAN", "MILOŠ", "ĐORĐE", "NIKOLA", "DRAGAN", "IVAN", "DMITRI", "OLGA", "SVETLANA", "YEVGENY",
    "АЛЕКСЕЙ", "ИВАН", "ОЛЬГА", "НАТАЛЬЯ", "СЕРГЕЙ", "GIULIA", "MATTEO", "LORENZO", "FRANCESCA", "ALESSANDRO",
    "CHIARA", "NIKOS", "ELENI", "GIORGOS", "CHIDI", "OLUMIDE", "ADAEZE", "KWAME", "AMARA", "TENDAI", "THABO",
    "ZANELE", "KOFI", "NGOZI", "JOÃO", "GONÇALO", "INÊS", "CONCEIÇÃO", "SÉRGIO",
];

/// Surnames missing from the trimmed census list, upper-cased (non-ASCII as written).
const EXTRA_SURNAMES: &[&str] = &[
    "GARCÍA", "RODRÍGUEZ", "GONZÁLEZ", "FERNÁNDEZ", "LÓPEZ", "MARTÍNEZ", "SÁNCHEZ", "PÉREZ", "GÓMEZ", "DÍAZ",
    "HERNÁNDEZ", "MUÑOZ", "JIMÉNEZ", "RUIZ", "ÁLVAREZ", "NÚÑEZ", "PEÑA", "CASTAÑO", "MÜLLER", "SCHRÖDER", "SCHÄFER",
    "KÖHLER", "BÖHM", "GÜNTHER", "KRÜGER", "JÄGER", "WEIß", "GROß", "STRAUß", "DUBOIS", "LEFÈVRE", "LEFEBVRE",
    "FRANÇOIS", "GIRARD", "BOUCHER", "BÉLANGER", "CÔTÉ", "GAGNÉ", "LÉVESQUE", "HÉBERT", "ANDERSSON", "JOHANSSON",
    "KARLSSON", "NILSSON", "ERIKSSON", "LARSSON", "JØRGENSEN", "SØRENSEN", "HANSEN", "ÅBERG", "ÖSTLUND", "KOWALSKI",
    "NOWAK", "WIŚNIEWSKI", "WÓJCIK", "KOWALCZYK", "KAMIŃSKI", "LEWANDOWSKI", "ZIELIŃSKI", "DVOŘÁK", "NOVÁK", "SVOBODA",
    "HORVÁTH", "NAGY", "SZABÓ", "KOVÁCS", "YILMAZ", "YILDIZ", "ÖZTÜRK", "ŞAHIN", "ÇELIK", "DOĞAN", "KAYA", "AYDIN",
    "NGUYỄN", "TRẦN", "LÊ", "PHẠM", "HOÀNG", "ĐẶNG", "BÙI", "VŨ", "NGUYEN", "TRAN", "PHAM", "HOANG", "WANG", "ZHANG",
    "LIU", "CHEN", "YANG", "ZHAO", "HUANG", "ZHOU", "WU", "XU", "SUN", "ZHU", "TANAKA", "SUZUKI", "TAKAHASHI",
    "WATANABE", "ITO", "YAMAMOTO", "NAKAMURA", "KOBAYASHI", "SATO", "KATO", "SHARMA", "GUPTA", "SINGH", "KUMAR",
    "REDDY", "IYER", "NAIR", "MENON", "CHATTERJEE", "BANERJEE", "MUKHERJEE", "DESAI", "MEHTA", "JOSHI", "KHAN",
    "RAHMAN", "HOSSAIN", "AHMED", "ALI", "HUSSAIN", "OKAFOR", "ADEYEMI", "OKONKWO", "MENSAH", "BOATENG", "DLAMINI",
    "NKOSI", "MOYO", "O'BRIEN", "O'CONNOR", "O'SULLIVAN", "O'NEILL", "MCCARTHY", "NÍ", "ROSSI", "RUSSO", "FERRARI",
    "ESPOSITO", "BIANCHI", "ROMANO", "COLOMBO", "RICCI", "MARINO", "PAPADOPOULOS", "GEORGIOU", "IVANOV", "PETROV",
    "SMIRNOV", "VOLKOV", "ИВАНОВ", "ПЕТРОВ", "СМИРНОВ", "КУЗНЕЦОВА", "SILVA", "SANTOS", "OLIVEIRA", "PEREIRA",
    "CONCEIÇÃO", "GONÇALVES", "MAGALHÃES", "ASSUNÇÃO",
];

/// Capitalised ordinary words that are also in the census lists: a pair of two of them is a
/// phrase ("Will Power", "May Day"), and one alone after a weak context is not taken.
const COMMON: &[&str] = &[
    "A", "ABLE", "ACCESS", "ADD", "AGENT", "ALL", "ALPHA", "AMBER", "ANGEL", "APRIL", "ART", "AUGUST", "AUTUMN",
    "BAKER", "BANK", "BELL", "BEST", "BILL", "BLACK", "BLUE", "BOND", "BOOK", "BRANCH", "BRIDGE", "BROOK", "BROWN",
    "BUCK", "BUILD", "BUSH", "CALL", "CASE", "CASH", "CHANCE", "CHARITY", "CHASE", "CHECK", "CHERRY", "CHRISTIAN",
    "CHURCH", "CLAY", "CLEAR", "CLIFF", "CLOUD", "COLE", "CONFIG", "COOK", "COOPER", "CORE", "CROSS", "CRYSTAL",
    "DALE", "DATA", "DAWN", "DAY", "DEAN", "DELTA", "DESTINY", "DIAMOND", "DOCK", "DON", "DREW", "DUKE", "EARLY",
    "EASTER", "EDGE", "ERROR", "EVE", "FAITH", "FALL", "FIELD", "FISHER", "FLOWERS", "FORD", "FOREST", "FOX", "FRANK",
    "FREE", "FROST", "GAME", "GATE", "GATES", "GENE", "GINGER", "GLEN", "GOLD", "GOOD", "GRACE", "GRAND", "GRANT",
    "GRAY", "GREAT", "GREEN", "GUY", "HALL", "HARMONY", "HEATH", "HEAVEN", "HILL", "HOLLY", "HONEY", "HOPE", "HOST",
    "HOUSE", "HUNT", "HUNTER", "IRIS", "IVORY", "IVY", "JACK", "JADE", "JOY", "JUNE", "JUSTICE", "KEY", "KING",
    "KNIGHT", "LAKE", "LAND", "LANE", "LAW", "LEE", "LIGHT", "LITTLE", "LONG", "LOVE", "LUCK", "MAJOR", "MARK",
    "MARSH", "MASON", "MAX", "MAY", "MELODY", "MERCY", "MILES", "MILL", "MILLER", "MINT", "MONDAY", "MOON", "MORNING",
    "NEW", "NIGHT", "NOBLE", "NODE", "OCEAN", "PAGE", "PARK", "PARKER", "PATCH", "PEACE", "PEARL", "PENNY", "PIPE",
    "PLAN", "POOL", "PORTER", "POST", "POWER", "PRICE", "PRINCE", "QUEUE", "RAIN", "RAY", "READ", "REED", "RICH",
    "RIVER", "ROCK", "ROOT", "ROSE", "ROYAL", "RUBY", "RULE", "RUN", "SAGE", "SALT", "SANDY", "SCORE", "SEA", "SHARP",
    "SALE", "SALES", "SHELL", "SHORT", "SIGN", "SILVER", "SKY", "SMALL", "SNOW", "SPRING", "STAR", "STATE", "STEEL", "STERLING", "STONE",
    "STORM", "STORY", "STREET", "SUMMER", "SUNNY", "SWIFT", "TASK", "TAYLOR", "TEST", "TODAY", "TOWN", "TRUE", "TRUST",
    "TURNER", "VALLEY", "VICTORY", "WADE", "WALL", "WARD", "WASH", "WATER", "WATERS", "WAY", "WELLS", "WEST", "WHITE",
    "WILL", "WINTER", "WISE", "WOLF", "WOOD", "WOODS", "YOUNG",
];

/// Words that name software far more often than people: a pair with one is not a name.
const TECH: &[&str] = &[
    "ADA", "ANGULAR", "ANSIBLE", "APACHE", "AZURE", "CASSANDRA", "CHROME", "CLAUDE", "CRYSTAL", "DART", "DJANGO",
    "DOCKER", "ELIXIR", "EMBER", "FLASK", "GATSBY", "GEMINI", "GRAFANA", "HADOOP", "HASKELL", "HUGO", "JASMINE",
    "JEKYLL", "JENKINS", "JEST", "JULIA", "KAFKA", "KARMA", "KOTLIN", "LARAVEL", "MOCHA", "NGINX", "ORACLE", "PASCAL",
    "PERL", "PRISMA", "RAILS", "REACT", "REDIS", "RUBY", "RUST", "SCALA", "SENTRY", "SPHINX", "SPRING", "SWIFT",
    "TERRAFORM", "VUE", "WINDOWS", "SIRI", "ALEXA", "CORTANA", "COPILOT", "SONNET", "OPUS", "HAIKU", "LLAMA", "MISTRAL",
];

/// Greetings and sign-offs after which one listed name is taken (`Hi Maria`, `Thanks,\nJohn`).
const WEAK: &[&str] = &[
    "hi", "hello", "hey", "dear", "thanks", "thank you", "cheers", "regards", "best", "sincerely", "yours", "bye",
    "hallo", "hola", "bonjour", "ciao", "morning", "i'm", "i am", "this is", "call me", "ask", "cc", "from",
    "assigned to", "signed", "love", "talk to", "contact", "thx", "ty",
];

/// Phrases after which any capitalised words are a name (`my name is`, `signed by`).
const STRONG: &[&str] = &[
    "my name is", "name is", "named", "signed by", "requested by", "reported by", "approved by", "written by",
    "submitted by", "created by",
];

/// Keys after which (with `:` or `=`) any capitalised words are a name (`full_name: …`).
const STRONG_KEYS: &[&str] = &[
    "full name", "full_name", "fullname", "first name", "first_name", "firstname", "last name", "last_name",
    "lastname", "given_name", "family_name", "surname", "customer_name", "contact_name", "patient_name",
    "display_name", "author", "customer", "patient", "employee", "sender", "recipient", "owner_name", "user_name",
];

/// Titles, matched as written, after which any capitalised words are a name (`Dr. Okafor`).
const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Madam", "Herr", "Frau", "Mme", "Mlle", "Sr", "Sra"];

/// FNV-1a: the sets are looked up once per capitalised word of every string, and SipHash's
/// protection against chosen collisions buys nothing for a fixed, compiled-in key set.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Set<T> = HashSet<T, BuildHasherDefault<Fnv>>;

pub struct Names {
    // Upper-cased UTF-8 bytes: looked up with [`Up`]'s bytes as they are, so a lookup
    // validates nothing (`from_utf8` on every word cost ~1.4% of a realistic trace).
    given: Set<Box<[u8]>>,
    surnames: Set<Box<[u8]>>,
    common: Set<&'static [u8]>,
    tech: Set<&'static [u8]>,
    /// The last word of every context phrase, lower-cased: most capitalised words follow a
    /// word that ends no phrase, and are rejected with one lookup.
    last_words: Set<String>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").field("given", &self.given.len()).field("surnames", &self.surnames.len()).finish()
    }
}

/// One word of the text: byte range, and whether it is capitalised (`Maria`, `O'Brien`, `Zoë`).
#[derive(Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    cap: bool,
}

fn list(text: &'static str) -> impl Iterator<Item = Box<[u8]>> {
    text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(|l| l.trim().as_bytes().into())
}

impl Names {
    pub fn load() -> Names {
        let mut given: Set<Box<[u8]>> = list(GIVEN).collect();
        given.extend(EXTRA_GIVEN.iter().map(|s| Box::<[u8]>::from(s.as_bytes())));
        let mut surnames: Set<Box<[u8]>> = list(SURNAMES).collect();
        surnames.extend(EXTRA_SURNAMES.iter().map(|s| Box::<[u8]>::from(s.as_bytes())));
        let last_words = STRONG
            .iter()
            .chain(STRONG_KEYS)
            .chain(WEAK)
            .chain(TITLES)
            .chain(&["name"])
            .filter_map(|p| p.rsplit(' ').next())
            .map(str::to_ascii_lowercase)
            .collect();
        Names { given, surnames, common: COMMON.iter().map(|s| s.as_bytes()).collect(), tech: TECH.iter().map(|s| s.as_bytes()).collect(), last_words }
    }

    /// Finds names in `text`, appending their spans.
    pub fn scan(&self, text: &str, out: &mut Vec<Span>) {
        // The word list is reused from string to string (this runs on every string).
        let mut words = WORDS.with(|w| std::mem::take(&mut *w.borrow_mut()));
        if capitalised_words(text, &mut words) {
            self.scan_words(text, &words, out);
        }
        WORDS.with(|w| *w.borrow_mut() = words);
    }

    fn scan_words(&self, text: &str, words: &[Word], out: &mut Vec<Span>) {
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            if !w.cap {
                i += 1;
                continue;
            }
            if let Some(last) = self.pair(text, words, i) {
                out.push(Span { start: w.start, end: words[last].end, detector: Detector::PersonName });
                i = last + 1;
                continue;
            }
            if let Some(strength) = self.context(text, w.start) {
                let up = upper(&text[w.start..w.end]);
                let ok = match strength {
                    Strength::Strong => !self.tech.contains(&*up),
                    Strength::Weak => {
                        let plain = !self.common.contains(&*up) && !self.tech.contains(&*up);
                        // `Hi Thandiwe,` / `Thanks,\nBolat`: a name on no list, set off the way
                        // greetings and signatures set names off.
                        let set_off = closes_phrase(text, words, i) && !GREETING_TARGETS.iter().any(|g| g.as_bytes() == &*up);
                        plain && (self.listed(&up) || set_off)
                    }
                };
                if ok {
                    // The name and up to two more capitalised words right after it.
                    let mut last = i;
                    while last + 1 < words.len() && last < i + 2 && words[last + 1].cap && single_space(text, words[last].end, words[last + 1].start) {
                        last += 1;
                    }
                    out.push(Span { start: w.start, end: words[last].end, detector: Detector::PersonName });
                    i = last + 1;
                    continue;
                }
            }
            i += 1;
        }
    }

    fn listed(&self, up: &Up) -> bool {
        self.is_given(up) || self.is_surname(up)
    }

    fn is_given(&self, up: &Up) -> bool {
        self.given.contains(&**up) || up.non_ascii().is_some_and(|w| self.given.contains(fold(w).as_bytes()))
    }

    fn is_surname(&self, up: &Up) -> bool {
        self.surnames.contains(&**up) || up.non_ascii().is_some_and(|w| self.surnames.contains(fold(w).as_bytes()))
    }

    /// A given name at `i`, then (optionally a middle name or initial) a surname: the index of
    /// the last word of the name.
    fn pair(&self, text: &str, words: &[Word], i: usize) -> Option<usize> {
        let w = words[i];
        let first = upper(&text[w.start..w.end]);
        if first.chars() < 2 || !self.is_given(&first) {
            return None;
        }
        let next = |k: usize| words.get(k).filter(|n| n.cap && single_space(text, words[k - 1].end, n.start));
        let n1 = next(i + 1)?;
        let second = upper(&text[n1.start..n1.end]);
        let mut last_idx = i + 1;
        let mut last = second;
        // Middle initial (`John F. Kennedy`) or middle name (`Mary Ann Smith`).
        let initial = last.chars() == 1 && text.as_bytes().get(n1.end) == Some(&b'.');
        if initial || (self.is_given(&last) && !self.is_surname(&last)) {
            let k = i + 2;
            let gap_ok = words.get(k).is_some_and(|n| {
                n.cap && {
                    let gap = &text[words[k - 1].end..n.start];
                    gap == " " || gap == ". "
                }
            });
            if gap_ok {
                last_idx = k;
                last = upper(&text[words[k].start..words[k].end]);
            } else if initial {
                return None;
            }
        }
        if last.chars() < 2 || !self.is_surname(&last) {
            return None;
        }
        if self.tech.contains(&*first) || self.tech.contains(&*last) {
            return None;
        }
        if self.common.contains(&*first) && self.common.contains(&*last) {
            return None;
        }
        // An ordinary word opening a Title Case run (`Sterling Silver Plan`) is a heading.
        let title_run = words.get(last_idx + 1).is_some_and(|n| n.cap && single_space(text, words[last_idx].end, n.start));
        if self.common.contains(&*first) && title_run {
            return None;
        }
        // An all-capitals pair is a heading or a constant, not a name.
        if text[w.start..words[last_idx].end].chars().filter(|c| c.is_alphabetic()).all(char::is_uppercase) {
            return None;
        }
        Some(last_idx)
    }
}

/// Words greeted that are not names (`Hi team,`, `Thanks all!`).
const GREETING_TARGETS: &[&str] = &[
    "TEAM", "ALL", "EVERYONE", "EVERYBODY", "THERE", "FOLKS", "GUYS", "SUPPORT", "CUSTOMER", "SIR", "MADAM", "FRIEND",
    "FRIENDS", "AGAIN", "BOTH", "YOU", "WORLD", "SO", "FOR", "AND", "THE", "ME", "US", "IN", "ADVANCE", "MUCH", "A",
    "LOT", "TONS", "SALES", "BILLING", "ACCOUNTS", "ADMIN", "HR", "IT", "OPS", "DEVOPS", "SECURITY", "MANAGEMENT",
];

/// The word at `i` (with up to two capitalised words after it) ends at `,`, `!`, a line break
/// or the end of the text, as a greeted or signing name does.
fn closes_phrase(text: &str, words: &[Word], i: usize) -> bool {
    let mut last = i;
    while last + 1 < words.len() && last < i + 2 && words[last + 1].cap && single_space(text, words[last].end, words[last + 1].start) {
        last += 1;
    }
    let rest = &text[words[last].end..];
    rest.is_empty() || rest.starts_with([',', '!', '\n', '\r']) || rest.starts_with("\\n") || rest.starts_with("\\r")
}

enum Strength {
    Weak,
    Strong,
}

thread_local! {
    /// [`Names::scan`]'s word list, kept between calls so scanning a string allocates nothing.
    static WORDS: std::cell::RefCell<Vec<Word>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `b` can hold a name: a capitalised word (`Ab…` at a word start, or an upper-case
/// first byte) or a non-ASCII letter. The reference definition; [`capitalised_words`] computes
/// it on its own pass.
#[cfg(test)]
fn candidate(b: &[u8]) -> bool {
    b.iter().any(|c| *c >= 0x80)
        || b.windows(3).any(|w| !w[0].is_ascii_alphanumeric() && w[1].is_ascii_uppercase() && w[2].is_ascii_lowercase())
        || b.first().is_some_and(u8::is_ascii_uppercase)
}

/// The capitalised words of the text (letters, with `'` and `-` inside, as in `O'Brien`,
/// `Jean-Luc`), into `out` (cleared first), exactly as [`words_into`] finds them, and whether
/// the text can hold a name at all ([`candidate`]; when it cannot, `out` is to be ignored).
///
/// Why not walk every word: only capitalised words are kept, and they start at a capital or a
/// non-ASCII character, so the walk jumps from one such anchor to the next eight bytes at a
/// time ([`gate::next_capital_or_high`]) and decides from the characters just before it
/// whether the anchor starts a word ([`continues_word`]); only words that start there are
/// walked. Lower-case prose, most of every trace, is skimmed, not decoded.
fn capitalised_words(text: &str, out: &mut Vec<Word>) -> bool {
    out.clear();
    let b = text.as_bytes();
    let mut cand = b.first().is_some_and(u8::is_ascii_uppercase);
    // `Ab` after a byte that is no letter or digit: [`candidate`]'s window at a capital `q`.
    let window = |q: usize| q >= 1 && b.get(q + 1).is_some_and(u8::is_ascii_lowercase) && b.get(q - 1).is_some_and(|c| !c.is_ascii_alphanumeric());
    let mut i = 0;
    while let Some(a) = gate::next_capital_or_high(b, i) {
        let Some(&c0) = b.get(a) else { break };
        let (first, len) = if c0 < 0x80 {
            if !cand {
                cand = window(a);
            }
            (char::from(c0), 1)
        } else {
            cand = true;
            match text.get(a..).and_then(|t| t.chars().next()) {
                Some(ch) => (ch, ch.len_utf8()),
                // A continuation byte: the character it belongs to was an anchor already.
                None => {
                    i = a + 1;
                    continue;
                }
            }
        };
        if !first.is_alphabetic() || !first.is_uppercase() || continues_word(text, a) {
            i = a + len;
            continue;
        }
        let (e, second) = word_end(text, a, len);
        if !cand {
            // Capitals and non-ASCII letters inside the word were jumped over; [`candidate`]
            // looks at them too.
            cand = (a + 1..e).any(|q| b.get(q).is_some_and(|&c| c >= 0x80 || (c.is_ascii_uppercase() && window(q))));
        }
        i = e;
        if !second.is_none_or(|d| d.is_lowercase() || d == '\'' || d == '\u{2019}') {
            continue;
        }
        if !glued(b, a, e) {
            out.push(Word { start: a, end: e, cap: true });
        }
    }
    cand
}

/// Whether the alphabetic character at `a` continues a word begun before it, as
/// [`words_into`]'s left-to-right walk would have it: the character before it is a letter of a
/// word, or a joiner (`'`, `-`, `’`) right after one. A letter is in a word unless it is the
/// letter of a `\n`, `\t`, `\r` left in text, which the walk skips on its own.
fn continues_word(text: &str, a: usize) -> bool {
    let b = text.as_bytes();
    let escape_letter = |q: usize| q >= 1 && b.get(q - 1) == Some(&b'\\') && matches!(b.get(q), Some(b'n' | b't' | b'r'));
    let Some(p) = text.get(..a).and_then(|h| h.chars().next_back()) else { return false };
    let ps = a - p.len_utf8();
    if p.is_alphabetic() {
        return !escape_letter(ps);
    }
    if matches!(p, '\'' | '-' | '\u{2019}') {
        let Some(pp) = text.get(..ps).and_then(|h| h.chars().next_back()) else { return false };
        return pp.is_alphabetic() && !escape_letter(ps - pp.len_utf8());
    }
    false
}

/// The end of the word whose first character (`len` bytes) is at `start`, and its second
/// character: letters, and `'`, `-`, `’` between letters.
fn word_end(text: &str, start: usize, len: usize) -> (usize, Option<char>) {
    let b = text.as_bytes();
    let mut e = start + len;
    let mut second: Option<char> = None;
    while e < b.len() {
        // ASCII letters, most of every word, without decoding characters.
        let from = e;
        while b.get(e).is_some_and(u8::is_ascii_alphabetic) {
            e += 1;
        }
        if e > from && second.is_none() {
            second = b.get(from).map(|&c| char::from(c));
        }
        let Some(&c) = b.get(e) else { break };
        let (d, dl) = if c < 0x80 {
            (char::from(c), 1)
        } else {
            match text.get(e..).and_then(|t| t.chars().next()) {
                Some(ch) => (ch, ch.len_utf8()),
                None => break,
            }
        };
        let inner = (d == '\'' || d == '-' || d == '\u{2019}') && text.get(e + dl..).and_then(|t| t.chars().next()).is_some_and(char::is_alphabetic);
        if !(d.is_alphabetic() || inner) {
            break;
        }
        if second.is_none() {
            second = Some(d);
        }
        e += dl;
    }
    (e, second)
}

/// A digit or `_` glued to the word `start..end` makes it an identifier (as do `@`, `/`, `.`
/// in front).
fn glued(b: &[u8], start: usize, end: usize) -> bool {
    b.get(end).is_some_and(|d| d.is_ascii_digit() || *d == b'_')
        || start.checked_sub(1).and_then(|p| b.get(p)).is_some_and(|d| d.is_ascii_digit() || matches!(d, b'_' | b'@' | b'/' | b'.'))
}

/// The reference walk [`capitalised_words`] must equal: every word, byte by byte.
#[cfg(test)]
fn words_into(text: &str, out: &mut Vec<Word>) {
    out.clear();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c0 = b[i];
        let (first, len) = if c0 < 0x80 {
            (char::from(c0), 1)
        } else {
            match text.get(i..).and_then(|t| t.chars().next()) {
                Some(ch) => (ch, ch.len_utf8()),
                None => {
                    i += 1;
                    continue;
                }
            }
        };
        if !first.is_alphabetic() {
            i += len;
            continue;
        }
        // `\n`, `\t`, `\r` left in text (logfmt, JSON in logs) separate words.
        if i > 0 && b[i - 1] == b'\\' && matches!(c0, b'n' | b't' | b'r') {
            i += 1;
            continue;
        }
        let start = i;
        let mut e = i + len;
        let mut second: Option<char> = None;
        while e < b.len() {
            let (d, dl) = if b[e] < 0x80 {
                (char::from(b[e]), 1)
            } else {
                match text.get(e..).and_then(|t| t.chars().next()) {
                    Some(ch) => (ch, ch.len_utf8()),
                    None => break,
                }
            };
            let inner = (d == '\'' || d == '-' || d == '\u{2019}') && text.get(e + dl..).and_then(|t| t.chars().next()).is_some_and(char::is_alphabetic);
            if !(d.is_alphabetic() || inner) {
                break;
            }
            if second.is_none() {
                second = Some(d);
            }
            e += dl;
        }
        i = e;
        if !first.is_uppercase() || !second.is_none_or(|d| d.is_lowercase() || d == '\'' || d == '\u{2019}') {
            continue;
        }
        // A digit or `_` glued to the word makes it an identifier.
        let glued = b.get(e).is_some_and(|d| d.is_ascii_digit() || *d == b'_')
            || start.checked_sub(1).and_then(|p| b.get(p)).is_some_and(|d| d.is_ascii_digit() || matches!(d, b'_' | b'@' | b'/' | b'.'));
        if !glued {
            out.push(Word { start, end: e, cap: true });
        }
    }
}

/// True when the bytes between two words are one space (the words form one phrase).
fn single_space(text: &str, a: usize, b: usize) -> bool {
    text.get(a..b) == Some(" ")
}

/// A word upper-cased: on the stack for ASCII words (nearly all), so lookups allocate nothing.
struct Up {
    buf: [u8; 32],
    len: usize,
    heap: Option<String>,
}

impl Up {
    /// The word upper-cased, as UTF-8 bytes.
    fn bytes(&self) -> &[u8] {
        match &self.heap {
            Some(s) => s.as_bytes(),
            None => self.buf.get(..self.len).unwrap_or_default(),
        }
    }

    /// The word upper-cased, when it is not ASCII (only such words can need folding).
    fn non_ascii(&self) -> Option<&str> {
        self.heap.as_deref().filter(|s| !s.is_ascii())
    }

    fn chars(&self) -> usize {
        match &self.heap {
            Some(s) => s.chars().count(),
            // ASCII on the stack: a byte per character.
            None => self.len,
        }
    }
}

impl std::ops::Deref for Up {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

fn upper(w: &str) -> Up {
    let mut up = Up { buf: [0; 32], len: 0, heap: None };
    if w.is_ascii() && w.len() <= 32 {
        for (slot, b) in up.buf.iter_mut().zip(w.bytes()) {
            *slot = b.to_ascii_uppercase();
        }
        up.len = w.len();
    } else {
        up.heap = Some(w.to_uppercase());
    }
    up
}

/// Strips the common Latin diacritics of an upper-cased word, so `GARCÍA` finds the census `GARCIA`.
fn fold(up: &str) -> String {
    if up.is_ascii() {
        return up.to_owned();
    }
    let mut out = String::with_capacity(up.len());
    for c in up.chars() {
        let r = match c {
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ą' | 'Ă' => "A",
            'Æ' => "AE",
            'Ç' | 'Ć' | 'Č' => "C",
            'Ð' | 'Đ' | 'Ď' => "D",
            'È' | 'É' | 'Ê' | 'Ë' | 'Ę' | 'Ě' => "E",
            'Ì' | 'Í' | 'Î' | 'Ï' | 'İ' => "I",
            'Ł' => "L",
            'Ñ' | 'Ń' | 'Ň' => "N",
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ő' => "O",
            'Œ' => "OE",
            'Ř' => "R",
            'Ś' | 'Š' | 'Ş' | 'Ș' => "S",
            'ẞ' | 'ß' => "SS",
            'Ț' | 'Ť' => "T",
            'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ű' | 'Ů' => "U",
            'Ý' | 'Ÿ' => "Y",
            'Ź' | 'Ż' | 'Ž' => "Z",
            'Ğ' => "G",
            '\u{2019}' => "'",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(r);
    }
    out
}

impl Names {
    /// The context before a capitalised word at `at`: a greeting or sign-off (weak) or a label
    /// (strong), ignoring blanks, one line break, `,`, `:`, `=`, quotes and `.` in between.
    fn context(&self, text: &str, at: usize) -> Option<Strength> {
        let b = text.as_bytes();
        let mut p = at;
        let mut newlines = 0;
        while p > 0 && at - p < 12 {
            let c = b[p - 1];
            if matches!(c, b'n' | b'r' | b't') && p >= 2 && b[p - 2] == b'\\' {
                newlines += 1;
                if newlines > 2 {
                    return None;
                }
                p -= 2;
                continue;
            }
            match c {
                b' ' | b'\t' | b',' | b':' | b'=' | b'"' | b'\'' | b'.' | b'!' | b'-' | b'\\' => p -= 1,
                b'\n' | b'\r' => {
                    newlines += 1;
                    if newlines > 2 {
                        return None;
                    }
                    p -= 1;
                }
                _ => break,
            }
        }
        if p == at && at > 0 {
            return None;
        }
        // The word before the gap must end some phrase.
        let hb = text.as_bytes();
        let mut q = p;
        while q > 0 && p - q < 24 && (hb[q - 1].is_ascii_alphabetic() || matches!(hb[q - 1], b'_' | b'\'')) {
            q -= 1;
        }
        let mut lw = [0u8; 24];
        let last = &hb[q..p];
        for (slot, c) in lw.iter_mut().zip(last) {
            *slot = c.to_ascii_lowercase();
        }
        match std::str::from_utf8(&lw[..last.len()]) {
            Ok(w) if self.last_words.contains(w) => {}
            _ => return None,
        }
        let gap = text.get(p..at)?;
        let keyed = gap.contains(':') || gap.contains('=');
        let head = text.get(..p)?;
        let bounded = |h: &str, w: &str| {
            let before = h.len() - w.len();
            before == 0 || h.get(..before).and_then(|x| x.chars().next_back()).is_some_and(|c| !c.is_alphanumeric() && c != '_')
        };
        if TITLES.iter().any(|t| head.ends_with(t) && bounded(head, t)) {
            return Some(Strength::Strong);
        }
        let ends = |w: &str| {
            let (hb, wb) = (head.as_bytes(), w.as_bytes());
            hb.len() >= wb.len() && hb[hb.len() - wb.len()..].eq_ignore_ascii_case(wb) && bounded(head, w)
        };
        if STRONG.iter().any(|w| ends(w)) || (keyed && STRONG_KEYS.iter().any(|w| ends(w))) {
            return Some(Strength::Strong);
        }
        if (keyed && ends("name")) || WEAK.iter().any(|w| ends(w)) {
            return Some(Strength::Weak);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(words: &[Word]) -> Vec<(usize, usize)> {
        words.iter().map(|w| (w.start, w.end)).collect()
    }

    /// The anchored walk finds exactly the capitalised words, and answers [`candidate`] exactly,
    /// as the byte-by-byte walk does: generated texts over an alphabet of the cases that matter
    /// (capitals inside words, joiners, `\n` left in text, glue, non-ASCII capitals and
    /// lower-case letters, letters with no case, a capital right at an 8-byte edge).
    #[test]
    fn anchored_words_equal_the_byte_walk() {
        const PIECES: &[&str] = &[
            "a", "b", "n", "t", "r", "z", "A", "B", "N", "Z", "Jo", "Maria", "mcDonald", "O'", "'", "-", "\u{2019}", "\\",
            " ", "  ", ",", ".", "@", "/", "_", "1", "9", "É", "é", "Ж", "ж", "ß", "ǅ", "中", "Ⅻ", "Ⓐ", "\n", "x\\nJohn",
            "12345678", "abcdefg", "Hi ", "THE", "\r\n",
        ];
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let mut named = 0;
        for _ in 0..60_000 {
            let mut text = String::new();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = (rng % 14) as usize;
            for k in 0..n {
                let r = rng.rotate_left(5 * k as u32 + 3);
                text.push_str(PIECES[(r % PIECES.len() as u64) as usize]);
            }
            let cand = capitalised_words(&text, &mut fast);
            assert_eq!(cand, candidate(text.as_bytes()), "candidate of {text:?}");
            words_into(&text, &mut slow);
            if cand {
                assert_eq!(spans(&fast), spans(&slow), "words of {text:?}");
                named += usize::from(!slow.is_empty());
            }
        }
        // The generator reaches the interesting cases, not only texts with no capital word.
        assert!(named > 10_000, "{named}");
    }

    #[test]
    fn anchored_words_on_examples() {
        let mut w = Vec::new();
        let text = "hi O'Brien and Jean-Luc, mcDonald\\nJohn x\\n-Bob Zoë 9Ann _Ann É";
        assert!(capitalised_words(text, &mut w));
        let got: Vec<&str> = w.iter().map(|w| &text[w.start..w.end]).collect();
        assert_eq!(got, ["O'Brien", "Jean-Luc", "John", "Bob", "Zoë", "É"]);
    }
}
