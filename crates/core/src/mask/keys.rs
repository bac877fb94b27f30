//! Key-name matching: values under keys named like credentials are masked whole.
//!
//! A key matches when, lower-cased and with `_`, `-`, `.` and blanks removed, it ends with a
//! listed name: `DB_PASSWORD`, `x-api-key`, `Set-Cookie` and `access_token` all match, while
//! `max_tokens` and `tokenizer` do not. Matching walks the key backwards without allocating.

/// The built-in list. A policy's `key_names` adds to it, unless written with `replace = true`.
pub const BUILTIN: &[&str] = &[
    "password", "passwd", "pwd", "passphrase", "secret", "token", "api_key", "apikey",
    "authorization", "cookie", "private_key", "access_key", "secret_key", "credential",
    "credentials", "session_key", "x_auth",
];

/// [`KeyNames::class`] of the separators normalization removes: the walk steps over them.
const SKIP: u8 = u8::MAX;
/// A transition to no state: no name ends with what the walk has read (also the class of
/// bytes no name holds, column 0, which is all `DEAD`). The root is never a target, so its
/// index can mean this.
const DEAD: u32 = 0;
/// A transition past the last byte of a name: the key matches.
const MATCH: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct KeyNames {
    /// (as written, normalized bytes)
    names: Vec<(String, Vec<u8>)>,
    /// The normalized names reversed, as a trie walked from a key's last byte: the key matches
    /// when the walk passes the end of a name. Nearly every key in a trace ends in a byte some
    /// name ends in (`role`, `type`, `content`, `parts`), so a filter on the last byte rejects
    /// few of them; the walk rejects them at the second or third byte, with one table lookup
    /// per byte. `class[b]` is the column of key byte `b`, lower-cased (`A` and `a` share one),
    /// [`SKIP`] for separators, 0 for bytes no name holds.
    class: Box<[u8; 256]>,
    /// `next[state * width + class]`: the next state, [`DEAD`] or [`MATCH`]; state 0 is the root.
    next: Vec<u32>,
    width: usize,
}

fn skip(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'.' | b' ')
}

impl KeyNames {
    pub fn builtin() -> KeyNames {
        KeyNames::new(KeyNames::builtin_names())
    }

    /// The built-in names, as written and normalized, to extend with a policy's own.
    pub fn builtin_names() -> Vec<(String, Vec<u8>)> {
        BUILTIN.iter().filter_map(|n| KeyNames::normalize(n).map(|v| ((*n).to_owned(), v))).collect()
    }

    pub fn new(names: Vec<(String, Vec<u8>)>) -> KeyNames {
        // A normalized key holds no separator and no ASCII capital, so a name holding one
        // (or an empty one: `normalize` makes neither) can match no key and is left out.
        let usable = |norm: &[u8]| !norm.is_empty() && !norm.iter().any(|&b| skip(b) || b.is_ascii_uppercase());
        let mut class = Box::new([0u8; 256]);
        let mut classes = 0u8;
        for (_, norm) in names.iter().filter(|(_, n)| usable(n)) {
            for &b in norm {
                if let Some(c) = class.get_mut(usize::from(b)) {
                    if *c == 0 {
                        // At most 226 distinct bytes (no capitals, no separators): no overflow.
                        classes = classes.saturating_add(1);
                        *c = classes;
                    }
                }
            }
        }
        for b in b'A'..=b'Z' {
            let lower = class.get(usize::from(b.to_ascii_lowercase())).copied().unwrap_or(0);
            if let Some(c) = class.get_mut(usize::from(b)) {
                *c = lower;
            }
        }
        for b in [b'_', b'-', b'.', b' '] {
            if let Some(c) = class.get_mut(usize::from(b)) {
                *c = SKIP;
            }
        }
        let width = usize::from(classes) + 1;
        let mut next = vec![DEAD; width];
        for (_, norm) in names.iter().filter(|(_, n)| usable(n)) {
            let mut state = 0usize;
            for (i, &b) in norm.iter().rev().enumerate() {
                let slot = state * width + usize::from(class.get(usize::from(b)).copied().unwrap_or(0));
                // (Past `u32` states, which no policy reaches, a new state is a match: more
                // keys masked, never fewer.)
                let fresh = u32::try_from(next.len() / width).unwrap_or(MATCH);
                let Some(cur) = next.get_mut(slot) else { break };
                if *cur == MATCH {
                    // A shorter name already matches every key this one would.
                    break;
                }
                if i + 1 == norm.len() {
                    // Whatever longer names continue from here, reaching it is a match.
                    *cur = MATCH;
                    break;
                }
                if *cur == DEAD {
                    *cur = fresh;
                }
                state = *cur as usize;
                if state * width == next.len() {
                    next.resize(next.len() + width, DEAD);
                }
            }
        }
        KeyNames { names, class, next, width }
    }

    pub fn normalize(name: &str) -> Option<Vec<u8>> {
        let v: Vec<u8> = name.bytes().filter(|&b| !skip(b)).map(|b| b.to_ascii_lowercase()).collect();
        if v.is_empty() {
            None
        } else {
            Some(v)
        }
    }

    pub fn written(&self) -> Vec<&str> {
        self.names.iter().map(|(w, _)| w.as_str()).collect()
    }

    pub fn matches(&self, key: &str) -> bool {
        let mut state = 0usize;
        for &b in key.as_bytes().iter().rev() {
            let c = self.class.get(usize::from(b)).copied().unwrap_or(0);
            if c == SKIP {
                continue;
            }
            match self.next.get(state * self.width + usize::from(c)) {
                Some(&MATCH) => return true,
                Some(&DEAD) | None => return false,
                Some(&t) => state = t as usize,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::test_rng::Rng;

    /// The definition, written plainly: the key lower-cased and without separators ends with
    /// a name.
    fn oracle(names: &[(String, Vec<u8>)], key: &str) -> bool {
        let k: Vec<u8> = key.bytes().filter(|&b| !skip(b)).map(|b| b.to_ascii_lowercase()).collect();
        names.iter().any(|(_, n)| k.ends_with(n))
    }

    /// The implementation the trie replaced (a last-byte bitmask, then each candidate name
    /// compared backwards), kept as a second oracle.
    fn previous(names: &[(String, Vec<u8>)], key: &str) -> bool {
        let kb = key.as_bytes();
        let Some(&last) = kb.iter().rev().find(|&&b| !skip(b)) else { return false };
        let last = last.to_ascii_lowercase();
        let ends_with = |norm: &[u8]| {
            let mut k = kb.len();
            for &want in norm.iter().rev() {
                while k > 0 && skip(kb[k - 1]) {
                    k -= 1;
                }
                if k == 0 || kb[k - 1].to_ascii_lowercase() != want {
                    return false;
                }
                k -= 1;
            }
            true
        };
        names.iter().any(|(_, norm)| norm.last() == Some(&last) && ends_with(norm))
    }

    /// Generated keys, most of them built from pieces of the names (so suffixes that match,
    /// nearly match or overlap are common), in mixed case, with separators anywhere, non-ASCII
    /// letters and bytes no name holds; against the built-in list, policy lists of generated
    /// names (some sharing suffixes, some one another's suffix, past 64 names), and empty lists.
    #[test]
    fn matches_equals_the_definition_on_generated_keys() {
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
        let bits: &[&str] = &["_", "-", ".", " ", "é", "ß", "9", "x", "Q", "\u{17f}", "key", "KEY", "s", "id"];
        let mut lists = vec![KeyNames::builtin_names(), Vec::new()];
        for size in [1usize, 3, 20, 80] {
            let mut names = if size > 3 { KeyNames::builtin_names() } else { Vec::new() };
            for _ in 0..size {
                let mut n = String::new();
                for _ in 0..1 + rng.below(3) {
                    let piece = if rng.below(2) == 0 {
                        BUILTIN[rng.below(BUILTIN.len())].to_owned()
                    } else {
                        bits[rng.below(bits.len())].to_owned()
                    };
                    n.push_str(&piece);
                }
                if let Some(norm) = KeyNames::normalize(&n) {
                    names.push((n, norm));
                }
            }
            lists.push(names);
        }
        let mut tried = 0usize;
        let mut matched = 0usize;
        for names in &lists {
            let k = KeyNames::new(names.clone());
            let pieces: Vec<String> =
                names.iter().map(|(w, _)| w.clone()).chain(BUILTIN.iter().map(|b| (*b).to_owned())).collect();
            for _ in 0..20_000 {
                let mut key = String::new();
                for _ in 0..rng.below(4) {
                    match rng.below(4) {
                        0 => key.push_str(bits[rng.below(bits.len())]),
                        1 => {
                            // A tail of a name: a near miss.
                            let p = &pieces[rng.below(pieces.len())];
                            let cut = p.char_indices().map(|(i, _)| i).nth(rng.below(p.chars().count().max(1))).unwrap_or(0);
                            key.push_str(&p[cut..]);
                        }
                        _ => key.push_str(&pieces[rng.below(pieces.len())]),
                    }
                }
                let mut mangled = String::new();
                for c in key.chars() {
                    mangled.push(if rng.below(4) == 0 { c.to_ascii_uppercase() } else { c });
                    if rng.below(8) == 0 {
                        mangled.push(['_', '-', '.', ' '][rng.below(4)]);
                    }
                }
                let key = mangled;
                let want = oracle(names, &key);
                assert_eq!(k.matches(&key), want, "{key:?} against {:?}", k.written());
                assert_eq!(previous(names, &key), want, "{key:?}");
                tried += 1;
                matched += usize::from(want);
            }
        }
        // The generator reaches both outcomes often.
        assert!(matched > tried / 10 && matched < tried * 9 / 10, "{matched} of {tried}");
    }

    /// Every single byte and every pair of bytes as a key, against a list holding one- and
    /// two-byte names (all classes, separators and capitals around them).
    #[test]
    fn matches_equals_the_definition_on_every_short_key() {
        let mut names = KeyNames::builtin_names();
        for n in ["a", "zz", "é", "0x", "\u{ff}"] {
            names.push((n.to_owned(), KeyNames::normalize(n).unwrap_or_default()));
        }
        for list in [names, KeyNames::builtin_names()] {
            let k = KeyNames::new(list.clone());
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    for key in [vec![a], vec![a, b]] {
                        let Ok(key) = String::from_utf8(key) else { continue };
                        assert_eq!(k.matches(&key), oracle(&list, &key), "{key:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn credential_like_keys_match() {
        let k = KeyNames::builtin();
        for key in ["password", "DB_PASSWORD", "x-api-key", "Set-Cookie", "access_token", "Authorization", "client.secret", "privateKey"] {
            assert!(k.matches(key), "{key}");
        }
    }

    #[test]
    fn names_past_the_64th_still_match() {
        // Long lists (built-ins plus a policy's own; an earlier matcher's bitmask covered only
        // 64 names) match in full, names sharing long suffixes (`_pin`) included.
        let mut names = KeyNames::builtin_names();
        for i in 0..70 {
            let n = format!("custom_{i}_pin");
            let norm = KeyNames::normalize(&n).unwrap_or_default();
            names.push((n, norm));
        }
        names.push(("zz_last".to_owned(), b"zzlast".to_vec()));
        let k = KeyNames::new(names);
        for key in ["password", "CUSTOM_69_PIN", "custom-0-pin", "zz.last", "x_zz_last"] {
            assert!(k.matches(key), "{key}");
        }
        assert!(!k.matches("custom_70_pins"));
    }

    #[test]
    fn ordinary_keys_do_not() {
        let k = KeyNames::builtin();
        for key in ["max_tokens", "tokenizer", "input_tokens", "content", "role", "key", "passwords_reset_count", ""] {
            assert!(!k.matches(key), "{key}");
        }
    }
}
