//! A generated, labeled corpus of realistic traces for measuring the masking engine: OTLP
//! GenAI spans and agent-framework step logs, each carrying planted secrets, PII and person
//! names (labeled with their type and the exact planted string) among decoys that must be left
//! alone, in the placements and encodings real traces use.
//!
//! Placements: whole values, object keys, prose, key-value log text, code blocks, shell
//! commands, HTTP headers, URLs, connection strings. Encodings: plain strings, JSON inside
//! strings (`gen_ai.input.messages`), doubly encoded JSON (tool arguments inside messages), Go's
//! HTML-safe escapes (`\u003c`, `\u0026`), `\uXXXX` escapes left in text, percent-encoding.
//!
//! Deterministic: one xorshift generator seeded by the caller, so a failure reproduces.
//! Nothing here is used by the engine; it only generates and labels.

#![allow(dead_code)]

mod rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracegate_core::mask::{decode_escapes, validate};

/// Every text a masker may scan in `v`, and so every form a planted value could survive in:
/// strings and keys, JSON inside strings (to six layers), and each string's escape-decoded
/// forms (one and two layers). The recall test searches these for survivors; the detections
/// reference scans them.
pub fn texts<E: Extend<String>>(v: &Value, out: &mut E, depth: u32) {
    match v {
        Value::String(s) => {
            if depth < 6 {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    if inner.is_object() || inner.is_array() || inner.is_string() {
                        texts(&inner, out, depth + 1);
                    }
                }
            }
            if let Some(d) = decode_escapes(s) {
                if let Some(dd) = decode_escapes(&d) {
                    out.extend([dd]);
                }
                out.extend([d]);
            }
            out.extend([s.clone()]);
        }
        Value::Array(a) => a.iter().for_each(|e| texts(e, out, depth)),
        Value::Object(m) => m.iter().for_each(|(k, e)| {
            out.extend([k.clone()]);
            texts(e, out, depth);
        }),
        _ => {}
    }
}

/// What a planted value is, for the per-class targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Secret,
    Pii,
    Name,
}

#[derive(Debug, Clone)]
pub struct Planted {
    pub class: Class,
    /// The type label, e.g. `password_prose`, `email`.
    pub kind: &'static str,
    /// The exact planted string: masking succeeded when it survives nowhere in its trace.
    pub value: String,
    /// Which trace holds it.
    pub trace: usize,
}

#[derive(Debug, Clone)]
pub struct Decoy {
    pub kind: &'static str,
    /// The exact decoy string: it must survive masking unchanged.
    pub value: String,
    pub trace: usize,
}

#[derive(Debug, Default)]
pub struct Corpus {
    pub traces: Vec<Value>,
    pub planted: Vec<Planted>,
    pub decoys: Vec<Decoy>,
}

pub use rng::Rng;

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const HEX: &str = "0123456789abcdef";
const BASE32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

fn text_of(d: &[u8]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

fn luhn_complete(mut d: Vec<u8>) -> Vec<u8> {
    let mut sum = 0u32;
    for (i, x) in d.iter().rev().enumerate() {
        let mut v = u32::from(*x);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    d.push(((10 - sum % 10) % 10) as u8);
    d
}

fn iban_for(cc: &str, bban: &str) -> String {
    let mut rem = 0u32;
    let rearranged = format!("{bban}{cc}00");
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    format!("{cc}{:02}{bban}", 98 - rem)
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        if at >= s.len() {
            break;
        }
        out.push(&s[at..(at + n).min(s.len())]);
        at += n;
    }
    if at < s.len() {
        out.push(&s[at..]);
    }
    out.join(sep)
}

fn base62(mut n: u32, width: usize) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = A[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn base58(bytes: &[u8]) -> String {
    const A: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    let mut s: String = "1".repeat(zeros);
    s.extend(digits.iter().rev().map(|&d| char::from(A[usize::from(d)])));
    s
}

fn bech32(hrp: &str, data: &[u8]) -> String {
    const CS: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let polymod = |values: &[u8]| {
        let mut chk = 1u32;
        for &v in values {
            let top = chk >> 25;
            chk = ((chk & 0x01FF_FFFF) << 5) ^ u32::from(v);
            for (i, g) in [0x3B6A_57B2u32, 0x2650_8E6D, 0x1EA1_19FA, 0x3D42_33DD, 0x2A14_62B3].iter().enumerate() {
                if (top >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    };
    let mut values: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    values.push(0);
    values.extend(hrp.bytes().map(|c| c & 31));
    values.extend_from_slice(data);
    values.extend_from_slice(&[0; 6]);
    let pm = polymod(&values) ^ 1;
    let mut out = format!("{hrp}1");
    for &d in data {
        out.push(char::from(CS[usize::from(d)]));
    }
    for i in 0..6 {
        out.push(char::from(CS[((pm >> (5 * (5 - i))) & 31) as usize]));
    }
    out
}

// ---------------------------------------------------------------- value generators

struct Gen<'a> {
    r: &'a mut Rng,
}

const WORDS_CAP: &[&str] = &["Maple", "River", "Autumn", "Falcon", "Quartz", "Kestrel", "Harbor", "Copper", "Winter", "Orchid", "Summit", "Cobalt"];
const SYMBOLS: &str = "!#$%&*?+";

impl Gen<'_> {
    fn password(&mut self) -> String {
        let r = &mut *self.r;
        match r.below(4) {
            0 => format!("{}{}{}{}", r.pick(WORDS_CAP), r.chars(SYMBOLS, 1), r.pick(WORDS_CAP), r.chars("0123456789", 2)),
            1 => format!("{}{}{}", r.pick(WORDS_CAP), 2000 + r.below(30), r.chars(SYMBOLS, 1)),
            2 => r.chars("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%*", 14),
            _ => format!("{}{}{}", r.chars(LOWER, 5), r.chars("0123456789", 3), r.chars(SYMBOLS, 1)),
        }
    }

    fn github(&mut self) -> String {
        let random = self.r.chars(ALNUM, 30);
        let p = *self.r.pick(&["ghp_", "gho_", "ghs_", "ghu_"]);
        format!("{p}{random}{}", base62(crc32(random.as_bytes()), 6))
    }

    fn npm(&mut self) -> String {
        let random = self.r.chars(ALNUM, 30);
        format!("npm_{random}{}", base62(crc32(random.as_bytes()), 6))
    }

    fn aws_secret(&mut self) -> String {
        self.r.chars(B64, 40)
    }

    fn pem(&mut self) -> String {
        let kind = *self.r.pick(&["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]);
        let lines: Vec<String> = (0..4).map(|_| self.r.chars(B64, 64)).collect();
        format!("-----BEGIN {kind}-----\n{}\n-----END {kind}-----", lines.join("\n"))
    }

    fn jwt(&mut self) -> String {
        format!("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}", self.r.chars(B64URL, 60), self.r.chars(B64URL, 43))
    }

    fn card(&mut self) -> String {
        let prefixes: [&[u8]; 5] = [&[4], &[5, 1], &[5, 5], &[3, 7], &[6, 0, 1, 1]];
        let prefix = *self.r.pick(&prefixes);
        let len = if prefix.starts_with(&[3, 7]) { 15 } else { 16 };
        let mut d = prefix.to_vec();
        while d.len() < len - 1 {
            d.push(self.r.below(10) as u8);
        }
        let s = text_of(&luhn_complete(d));
        match (len, self.r.below(3)) {
            (15, 0) => group(&s, &[4, 6, 5], " "),
            (16, 0) => group(&s, &[4, 4, 4, 4], " "),
            (16, 1) => group(&s, &[4, 4, 4, 4], "-"),
            _ => s,
        }
    }

    fn invalid_card(&mut self) -> String {
        let mut d = vec![4u8];
        while d.len() < 15 {
            d.push(self.r.below(10) as u8);
        }
        let mut full = luhn_complete(d);
        if let Some(last) = full.last_mut() {
            *last = (*last + 1 + self.r.below(8) as u8) % 10;
        }
        let s = text_of(&full);
        if self.r.chance(50) { group(&s, &[4, 4, 4, 4], " ") } else { s }
    }

    fn ssn(&mut self) -> String {
        let area = 1 + self.r.below(665);
        format!("{area:03}-{:02}-{:04}", 1 + self.r.below(98), 1 + self.r.below(9998))
    }

    fn iban(&mut self) -> String {
        let (cc, bban) = match self.r.below(3) {
            0 => ("DE", text_of(&self.r.digits(18))),
            1 => ("GB", format!("{}{}", self.r.chars(UPPER, 4), text_of(&self.r.digits(14)))),
            _ => ("FR", text_of(&self.r.digits(23))),
        };
        let iban = iban_for(cc, &bban);
        if self.r.chance(50) { group(&iban, &[4, 4, 4, 4, 4, 4, 4, 4], " ") } else { iban }
    }

    fn phone(&mut self) -> String {
        let r = &mut *self.r;
        let area = 201 + r.below(700);
        let ex = 200 + r.below(700);
        let line = r.below(10000);
        match r.below(5) {
            0 => format!("+1 {area} {ex} {line:04}"),
            1 => format!("({area}) {ex}-{line:04}"),
            2 => format!("{area}-{ex}-{line:04}"),
            3 => format!("+44 20 7946 {:04}", r.below(10000)),
            _ => format!("+49 151 {}", text_of(&r.digits(8))),
        }
    }

    fn ipv4(&mut self) -> String {
        let r = &mut *self.r;
        match r.below(3) {
            0 => format!("10.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254)),
            1 => format!("192.168.{}.{}", r.below(256), 1 + r.below(254)),
            _ => format!("{}.{}.{}.{}", 11 + r.below(200), r.below(256), r.below(256), 1 + r.below(254)),
        }
    }

    fn ipv6(&mut self) -> String {
        let g: Vec<String> = (0..5).map(|_| format!("{:x}", 1 + self.r.below(0xfffe))).collect();
        format!("2001:db8:{}:{}::{}:{}", g[0], g[1], g[2], g[3])
    }

    fn email(&mut self) -> String {
        let first = self.r.pick(FIRST).to_lowercase();
        let last = self.r.pick(LAST_ASCII).to_lowercase();
        let domain = *self.r.pick(&["example.com", "acme.io", "mail.example.org", "corp.example.co.uk", "gmail.com"]);
        match self.r.below(3) {
            0 => format!("{first}.{last}@{domain}"),
            1 => format!("{first}{}@{domain}", self.r.below(100)),
            _ => format!("{}+{}@{domain}", &first[..1], last),
        }
    }

    fn dob(&mut self) -> String {
        let (y, m, d) = (1940 + self.r.below(66), 1 + self.r.below(12), 1 + self.r.below(28));
        const MONTHS: &[&str] = &["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
        match self.r.below(4) {
            0 => format!("{y}-{m:02}-{d:02}"),
            1 => format!("{m:02}/{d:02}/{y}"),
            2 => format!("{d:02}.{m:02}.{y}"),
            _ => format!("{d} {} {y}", MONTHS[m - 1]),
        }
    }

    fn address(&mut self) -> String {
        let r = &mut *self.r;
        match r.below(4) {
            0 => format!("{} {} {}", 1 + r.below(9000), r.pick(&["Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lincoln", "Park", "Lake View"]), r.pick(&["Street", "St", "Avenue", "Ave", "Road", "Drive", "Lane", "Blvd", "Court"])),
            1 => format!("{} {} Ave, {}, {} {:05}", 10 + r.below(5000), r.pick(&["Pennsylvania", "Madison", "Jefferson", "Franklin"]), r.pick(&["Springfield", "Portland", "Austin", "Denver"]), r.pick(&["IL", "OR", "TX", "CO"]), 10000 + r.below(89999)),
            2 => format!("{} {} Road, London {}{} {}{}", 1 + r.below(300), r.pick(&["Baker", "Abbey", "Camden", "Kings"]), r.pick(&["NW", "SW", "E", "N"]), 1 + r.below(9), r.below(10), r.chars("ABDEFGHJLNPQRSTUWXYZ", 2)),
            _ => format!("{}{} {}, {:05} {}", r.pick(&["Haupt", "Linden", "Berliner ", "Goethe", "Bahnhof"]).trim_end(), r.pick(&["straße", "strasse", "weg", "platz", "allee"]), 1 + r.below(120), 10000 + r.below(89999), r.pick(&["Berlin", "München", "Köln", "Hamburg"])),
        }
    }

    fn nino(&mut self) -> String {
        let first = *self.r.pick(&["A", "B", "C", "E", "G", "H", "J", "K", "L", "M", "P", "R", "S", "T", "W", "Y"]);
        let second = *self.r.pick(&["A", "B", "C", "E", "H", "J", "K", "L", "M", "P", "R", "S", "W", "Y"]);
        let d = text_of(&self.r.digits(6));
        let suffix = *self.r.pick(&["A", "B", "C", "D"]);
        let pre = format!("{first}{second}");
        if matches!(pre.as_str(), "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ") {
            return format!("AB {} {} {} {suffix}", &d[0..2], &d[2..4], &d[4..6]);
        }
        if self.r.chance(50) { format!("{pre} {} {} {} {suffix}", &d[0..2], &d[2..4], &d[4..6]) } else { format!("{pre}{d}{suffix}") }
    }

    fn nhs(&mut self, valid: bool) -> String {
        loop {
            let d = self.r.digits(9);
            let sum: u32 = d.iter().enumerate().map(|(i, x)| u32::from(*x) * (10 - i as u32)).sum();
            let check = (11 - sum % 11) % 11;
            if check == 10 {
                continue;
            }
            let c = if valid { check as u8 } else { ((check + 1 + self.r.below(8) as u32) % 10) as u8 };
            let s = format!("{}{}", text_of(&d), c);
            if !valid && validate::nhs(s.as_bytes()) {
                continue;
            }
            return group(&s, &[3, 3, 4], " ");
        }
    }

    fn de_tax_id(&mut self) -> String {
        loop {
            let mut d = self.r.digits(10);
            d[0] = 1 + self.r.below(9) as u8;
            for c in 0..10u8 {
                let s = format!("{}{}", text_of(&d), c);
                if validate::de_tax_id(s.as_bytes()) {
                    return if self.r.chance(50) { group(&s, &[2, 3, 3, 3], " ") } else { s };
                }
            }
        }
    }

    fn aadhaar(&mut self, valid: bool) -> String {
        let mut d = self.r.digits(11);
        d[0] = 2 + self.r.below(8) as u8;
        for c in 0..10u8 {
            let s = format!("{}{}", text_of(&d), c);
            if validate::aadhaar(s.as_bytes()) == valid {
                return group(&s, &[4, 4, 4], " ");
            }
        }
        String::new()
    }

    fn pan(&mut self) -> String {
        format!("{}{}{}{}{}", self.r.chars(UPPER, 3), self.r.pick(&["P", "C", "H", "F"]), self.r.chars(UPPER, 1), text_of(&self.r.digits(4)), self.r.chars(UPPER, 1))
    }

    fn dni(&mut self) -> String {
        let n = 10_000_000 + self.r.below(89_999_999);
        let letter = b"TRWAGMYFPDXBNJZSQVHLCKE"[n % 23];
        format!("{n}{}", char::from(letter))
    }

    fn routing(&mut self) -> String {
        loop {
            let mut d = self.r.digits(8);
            d[0] = 0;
            d[1] = 1 + self.r.below(2) as u8;
            for c in 0..10u8 {
                let mut full = d.clone();
                full.push(c);
                let s = text_of(&full);
                if validate::aba_routing(s.as_bytes()) {
                    return s;
                }
            }
        }
    }

    fn mac(&mut self) -> String {
        let sep = if self.r.chance(70) { ":" } else { "-" };
        let parts: Vec<String> = (0..6).map(|i| if i == 0 { format!("{:02x}", 2 + 4 * self.r.below(60)) } else { self.r.chars(HEX, 2) }).collect();
        let s = parts.join(sep);
        if sep == "-" { s.to_uppercase() } else { s }
    }

    fn wallet(&mut self) -> String {
        match self.r.below(3) {
            0 => {
                let mut payload = vec![if self.r.chance(50) { 0u8 } else { 5 }];
                payload.extend((0..20).map(|_| self.r.below(256) as u8));
                let check = Sha256::digest(Sha256::digest(&payload));
                payload.extend_from_slice(&check[..4]);
                base58(&payload)
            }
            1 => {
                let mut data = vec![0u8];
                data.extend((0..32).map(|_| self.r.below(32) as u8));
                bech32("bc", &data)
            }
            _ => format!("0x{}", self.r.chars("0123456789abcdefABCDEF", 40)),
        }
    }

    fn passport(&mut self) -> String {
        if self.r.chance(50) { text_of(&self.r.digits(9)) } else { format!("{}{}", self.r.chars(UPPER, 2), text_of(&self.r.digits(7))) }
    }
}

// ---------------------------------------------------------------- names

/// Given names used in the corpus: common US ones, and others from around the world (some of
/// them on no list the engine has, so recall is measured, not assumed).
pub const FIRST: &[&str] = &[
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William",
    "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Daniel", "Nancy",
    "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Margaret", "Steven", "Sandra", "Andrew", "Ashley", "Joshua",
    "Emily", "Kevin", "Donna", "Brian", "Michelle", "George", "Carol", "Timothy", "Amanda", "Ronald", "Melissa",
    "Jason", "Deborah", "Ryan", "Stephanie", "Jacob", "Rebecca", "Gary", "Laura", "Nicholas", "Sharon", "Eric",
    "Cynthia", "Dana", "Olivia", "Ethan", "Sophia", "Noah", "Emma", "Liam", "Ava", "Priya", "Arjun", "Wei", "Mei",
    "Hiroshi", "Yuki", "Fatima", "Omar", "Aisha", "Chidi", "Kwame", "Ngozi", "Lukas", "Ingrid", "Giulia", "Matteo",
    "Siobhan", "Aoife", "Dmitri", "Olga", "Raj", "Ananya", "Mateo", "Camila", "Santiago", "Valentina",
    "Oluwaseun", "Thandiwe", "Xochitl", "Anahera", "Bolat", "Nilufar",
];

/// Given names with diacritics, written as people write them.
pub const FIRST_NON_ASCII: &[&str] = &["José", "María", "François", "Zoë", "Jürgen", "Søren", "Łukasz", "Siobhán", "Renée", "Björn", "Chloé", "Inês", "João", "Ayşe"];

pub const LAST_ASCII: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
    "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Kim", "Chen", "Wang", "Singh", "Kumar",
    "Tanaka", "Suzuki", "Okafor", "Mensah", "Kowalski", "Novak", "Rossi", "Schmidt", "Fischer", "Weber", "Dubois",
    "Petrov", "Ivanova", "Kelly", "Murphy", "O'Brien", "Sullivan", "Haddad", "Khan", "Ahmed", "Adeyemi",
];

pub const LAST_NON_ASCII: &[&str] = &["García", "Müller", "Dvořák", "Kowalczyk", "Sørensen", "Jiménez", "Schröder", "Lefèvre", "Yılmaz", "Nguyễn", "Wiśniewski", "Gonçalves"];

// ---------------------------------------------------------------- placements

/// A carrier text holding the planted value, and the kind of place it goes.
struct Carrier {
    text: String,
    /// May stand alone as a JSON member's whole value.
    whole_value: bool,
}

fn carrier(text: String) -> Carrier {
    Carrier { text, whole_value: false }
}

fn whole(text: String) -> Carrier {
    Carrier { text, whole_value: true }
}

/// One planted item: its label and the text that carries it.
fn plant(r: &mut Rng) -> (Planted, Carrier) {
    let kinds: &[&str] = &[
        "password_prose", "password_command", "password_connection", "password_env", "password_json_text",
        "secret_key_prose", "token_prose", "bearer_header", "cookie_header", "aws_access_key_id",
        "aws_secret_access_key", "github_token", "gitlab_token", "slack_token", "slack_webhook", "openai_api_key",
        "anthropic_api_key", "stripe_key", "google_api_key", "google_oauth_token", "npm_token", "huggingface_token",
        "groq_api_key", "replicate_token", "docker_hub_token", "sendgrid_api_key", "twilio_key", "atlassian_token",
        "datadog_key", "cohere_api_key", "supabase_key", "jwt", "private_key", "gcp_service_account",
        "azure_storage_key", "email", "phone", "credit_card", "us_ssn", "iban", "ipv4", "ipv6", "date_of_birth",
        "postal_address", "uk_nino", "nhs_number", "de_tax_id", "aadhaar", "india_pan", "passport_number", "es_dni",
        "mac_address", "crypto_wallet", "us_routing_number",
    ];
    let names_share = 25;
    if r.chance(names_share) {
        return name_plant(r);
    }
    let kind = *r.pick(kinds);
    let mut g = Gen { r };
    let secret = |kind: &'static str, value: String| Planted { class: Class::Secret, kind, value, trace: 0 };
    let pii = |kind: &'static str, value: String| Planted { class: Class::Pii, kind, value, trace: 0 };
    match kind {
        "password_prose" => {
            let v = g.password();
            let t = match g.r.below(7) {
                0 => format!("I tried logging in with password {v} but the portal said the account is locked."),
                1 => format!("The user wrote: my password is {v}, can you reset MFA?"),
                2 => format!("Temporary password: {v} (expires in 24h)."),
                3 => format!("Use the password \"{v}\" for the staging admin."),
                4 => format!("the password for the admin account is {v}."),
                5 => format!("New pwd ({v}) set by the helpdesk."),
                _ => format!("Password was changed to `{v}` yesterday."),
            };
            (secret(kind, v), carrier(t))
        }
        "password_command" => {
            let v = g.password().replace(['\'', '"', '$', '!', '&', '*', '?'], "9");
            let t = match g.r.below(6) {
                0 => format!("mysql -u admin -p{v} billing -e 'select count(*) from invoices'"),
                1 => format!("mysqldump --user=root --password={v} shop > /tmp/shop.sql"),
                2 => format!("sshpass -p '{v}' ssh deploy@10.0.4.12 'systemctl restart api'"),
                3 => format!("redis-cli -h cache.internal -a {v} ping"),
                4 => format!("curl -s -u admin:{v} https://jenkins.internal/api/json"),
                _ => format!("PGPASSWORD={v} psql -h db.internal -U app -c 'vacuum'"),
            };
            (secret(kind, v), carrier(t))
        }
        "password_connection" => {
            let v = format!("{}{}", g.r.chars(ALNUM, 10), g.r.chars("0123456789", 2));
            let t = match g.r.below(4) {
                0 => format!("postgres://app:{v}@db.internal:5432/orders"),
                1 => format!("mongodb+srv://svc:{v}@cluster0.example.net/?retryWrites=true"),
                2 => format!("Server=tcp:sql.internal,1433;Database=crm;User Id=sa;Password={v};Encrypt=true"),
                _ => format!("redis://:{v}@cache.internal:6379/0"),
            };
            (secret(kind, v), carrier(t))
        }
        "password_env" => {
            let v = g.password().replace(['\'', '"'], "7");
            let t = match g.r.below(4) {
                0 => format!("DB_PASSWORD={v}\nDB_HOST=db.internal"),
                1 => format!("database:\n  host: db.internal\n  password: {v}\n"),
                2 => format!("[database]\npassword = \"{v}\"\n"),
                _ => format!("SMTP_PASS={v}"),
            };
            (secret(kind, v), carrier(t))
        }
        "password_json_text" => {
            let v = g.password().replace(['"', '\\'], "5");
            (secret(kind, v.clone()), carrier(format!("```json\n{{\"user\": \"svc\", \"password\": \"{v}\"}}\n```")))
        }
        "secret_key_prose" => {
            let n = 16 + g.r.below(24);
            let v = g.r.chars(ALNUM, n);
            let t = match g.r.below(5) {
                0 => format!("The secret key ({v}) was committed together with the deploy script."),
                1 => format!("client secret {v} belongs to the prod app"),
                2 => format!("The api key for the vendor is {v}, rotate it."),
                3 => format!("found credentials: {v} in the notebook"),
                _ => format!("our signing key '{v}' leaked in the logs"),
            };
            (secret(kind, v), carrier(t))
        }
        "token_prose" => {
            let n = 20 + g.r.below(20);
            let v = g.r.chars(ALNUM, n);
            let t = match g.r.below(3) {
                0 => format!("The API call was rejected with 401 even with token {v}."),
                1 => format!("retrying with access token {v} now"),
                _ => format!("the token is {v}"),
            };
            (secret(kind, v), carrier(t))
        }
        "bearer_header" => {
            let v = g.r.chars(B64URL, 32);
            (secret(kind, v.clone()), carrier(format!("Authorization: Bearer {v}")))
        }
        "cookie_header" => {
            let v = format!("sessionid={}", g.r.chars(LOWER, 24));
            (secret(kind, v.clone()), carrier(format!("Cookie: {v}; theme=dark")))
        }
        "aws_access_key_id" => {
            let v = format!("AKIA{}", g.r.chars(BASE32, 16));
            (secret(kind, v.clone()), whole(v))
        }
        "aws_secret_access_key" => {
            let id = format!("AKIA{}", g.r.chars(BASE32, 16));
            let v = g.aws_secret();
            let t = match g.r.below(4) {
                0 => format!("aws_secret_access_key = {v}"),
                1 => format!("{id},{v}"),
                2 => format!("export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={v}"),
                _ => format!("keys: [\"{id}\", \"{v}\"]"),
            };
            (secret(kind, v), carrier(t))
        }
        "github_token" => {
            let v = g.github();
            (secret(kind, v.clone()), whole(v))
        }
        "gitlab_token" => {
            let v = format!("glpat-{}", g.r.chars(B64URL, 20));
            (secret(kind, v.clone()), whole(v))
        }
        "slack_token" => {
            let v = format!("xoxb-{}-{}-{}", g.r.chars("0123456789", 12), g.r.chars("0123456789", 13), g.r.chars(ALNUM, 24));
            (secret(kind, v.clone()), whole(v))
        }
        "slack_webhook" => {
            let v = format!("https://hooks.slack.com/services/T{}/B{}/{}", g.r.chars(UPPER, 8), g.r.chars(UPPER, 10), g.r.chars(ALNUM, 24));
            (secret(kind, v.clone()), whole(v))
        }
        "openai_api_key" => {
            let v = format!("sk-proj-{}", g.r.chars(B64URL, 48));
            (secret(kind, v.clone()), whole(v))
        }
        "anthropic_api_key" => {
            let v = format!("sk-ant-api03-{}", g.r.chars(B64URL, 93));
            (secret(kind, v.clone()), whole(v))
        }
        "stripe_key" => {
            let v = format!("sk_live_{}", g.r.chars(ALNUM, 24));
            (secret(kind, v.clone()), whole(v))
        }
        "google_api_key" => {
            let v = format!("AIza{}", g.r.chars(B64URL, 35));
            (secret(kind, v.clone()), whole(v))
        }
        "google_oauth_token" => {
            let v = format!("ya29.a0{}", g.r.chars(B64URL, 100));
            (secret(kind, v.clone()), carrier(format!("The request was rejected with 401 even with token {v}")))
        }
        "npm_token" => {
            let v = g.npm();
            (secret(kind, v.clone()), carrier(format!("//registry.npmjs.org/:_authToken={v}")))
        }
        "huggingface_token" => {
            let v = format!("hf_{}", g.r.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 34));
            (secret(kind, v.clone()), whole(v))
        }
        "groq_api_key" => {
            let v = format!("gsk_{}", g.r.chars(ALNUM, 52));
            (secret(kind, v.clone()), whole(v))
        }
        "replicate_token" => {
            let v = format!("r8_{}", g.r.chars(ALNUM, 37));
            (secret(kind, v.clone()), whole(v))
        }
        "docker_hub_token" => {
            let v = format!("dckr_pat_{}", g.r.chars(B64URL, 27));
            (secret(kind, v.clone()), carrier(format!("echo {v} | docker login -u ci --password-stdin")))
        }
        "sendgrid_api_key" => {
            let v = format!("SG.{}.{}", g.r.chars(B64URL, 22), g.r.chars(B64URL, 43));
            (secret(kind, v.clone()), whole(v))
        }
        "twilio_key" => {
            let v = format!("SK{}", g.r.chars(HEX, 32));
            (secret(kind, v.clone()), whole(v))
        }
        "atlassian_token" => {
            let v = format!("ATATT3xFfGF0{}={}", g.r.chars(B64URL, 170), g.r.chars("0123456789ABCDEF", 8));
            (secret(kind, v.clone()), whole(v))
        }
        "datadog_key" => {
            let v = g.r.chars(HEX, 32);
            (secret(kind, v.clone()), carrier(format!("DD_API_KEY={v}")))
        }
        "cohere_api_key" => {
            let v = g.r.chars(ALNUM, 40);
            (secret(kind, v.clone()), carrier(format!("COHERE_API_KEY=\"{v}\"")))
        }
        "supabase_key" => {
            let v = format!("sbp_{}", g.r.chars(HEX, 40));
            (secret(kind, v.clone()), whole(v))
        }
        "jwt" => {
            let v = g.jwt();
            (secret(kind, v.clone()), whole(v))
        }
        "private_key" => {
            let v = g.pem();
            (secret(kind, v.clone()), whole(v))
        }
        "gcp_service_account" => {
            let v = g.r.chars(HEX, 40);
            let sa = json!({"type": "service_account", "project_id": "acme-prod", "private_key_id": v, "client_email": "svc@acme-prod.iam.gserviceaccount.com"});
            (secret(kind, v), carrier(format!("Loaded credentials file: {sa}")))
        }
        "azure_storage_key" => {
            let v = format!("{}==", g.r.chars(B64, 86));
            (secret(kind, v.clone()), carrier(format!("DefaultEndpointsProtocol=https;AccountName=acmelogs;AccountKey={v};EndpointSuffix=core.windows.net")))
        }
        "email" => {
            let v = g.email();
            let t = if g.r.chance(50) { whole(v.clone()) } else { carrier(format!("please reply to {v} with the invoice")) };
            (pii(kind, v), t)
        }
        "phone" => {
            let v = g.phone();
            let t = if g.r.chance(40) { whole(v.clone()) } else { carrier(format!("call me back on {v} after 5pm")) };
            (pii(kind, v), t)
        }
        "credit_card" => {
            let v = g.card();
            (pii(kind, v.clone()), carrier(format!("card number {v}, exp 09/29")))
        }
        "us_ssn" => {
            let v = g.ssn();
            (pii(kind, v.clone()), carrier(format!("SSN {v} on the form")))
        }
        "iban" => {
            let v = g.iban();
            (pii(kind, v.clone()), carrier(format!("refund to IBAN {v} please")))
        }
        "ipv4" => {
            let v = g.ipv4();
            (pii(kind, v.clone()), carrier(format!("client_ip={v} status=403")))
        }
        "ipv6" => {
            let v = g.ipv6();
            (pii(kind, v.clone()), carrier(format!("connection from {v} refused")))
        }
        "date_of_birth" => {
            let v = g.dob();
            let t = match g.r.below(4) {
                0 => format!("DOB: {v}"),
                1 => format!("date of birth {v}, verified"),
                2 => format!("born on {v}"),
                _ => format!("birth_date={v}"),
            };
            (pii(kind, v), carrier(t))
        }
        "postal_address" => {
            let v = g.address();
            (pii(kind, v.clone()), carrier(format!("Ship it to {v}.")))
        }
        "uk_nino" => {
            let v = g.nino();
            (pii(kind, v.clone()), carrier(format!("NI number {v} for payroll")))
        }
        "nhs_number" => {
            let v = g.nhs(true);
            (pii(kind, v.clone()), carrier(format!("patient NHS number {v}")))
        }
        "de_tax_id" => {
            let v = g.de_tax_id();
            (pii(kind, v.clone()), carrier(format!("Steuer-ID: {v}")))
        }
        "aadhaar" => {
            let v = g.aadhaar(true);
            (pii(kind, v.clone()), carrier(format!("Aadhaar {v} linked")))
        }
        "india_pan" => {
            let v = g.pan();
            (pii(kind, v.clone()), carrier(format!("PAN {v} verified")))
        }
        "passport_number" => {
            let v = g.passport();
            (pii(kind, v.clone()), carrier(format!("passport number {v}, expires 2031")))
        }
        "es_dni" => {
            let v = g.dni();
            (pii(kind, v.clone()), carrier(format!("DNI {v}")))
        }
        "mac_address" => {
            let v = g.mac();
            (pii(kind, v.clone()), carrier(format!("device {v} joined the network")))
        }
        "crypto_wallet" => {
            let v = g.wallet();
            (pii(kind, v.clone()), carrier(format!("send the payout to {v}")))
        }
        _ => {
            let v = g.routing();
            (pii("us_routing_number", v.clone()), carrier(format!("routing number {v}, account ending 4821")))
        }
    }
}

fn name_plant(r: &mut Rng) -> (Planted, Carrier) {
    let non_ascii = r.chance(20);
    let first = if non_ascii && r.chance(50) { *r.pick(FIRST_NON_ASCII) } else { *r.pick(FIRST) };
    let last = if non_ascii && r.chance(60) { *r.pick(LAST_NON_ASCII) } else { *r.pick(LAST_ASCII) };
    let full = format!("{first} {last}");
    let name = |v: &str| Planted { class: Class::Name, kind: "person_name", value: v.to_owned(), trace: 0 };
    let (v, t) = match r.below(12) {
        0 => (first.to_owned(), format!("Hi {first}, thanks for reaching out about the refund.")),
        1 => (full.clone(), format!("Thanks,\n{full}\nAccounts team")),
        2 => (full.clone(), format!("my name is {full} and I was charged twice")),
        3 => (full.clone(), format!("Ticket opened by {full} on behalf of the customer.")),
        4 => (full.clone(), format!("customer_name: {full}")),
        5 => (full.clone(), format!("{full} reported that the export hangs.")),
        6 => (last.to_owned(), format!("Dr. {last} asked for the lab results.")),
        7 => (full.clone(), format!("\"author\": \"{full}\"")),
        8 => (first.to_owned(), format!("Dear {first},\nyour order has shipped.")),
        9 => (full.clone(), format!("assigned to {full}")),
        10 => (full.clone(), format!("Best regards,\n{full}")),
        _ => return (name(&full), whole(full.clone())),
    };
    (name(&v), carrier(t))
}

/// Decoys: look like something the engine masks, and are not.
fn decoy(r: &mut Rng) -> (Decoy, String) {
    let mut g = Gen { r };
    let d = |kind: &'static str, value: String| Decoy { kind, value, trace: 0 };
    match g.r.below(22) {
        0 => {
            let v = g.invalid_card();
            (d("invalid_luhn_card", v.clone()), format!("reference {v} was rejected by the gateway"))
        }
        1 => {
            let v = format!("{}-{}-{}-{}-{}", g.r.chars(HEX, 8), g.r.chars(HEX, 4), g.r.chars(HEX, 4), g.r.chars(HEX, 4), g.r.chars(HEX, 12));
            (d("uuid", v.clone()), format!("request id {v}"))
        }
        2 => {
            let n = if g.r.chance(50) { 40 } else { 64 };
            let v = g.r.chars(HEX, n);
            (d("hash", v.clone()), format!("commit {v} built"))
        }
        3 => {
            let v = format!("v{}.{}.{}", g.r.below(20), g.r.below(40), g.r.below(100));
            (d("version", v.clone()), format!("upgraded to {v} yesterday"))
        }
        4 => {
            let v = format!("2026-{:02}-{:02}T{:02}:{:02}:{:02}Z", 1 + g.r.below(12), 1 + g.r.below(28), g.r.below(24), g.r.below(60), g.r.below(60));
            (d("timestamp", v.clone()), format!("finished at {v}"))
        }
        5 => {
            let v = format!("ORD-2026-{:06}", g.r.below(1_000_000));
            (d("order_number", v.clone()), format!("order {v} shipped"))
        }
        6 => {
            let v = format!("{}", 1_700_000_000_000u64 + g.r.next() % 100_000_000_000);
            (d("epoch_ms", v.clone()), format!("ts={v}"))
        }
        7 => {
            let v = g.nhs(false);
            (d("invalid_nhs", v.clone()), format!("NHS number {v} failed validation"))
        }
        8 => {
            let v = g.aadhaar(false);
            (d("invalid_aadhaar", v.clone()), format!("Aadhaar {v} was rejected"))
        }
        9 => {
            let v = format!("{}-{:02}-{:04}", 900 + g.r.below(99), g.r.below(99), g.r.below(9999));
            (d("invalid_ssn", v.clone()), format!("test SSN {v} from the fixtures"))
        }
        10 => {
            let phrases = [
                "Will the job finish", "Grant access to the bucket", "May the retries succeed", "Mark the task as done",
                "Frank discussion with the vendor", "Rose by 20% after the deploy", "Chase the failing test",
                "Bill Payment Service", "Summer Sale ends", "Rich Text Editor", "Major Version Bump", "Grace Period Ends",
                "Royal Mail tracking", "Jack up the replica count", "June Release Notes", "Hope Street Gallery",
                "Victory Lap", "Young Green Energy", "Hunter Valley", "Dawn Patrol Job", "Sterling Silver Plan",
            ];
            let v = (*g.r.pick(&phrases)).to_owned();
            (d("capitalised_words", v.clone()), format!("{v}."))
        }
        11 => {
            let products = ["Visual Studio Code", "Amazon Web Services", "Google Cloud Run", "Apache Kafka", "Ruby on Rails", "Microsoft Teams", "Jenkins Pipeline", "Julia Language", "Grafana Cloud", "Kubernetes Engine"];
            let v = (*g.r.pick(&products)).to_owned();
            (d("product_name", v.clone()), format!("We run {v} for this."))
        }
        12 => {
            let v = format!("token limit of {} exceeded", 1000 * (1 + g.r.below(128)));
            (d("token_words", v.clone()), format!("the model reported: {v}"))
        }
        13 => {
            let v = "password reset link expired".to_owned();
            (d("password_words", v.clone()), format!("the {v}"))
        }
        14 => {
            let v = format!("api-{}-{}", g.r.chars("bcdfghjklmnpqrstvwxz0123456789", 10), g.r.chars("bcdfghjklmnpqrstvwxz2456789", 5));
            (d("pod_name", v.clone()), format!("pod {v} restarted"))
        }
        15 => {
            let v = format!("sha256:{}", g.r.chars(HEX, 64));
            (d("image_digest", v.clone()), format!("image digest {v}"))
        }
        16 => {
            let v = format!("{}.{}.{}.{}.{}", g.r.below(10), g.r.below(10), g.r.below(10), g.r.below(10), g.r.below(10));
            (d("dotted_version", v.clone()), format!("build {v}"))
        }
        17 => {
            let v = format!("{} ms", 10 + g.r.below(5000));
            (d("duration", v.clone()), format!("latency p99 {v}. Then it recovered"))
        }
        18 => {
            let v = format!("#{}", 10000 + g.r.below(90000));
            (d("ticket_number", v.clone()), format!("see ticket {v}"))
        }
        19 => {
            let v = format!("{}/{}/{}", g.r.pick(&["src", "crates", "lib"]), g.r.pick(&["mask", "policy", "audit"]), g.r.pick(&["walk.rs", "mod.rs", "detectors"]));
            (d("file_path", v.clone()), format!("edited {v}"))
        }
        20 => {
            let mut digits = g.r.digits(9);
            digits[0] = 9;
            let v = text_of(&digits);
            (d("nine_digit_id", v.clone()), format!("customer id {v}"))
        }
        _ => {
            let v = format!("{:.2}", (g.r.below(100_000) as f64) / 100.0);
            (d("amount", v.clone()), format!("total {v} EUR"))
        }
    }
}

// ---------------------------------------------------------------- trace assembly

const FILLER: &[&str] = &[
    "The agent called the lookup tool and received three rows.",
    "Retrying after a timeout of 30 seconds.",
    "The deployment to cluster eu-west-1 finished in 412 ms.",
    "Checking the invoice totals against the ledger.",
    "The user asked about the refund policy for annual plans.",
    "I will summarise the logs before answering.",
    "No errors were found in the last 24 hours.",
    "Plan: fetch the order, compare amounts, draft the reply.",
    "The query returned 0 rows; widening the date range.",
    "Latency rose from 120 to 340 ms during the incident.",
];

/// Escapes text as a `\uXXXX`-encoding producer leaves it: `@`, `<`, `&`, `>` and non-ASCII
/// become escapes inside the text itself.
fn u_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if matches!(c, '@' | '<' | '>' | '&') || !c.is_ascii() {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Serialises JSON as Go's encoding/json does by default: `<`, `>`, `&` as `\u003c` etc.
fn go_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Wraps a carrier text in one of the placements real traces use.
fn placed(r: &mut Rng, c: &Carrier, planted: &Planted) -> (Value, &'static str) {
    let t = &c.text;
    let single_line = !t.contains('\n');
    match r.below(10) {
        0 if c.whole_value => (json!({"value": t}), "value"),
        1 if c.whole_value && planted.class != Class::Secret && single_line => (json!({t.clone(): {"seen": 2}}), "key"),
        2 => (json!(format!("{} {t} {}", r.pick(FILLER), r.pick(FILLER))), "prose"),
        3 => (json!(format!("level=info msg=\"step done\" detail={t:?} took=12ms")), "kv_text"),
        4 => (json!(format!("Here is what I ran:\n```bash\n{t}\n```\nand it printed nothing.")), "code"),
        5 if single_line && planted.class != Class::Name && !t.contains(' ') => {
            (json!(format!("https://api.example.com/v1/report?q={}&page=2", percent(t))), "url")
        }
        6 => (json!(u_escape(t)), "u_escape"),
        7 => (json!(format!("> {t}\n\n(quoted from the ticket)")), "quote"),
        _ => (json!(t), "plain"),
    }
}

/// One OTLP GenAI span: messages as JSON strings, tool arguments doubly encoded.
fn otlp_span(r: &mut Rng, items: &[Value], trace_no: usize, span_no: usize) -> Value {
    let (first, rest) = items.split_at(items.len() / 2);
    let parts_in: Vec<Value> = first.iter().map(|v| json!({"type": "text", "content": v})).collect();
    let args = json!({"query": rest.first().cloned().unwrap_or(json!("")), "limit": 10});
    let args_text = if r.chance(50) { go_json(&args) } else { args.to_string() };
    let parts_out: Vec<Value> = rest.iter().skip(1).map(|v| json!({"type": "reasoning", "content": v})).collect();
    let input = json!([{"role": "system", "parts": [{"type": "text", "content": "You are the support agent for Acme."}]}, {"role": "user", "parts": parts_in}]);
    let output = json!([{"role": "assistant", "parts": parts_out}, {"role": "assistant", "parts": [{"type": "tool_call", "name": "search_orders", "arguments": args_text}]}]);
    let enc = |v: &Value, go: bool| if go { go_json(v) } else { v.to_string() };
    let go = r.chance(30);
    json!({
        "traceId": format!("{:032x}", (trace_no as u128) << 64 | 0x5b8e_fff7),
        "spanId": format!("{:016x}", r.next()),
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": format!("{}", 1_764_000_000_000_000_000u64 + span_no as u64),
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
            {"key": "gen_ai.input.messages", "value": {"stringValue": enc(&input, go)}},
            {"key": "gen_ai.output.messages", "value": {"stringValue": enc(&output, go)}},
        ],
        "events": [{"name": "gen_ai.choice", "attributes": [{"key": "finish_reason", "value": {"stringValue": "stop"}}]}],
    })
}

/// One agent-framework step list (LangGraph / Agents SDK style): prose, tool calls, results.
fn agent_steps(r: &mut Rng, items: &[Value], trace_no: usize) -> Value {
    let steps: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, v)| match r.below(4) {
            0 => json!({"step": i, "type": "reasoning", "reasoning": v}),
            1 => json!({"step": i, "type": "tool_call", "tool": "run_shell", "arguments": json!({"cmd": v}).to_string()}),
            2 => json!({"step": i, "type": "tool_result", "tool": "http_get", "output": {"status": 200, "body": v}}),
            _ => json!({"step": i, "type": "message", "role": "user", "content": v}),
        })
        .collect();
    json!({"run_id": format!("run-{trace_no:05}"), "agent": "refund-agent", "tenant": "acme", "steps": steps})
}

/// Generates `traces` traces, each with about `per_trace` planted items and a third as many decoys.
pub fn generate(seed: u64, traces: usize, per_trace: usize) -> Corpus {
    let mut r = Rng::new(seed);
    let mut c = Corpus::default();
    for t in 0..traces {
        let mut items = Vec::new();
        for _ in 0..per_trace {
            let (mut p, carrier) = plant(&mut r);
            p.trace = t;
            let (v, _where) = placed(&mut r, &carrier, &p);
            items.push(v);
            c.planted.push(p);
            if r.chance(35) {
                let (mut d, text) = decoy(&mut r);
                d.trace = t;
                items.push(json!(format!("{} {text} {}", r.pick(FILLER), r.pick(FILLER))));
                c.decoys.push(d);
            }
            items.push(json!(r.pick(FILLER)));
        }
        let doc = if t % 2 == 0 {
            let spans: Vec<Value> = items.chunks(8).enumerate().map(|(i, ch)| otlp_span(&mut r, ch, t, i)).collect();
            json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "support-agent"}}]}, "scopeSpans": [{"scope": {"name": "openai.agents"}, "spans": spans}]}]})
        } else {
            agent_steps(&mut r, &items, t)
        };
        c.traces.push(doc);
    }
    c
}
