//! PII scanners: hand-written, keyed on cheap byte classes, validated by checksums.
//!
//! Regexes are the wrong tool here: digits are everywhere in traces (timestamps, ids, counts),
//! so a card or phone regex would run its automaton over every byte and still need the Luhn and
//! shape checks afterwards. Instead one pass groups digits into "number chunks" (digits joined
//! by single separators), skips chunks glued to letters (UUIDs, hex ids, `v1.2.3.4`), and
//! classifies windows of each chunk's digit groups (cards, SSNs, phones, IPv4, NHS numbers,
//! grouped Aadhaar numbers); emails start from each `@`, IPv6 and colon MAC addresses from `:`.

use std::net::Ipv6Addr;

use memchr::memchr_iter;

use super::{gate, DetSet, Detector, Span};
use crate::mask::validate;

/// Each scanner finds its own anchor bytes (`@` and `:` with SIMD `memchr`, digits in one
/// pass), so a text without them costs one fast skim per scanner.
/// `seen` is the text's byte classes (`gate::classes`): a scanner whose anchor class is absent
/// is skipped.
pub fn scan(b: &[u8], seen: gate::Classes, enabled: DetSet, out: &mut Vec<Span>) {
    if enabled.contains(Detector::Email) && seen & gate::AT != 0 {
        emails(b, out);
    }
    let numeric = [Detector::CreditCard, Detector::UsSsn, Detector::Iban, Detector::Phone, Detector::Ipv4, Detector::NhsNumber, Detector::Aadhaar];
    if seen & gate::DIGIT != 0 && numeric.iter().any(|d| enabled.contains(*d)) {
        numbers(b, enabled, out);
    }
    if (enabled.contains(Detector::Ipv6) || enabled.contains(Detector::MacAddress)) && seen & gate::COLON != 0 {
        ipv6(b, enabled, out);
    }
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'')
}

fn email_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn emails(b: &[u8], out: &mut Vec<Span>) {
    let mut done = 0;
    for at in memchr_iter(b'@', b) {
        if at < done {
            continue;
        }
        let mut start = at;
        while start > 0 && at - start < 64 && email_local(b[start - 1]) {
            start -= 1;
        }
        while start < at && matches!(b[start], b'.' | b'\'' | b'-') {
            start += 1;
        }
        if start == at || url_userinfo(b, start) {
            continue;
        }
        let mut end = at + 1;
        while end < b.len() && end - at < 255 && email_domain(b[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &b[at + 1..end];
        let Some(dot) = domain.iter().rposition(|&c| c == b'.') else { continue };
        let tld = &domain[dot + 1..];
        let labels_ok = domain.split(|&c| c == b'.').all(|l| !l.is_empty() && l[0] != b'-');
        if tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) && labels_ok {
            out.push(Span { start, end, detector: Detector::Email });
            done = end;
        }
    }
}

/// `user:pass@host` right after `scheme://` is URL credentials, not an email: the password is
/// the connection-string detector's, and the host stays readable.
fn url_userinfo(b: &[u8], start: usize) -> bool {
    let mut p = start;
    while p > 0 && start - p < 256 {
        let c = b[p - 1];
        if c.is_ascii_whitespace() || matches!(c, b'/' | b'?' | b'#' | b'&' | b'=' | b'"') {
            return c == b'/' && p >= 3 && &b[p - 3..p] == b"://";
        }
        p -= 1;
    }
    false
}

/// Bytes that may join two digit groups of one number (`(415) 555-2671`, `4111 1111`, `1.2.3.4`).
fn joiner(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/')
}

/// A run of digits and the separator bytes in front of it (empty for the first).
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    sep_start: usize,
}

const MAX_GROUPS: usize = 48;

/// True when the separator in front of `g` is blanks only (or empty, for a chunk's first
/// group): where one number may end and another begin.
fn blank(b: &[u8], g: &Group) -> bool {
    b[g.sep_start..g.start].iter().all(|&c| c == b' ')
}

fn numbers(b: &[u8], enabled: DetSet, out: &mut Vec<Span>) {
    let Some(first) = gate::next_digit(b, 0) else { return };
    // On the stack: this runs for every text holding a digit, and a heap buffer per call was
    // one allocation per such text.
    let mut store = [Group { start: 0, end: 0, sep_start: 0 }; MAX_GROUPS];
    let mut i = first;
    while i < b.len() {
        match gate::next_digit(b, i) {
            Some(p) => i = p,
            None => break,
        }
        // IBAN: two capitals and the check digits, at a word boundary.
        if enabled.contains(Detector::Iban)
            && i >= 2
            && b[i - 1].is_ascii_uppercase()
            && b[i - 2].is_ascii_uppercase()
            && (i == 2 || !word(b[i - 3]))
        {
            if let Some(end) = iban_at(b, i - 2) {
                out.push(Span { start: i - 2, end, detector: Detector::Iban });
                i = end;
                continue;
            }
        }
        // Collect the chunk.
        let mut len = 0;
        let mut j = i;
        let mut sep_start = i;
        loop {
            let gs = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            store[len] = Group { start: gs, end: j, sep_start };
            len += 1;
            if len == MAX_GROUPS {
                break;
            }
            let mut k = j;
            while k < b.len() && k - j < 3 && joiner(b[k]) {
                k += 1;
            }
            if k > j && k < b.len() && b[k].is_ascii_digit() {
                sep_start = j;
                j = k;
            } else {
                break;
            }
        }
        let chunk_end = j;
        let groups = &store[..len];
        // The prefix: `+` or `(` directly before the first digit.
        let mut lead = i;
        while lead > 0 && i - lead < 2 && matches!(b[lead - 1], b'+' | b'(') {
            lead -= 1;
        }
        let left_ok = lead == 0 || !(word(b[lead - 1]) || b[lead - 1] == b'.');
        let right_ok = chunk_end == b.len() || !word(b[chunk_end]);
        // A chunk glued to a word (`hunter4111-…`, `…1234abc`) loses only the groups up to its
        // first (after its last) blank separator: what follows a space is a number of its own,
        // exactly as it is once the glued part has been masked, so a second pass finds nothing
        // the first one did not.
        let lo = if left_ok { Some(0) } else { (1..groups.len()).find(|&s| blank(b, &groups[s])) };
        let hi = if right_ok { Some(groups.len()) } else { (1..groups.len()).rev().find(|&e| blank(b, &groups[e])) };
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo < hi {
                let lead = if lo == 0 { lead } else { groups[lo].start };
                classify(b, &groups[lo..hi], lead, enabled, out);
            }
        }
        i = chunk_end.max(i + 1);
    }
}

/// Tries windows of consecutive groups, longest first from each start, and records the first
/// shape each matches. Windows not at the chunk's edge must be set off by blanks, so a group in
/// the middle of `2024-01-15` or `1.2.3.4.5` never counts on its own.
fn classify(b: &[u8], groups: &[Group], lead: usize, enabled: DetSet, out: &mut Vec<Span>) {
    let n = groups.len();
    let mut s = 0;
    'starts: while s < n {
        if s > 0 && !blank(b, &groups[s]) {
            s += 1;
            continue;
        }
        let max_e = (s + 8).min(n);
        for e in (s..max_e).rev() {
            if e + 1 < n && !blank(b, &groups[e + 1]) {
                continue;
            }
            let win = &groups[s..=e];
            let start = if s == 0 { lead } else { groups[s].start };
            let whole = s == 0 && e + 1 == n;
            if let Some(det) = shape(b, win, &b[start..groups[s].start], whole, enabled) {
                out.push(Span { start, end: groups[e].end, detector: det });
                s = e + 1;
                continue 'starts;
            }
        }
        s += 1;
    }
}

fn shape(b: &[u8], win: &[Group], prefix: &[u8], whole: bool, enabled: DetSet) -> Option<Detector> {
    // Windows hold at most 8 groups (see `classify`), so fixed arrays avoid allocating.
    let mut sep_buf: [&[u8]; 8] = [&[]; 8];
    let mut size_buf = [0usize; 8];
    let k = win.len().min(8);
    for (i, g) in win.iter().take(8).enumerate() {
        size_buf[i] = g.end - g.start;
        if i > 0 {
            sep_buf[i - 1] = &b[g.sep_start..g.start];
        }
    }
    let sizes = &size_buf[..k];
    let seps = &sep_buf[..k.saturating_sub(1)];
    let total: usize = sizes.iter().sum();
    let all_seps = |want: &[u8]| seps.iter().all(|s| *s == want);
    let plus = prefix.contains(&b'+');
    let paren = prefix.contains(&b'(');
    if enabled.contains(Detector::Ipv4) && !plus && !paren && win.len() == 4 && all_seps(b".") {
        let whole = &b[win[0].start..win[3].end];
        if validate::ipv4(whole) {
            return Some(Detector::Ipv4);
        }
    }
    // Every shape but IPv4 (checked above) has 8 to 19 digits (SSN 9, NHS 10, Aadhaar 12, cards
    // 13–19, phones 8–15): the short numbers of timestamps, versions and counts stop here.
    if !(8..=19).contains(&total) {
        return None;
    }
    let mut digits = [0u8; 19];
    let mut k = 0;
    for g in win {
        for &c in &b[g.start..g.end] {
            digits[k] = c;
            k += 1;
        }
    }
    let digits = &digits[..total];
    if enabled.contains(Detector::UsSsn) && !plus && !paren && sizes == [3, 2, 4] && (all_seps(b"-") || all_seps(b" ")) {
        let (a, rest) = digits.split_at(3);
        let (g, s) = rest.split_at(2);
        if validate::ssn(a, g, s) {
            return Some(Detector::UsSsn);
        }
    }
    // NHS numbers are written 3 3 4 like some US phone numbers; the mod-11 check tells them apart
    // (one such phone number in eleven passes it, and is then still masked, as an NHS number).
    let nhs_shape = whole && !plus && !paren && sizes == [3, 3, 4] && all_seps(b" ");
    if enabled.contains(Detector::NhsNumber) && nhs_shape && validate::nhs(digits) {
        return Some(Detector::NhsNumber);
    }
    // Announced as an NHS number but failing its check: a mistyped or test number, not a phone.
    let nhs_context = nhs_shape && {
        let from = win[0].start.saturating_sub(24);
        b[from..win[0].start].windows(3).any(|w| w.eq_ignore_ascii_case(b"nhs"))
    };
    if enabled.contains(Detector::Aadhaar) && whole && !plus && !paren && sizes == [4, 4, 4] && (all_seps(b" ") || all_seps(b"-")) && validate::aadhaar(digits) {
        return Some(Detector::Aadhaar);
    }
    if enabled.contains(Detector::CreditCard) && !plus && !paren {
        let consistent = seps.is_empty() || all_seps(b" ") || all_seps(b"-");
        let grouped = sizes.len() == 1
            || sizes == [4, 6, 5]
            || sizes == [4, 6, 4]
            || (sizes.len() >= 3 && sizes[..sizes.len() - 1].iter().all(|&s| s == 4) && sizes.last().is_some_and(|&l| (1..=4).contains(&l)));
        if consistent && grouped && validate::card_number(digits) {
            return Some(Detector::CreditCard);
        }
    }
    if enabled.contains(Detector::Phone) && !nhs_context {
        let phone_seps = seps.iter().all(|s| s.iter().all(|&c| matches!(c, b' ' | b'-' | b'.' | b'(' | b')')) && !s.contains(&b'/'));
        if plus && phone_seps && (8..=15).contains(&total) && digits.first() != Some(&b'0') {
            return Some(Detector::Phone);
        }
        if !plus && phone_seps {
            let nanp = |sz: &[usize], d: &[u8]| sz == [3, 3, 4] && matches!(d.first(), Some(b'2'..=b'9'));
            if nanp(sizes, digits) || (sizes.first() == Some(&1) && digits.first() == Some(&b'1') && nanp(&sizes[1..], &digits[1..])) {
                return Some(Detector::Phone);
            }
            let national = !paren
                && digits.first() == Some(&b'0')
                && digits.get(1).is_some_and(|&d| d != b'0')
                && (9..=11).contains(&total)
                && sizes.len() >= 2
                && sizes.iter().all(|&s| s >= 2)
                && seps.iter().all(|s| *s == b" " || *s == b"-");
            if national {
                return Some(Detector::Phone);
            }
        }
    }
    None
}

/// An IBAN starting at `start` (two capitals, two digits, then capitals and digits, optionally
/// in blank-separated groups): the longest prefix ending at a group edge that validates.
fn iban_at(b: &[u8], start: usize) -> Option<usize> {
    let mut compact = [0u8; 34];
    let mut n = 0;
    // (byte end, compact length): a group edge needs a character of the 34 after it.
    let mut ends = [(0usize, 0usize); 35];
    let mut edges = 0;
    let mut j = start;
    while j < b.len() && n < 34 {
        let c = b[j];
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            compact[n] = c;
            n += 1;
            j += 1;
        } else if c == b' ' && j + 1 < b.len() && (b[j + 1].is_ascii_uppercase() || b[j + 1].is_ascii_digit()) && n >= 4 {
            ends[edges] = (j, n);
            edges += 1;
            j += 1;
        } else {
            break;
        }
    }
    if j < b.len() && word(b[j]) && n < 34 {
        // glued to a lowercase letter or `_`: only earlier group edges can end it
    } else {
        ends[edges] = (j, n);
        edges += 1;
    }
    ends[..edges].iter().rev().find(|&&(_, len)| validate::iban(&compact[..len])).map(|&(end, _)| end)
}

fn ipv6_byte(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

fn ipv6(b: &[u8], enabled: DetSet, out: &mut Vec<Span>) {
    let mut done = 0;
    for c in memchr_iter(b':', b) {
        if c < done {
            continue;
        }
        let prev_ok = c > 0 && (b[c - 1].is_ascii_hexdigit() || b[c - 1] == b':');
        let next_ok = b.get(c + 1).is_some_and(|&x| x.is_ascii_hexdigit() || x == b':');
        if !prev_ok && !next_ok {
            continue;
        }
        let mut s = c;
        while s > 0 && ipv6_byte(b[s - 1]) {
            s -= 1;
        }
        let mut e = c + 1;
        while e < b.len() && ipv6_byte(b[e]) {
            e += 1;
        }
        done = e;
        if (s > 0 && word(b[s - 1])) || (e < b.len() && word(b[e])) {
            continue;
        }
        while e > s && matches!(b[e - 1], b'.' | b':') && !b[s..e].ends_with(b"::") {
            e -= 1;
        }
        while s < e && b[s] == b'.' {
            s += 1;
        }
        let tok = &b[s..e];
        if tok.len() == 17 && tok.iter().enumerate().all(|(k, &c)| if k % 3 == 2 { c == b':' } else { c.is_ascii_hexdigit() }) {
            if enabled.contains(Detector::MacAddress) && validate::mac(tok) {
                out.push(Span { start: s, end: e, detector: Detector::MacAddress });
            }
            continue;
        }
        if !enabled.contains(Detector::Ipv6) {
            continue;
        }
        let colons = tok.iter().filter(|&&x| x == b':').count();
        let groups = tok.split(|&x| x == b':').filter(|g| !g.is_empty()).count();
        if colons < 2 || groups < 3 {
            continue;
        }
        let Ok(text) = std::str::from_utf8(tok) else { continue };
        if let Ok(addr) = text.parse::<Ipv6Addr>() {
            if !addr.is_loopback() && !addr.is_unspecified() {
                out.push(Span { start: s, end: e, detector: Detector::Ipv6 });
            }
        }
    }
}
