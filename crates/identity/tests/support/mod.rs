//! Test helpers: real key pairs and a hand-rolled JWS signer, so adversarial tokens (any header,
//! any algorithm, any key) can be built without a JWT library's guard rails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

pub mod provider;

/// A private key that signs test tokens.
pub enum Signer {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    /// HMAC-SHA256 with arbitrary key bytes (for key-confusion attacks).
    Hs256(Vec<u8>),
}

impl Signer {
    pub fn rsa() -> Signer {
        Signer::Rs256(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    pub fn ec() -> Signer {
        Signer::Es256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Signer::Rs256(_) => "RS256",
            Signer::Es256(_) => "ES256",
            Signer::EdDsa(_) => "EdDSA",
            Signer::Hs256(_) => "HS256",
        }
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Signer::Rs256(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig).unwrap();
                sig
            }
            Signer::Es256(k) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
            Signer::EdDsa(k) => k.sign(msg).as_ref().to_vec(),
            Signer::Hs256(secret) => {
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
                aws_lc_rs::hmac::sign(&key, msg).as_ref().to_vec()
            }
        }
    }

    /// The public JWK of this key (asymmetric keys only).
    pub fn public_jwk(&self, kid: &str) -> Value {
        match self {
            Signer::Rs256(k) => {
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(k.public_key());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Es256(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Signer::EdDsa(k) => json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k.public_key().as_ref())}),
            Signer::Hs256(_) => panic!("no public half"),
        }
    }

    /// The public key as SPKI PEM, the bytes a key-confusion attacker would HMAC with.
    pub fn public_pem(&self) -> String {
        let der = match self {
            Signer::Rs256(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            _ => panic!("rsa only"),
        };
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A compact JWS over exactly this header and payload.
pub fn sign_jws(header: &Value, claims: &Value, signer: &Signer) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = signer.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A compact JWS over exactly these header and payload bytes (which need not be valid JSON,
/// nor JSON a `Value` could hold: repeated members, say).
pub fn sign_raw(header: &str, claims: &str, signer: &Signer) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = signer.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// The claims of a compact JWS (unverified).
pub fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The header of a compact JWS (unverified).
pub fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// `token` with its payload replaced and the original signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap();
    let _ = parts.next();
    let sig = parts.next().unwrap();
    format!("{header}.{}.{sig}", b64(claims.to_string().as_bytes()))
}

/// A fresh directory under Cargo's per-target temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "identity-{label}-{}-{}",
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
