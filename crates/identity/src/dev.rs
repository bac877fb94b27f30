//! The development issuer: Ed25519 tokens signed with a local key, for trying the gateway without
//! an identity provider. Its tokens go through exactly the checks OIDC tokens go through; only
//! the key set comes from the local key instead of a `jwks_uri`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Map, Value};

use crate::config::DevIssuerConfig;
use crate::error::IdentityError;
use crate::keys::{KeyKind, KeySet, VerifyingKey};

/// Longest lifetime of a minted token: dev tokens are for trying things, not for keeping.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Claims `mint` sets itself; extra claims may not override them.
const RESERVED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// A fresh Ed25519 private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the format
/// `[identity.dev] key_file` expects.
pub fn generate_key_pem() -> Result<String, IdentityError> {
    let der = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).map_err(|_| IdentityError::KeyGeneration)?;
    let body = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    // RFC 7468: 64 base64 characters per line. Base64 output is ASCII, so byte chunks are chars.
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// The loaded dev issuer: signs tokens, and provides the key set the [`Authenticator`]
/// checks them against.
///
/// [`Authenticator`]: crate::Authenticator
pub struct DevIssuer {
    issuer: String,
    audience: String,
    kid: String,
    public_x: String,
    encoding: EncodingKey,
    groups_claim: String,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of debug output.
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .finish()
    }
}

impl DevIssuer {
    /// Reads the key file named by `cfg`, relative to `base_dir` (the config file's directory).
    pub fn load(cfg: &DevIssuerConfig, base_dir: &Path) -> Result<DevIssuer, IdentityError> {
        let path = cfg.key_path(base_dir);
        let pem = std::fs::read(&path).map_err(|source| IdentityError::ReadKey { path: path.clone(), source })?;
        DevIssuer::from_pem(cfg, &pem).map_err(|_| IdentityError::BadKey { path })
    }

    /// The dev issuer with an in-memory key (PKCS#8 PEM Ed25519).
    pub fn from_pem(cfg: &DevIssuerConfig, pem: &[u8]) -> Result<DevIssuer, IdentityError> {
        let bad = || IdentityError::BadKey { path: cfg.key_file.clone() };
        let encoding = EncodingKey::from_ed_pem(pem).map_err(|_| bad())?;
        // Parsing the DER proves it is an Ed25519 key (v1 or v2 PKCS#8) and yields the public half.
        let pair = Ed25519KeyPair::from_pkcs8(encoding.as_bytes()).map_err(|_| bad())?;
        let public_x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Ok(DevIssuer {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            kid: thumbprint(&public_x),
            public_x,
            encoding,
            groups_claim: "groups".to_owned(),
        })
    }

    /// Puts groups at another claim path than `groups` (dotted paths nest objects), to match an
    /// `[identity] groups_claim` that differs from the default.
    pub fn with_groups_claim(mut self, path: &str) -> DevIssuer {
        self.groups_claim = path.to_owned();
        self
    }

    /// The key id of dev tokens: the RFC 7638 thumbprint of the public key, so it changes
    /// whenever the key does.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public key set (JWKS) of this issuer, e.g. to hand to another verifier.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": self.public_x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]})
    }

    /// The keys the authenticator checks dev tokens with.
    pub(crate) fn key_set(&self) -> Result<KeySet, IdentityError> {
        let key = DecodingKey::from_ed_components(&self.public_x).map_err(|_| IdentityError::KeyGeneration)?;
        Ok(KeySet {
            keys: vec![VerifyingKey {
                kid: Some(self.kid.clone()),
                kind: KeyKind::Ed25519,
                alg: Some(Algorithm::EdDSA),
                key,
                id: crate::keys::key_id("OKP", &["Ed25519", &self.public_x]),
            }],
        })
    }

    /// A signed token for `sub` with `groups`, valid from now for `ttl` (1s to 24h).
    /// `extra_claims` (e.g. `tenant`) are added as they are; they cannot replace `iss`, `sub`,
    /// `aud`, the time claims or the groups claim.
    pub fn mint(
        &self,
        sub: &str,
        groups: &[String],
        extra_claims: Map<String, Value>,
        ttl: Duration,
    ) -> Result<String, IdentityError> {
        if sub.is_empty() {
            return Err(IdentityError::Mint("the subject must not be empty".into()));
        }
        if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
            return Err(IdentityError::Mint("the lifetime must be between 1s and 24h".into()));
        }
        let groups_root = self.groups_claim.split('.').next().unwrap_or_default();
        if let Some(name) = extra_claims.keys().find(|k| RESERVED.contains(&k.as_str()) || *k == groups_root) {
            return Err(IdentityError::Mint(format!("the claim `{name}` is set by the issuer")));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| IdentityError::Mint("the system clock is before 1970".into()))?
            .as_secs();
        let mut claims = extra_claims;
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("sub".into(), sub.into());
        claims.insert("aud".into(), self.audience.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), (now + ttl.as_secs()).into());
        insert_at_path(&mut claims, &self.groups_claim, groups.iter().cloned().map(Value::String).collect());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        // An access token (RFC 9068), checked like any issuer's.
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| IdentityError::Mint(e.to_string()))
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key (members in lexicographic order).
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
}

/// Sets `value` at a dotted path, creating objects on the way.
fn insert_at_path(claims: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            claims.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = claims.entry(head.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(map) = child {
                insert_at_path(map, rest, value);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::claims;

    fn cfg() -> DevIssuerConfig {
        DevIssuerConfig::new("tracegate-dev", "tracegate", "k.pem")
    }

    fn payload(token: &str) -> Map<String, Value> {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn generated_pem_loads_and_mints() {
        let pem = generate_key_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let dev = DevIssuer::from_pem(&cfg(), pem.as_bytes()).unwrap();
        let mut extra = Map::new();
        extra.insert("tenant".into(), "acme".into());
        let t = dev.mint("alice", &["eng".into()], extra, Duration::from_secs(60)).unwrap();
        let c = payload(&t);
        assert_eq!(c["iss"], "tracegate-dev");
        assert_eq!(c["aud"], "tracegate");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c["groups"], json!(["eng"]));
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], dev.kid());
    }

    #[test]
    fn kid_is_stable_per_key_and_v2_pkcs8_loads() {
        let pem = generate_key_pem().unwrap();
        let a = DevIssuer::from_pem(&cfg(), pem.as_bytes()).unwrap();
        let b = DevIssuer::from_pem(&cfg(), pem.as_bytes()).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 43);
        let other = DevIssuer::from_pem(&cfg(), generate_key_pem().unwrap().as_bytes()).unwrap();
        assert_ne!(a.kid(), other.kid());
        // PKCS#8 v2 (with the public key inside), as some tools write it.
        let v2 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let v2_pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(v2.as_ref()));
        DevIssuer::from_pem(&cfg(), v2_pem.as_bytes()).unwrap();
    }

    #[test]
    fn rejects_bad_keys_and_requests() {
        assert!(DevIssuer::from_pem(&cfg(), b"not a pem").is_err());
        let pem = generate_key_pem().unwrap();
        let dev = DevIssuer::from_pem(&cfg(), pem.as_bytes()).unwrap();
        assert!(dev.mint("", &[], Map::new(), Duration::from_secs(60)).is_err());
        assert!(dev.mint("a", &[], Map::new(), Duration::from_secs(25 * 3600)).is_err());
        assert!(dev.mint("a", &[], Map::new(), Duration::ZERO).is_err());
        for reserved in ["aud", "iss", "exp", "groups"] {
            let mut extra = Map::new();
            extra.insert(reserved.into(), "x".into());
            let err = dev.mint("a", &[], extra, Duration::from_secs(60)).unwrap_err();
            assert!(err.to_string().contains(reserved), "{err}");
        }
    }

    #[test]
    fn groups_go_to_a_configured_path() {
        let pem = generate_key_pem().unwrap();
        let dev = DevIssuer::from_pem(&cfg(), pem.as_bytes()).unwrap().with_groups_claim("realm_access.roles");
        let t = dev.mint("a", &["sre".into()], Map::new(), Duration::from_secs(60)).unwrap();
        assert_eq!(claims::groups(&payload(&t), "realm_access.roles"), ["sre"]);
    }
}
