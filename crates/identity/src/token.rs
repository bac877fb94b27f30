//! The unverified first look at a compact JWS: size, shape, header, and the claims used to route
//! the token to its issuer. Nothing read here is trusted; it only decides which keys to try and
//! lets cheap refusals happen before any signature work.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::error::AuthError;

/// The parts of a token needed before its signature is checked.
#[derive(Debug)]
pub(crate) struct Unverified {
    /// The header's `alg`, as written.
    pub alg: String,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// The header's `typ`, if any.
    pub typ: Option<String>,
    /// The payload's claims, unverified: used only to find the issuer.
    pub claims: Map<String, Value>,
}

/// Reads a token's header and payload without trusting them.
pub(crate) fn peek(token: &str, max_bytes: usize) -> Result<Unverified, AuthError> {
    if token.len() > max_bytes {
        return Err(AuthError::TooLarge { limit: max_bytes });
    }
    let malformed = |reason| AuthError::Malformed { reason };
    if token.is_empty() {
        return Err(malformed("the token is empty"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a token has three dot-separated parts"));
    };
    let header = decode_json(header).ok_or(malformed("the header is not base64url-encoded json"))?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        Some(_) => return Err(malformed("the header's `alg` is not a string")),
        None => return Err(malformed("the header has no `alg`")),
    };
    // `none` and HMAC are refused before anything else is read: no configuration allows them.
    if alg.eq_ignore_ascii_case("none") || alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("hs")) {
        return Err(AuthError::alg_not_allowed(&alg));
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        None => None,
        Some(_) => return Err(malformed("the header's `kid` is not a string")),
    };
    let typ = match header.get("typ") {
        Some(Value::String(t)) => Some(t.clone()),
        None => None,
        Some(_) => return Err(malformed("the header's `typ` is not a string")),
    };
    // RFC 7515 §4.1.11: extensions marked critical must be understood; we understand none.
    if header.contains_key("crit") {
        return Err(malformed("critical header parameters are not supported"));
    }
    // A key carried in the token would let the token vouch for itself.
    if ["jwk", "jku", "x5u", "x5c"].iter().any(|k| header.contains_key(*k)) {
        return Err(malformed("keys embedded in or referenced by the header are not accepted"));
    }
    let claims = decode_json(payload).ok_or(malformed("the payload is not base64url-encoded json"))?;
    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(malformed("the signature is not base64url-encoded"));
    }
    Ok(Unverified { alg, kid, typ, claims })
}

/// A base64url (unpadded) JSON object, or `None`.
fn decode_json(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    fn reason(r: Result<Unverified, AuthError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(u) => panic!("accepted: {u:?}"),
        }
    }

    #[test]
    fn reads_a_well_formed_token() {
        let t = token(r#"{"alg":"RS256","kid":"k1"}"#, r#"{"iss":"https://i","sub":"a"}"#);
        let u = peek(&t, 8192).unwrap();
        assert_eq!(u.alg, "RS256");
        assert_eq!(u.kid.as_deref(), Some("k1"));
        assert_eq!(u.claims["iss"], "https://i");
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(reason(peek("", 10)).contains("empty"));
        assert!(reason(peek("a.b", 10)).contains("three"));
        assert!(reason(peek("a.b.c.d", 10)).contains("three"));
        assert!(reason(peek("!!.e30.c2ln", 100)).contains("header"));
        assert!(reason(peek(&format!("{}.e30.c2ln", b64("[1]")), 100)).contains("header"));
        assert!(reason(peek(&format!("{}.e30.c2ln", b64("{}")), 100)).contains("no `alg`"));
        assert!(reason(peek(&format!("{}.e30.c2ln", b64(r#"{"alg":1}"#)), 100)).contains("not a string"));
        assert!(reason(peek(&format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("nope")), 100)).contains("payload"));
        assert!(reason(peek(&format!("{}.e30.", b64(r#"{"alg":"RS256"}"#)), 100)).contains("signature"));
        assert!(reason(peek(&format!("{}.e30.c2ln=", b64(r#"{"alg":"RS256"}"#)), 100)).contains("signature"));
        let crit = token(r#"{"alg":"RS256","crit":["exp"]}"#, "{}");
        assert!(reason(peek(&crit, 1000)).contains("critical"));
        let jwk = token(r#"{"alg":"RS256","jwk":{}}"#, "{}");
        assert!(reason(peek(&jwk, 1000)).contains("embedded"));
    }

    #[test]
    fn refuses_none_and_hmac_first() {
        for alg in ["none", "None", "HS256", "hs512"] {
            let t = format!("{}.not-json.", b64(&format!(r#"{{"alg":"{alg}"}}"#)));
            assert_eq!(peek(&t, 1000).unwrap_err().code(), "alg_not_allowed", "{alg}");
        }
    }

    #[test]
    fn size_is_checked_before_anything() {
        let t = "x".repeat(9000);
        assert_eq!(peek(&t, 8192).unwrap_err(), AuthError::TooLarge { limit: 8192 });
    }
}
