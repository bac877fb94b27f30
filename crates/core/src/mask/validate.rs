//! Checksums and shape rules that turn a candidate into a detection: Luhn for cards, ISO 13616
//! mod-97 for IBANs, the SSA's never-issued ranges for SSNs, and an entropy score for tokens.
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
    fn randomness() {
        assert!(looks_random(b"q8Zt3xLw9PmK2vB7nR4c", 3.5));
        assert!(!looks_random(b"gen_ai.input.messages", 3.5));
        assert!(!looks_random(b"aaaaaaaa11111111", 3.5));
    }
}
