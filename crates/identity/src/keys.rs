//! A verified issuer's public keys (a JWKS) and the choice of the one key a token may be checked
//! with. Keys the gateway could never use safely (symmetric `oct` keys, encryption keys, short
//! RSA moduli, unknown curves) are dropped when the set is read, so they cannot be chosen later.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// RSA keys shorter than this are ignored (NIST SP 800-131A disallows < 2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// What a published key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (
                KeyKind::Rsa,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (KeyKind::P256, Algorithm::ES256)
                | (KeyKind::P384, Algorithm::ES384)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
        )
    }
}

/// One usable public key.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The key's own `alg`, if it names one: then it verifies only that algorithm.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
    /// SHA-256 over the key type and public parameters: what a cached verification remembers,
    /// so a key withdrawn (or replaced under the same `kid`) no longer vouches for tokens it
    /// verified earlier.
    pub id: KeyId,
}

/// The identity of a public key's material (not its `kid`, which an issuer may reuse).
pub(crate) type KeyId = [u8; 32];

/// The [`KeyId`] of a key: its type and public parameters, each length-prefixed.
pub(crate) fn key_id(kty: &str, params: &[&str]) -> KeyId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in std::iter::once(kty).chain(params.iter().copied()) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl VerifyingKey {
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

/// An issuer's usable keys at one point in time.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    pub keys: Vec<VerifyingKey>,
}

/// The outcome of looking for a token's key.
#[derive(Debug)]
pub(crate) enum Selection<'a> {
    Found(&'a VerifyingKey),
    /// The token's `kid` is not in the set.
    UnknownKid,
    /// The token has no `kid` and not exactly one key fits its algorithm.
    NoMatchingKey,
    /// Keys with the token's `kid` exist, but none fits its algorithm.
    Mismatch,
}

impl KeySet {
    /// Reads a JWKS document (`{"keys": [...]}`). Unusable entries are skipped, not fatal: an IdP
    /// may publish encryption keys or algorithms we do not support next to its signing keys.
    pub fn from_jwks(doc: &Value) -> Result<KeySet, &'static str> {
        let entries = doc.get("keys").and_then(Value::as_array).ok_or("the key set has no `keys` array")?;
        let mut keys = Vec::new();
        for entry in entries {
            match entry.as_object().ok_or("not an object").and_then(read_jwk) {
                Ok(key) => keys.push(key),
                Err(why) => {
                    let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::debug!(kid, why, "skipping a published key");
                }
            }
        }
        Ok(KeySet { keys })
    }

    /// Whether the key with this identity is still in the set.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.iter().any(|k| k.id == *id)
    }

    /// The key a token with this `kid` and `alg` must verify against.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection<'_> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return Selection::UnknownKid;
                }
                named.find(|k| k.fits(alg)).map_or(Selection::Mismatch, Selection::Found)
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Selection::Found(only),
                    _ => Selection::NoMatchingKey,
                }
            }
        }
    }
}

/// One JWK as a verifying key, or why it cannot be one.
fn read_jwk(jwk: &Map<String, Value>) -> Result<VerifyingKey, &'static str> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "sig") {
        return Err("not a signing key (`use`)");
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops.as_array().is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verifies {
            return Err("not a verification key (`key_ops`)");
        }
    }
    let alg = match text("alg") {
        None => None,
        Some(name) => Some(asymmetric_alg(name).ok_or("unsupported or symmetric `alg`")?),
    };
    let field = |name: &'static str| text(name).ok_or("a key parameter is missing");
    let decoded_len =
        |b64: &str| URL_SAFE_NO_PAD.decode(b64).map(|b| b.len()).map_err(|_| "a key parameter is not base64url");
    let (kind, key, id) = match text("kty") {
        Some("RSA") => {
            let (n, e) = (field("n")?, field("e")?);
            let modulus = URL_SAFE_NO_PAD.decode(n).map_err(|_| "a key parameter is not base64url")?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err("rsa modulus shorter than 2048 bits");
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_components(n, e).map_err(|_| "bad rsa parameters")?, key_id("RSA", &[n, e]))
        }
        Some("EC") => {
            let (kind, size) = match text("crv") {
                Some("P-256") => (KeyKind::P256, 32),
                Some("P-384") => (KeyKind::P384, 48),
                _ => return Err("unsupported curve"),
            };
            let (x, y) = (field("x")?, field("y")?);
            if decoded_len(x)? != size || decoded_len(y)? != size {
                return Err("ec coordinates of the wrong length");
            }
            let crv = text("crv").unwrap_or_default();
            (kind, DecodingKey::from_ec_components(x, y).map_err(|_| "bad ec parameters")?, key_id("EC", &[crv, x, y]))
        }
        Some("OKP") => {
            if text("crv") != Some("Ed25519") {
                return Err("unsupported curve");
            }
            let x = field("x")?;
            if decoded_len(x)? != 32 {
                return Err("ed25519 key of the wrong length");
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_components(x).map_err(|_| "bad okp parameters")?, key_id("OKP", &["Ed25519", x]))
        }
        Some("oct") => return Err("symmetric keys are never used"),
        _ => return Err("unsupported key type"),
    };
    let key = VerifyingKey { kid: text("kid").map(str::to_owned), kind, alg, key, id };
    if alg.is_some_and(|a| !kind.fits(a)) {
        return Err("`alg` does not fit the key type");
    }
    Ok(key)
}

/// The asymmetric JOSE algorithm named `name`; `None` for `none`, HMAC and unknown names.
pub(crate) fn asymmetric_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rsa_n() -> String {
        let mut n = vec![0xC5u8; 256];
        n[255] = 0x01;
        URL_SAFE_NO_PAD.encode(n)
    }

    fn b64(len: usize) -> String {
        URL_SAFE_NO_PAD.encode(vec![7u8; len])
    }

    fn set() -> KeySet {
        KeySet::from_jwks(&json!({"keys": [
            {"kty": "RSA", "kid": "r1", "n": rsa_n(), "e": "AQAB", "alg": "RS256", "use": "sig"},
            {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(32), "y": b64(32)},
            {"kty": "OKP", "kid": "d1", "crv": "Ed25519", "x": b64(32)},
            {"kty": "oct", "kid": "h1", "k": b64(32)},
            {"kty": "RSA", "kid": "enc", "n": rsa_n(), "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "kid": "short", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 128]), "e": "AQAB"},
            {"kty": "EC", "kid": "bad-curve", "crv": "P-521", "x": b64(66), "y": b64(66)},
            {"kty": "EC", "kid": "alg-mismatch", "crv": "P-256", "x": b64(32), "y": b64(32), "alg": "RS256"},
            {"kty": "RSA", "kid": "hs-alg", "n": rsa_n(), "e": "AQAB", "alg": "HS256"},
            "garbage",
        ]}))
        .unwrap()
    }

    #[test]
    fn unusable_keys_are_dropped() {
        let kids: Vec<_> = set().keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["r1", "e1", "d1"]);
        assert!(KeySet::from_jwks(&json!({"nokeys": []})).is_err());
    }

    #[test]
    fn selection_by_kid_and_alg() {
        let s = set();
        assert!(
            matches!(s.select(Some("r1"), Algorithm::RS256), Selection::Found(k) if k.kid.as_deref() == Some("r1"))
        );
        // The key pins RS256: PS256 with it is refused.
        assert!(matches!(s.select(Some("r1"), Algorithm::PS256), Selection::Mismatch));
        assert!(matches!(s.select(Some("e1"), Algorithm::RS256), Selection::Mismatch));
        assert!(matches!(s.select(Some("e1"), Algorithm::ES384), Selection::Mismatch));
        assert!(matches!(s.select(Some("zz"), Algorithm::RS256), Selection::UnknownKid));
        assert!(matches!(s.select(Some("h1"), Algorithm::RS256), Selection::UnknownKid));
    }

    #[test]
    fn no_kid_needs_exactly_one_fitting_key() {
        let s = set();
        assert!(matches!(s.select(None, Algorithm::ES256), Selection::Found(k) if k.kid.as_deref() == Some("e1")));
        assert!(matches!(s.select(None, Algorithm::ES384), Selection::NoMatchingKey));
        let two = KeySet::from_jwks(&json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": b64(32), "y": b64(32)},
            {"kty": "EC", "crv": "P-256", "x": b64(32), "y": b64(32)},
        ]}))
        .unwrap();
        assert!(matches!(two.select(None, Algorithm::ES256), Selection::NoMatchingKey));
    }
}
