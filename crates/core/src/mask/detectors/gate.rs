//! The byte classes a text holds, found in one pass, so that scanners which need a class the
//! text lacks are skipped: the PII number scanners need a digit, email an `@`, IPv6 and colon
//! MACs a `:`, names a capital or a non-ASCII letter, the shape scanners a digit (every shape
//! but two), a capital (Twilio's `SK…`) or a `-` (dashed MACs); a secret rule is skipped when
//! the text lacks a class each of its matches holds (`secrets::Rule::may_match`: the
//! assignment-shaped rules need an `=`, a `:` or a blank).
//!
//! Why a table: most strings of a clean trace are prose and ids, and each scanner's own anchor
//! search is a pass over the bytes; one table lookup per byte answers all of them at once.

/// A set of byte classes.
pub type Classes = u16;

pub const LOWER: Classes = 1;
pub const UPPER: Classes = 1 << 1;
pub const DIGIT: Classes = 1 << 2;
/// A byte of a non-ASCII character.
pub const HIGH: Classes = 1 << 3;
pub const AT: Classes = 1 << 4;
pub const COLON: Classes = 1 << 5;
pub const DASH: Classes = 1 << 6;
/// Every other byte.
pub const OTHER: Classes = 1 << 7;
/// `\` and `%` (also `OTHER`): where an escape the detectors decode (`\u0040`, `%40`) can
/// start, so a text without one is not searched for escapes again.
pub const ESCAPE: Classes = 1 << 8;
/// `=` (also `OTHER`): with `COLON`, what every assignment (`key=value`, `key: value`) holds.
pub const EQUALS: Classes = 1 << 9;
/// A space or a tab (also `OTHER`).
pub const BLANK: Classes = 1 << 10;

static CLASS: [Classes; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'a'..=b'z' => LOWER,
            b'A'..=b'Z' => UPPER,
            b'0'..=b'9' => DIGIT,
            0x80..=0xff => HIGH,
            b'@' => AT,
            b':' => COLON,
            b'-' => DASH,
            b'\\' | b'%' => OTHER | ESCAPE,
            b'=' => OTHER | EQUALS,
            b' ' | b'\t' => OTHER | BLANK,
            _ => OTHER,
        };
        i += 1;
    }
    t
};

/// The bytes of class `c` (any of its classes).
pub fn bytes_of(c: Classes) -> Vec<u8> {
    (0..=255u8).filter(|&b| CLASS[usize::from(b)] & c != 0).collect()
}

/// The union of the classes of `b`'s bytes.
pub fn classes(b: &[u8]) -> Classes {
    // Four independent accumulators, so the lookups do not wait on one another.
    let mut acc: [Classes; 4] = [0; 4];
    let mut chunks = b.chunks_exact(4);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a |= CLASS[usize::from(x)];
        }
    }
    let mut seen = acc[0] | acc[1] | acc[2] | acc[3];
    for &x in chunks.remainder() {
        seen |= CLASS[usize::from(x)];
    }
    seen
}

/// SWAR ("SIMD within a register") anchor search: the scanners jump from anchor to anchor
/// (the next digit, the next capital) eight bytes at a time instead of testing every byte.
/// Safe code only (the crate forbids `unsafe`), so no `std::arch`; one `u64` per step.
mod swar {
    pub const LO: u64 = 0x0101_0101_0101_0101;
    pub const HI: u64 = 0x8080_8080_8080_8080;

    /// The high bit of every byte `c` of `x` with `m < c < n` (ASCII `c` only; `m`, `n` ≤ 128),
    /// exactly: the top bits are cleared first, so no byte's borrow or carry reaches another.
    #[inline(always)]
    pub const fn between(x: u64, m: u8, n: u8) -> u64 {
        let x7 = x & (LO * 127);
        (LO * (127 + n as u64)).wrapping_sub(x7) & !x & x7.wrapping_add(LO * (127 - m as u64)) & HI
    }

    #[inline(always)]
    pub fn word(c: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    }
}

/// The first index at or after `from` whose byte `hit` accepts: `mask` is `hit` on eight bytes
/// at once (the high bit of accepted bytes; only its lowest set bit is read, so a mask exact
/// up to its first accepted byte will do). The one SWAR search: the scanners' anchors here,
/// and the byte engine's next byte to escape (`bytes::next_escape`).
#[inline(always)]
pub(in crate::mask) fn find(b: &[u8], from: usize, mask: impl Fn(u64) -> u64, hit: impl Fn(u8) -> bool) -> Option<usize> {
    let mut i = from;
    while let Some(c) = b.get(i..i + 8) {
        let m = mask(swar::word(c));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| hit(c)).map(|p| i + p)
}

/// The first ASCII digit at or after `from`.
#[inline]
pub fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    find(b, from, |x| swar::between(x, b'0' - 1, b'9' + 1), |c| c.is_ascii_digit())
}

/// The first ASCII capital or non-ASCII byte at or after `from`: where a capitalised word can
/// start.
#[inline]
pub fn next_capital_or_high(b: &[u8], from: usize) -> Option<usize> {
    find(b, from, |x| swar::between(x, b'A' - 1, b'Z' + 1) | (x & swar::HI), |c| c.is_ascii_uppercase() || c >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-byte definitions the SWAR searches must equal.
    fn naive(b: &[u8], from: usize, hit: impl Fn(u8) -> bool) -> Option<usize> {
        b.iter().enumerate().skip(from).find(|(_, &c)| hit(c)).map(|(i, _)| i)
    }

    /// Every byte value at every offset of a 20-byte window (so at each lane of a word, in the
    /// tail, and right after a chunk edge), over a background of each other byte value.
    #[test]
    fn anchor_searches_equal_the_per_byte_ones() {
        let mut r = crate::mask::test_rng::Rng::new(0x9E37_79B9_7F4A_7C15);
        for bg in 0..=255u8 {
            for probe in 0..=255u8 {
                let rng = r.next();
                let at = (rng % 20) as usize;
                let from = ((rng >> 8) % 10) as usize;
                let mut b = [bg; 20];
                b[at] = probe;
                let n = (rng >> 16) as usize % 21;
                let b = &b[..n];
                assert_eq!(next_digit(b, from), naive(b, from, |c| c.is_ascii_digit()), "digit: {b:?} from {from}");
                assert_eq!(
                    next_capital_or_high(b, from),
                    naive(b, from, |c| c.is_ascii_uppercase() || c >= 0x80),
                    "capital: {b:?} from {from}"
                );
            }
        }
    }

    #[test]
    fn anchor_searches_on_random_bytes() {
        let mut r = crate::mask::test_rng::Rng::new(1);
        let mut rng = 1u64;
        let mut b = vec![0u8; 300];
        for _ in 0..2000 {
            for x in b.iter_mut() {
                rng = r.next();
                // Mostly letters and blanks, now and then any byte: anchors are sparse.
                *x = if rng.is_multiple_of(7) { (rng >> 24) as u8 } else { b"abc xyz.\\"[(rng >> 8) as usize % 9] };
            }
            let from = (rng >> 32) as usize % 310;
            assert_eq!(next_digit(&b, from), naive(&b, from, |c| c.is_ascii_digit()));
            assert_eq!(next_capital_or_high(&b, from), naive(&b, from, |c| c.is_ascii_uppercase() || c >= 0x80));
        }
    }

    #[test]
    fn classes_are_the_union_of_every_byte() {
        assert_eq!(classes(b""), 0);
        assert_eq!(classes(b"hello"), LOWER);
        assert_eq!(classes(b"Hello world"), LOWER | UPPER | OTHER | BLANK);
        assert_eq!(classes(b"k=v\tw"), LOWER | OTHER | EQUALS | BLANK);
        assert_eq!(classes(b"a@b.co:1-2"), LOWER | AT | OTHER | COLON | DIGIT | DASH);
        assert_eq!(classes("zoë".as_bytes()), LOWER | HIGH);
        // The remainder after the 4-byte chunks counts too.
        assert_eq!(classes(b"abcdefgh9"), LOWER | DIGIT);
        assert_eq!(classes(b"abcdefghX"), LOWER | UPPER);
    }
}
