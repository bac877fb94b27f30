//! Checksums and shape rules that turn a candidate into a detection: Luhn for cards, ISO 13616
//! mod-97 for IBANs, the SSA's never-issued ranges for SSNs, GitHub's CRC32 token suffix, ABA
//! routing numbers, Verhoeff (Aadhaar), NHS mod-11, German tax id MOD 11,10, ICAO 9303 MRZ
//! check digits, Spanish DNI letters, Bitcoin base58check and bech32, and an entropy score for
//! tokens and the shape tests for values announced in prose.
//!
//! These run only on candidates a cheap scan has already found, so they favour clarity over speed.

/// Luhn check over the ASCII digits of `digits` (other bytes are ignored by the caller's choice:
/// pass only digits). Why: one mistyped digit or a random 16-digit id fails it 90% of the time.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if v > 9 {
            return false;
        }
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    matches!(sum % 10, 0)
}

/// A card number: 13–19 digits, an issuer prefix that is in use (2–6), and a valid Luhn sum.
pub fn card_number(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len()) && matches!(digits.first(), Some(b'2'..=b'6')) && luhn(digits)
}

/// A US SSN in `AAA GG SSSS` parts. Area 000, 666 and 900–999, group 00 and serial 0000 were
/// never issued, so numbers using them are not SSNs (they are often test data or other ids).
pub fn ssn(area: &[u8], group: &[u8], serial: &[u8]) -> bool {
    let n = |d: &[u8]| d.iter().fold(0u32, |a, b| a * 10 + u32::from(b.wrapping_sub(b'0')));
    if area.len() != 3 || group.len() != 2 || serial.len() != 4 {
        return false;
    }
    let a = n(area);
    a != 0 && a != 666 && a < 900 && n(group) != 0 && n(serial) != 0
}

/// Registered IBAN lengths for common countries; other two-letter codes are held to 15–34.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AT", 20), (b"BE", 16), (b"BG", 22), (b"CH", 21), (b"CY", 28), (b"CZ", 24), (b"DE", 22),
    (b"DK", 18), (b"EE", 20), (b"ES", 24), (b"FI", 18), (b"FR", 27), (b"GB", 22), (b"GR", 27),
    (b"HR", 21), (b"HU", 28), (b"IE", 22), (b"IS", 26), (b"IT", 27), (b"LI", 21), (b"LT", 20),
    (b"LU", 20), (b"LV", 21), (b"MT", 31), (b"NL", 18), (b"NO", 15), (b"PL", 28), (b"PT", 25),
    (b"RO", 24), (b"SA", 24), (b"SE", 24), (b"SI", 19), (b"SK", 24), (b"TR", 26), (b"AE", 23),
];

/// An IBAN given without separators: country code, check digits, BBAN, and the ISO 7064
/// mod-97 remainder of the rearranged number equal to 1.
pub fn iban(compact: &[u8]) -> bool {
    let len = compact.len();
    if !(15..=34).contains(&len) {
        return false;
    }
    let (cc, rest) = compact.split_at(2);
    if !cc.iter().all(u8::is_ascii_uppercase) || !rest.iter().take(2).all(u8::is_ascii_digit) {
        return false;
    }
    if let Some((_, want)) = IBAN_LENGTHS.iter().find(|(c, _)| c.as_slice() == cc) {
        if *want != len {
            return false;
        }
    }
    let mut rem = 0u32;
    for &b in compact[4..].iter().chain(compact[..4].iter()) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// A dotted quad with every octet 0–255 and no leading zeros (`01.2.3.4` is not an address).
pub fn ipv4(s: &[u8]) -> bool {
    let mut parts = 0;
    for part in s.split(|&b| b == b'.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        if part.len() > 1 && part[0] == b'0' {
            return false;
        }
        let v = part.iter().fold(0u32, |a, b| a * 10 + u32::from(b - b'0'));
        if v > 255 {
            return false;
        }
    }
    parts == 4
}

/// Shannon entropy in bits per byte. Random base64/hex tokens score above ~3.5; words,
/// identifiers and paths score lower.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| {
        let p = f64::from(c) / n;
        -p * p.log2()
    }).sum()
}

/// Looks like a machine-made secret rather than a word: mixes letters and digits and is
/// random enough. Used to keep keyword-adjacent rules from masking prose and identifiers.
pub fn looks_random(s: &[u8], min_entropy: f64) -> bool {
    let letters = s.iter().any(u8::is_ascii_alphabetic);
    let digits = s.iter().any(u8::is_ascii_digit);
    letters && digits && entropy(s) >= min_entropy
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` in base 62, left-padded with `0` to `width` digits.
pub fn base62(mut n: u32, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// GitHub's token format (`ghp_` + 30 random base62 + 6 base62 digits of the CRC32 of the
/// random part): why it matters is that a token glued to other text can still be told from
/// chance, since a random 36-character tail passes only once in 4 billion.
pub fn github_checksum(token: &[u8]) -> bool {
    let Some(body) = token.get(4..) else { return false };
    if body.len() != 36 {
        return false;
    }
    let (random, check) = body.split_at(30);
    base62(crc32(random), 6).as_bytes() == check
}

/// The ABA routing-number checksum (weights 3, 7, 1) and a Federal Reserve prefix in use.
pub fn aba_routing(digits: &[u8]) -> bool {
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = digits.iter().map(|b| u32::from(b - b'0')).collect();
    let prefix = d[0] * 10 + d[1];
    let prefix_ok = matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80);
    let sum: u32 = d.iter().zip([3, 7, 1, 3, 7, 1, 3, 7, 1]).map(|(a, w)| a * w).sum();
    prefix_ok && sum.is_multiple_of(10)
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// The Verhoeff checksum (Aadhaar): catches every single-digit error and adjacent swap.
pub fn verhoeff(digits: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, &b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        c = VERHOEFF_D[usize::from(c)][usize::from(VERHOEFF_P[i % 8][usize::from(b - b'0')])];
    }
    !digits.is_empty() && c == 0
}

/// An Aadhaar number: 12 digits, first not 0 or 1, Verhoeff-valid.
pub fn aadhaar(digits: &[u8]) -> bool {
    digits.len() == 12 && matches!(digits.first(), Some(b'2'..=b'9')) && verhoeff(digits)
}

/// An NHS number: 10 digits, mod-11 check digit (weights 10..2; a remainder giving 10 is never issued).
pub fn nhs(digits: &[u8]) -> bool {
    if digits.len() != 10 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits[..9].iter().enumerate().map(|(i, b)| u32::from(b - b'0') * (10 - i as u32)).sum();
    let check = (11 - sum % 11) % 11;
    check != 10 && check == u32::from(digits[9] - b'0')
}

/// A German tax id (Steuer-IdNr): 11 digits, first not 0, ISO 7064 MOD 11,10 check digit.
pub fn de_tax_id(digits: &[u8]) -> bool {
    if digits.len() != 11 || !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return false;
    }
    let mut product = 10u32;
    for &b in &digits[..10] {
        let mut sum = (u32::from(b - b'0') + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == u32::from(digits[10] - b'0')
}

/// ICAO 9303 check digit (weights 7, 3, 1; `<` = 0, letters 10–35) of `field` equals `check`.
pub fn mrz_check(field: &[u8], check: u8) -> bool {
    let mut sum = 0u32;
    for (i, &c) in field.iter().enumerate() {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'<' => 0,
            _ => return false,
        };
        sum += v * [7, 3, 1][i % 3];
    }
    check.is_ascii_digit() && sum % 10 == u32::from(check - b'0')
}

/// A passport MRZ (TD3): the second 44-character line's document-number, birth-date and
/// expiry check digits all hold. `text` may include the first line; the last 44 bytes are checked.
pub fn mrz(text: &[u8]) -> bool {
    let Some(l2) = text.len().checked_sub(44).and_then(|s| text.get(s..)) else { return false };
    mrz_check(&l2[0..9], l2[9]) && mrz_check(&l2[13..19], l2[19]) && mrz_check(&l2[21..27], l2[27])
}

/// A Spanish DNI (`12345678Z`) or NIE (`X1234567L`): the letter is the number mod 23.
pub fn es_dni(s: &[u8]) -> bool {
    if s.len() != 9 {
        return false;
    }
    let (num, letter) = s.split_at(8);
    let lead = match num[0] {
        b'X' => Some(0u8),
        b'Y' => Some(1),
        b'Z' => Some(2),
        b'0'..=b'9' => None,
        _ => return false,
    };
    let rest = if lead.is_some() { &num[1..] } else { num };
    if !rest.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = rest.iter().fold(u64::from(lead.unwrap_or(0)), |a, b| a * 10 + u64::from(b - b'0'));
    b"TRWAGMYFPDXBNJZSQVHLCKE".get((n % 23) as usize) == letter.first()
}

/// UK National Insurance number prefixes never issued (`BG`, `GB`, `NK`, `KN`, `TN`, `NT`, `ZZ`,
/// and D, F, I, Q, U, V in either letter, O second).
pub fn nino_prefix(a: u8, b: u8) -> bool {
    let bad = |c: u8| matches!(c, b'D' | b'F' | b'I' | b'Q' | b'U' | b'V');
    a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && !bad(a)
        && !bad(b)
        && b != b'O'
        && !matches!(&[a, b], b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ")
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A Bitcoin base58check address (version byte 0x00 or 0x05): the last four bytes are the
/// double SHA-256 of the rest.
pub fn base58check_address(s: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    if !(25..=35).contains(&s.len()) {
        return false;
    }
    let mut bytes: Vec<u8> = vec![0; 25];
    for &c in s {
        let Some(v) = BASE58.iter().position(|&x| x == c) else { return false };
        let mut carry = v as u32;
        for b in bytes.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xFF) as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return false;
        }
    }
    let (payload, check) = bytes.split_at(21);
    let digest = Sha256::digest(Sha256::digest(payload));
    matches!(payload[0], 0x00 | 0x05) && digest[..4] == *check
}

/// A bech32 / bech32m segwit address (`bc1…`) whose checksum holds.
pub fn bech32_address(s: &[u8]) -> bool {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let lower: Vec<u8> = s.iter().map(u8::to_ascii_lowercase).collect();
    let Some(sep) = lower.iter().rposition(|&c| c == b'1') else { return false };
    let (hrp, data) = (&lower[..sep], &lower[sep + 1..]);
    if hrp != b"bc" || !(8..=87).contains(&data.len()) {
        return false;
    }
    let mut values = Vec::with_capacity(hrp.len() * 2 + 1 + data.len());
    values.extend(hrp.iter().map(|c| c >> 5));
    values.push(0);
    values.extend(hrp.iter().map(|c| c & 31));
    for c in data {
        let Some(v) = CHARSET.iter().position(|x| x == c) else { return false };
        values.push(v as u8);
    }
    let mut chk = 1u32;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01FF_FFFF) << 5) ^ u32::from(v);
        for (i, g) in [0x3B6A_57B2u32, 0x2650_8E6D, 0x1EA1_19FA, 0x3D42_33DD, 0x2A14_62B3].iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk == 1 || chk == 0x2BC8_30A3
}

fn symbol(c: u8) -> bool {
    c.is_ascii_punctuation()
}

/// A password announced in prose, rather than the word after "password": has a letter and a
/// digit or symbol (or is 6+ digits, or mixes cases like a generated one), is not a lowercase
/// hyphenated word (`re-enter`), and is not a reference (`$DB_PASSWORD`, `%PASS%`, `<password>`).
pub fn password_like(v: &[u8]) -> bool {
    if !(4..=80).contains(&v.len()) || reference(v) || v.first().is_some_and(|c| matches!(c, b'<' | b'{' | b'-')) {
        return false;
    }
    let letters = v.iter().any(u8::is_ascii_alphabetic);
    let digits = v.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == v.len() {
        return v.len() >= 6;
    }
    let symbols = v.iter().any(|&c| symbol(c) && !matches!(c, b'-' | b'_' | b'.'));
    let word_like = v.iter().all(|&c| c.is_ascii_lowercase() || matches!(c, b'-' | b'_' | b'.'));
    let case_changes = v.windows(2).filter(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase()).count();
    letters && (digits > 0 || symbols || (v.len() >= 8 && case_changes >= 2)) && !word_like
}

/// A variable reference rather than a value: `$NAME`, `${NAME}`, `%NAME%`, `%s`.
pub fn reference(v: &[u8]) -> bool {
    let ident = |s: &[u8]| !s.is_empty() && s.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    match v {
        [b'$', b'{', rest @ .., b'}'] => ident(rest),
        [b'$', rest @ ..] => ident(rest) && rest.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_'),
        [b'%', rest @ .., b'%'] => ident(rest),
        [b'%', b's' | b'd'] => true,
        _ => false,
    }
}

/// A random-looking value announced in prose by `secret`, `token`, `api key`: at least 12
/// characters, letters with digits or mixed case, not a UUID, not a date or version.
pub fn prose_secret(v: &[u8]) -> bool {
    if v.len() < 12 || !v.iter().any(u8::is_ascii_alphabetic) {
        return false;
    }
    if uuid(v) || v.get(..10).is_some_and(|p| p[4] == b'-' && p[7] == b'-' && p.iter().filter(|c| c.is_ascii_digit()).count() == 8) {
        return false;
    }
    let digits = v.iter().filter(|c| c.is_ascii_digit()).count();
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let lower = v.iter().any(u8::is_ascii_lowercase);
    (digits > 0 || (upper && lower)) && entropy(v) >= 3.0
}

/// A UUID in its canonical 8-4-4-4-12 hex form.
pub fn uuid(v: &[u8]) -> bool {
    v.len() == 36
        && v.iter().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// A command-line flag's value that is a literal, not a reference (`$DB_PASS`, `<password>`).
pub fn flag_value(v: &[u8]) -> bool {
    !v.is_empty()
        && !reference(v)
        && !matches!(v.first(), Some(b'<' | b'{' | b'-'))
        && !matches!(v, b"null" | b"none" | b"true" | b"false" | b"stdin" | b"****" | b"...")
}

/// A passport number after `passport`: 6–9 letters and digits with at least one digit.
pub fn passport_like(v: &[u8]) -> bool {
    (6..=9).contains(&v.len()) && v.iter().any(u8::is_ascii_digit) && v.iter().all(u8::is_ascii_alphanumeric)
}

/// A MAC address in six hex pairs (separators at every third byte): one case throughout, and
/// not the all-zero or broadcast address.
pub fn mac(s: &[u8]) -> bool {
    let hex: Vec<u8> = s.iter().enumerate().filter(|(k, _)| k % 3 != 2).map(|(_, c)| c.to_ascii_lowercase()).collect();
    let mixed_case = s.iter().any(u8::is_ascii_uppercase) && s.iter().any(u8::is_ascii_lowercase);
    let blank = hex.iter().all(|&c| c == b'0') || hex.iter().all(|&c| c == b'f');
    hex.len() == 12 && !mixed_case && !blank
}

/// Only the digits of `v` (for checksums over grouped numbers).
pub fn digits_of(v: &[u8]) -> Vec<u8> {
    v.iter().copied().filter(u8::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_one_digit_off() {
        assert!(card_number(b"4111111111111111"));
        assert!(card_number(b"378282246310005"));
        assert!(card_number(b"5555555555554444"));
        assert!(!card_number(b"4111111111111112"));
        assert!(!card_number(b"1234567812345678"));
        assert!(!card_number(b"411111111111"));
    }

    #[test]
    fn ssn_invalid_areas() {
        assert!(ssn(b"123", b"45", b"6789"));
        assert!(!ssn(b"000", b"45", b"6789"));
        assert!(!ssn(b"666", b"45", b"6789"));
        assert!(!ssn(b"912", b"45", b"6789"));
        assert!(!ssn(b"123", b"00", b"6789"));
        assert!(!ssn(b"123", b"45", b"0000"));
    }

    #[test]
    fn iban_mod97() {
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"FR1420041010050500013M02606"));
        assert!(!iban(b"DE89370400440532013001"));
        assert!(!iban(b"DE8937040044053201300"));
        assert!(!iban(b"XX00000000000000"));
    }

    #[test]
    fn ipv4_rules() {
        assert!(ipv4(b"192.168.1.20"));
        assert!(ipv4(b"1.2.3.4"));
        assert!(!ipv4(b"256.1.1.1"));
        assert!(!ipv4(b"01.2.3.4"));
        assert!(!ipv4(b"1.2.3"));
    }

    #[test]
    fn github_crc32_suffix() {
        let random = b"aBcDeFgHiJkLmNoPqRsTuVwXyZ0123";
        let token = format!("ghp_{}{}", std::str::from_utf8(random).unwrap_or_default(), base62(crc32(random), 6));
        assert!(github_checksum(token.as_bytes()));
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let mut bad = token.into_bytes();
        bad[10] ^= 1;
        assert!(!github_checksum(&bad));
    }

    #[test]
    fn national_id_checksums() {
        assert!(aba_routing(b"011000015"));
        assert!(aba_routing(b"021000021"));
        assert!(!aba_routing(b"021000022"));
        assert!(!aba_routing(b"991000021"));
        assert!(aadhaar(b"234123412346"));
        assert!(!aadhaar(b"234123412345"));
        assert!(nhs(b"9434765919"));
        assert!(!nhs(b"9434765918"));
        assert!(de_tax_id(b"86095742719"));
        assert!(!de_tax_id(b"86095742718"));
        assert!(es_dni(b"12345678Z"));
        assert!(es_dni(b"X1234567L"));
        assert!(!es_dni(b"12345678A"));
        assert!(mrz(b"L898902C36UTO7408122F1204159ZE184226B<<<<<10"));
        assert!(!mrz(b"L898902C37UTO7408122F1204159ZE184226B<<<<<10"));
        assert!(nino_prefix(b'J', b'G') && nino_prefix(b'A', b'B') && !nino_prefix(b'Q', b'Q') && !nino_prefix(b'G', b'B') && !nino_prefix(b'D', b'A'));
    }

    #[test]
    fn wallet_checksums() {
        assert!(base58check_address(b"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"));
        assert!(base58check_address(b"3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"));
        assert!(!base58check_address(b"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"));
        assert!(bech32_address(b"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"));
        assert!(!bech32_address(b"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"));
    }

    #[test]
    fn prose_value_shapes() {
        assert!(password_like(b"Maple!River58"));
        assert!(password_like(b"Autumn2026!"));
        assert!(password_like(b"12345678"));
        assert!(!password_like(b"manager"));
        assert!(!password_like(b"re-enter"));
        assert!(!password_like(b"$DB_PASSWORD"));
        assert!(!password_like(b"%DB_PASS%"));
        assert!(password_like(b"%VjXEZZfMUAbzT"));
        assert!(password_like(b"LwiuskmgZvPtXe"));
        assert!(!password_like(b"JavaScript"));
        assert!(prose_secret(b"kq3VfP9sLm2Rx9Tb"));
        assert!(!prose_secret(b"550e8400-e29b-41d4-a716-446655440000"));
        assert!(!prose_secret(b"2026-11-25T12"));
        assert!(!prose_secret(b"authentication"));
    }

    #[test]
    fn randomness() {
        assert!(looks_random(b"q8Zt3xLw9PmK2vB7nR4c", 3.5));
        assert!(!looks_random(b"gen_ai.input.messages", 3.5));
        assert!(!looks_random(b"aaaaaaaa11111111", 3.5));
    }
}
