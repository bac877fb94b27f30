//! The byte classes a text holds, found in one pass, so that scanners which need a class the
//! text lacks are skipped: the PII number scanners need a digit, email an `@`, IPv6 and colon
//! MACs a `:`, names a capital or a non-ASCII letter, the shape scanners a digit (every shape
//! but two), a capital (Twilio's `SK…`) or a `-` (dashed MACs).
//!
//! Why a table: most strings of a clean trace are prose and ids, and each scanner's own anchor
//! search is a pass over the bytes; one table lookup per byte answers all of them at once.

pub const LOWER: u8 = 1;
pub const UPPER: u8 = 1 << 1;
pub const DIGIT: u8 = 1 << 2;
/// A byte of a non-ASCII character.
pub const HIGH: u8 = 1 << 3;
pub const AT: u8 = 1 << 4;
pub const COLON: u8 = 1 << 5;
pub const DASH: u8 = 1 << 6;
/// Every other byte.
pub const OTHER: u8 = 1 << 7;

static CLASS: [u8; 256] = {
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
            _ => OTHER,
        };
        i += 1;
    }
    t
};

/// The union of the classes of `b`'s bytes.
pub fn classes(b: &[u8]) -> u8 {
    // Four independent accumulators, so the lookups do not wait on one another.
    let mut acc = [0u8; 4];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_the_union_of_every_byte() {
        assert_eq!(classes(b""), 0);
        assert_eq!(classes(b"hello"), LOWER);
        assert_eq!(classes(b"Hello world"), LOWER | UPPER | OTHER);
        assert_eq!(classes(b"a@b.co:1-2"), LOWER | AT | OTHER | COLON | DIGIT | DASH);
        assert_eq!(classes("zoë".as_bytes()), LOWER | HIGH);
        // The remainder after the 4-byte chunks counts too.
        assert_eq!(classes(b"abcdefgh9"), LOWER | DIGIT);
        assert_eq!(classes(b"abcdefghX"), LOWER | UPPER);
    }
}
