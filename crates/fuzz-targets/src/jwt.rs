//! `jwt_parse`: bearer tokens through [`Authenticator::authenticate`] with the development issuer,
//! the same path (shape, header, algorithm, key choice, signature, claims) OIDC tokens take.
//!
//! The first byte of the input picks a mode (`'0'`, `'1'`, `'2'`, or any byte modulo 3):
//! - `0` — the rest is a token as sent. The authenticator's key is generated at start and signs
//!   nothing, so every such token must be refused: nothing may verify without the key.
//! - `1` — the rest is `HEADER\nCLAIMS` (any bytes; `$KID` in the header becomes the issuer's key
//!   id), base64url-encoded and really signed with the issuer's key. If accepted, the header and
//!   claims must be ones the rules allow: `EdDSA`, an access-token `typ`, the issuer, audience,
//!   unexpired `exp`, reached `nbf`, a non-empty `sub`; and the principal must carry exactly the
//!   groups and string claims of the payload.
//! - `2` — the rest is JSON `{"sub": .., "groups": [..], "claims": {..}}` for `DevIssuer::mint`:
//!   whatever the issuer mints within the size limit must be accepted, unchanged.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{Map, Value};
use tracegate_core::{AuthMethod, Principal};
use tracegate_identity::dev::{generate_key_pem, DevIssuer};
use tracegate_identity::{AuthError, Authenticator, DevIssuerConfig, IdentityConfig};

const ISSUER: &str = "tracegate-dev";
const AUDIENCE: &str = "tracegate";

/// One dev issuer: its authenticator, the issuer that mints for it, and its signing key.
struct Dev {
    auth: Authenticator,
    issuer: DevIssuer,
    pair: Ed25519KeyPair,
}

struct Setup {
    rt: tokio::runtime::Runtime,
    /// Signs (modes 1, 2) and checks its own tokens.
    signer: Dev,
    /// Only ever checks tokens nobody signed for it (mode 0), so it must accept none.
    blind: Dev,
    cfg: IdentityConfig,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| unreachable!("a current-thread runtime: {e}"));
        let dev_cfg = DevIssuerConfig { issuer: ISSUER.into(), audience: AUDIENCE.into(), key_file: "dev.pem".into(), allow_non_loopback: false };
        let cfg = IdentityConfig { dev: Some(dev_cfg.clone()), ..IdentityConfig::default() };
        let dev = |tag: &str| {
            // The authenticator reads its key from a file, as the gateway does; the file lives
            // only until it is loaded.
            let dir = std::env::temp_dir().join(format!("tracegate-fuzz-jwt-{}-{tag}", std::process::id()));
            let pem = generate_key_pem().unwrap_or_else(|e| unreachable!("{e}"));
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{}: {e}", dir.display()));
            std::fs::write(dir.join("dev.pem"), &pem).unwrap_or_else(|e| unreachable!("{e}"));
            let auth = Authenticator::new(&cfg, &dir).unwrap_or_else(|e| unreachable!("{e}"));
            let issuer = DevIssuer::load(&dev_cfg, &dir).unwrap_or_else(|e| unreachable!("{e}"));
            let _ = std::fs::remove_dir_all(&dir);
            let der = pem_body(&pem);
            let pair = Ed25519KeyPair::from_pkcs8(&der).unwrap_or_else(|e| unreachable!("{e}"));
            Dev { auth, issuer, pair }
        };
        let signer = dev("signer");
        let blind = dev("blind");
        Setup { rt, signer, blind, cfg }
    })
}

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap_or_else(|e| unreachable!("{e}"))
}

/// A compact JWS over exactly these header and payload bytes.
fn sign(pair: &Ed25519KeyPair, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let sig = pair.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn authenticate(auth: &Authenticator, token: &str) -> Result<Principal, AuthError> {
    setup().rt.block_on(auth.authenticate(token))
}

/// True when the token was accepted.
pub fn jwt_parse(data: &[u8]) -> bool {
    let Some((mode, rest)) = data.split_first() else { return false };
    match mode % 3 {
        0 => unsigned(rest),
        1 => signed(rest),
        _ => minted(rest),
    }
}

fn unsigned(rest: &[u8]) -> bool {
    let s = setup();
    let token = String::from_utf8_lossy(rest);
    let token = token.strip_prefix("Bearer ").unwrap_or(&token);
    let verdict = authenticate(&s.blind.auth, token);
    assert!(verdict.is_err(), "a token nobody signed was accepted: {verdict:?}");
    false
}

fn signed(rest: &[u8]) -> bool {
    let s = setup();
    let (header, payload) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => rest.split_at(i),
        None => (rest, &[][..]),
    };
    let payload = payload.strip_prefix(b"\n").unwrap_or(payload);
    let header = String::from_utf8_lossy(header).replace("$KID", s.signer.issuer.kid());
    let token = sign(&s.signer.pair, header.as_bytes(), payload);
    let Ok(p) = authenticate(&s.signer.auth, &token) else { return false };

    let json = |b: &[u8]| match serde_json::from_slice::<Value>(b) {
        Ok(Value::Object(m)) => m,
        other => unreachable!("accepted a token whose part is not a JSON object: {other:?}"),
    };
    let h = json(header.as_bytes());
    let c = json(payload);
    assert_eq!(h.get("alg").and_then(Value::as_str), Some("EdDSA"), "accepted header {h:?}");
    let typ = h.get("typ").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    assert!(typ == "at+jwt" || typ == "application/at+jwt", "accepted typ {typ:?}");
    for k in ["crit", "jwk", "jku", "x5u", "x5c"] {
        assert!(!h.contains_key(k), "accepted a header with `{k}`");
    }
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISSUER), "accepted iss");
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(aud_ok, "accepted aud {:?}", c.get("aud"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
    let skew = s.cfg.clock_skew.as_secs_f64();
    let exp = c.get("exp").and_then(Value::as_f64);
    assert!(exp.is_some_and(|e| e + skew >= now), "accepted exp {:?}", c.get("exp"));
    if let Some(nbf) = c.get("nbf") {
        assert!(nbf.as_f64().is_some_and(|n| n - skew <= now), "accepted nbf {nbf:?}");
    }
    let sub = c.get("sub").and_then(Value::as_str);
    assert!(sub.is_some_and(|s| !s.is_empty()), "accepted sub {:?}", c.get("sub"));
    assert_eq!(Some(p.subject.as_str()), sub);
    assert_eq!(p.issuer, ISSUER);
    assert_eq!(p.auth_method, AuthMethod::Dev);
    assert_eq!(p.groups, groups_of(&c), "groups differ from the payload's");
    let strings: Vec<(&str, &str)> = c.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect();
    let got: Vec<(&str, &str)> = p.claims.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut want = strings;
    want.sort_unstable();
    assert_eq!(got, want, "string claims differ from the payload's");
    true
}

/// The groups rule for the default `groups` claim: a string, or an array of strings; else none.
fn groups_of(c: &Map<String, Value>) -> Vec<String> {
    match c.get("groups") {
        Some(Value::String(g)) => vec![g.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn minted(rest: &[u8]) -> bool {
    let s = setup();
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(rest) else { return false };
    let Some(sub) = req.get("sub").and_then(Value::as_str) else { return false };
    let groups: Vec<String> = match req.get("groups") {
        Some(Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let extra = match req.get("claims") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let Ok(token) = s.signer.issuer.mint(sub, &groups, extra.clone(), Duration::from_secs(300)) else { return false };
    if token.len() > s.cfg.max_token_bytes {
        assert!(matches!(authenticate(&s.signer.auth, &token), Err(AuthError::TooLarge { .. })));
        return false;
    }
    let p = authenticate(&s.signer.auth, &token).unwrap_or_else(|e| unreachable!("a minted token was refused: {e}"));
    assert_eq!(p.subject, sub);
    assert_eq!(p.groups, groups);
    for (k, v) in &extra {
        if let Some(v) = v.as_str() {
            assert_eq!(p.claim(k), Some(v), "minted claim `{k}` lost");
        }
    }
    true
}
