//! The unverified first look at a compact JWS: size, shape, header, and the claims used to route
//! the token to its issuer. Nothing read here is trusted; it only decides which keys to try and
//! lets cheap refusals happen before any signature work.
//!
//! Header and payload are read by [`strict_object`], which refuses an object that repeats a
//! member name at any depth. RFC 7519 lets a parser keep the last duplicate, but the IdP that
//! signed the token may have read the first: a gateway that reads a token differently from its
//! signer is a parser differential waiting to be used (two `groups`, one for each reader).

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
    let header = decode_json(header).map_err(|e| match e {
        JsonError::Duplicate => malformed("the header repeats a member name"),
        JsonError::Invalid => malformed("the header is not base64url-encoded json"),
    })?;
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
    let claims = decode_json(payload).map_err(|e| match e {
        JsonError::Duplicate => malformed("the payload repeats a member name"),
        JsonError::Invalid => malformed("the payload is not base64url-encoded json"),
    })?;
    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(malformed("the signature is not base64url-encoded"));
    }
    Ok(Unverified { alg, kid, typ, claims })
}

/// Why a part is not a usable JSON object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not base64url, not JSON, or not an object.
    Invalid,
    /// Some object, at any depth, names a member twice.
    Duplicate,
}

/// A base64url (unpadded) JSON object whose objects never repeat a member name.
fn decode_json(part: &str) -> Result<Map<String, Value>, JsonError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JsonError::Invalid)?;
    strict_object(&bytes)
}

/// Parses `bytes` as a JSON object, refusing any object (at any depth) that names a member
/// twice. Names are compared after unescaping, so `"groups"` and `"gr\u006fups"` collide.
/// One pass: the value is built by the same visitor that checks it.
pub(crate) fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde::Deserialize::deserialize(&mut de) {
        Ok(Strict(v)) => v,
        Err(e) if e.to_string().starts_with(DUPLICATE) => return Err(JsonError::Duplicate),
        Err(_) => return Err(JsonError::Invalid),
    };
    de.end().map_err(|_| JsonError::Invalid)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::Invalid),
    }
}

/// The message prefix by which a duplicate is told apart from other parse errors.
const DUPLICATE: &str = "duplicate member";

/// A JSON value whose objects have unique member names.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
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
    fn repeated_members_are_refused_at_any_depth() {
        let dup_payload = token(r#"{"alg":"RS256"}"#, r#"{"iss":"https://i","groups":["a"],"groups":["sre"]}"#);
        assert!(reason(peek(&dup_payload, 1000)).contains("payload repeats"));
        let dup_header = token(r#"{"alg":"RS256","kid":"a","kid":"b"}"#, "{}");
        assert!(reason(peek(&dup_header, 1000)).contains("header repeats"));
        let nested = token(r#"{"alg":"RS256"}"#, r#"{"realm_access":{"roles":["a"],"roles":["b"]}}"#);
        assert!(reason(peek(&nested, 1000)).contains("payload repeats"));
        let in_array = token(r#"{"alg":"RS256"}"#, r#"{"x":[{"a":1,"a":2}]}"#);
        assert!(reason(peek(&in_array, 1000)).contains("payload repeats"));
        // Escapes are decoded before names are compared.
        let escaped = token(r#"{"alg":"RS256"}"#, r#"{"groups":["a"],"gr\u006fups":["b"]}"#);
        assert!(reason(peek(&escaped, 1000)).contains("payload repeats"));
        // The same name in different objects is not a repeat.
        let fine = token(r#"{"alg":"RS256"}"#, r#"{"a":{"x":1},"b":{"x":2},"x":3}"#);
        assert_eq!(peek(&fine, 1000).unwrap().claims["b"]["x"], 2);
    }

    #[test]
    fn strict_parse_matches_serde_json_on_unique_members() {
        let text = r#"{"s":"\u00e9\n","n":-1,"u":18446744073709551615,"f":1.5,"b":true,"z":null,"a":[1,[2,{"k":"v"}]]}"#;
        let ours = strict_object(text.as_bytes()).unwrap();
        let theirs: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(strict_object(b"{} x"), Err(JsonError::Invalid));
        assert_eq!(strict_object(b"[1]"), Err(JsonError::Invalid));
    }

    #[test]
    fn size_is_checked_before_anything() {
        let t = "x".repeat(9000);
        assert_eq!(peek(&t, 8192).unwrap_err(), AuthError::TooLarge { limit: 8192 });
    }
}
