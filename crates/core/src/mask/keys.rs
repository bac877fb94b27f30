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

#[derive(Debug, Clone)]
pub struct KeyNames {
    /// (as written, normalized bytes)
    names: Vec<(String, Vec<u8>)>,
    /// For each possible last (lower-cased) byte of a key, the names ending in it, as a
    /// bitmask over `names` (names past the 64th are always tried). Most keys end in a byte
    /// no name ends in, so they are rejected with one lookup.
    by_last: Box<[u64; 256]>,
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
        let mut by_last = Box::new([0u64; 256]);
        for (i, (_, norm)) in names.iter().enumerate().take(64) {
            if let Some(&last) = norm.last() {
                by_last[usize::from(last)] |= 1 << i;
            }
        }
        KeyNames { names, by_last }
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
        let kb = key.as_bytes();
        let Some(&last) = kb.iter().rev().find(|&&b| !skip(b)) else { return false };
        let mut candidates = self.by_last[usize::from(last.to_ascii_lowercase())];
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
        // Only the names ending in the key's last byte, then any past the 64th.
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            if self.names.get(i).is_some_and(|(_, norm)| ends_with(norm)) {
                return true;
            }
        }
        self.names.iter().skip(64).any(|(_, norm)| ends_with(norm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_like_keys_match() {
        let k = KeyNames::builtin();
        for key in ["password", "DB_PASSWORD", "x-api-key", "Set-Cookie", "access_token", "Authorization", "client.secret", "privateKey"] {
            assert!(k.matches(key), "{key}");
        }
    }

    #[test]
    fn names_past_the_64th_still_match() {
        // The last-byte bitmask covers 64 names; longer lists (built-ins plus a policy's own)
        // must still be tried in full.
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
