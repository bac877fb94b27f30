//! Against a real, certified OpenID Provider: npm `oidc-provider`, started on a free loopback
//! port by `scripts/start-oidc.sh` (which installs it if needed). Its access tokens (JWT, RS256
//! and ES256, with groups and tenant claims) must be accepted — and refused once tampered with,
//! expired, issued for another audience, or signed by a key it never published.
//!
//! Never skipped: without node/npm these tests fail with a message saying what to install.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use tracegate_core::AuthMethod;
use tracegate_identity::{AuthError, Authenticator, IdentityConfig, OidcIssuerConfig};

use support::provider::Provider;
use support::{now, sign_jws, with_payload, Signer};

/// Lifetime of the short-lived tokens used to test expiry.
const SHORT_TTL_SECS: u64 = 2;

fn provider_config() -> Value {
    json!({
        "clients": [
            {"client_id": "support-bot", "client_secret": "support-secret", "groups": ["support"], "tenant": "acme"},
            {"client_id": "eng-bot", "client_secret": "eng-secret", "groups": ["eng", "sre"], "tenant": "globex"},
        ],
        "resources": {
            "urn:tracegate": {"audience": "tracegate", "alg": "RS256", "ttl": 300},
            "urn:tracegate:es256": {"audience": "tracegate", "alg": "ES256", "ttl": 300},
            "urn:tracegate:short": {"audience": "tracegate", "alg": "RS256", "ttl": SHORT_TTL_SECS},
            "urn:other-service": {"audience": "other-service", "alg": "RS256", "ttl": 300},
        },
    })
}

/// One provider for all tests of this binary (started by the first test that needs it).
fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| Provider::start(&provider_config()))
}

/// An access token from the provider's token endpoint (client credentials grant).
async fn access_token(client: &str, secret: &str, resource: &str) -> String {
    provider().access_token(client, secret, resource).await
}

fn authenticator(skew: Duration) -> Authenticator {
    let cfg = IdentityConfig {
        clock_skew: skew,
        oidc: vec![OidcIssuerConfig::new(provider().issuer.clone(), "tracegate")],
        ..IdentityConfig::default()
    };
    Authenticator::new(&cfg, Path::new("/")).unwrap()
}

#[track_caller]
fn refused(result: Result<tracegate_core::Principal, AuthError>, code: &str) {
    match result {
        Ok(p) => panic!("accepted {p:?}, expected `{code}`"),
        Err(e) => assert_eq!((e.code(), e.status()), (code, 401), "{e}"),
    }
}

#[tokio::test]
async fn rs256_access_token_is_accepted() {
    let auth = authenticator(Duration::from_secs(30));
    let tok = access_token("support-bot", "support-secret", "urn:tracegate").await;
    assert_eq!(support::header_of(&tok)["alg"], "RS256");
    let p = auth.authenticate(&tok).await.unwrap();
    assert_eq!(p.subject, "support-bot");
    assert_eq!(p.issuer, provider().issuer);
    assert_eq!(p.groups, ["support"]);
    assert_eq!(p.claim("tenant"), Some("acme"));
    assert_eq!(p.auth_method, AuthMethod::Oidc);
}

#[tokio::test]
async fn es256_access_token_is_accepted() {
    let auth = authenticator(Duration::from_secs(30));
    let tok = access_token("eng-bot", "eng-secret", "urn:tracegate:es256").await;
    assert_eq!(support::header_of(&tok)["alg"], "ES256");
    let p = auth.authenticate(&tok).await.unwrap();
    assert_eq!(p.subject, "eng-bot");
    assert_eq!(p.groups, ["eng", "sre"]);
    assert_eq!(p.claim("tenant"), Some("globex"));
}

#[tokio::test]
async fn tampered_token_is_refused() {
    let auth = authenticator(Duration::from_secs(30));
    let tok = access_token("support-bot", "support-secret", "urn:tracegate").await;
    auth.authenticate(&tok).await.unwrap();
    for (claim, value) in [("groups", json!(["sre"])), ("tenant", json!("globex")), ("sub", json!("eng-bot"))] {
        let mut c = support::payload_of(&tok);
        c[claim] = value;
        refused(auth.authenticate(&with_payload(&tok, &c)).await, "bad_signature");
    }
    // Same claims, later expiry.
    let mut c = support::payload_of(&tok);
    c["exp"] = json!(c["exp"].as_u64().unwrap() + 86_400);
    refused(auth.authenticate(&with_payload(&tok, &c)).await, "bad_signature");
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    let auth = authenticator(Duration::from_secs(30));
    let tok = access_token("eng-bot", "eng-secret", "urn:other-service").await;
    assert_eq!(support::payload_of(&tok)["aud"], "other-service");
    refused(auth.authenticate(&tok).await, "wrong_audience");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let auth = authenticator(Duration::ZERO);
    let tok = access_token("support-bot", "support-secret", "urn:tracegate:short").await;
    let exp = support::payload_of(&tok)["exp"].as_u64().unwrap();
    // Valid now (the provider's ttl is SHORT_TTL_SECS)...
    auth.authenticate(&tok).await.unwrap();
    // ...and refused once the clock has passed `exp` (no skew configured).
    let wait = (exp + 1).saturating_sub(now()) + 1;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    refused(auth.authenticate(&tok).await, "token_expired");
}

#[tokio::test]
async fn token_signed_by_an_unpublished_key_is_refused() {
    let auth = authenticator(Duration::from_secs(30));
    let real = access_token("eng-bot", "eng-secret", "urn:tracegate").await;
    let provider_kid = support::header_of(&real)["kid"].as_str().unwrap().to_owned();
    let claims = support::payload_of(&real);
    let stranger = Signer::rsa();
    // Claiming the provider's key id: the signature cannot verify.
    let forged = sign_jws(&json!({"alg": "RS256", "typ": "at+jwt", "kid": provider_kid}), &claims, &stranger);
    refused(auth.authenticate(&forged).await, "bad_signature");
    // Under a key id of its own: not published, even after the refresh it triggers.
    let forged = sign_jws(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "attacker-key"}), &claims, &stranger);
    refused(auth.authenticate(&forged).await, "unknown_kid");
    // The classic confusion: HS256 keyed with the provider's published RSA key.
    let jwks: Value = reqwest::get(format!("{}/jwks", provider().issuer)).await.unwrap().json().await.unwrap();
    let hs = Signer::Hs256(jwks.to_string().into_bytes());
    let forged = sign_jws(&json!({"alg": "HS256", "kid": provider_kid}), &claims, &hs);
    refused(auth.authenticate(&forged).await, "alg_not_allowed");
    // The genuine token still passes.
    auth.authenticate(&real).await.unwrap();
}

#[tokio::test]
async fn freshly_started_provider_publishes_only_signing_keys() {
    // Also a guard on the setup: the gateway reads the provider's discovery document and JWKS
    // as any client would; here we check they are what the other tests assume.
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", provider().issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], provider().issuer);
    let jwks: Value = reqwest::get(discovery["jwks_uri"].as_str().unwrap()).await.unwrap().json().await.unwrap();
    let types: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert_eq!(types, ["RSA", "EC"]);
    assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()), "private parts published");
}
