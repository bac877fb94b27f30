//! Shape scanners: values with a fixed shape but no trigger literal to wake a regex — AWS secret
//! keys without their key name, Bitcoin and Ethereum addresses, UK National Insurance numbers,
//! Indian PANs, Spanish DNIs, dash-separated MAC addresses, and two token formats whose prefix
//! is too common a letter pair to be a trigger (Twilio `SK…`, crates.io `cio…`).
//!
//! One pass splits the text into runs of letters, digits, `+` and `/`; each run is classified by
//! its length and first bytes, and only then validated (entropy, base58check, bech32, mod-23),
//! so ordinary words cost a length test each.

use super::{DetSet, Detector, Span};
use crate::mask::validate;

/// Letters, digits, `+` and `/`, as a table (this runs on every byte of every string).
static RUN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        i += 1;
    }
    t
};

/// Run lengths some shape has: 2 (MAC pairs, spaced NINO prefixes), 8–10 (DNI, NINO, PAN),
/// 26–35 (base58 addresses, `SK…`, `cio…`), 40 (AWS secrets), 42 (Ethereum).
const INTERESTING: u64 = (1 << 2) | (1 << 8) | (1 << 9) | (1 << 10) | (((1u64 << 36) - 1) & !((1u64 << 26) - 1)) | (1 << 40) | (1 << 42);

fn run_byte(c: u8) -> bool {
    RUN[usize::from(c)]
}

/// Bytes that, next to a run, make it part of a longer token (base64url, dotted ids, `KEY=…=`).
fn glue(c: u8) -> bool {
    matches!(c, b'_' | b'-' | b'=' | b'.' | b'%')
}

/// The same for national ids, which are written after `=` and before `.` in prose.
fn id_glue(c: u8) -> bool {
    matches!(c, b'_' | b'%')
}

pub fn scan(b: &[u8], enabled: DetSet, out: &mut Vec<Span>) {
    let aws = enabled.contains(Detector::AwsSecretAccessKey);
    let wallet = enabled.contains(Detector::CryptoWallet);
    let nino = enabled.contains(Detector::UkNino);
    let pan = enabled.contains(Detector::IndiaPan);
    let dni = enabled.contains(Detector::EsDni);
    let mac = enabled.contains(Detector::MacAddress);
    let twilio = enabled.contains(Detector::TwilioKey);
    let crates = enabled.contains(Detector::CratesIoToken);
    if !(aws || wallet || nino || pan || dni || mac || twilio || crates) {
        return;
    }
    let mut i = 0;
    while i < b.len() {
        if !run_byte(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && run_byte(b[i]) {
            i += 1;
        }
        let end = i;
        let n = end - start;
        // Only these lengths can be a shape here; most runs are words and stop at this test.
        let bech_candidate = n >= 14 && matches!(b[start], b'b' | b'B');
        if n >= 64 || (INTERESTING >> n) & 1 == 0 && !bech_candidate {
            continue;
        }
        let run = &b[start..end];
        let before = start.checked_sub(1).and_then(|p| b.get(p)).copied();
        let after = b.get(end).copied();
        // Runs of 8–10 bytes can only be a DNI, a NINO or a PAN, which all hold digits; a run of
        // 2 only a NINO's capital prefix or a dashed MAC's first pair (`-` after it). Most prose
        // words of these lengths stop here instead of going through every check below.
        if (8..=10).contains(&n) && !run.iter().any(u8::is_ascii_digit) {
            continue;
        }
        if n == 2 && after != Some(b'-') && !run.first().is_some_and(u8::is_ascii_uppercase) {
            continue;
        }
        // A run right after `\` starts with an escape letter (`\nAKIA…`), so it is not whole.
        let glued = before.is_some_and(|c| glue(c) || c == b'\\') || after.is_some_and(glue);
        let id_glued = before.is_some_and(|c| id_glue(c) || c == b'\\') || after.is_some_and(id_glue);
        // Twilio API key SIDs: `SK` + 32 lowercase hex.
        if twilio && n == 34 && !id_glued && run.starts_with(b"SK") && run[2..].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            out.push(Span { start, end, detector: Detector::TwilioKey });
            continue;
        }
        // crates.io tokens: `cio` + 32 letters and digits.
        if crates && n == 35 && !id_glued && run.starts_with(b"cio") && run[3..].iter().all(u8::is_ascii_alphanumeric) && validate::looks_random(&run[3..], 3.5) {
            out.push(Span { start, end, detector: Detector::CratesIoToken });
            continue;
        }
        if aws && n == 40 && !glued && aws_secret(run) {
            out.push(Span { start, end, detector: Detector::AwsSecretAccessKey });
            continue;
        }
        if wallet && !glued {
            let eth = n == 42 && run.starts_with(b"0x") && run[2..].iter().all(u8::is_ascii_hexdigit);
            let btc = (26..=35).contains(&n) && matches!(run[0], b'1' | b'3') && validate::base58check_address(run);
            let bech = n >= 14 && (run.starts_with(b"bc1") || run.starts_with(b"BC1")) && validate::bech32_address(run);
            if eth || btc || bech {
                out.push(Span { start, end, detector: Detector::CryptoWallet });
                continue;
            }
        }
        if nino && !id_glued {
            if let Some(e) = nino_at(b, start, end) {
                out.push(Span { start, end: e, detector: Detector::UkNino });
                i = e;
                continue;
            }
        }
        if pan && n == 10 && !id_glued && india_pan(run) {
            out.push(Span { start, end, detector: Detector::IndiaPan });
            continue;
        }
        if dni && !before.is_some_and(id_glue) {
            if n == 9 && !after.is_some_and(id_glue) && validate::es_dni(run) {
                out.push(Span { start, end, detector: Detector::EsDni });
                continue;
            }
            // `12345678-Z`
            if n == 8 && after == Some(b'-') && b.get(end + 1).is_some_and(u8::is_ascii_uppercase) && !b.get(end + 2).is_some_and(|&c| run_byte(c) || glue(c)) {
                let mut joined = run.to_vec();
                joined.extend_from_slice(&b[end + 1..end + 2]);
                if validate::es_dni(&joined) {
                    out.push(Span { start, end: end + 2, detector: Detector::EsDni });
                    i = end + 2;
                    continue;
                }
            }
        }
        if mac && n == 2 && after == Some(b'-') {
            if let Some(e) = mac_dashed(b, start) {
                out.push(Span { start, end: e, detector: Detector::MacAddress });
                i = e;
            }
        }
    }
}

/// 40 base64 characters mixing upper case, lower case and digits, not hex, random enough: 40
/// random base64 characters hold about 29 distinct ones, a path of words about 18.
fn aws_secret(run: &[u8]) -> bool {
    let upper = run.iter().any(u8::is_ascii_uppercase);
    let lower = run.iter().any(u8::is_ascii_lowercase);
    let digit = run.iter().any(u8::is_ascii_digit);
    let hex = run.iter().all(u8::is_ascii_hexdigit);
    let mut seen = [false; 256];
    run.iter().for_each(|&c| seen[usize::from(c)] = true);
    let distinct = seen.iter().filter(|s| **s).count();
    upper && lower && digit && !hex && distinct >= 22 && validate::entropy(run) >= 4.2
}

/// `AB123456C` or `AB 12 34 56 C` starting at a run of the two prefix letters (or all of it).
fn nino_at(b: &[u8], start: usize, end: usize) -> Option<usize> {
    let run = &b[start..end];
    let suffix_ok = |c: u8| matches!(c, b'A'..=b'D');
    let tail_ok = |e: usize| !b.get(e).is_some_and(|&c| run_byte(c) || id_glue(c));
    if run.len() == 9 {
        let ok = validate::nino_prefix(run[0], run[1]) && run[2..8].iter().all(u8::is_ascii_digit) && suffix_ok(run[8]);
        return ok.then_some(end);
    }
    if run.len() != 2 || !validate::nino_prefix(run[0], run[1]) {
        return None;
    }
    // ` 12 34 56 C`
    let rest = b.get(end..end + 11)?;
    let shape = rest.iter().enumerate().all(|(k, &c)| match k {
        0 | 3 | 6 | 9 => c == b' ',
        10 => suffix_ok(c),
        _ => c.is_ascii_digit(),
    });
    (shape && tail_ok(end + 11)).then_some(end + 11)
}

/// `ABCPE1234F`: five letters (the fourth the holder type), four digits, a letter.
fn india_pan(run: &[u8]) -> bool {
    run[..5].iter().all(u8::is_ascii_uppercase)
        && matches!(run[3], b'A' | b'B' | b'C' | b'F' | b'G' | b'H' | b'L' | b'J' | b'P' | b'T')
        && run[5..9].iter().all(u8::is_ascii_digit)
        && run[9].is_ascii_uppercase()
}

/// `00-1A-2B-3C-4D-5E` starting at `start`: the end, if six hex pairs joined by `-`.
fn mac_dashed(b: &[u8], start: usize) -> Option<usize> {
    let s = b.get(start..start + 17)?;
    let shape = s.iter().enumerate().all(|(k, &c)| if k % 3 == 2 { c == b'-' } else { c.is_ascii_hexdigit() });
    let end = start + 17;
    let tail = !b.get(end).is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'-');
    let before = start == 0 || !b[start - 1].is_ascii_alphanumeric() && b[start - 1] != b'-';
    (shape && tail && before && validate::mac(s)).then_some(end)
}
