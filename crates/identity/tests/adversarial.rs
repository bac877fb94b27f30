//! Adversarial tokens against the dev issuer and against an OIDC issuer whose discovery document
//! and JWKS are served by a small in-test HTTP server on loopback. The tokens carry real
//! signatures; each attack must be refused with 401 and its own code, and key rotation must work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tracegate_core::AuthMethod;
use tracegate_identity::dev::{generate_key_pem, DevIssuer};
use tracegate_identity::{AuthError, Authenticator, DevIssuerConfig, IdentityConfig, OidcIssuerConfig};

use support::{now, sign_jws, sign_raw, with_payload, Signer};

const AUD: &str = "tracegate";

// ---------------------------------------------------------------------------------------------
// The key server: discovery + JWKS, with hit counters and a switchable key set.

struct KeyServer {
    issuer: String,
    jwks: Mutex<Value>,
    jwks_hits: AtomicUsize,
    /// When set, discovery names another issuer (a mix-up attempt).
    lie_about_issuer: AtomicBool,
}

async fn discovery(State(s): State<Arc<KeyServer>>) -> Json<Value> {
    let issuer =
        if s.lie_about_issuer.load(Ordering::SeqCst) { "https://evil.example".to_owned() } else { s.issuer.clone() };
    Json(json!({"issuer": issuer, "jwks_uri": format!("{}/jwks", s.issuer)}))
}

async fn jwks(State(s): State<Arc<KeyServer>>) -> Json<Value> {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    Json(s.jwks.lock().unwrap().clone())
}

async fn key_server(keys: Value) -> Arc<KeyServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(KeyServer {
        issuer,
        jwks: Mutex::new(keys),
        jwks_hits: AtomicUsize::new(0),
        lie_about_issuer: AtomicBool::new(false),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    state
}

fn oidc_auth(server: &KeyServer, min_refresh: Duration) -> Authenticator {
    let mut issuer = OidcIssuerConfig::new(server.issuer.clone(), AUD);
    issuer.jwks_min_refresh_interval = min_refresh;
    let cfg = IdentityConfig { oidc: vec![issuer], ..IdentityConfig::default() };
    Authenticator::new(&cfg, &PathBuf::from("/nonexistent")).unwrap()
}

/// Valid claims for `iss`, overridable.
fn claims(iss: &str, overrides: Value) -> Value {
    let t = now();
    let mut c =
        json!({"iss": iss, "aud": AUD, "sub": "alice", "iat": t, "exp": t + 300, "groups": ["eng"], "tenant": "acme"});
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn token(signer: &Signer, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": signer.alg(), "typ": "at+jwt"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    sign_jws(&header, claims, signer)
}

#[track_caller]
fn refused(result: Result<tracegate_core::Principal, AuthError>, code: &str) {
    match result {
        Ok(p) => panic!("accepted {p:?}, expected `{code}`"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.status(), 401, "{e}");
        }
    }
}

/// An issuer with one RSA key (`rsa-1`) and one EC key (`ec-1`).
struct Oidc {
    server: Arc<KeyServer>,
    auth: Authenticator,
    rsa: Signer,
    ec: Signer,
}

async fn oidc() -> Oidc {
    let rsa = Signer::rsa();
    let ec = Signer::ec();
    let server = key_server(json!({"keys": [rsa.public_jwk("rsa-1"), ec.public_jwk("ec-1")]})).await;
    let auth = oidc_auth(&server, Duration::from_secs(60));
    Oidc { server, auth, rsa, ec }
}

// ---------------------------------------------------------------------------------------------
// The dev issuer.

struct Dev {
    auth: Authenticator,
    issuer: DevIssuer,
    pem: String,
    _dir: support::TempDir,
}

fn dev() -> Dev {
    let tmp = support::TempDir::new("dev");
    let dir = tmp.path().to_owned();
    let pem = generate_key_pem().unwrap();
    std::fs::write(dir.join("dev.pem"), &pem).unwrap();
    let dev_cfg = DevIssuerConfig::new("tracegate-dev", AUD, "dev.pem");
    let cfg = IdentityConfig { dev: Some(dev_cfg.clone()), ..IdentityConfig::default() };
    let auth = Authenticator::new(&cfg, &dir).unwrap();
    let issuer = DevIssuer::load(&dev_cfg, &dir).unwrap();
    Dev { auth, issuer, pem, _dir: tmp }
}

fn mint(dev: &DevIssuer, extra: Value) -> String {
    let extra: Map<String, Value> = extra.as_object().unwrap().clone();
    dev.mint("alice", &["support".into(), "eng".into()], extra, Duration::from_secs(300)).unwrap()
}

/// Signs `claims` with the dev key but a header of our choosing.
fn dev_signed(d: &Dev, kid: &str, claims: &Value) -> String {
    let der = pem_to_der(&d.pem);
    let signer = Signer::EdDsa(aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&der).unwrap());
    sign_jws(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}), claims, &signer)
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[tokio::test]
async fn dev_token_is_accepted() {
    let d = dev();
    let p = d.auth.authenticate(&mint(&d.issuer, json!({"tenant": "acme"}))).await.unwrap();
    assert_eq!(p.subject, "alice");
    assert_eq!(p.issuer, "tracegate-dev");
    assert_eq!(p.groups, ["support", "eng"]);
    assert_eq!(p.claim("tenant"), Some("acme"));
    assert_eq!(p.auth_method, AuthMethod::Dev);
}

#[tokio::test]
async fn dev_alg_none_is_refused() {
    let d = dev();
    let good = mint(&d.issuer, json!({}));
    let payload = good.split('.').nth(1).unwrap();
    for alg in ["none", "None", "NONE"] {
        let header = support::b64(json!({"alg": alg, "kid": d.issuer.kid()}).to_string().as_bytes());
        refused(d.auth.authenticate(&format!("{header}.{payload}.")).await, "alg_not_allowed");
        // Keeping the real signature does not help.
        let sig = good.split('.').nth(2).unwrap();
        refused(d.auth.authenticate(&format!("{header}.{payload}.{sig}")).await, "alg_not_allowed");
    }
}

#[tokio::test]
async fn dev_hs256_with_the_public_key_is_refused() {
    let d = dev();
    let x = d.issuer.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
    let claims = claims("tracegate-dev", json!({}));
    for secret in [x.into_bytes(), pem_to_der(&d.pem)] {
        let forged = sign_jws(&json!({"alg": "HS256", "kid": d.issuer.kid()}), &claims, &Signer::Hs256(secret));
        refused(d.auth.authenticate(&forged).await, "alg_not_allowed");
    }
}

#[tokio::test]
async fn dev_claim_checks() {
    let d = dev();
    let kid = d.issuer.kid().to_owned();
    let t = now();
    let cases = [
        (json!({"iss": "someone-else"}), "unknown_issuer"),
        (json!({"iss": null}), "missing_claim"),
        (json!({"iss": 7}), "invalid_claim"),
        (json!({"aud": "other-service"}), "wrong_audience"),
        (json!({"aud": ["other-a", "other-b"]}), "wrong_audience"),
        (json!({"aud": null}), "missing_claim"),
        (json!({"exp": t - 120}), "token_expired"),
        (json!({"exp": null}), "missing_claim"),
        (json!({"exp": "tomorrow"}), "invalid_claim"),
        (json!({"nbf": t + 600}), "token_not_yet_valid"),
        (json!({"sub": null}), "missing_claim"),
        (json!({"sub": ""}), "invalid_claim"),
    ];
    for (overrides, code) in cases {
        let tok = dev_signed(&d, &kid, &claims("tracegate-dev", overrides.clone()));
        match d.auth.authenticate(&tok).await {
            Ok(_) => panic!("{overrides} accepted, expected {code}"),
            Err(e) => assert_eq!((e.code(), e.status()), (code, 401), "{overrides}: {e}"),
        }
    }
    // Within the 30s skew: still accepted, both ways.
    let ok = dev_signed(&d, &kid, &claims("tracegate-dev", json!({"exp": t - 10, "nbf": t + 10})));
    d.auth.authenticate(&ok).await.unwrap();
    // An audience list that includes ours is fine.
    let ok = dev_signed(&d, &kid, &claims("tracegate-dev", json!({"aud": ["x", AUD]})));
    d.auth.authenticate(&ok).await.unwrap();
}

#[tokio::test]
async fn dev_key_never_published_and_tampering() {
    let d = dev();
    // Another Ed25519 key claiming the dev key's kid.
    let stranger = DevIssuer::from_pem(
        &DevIssuerConfig::new("tracegate-dev", AUD, "x"),
        generate_key_pem().unwrap().as_bytes(),
    )
    .unwrap();
    let forged = stranger.mint("mallory", &["sre".into()], Map::new(), Duration::from_secs(60)).unwrap();
    refused(d.auth.authenticate(&forged).await, "unknown_kid");
    let der = pem_to_der(&generate_key_pem().unwrap());
    let signer = Signer::EdDsa(aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&der).unwrap());
    let forged =
        sign_jws(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": d.issuer.kid()}), &claims("tracegate-dev", json!({})), &signer);
    refused(d.auth.authenticate(&forged).await, "bad_signature");

    let good = mint(&d.issuer, json!({}));
    let mut c = support::payload_of(&good);
    c["groups"] = json!(["sre"]);
    refused(d.auth.authenticate(&with_payload(&good, &c)).await, "bad_signature");
}

#[tokio::test]
async fn malformed_and_oversized_tokens_are_refused() {
    let d = dev();
    let good = mint(&d.issuer, json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |s: &str| support::b64(s.as_bytes());
    let malformed = [
        String::new(),
        "garbage".into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        format!("{}!.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}*.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64("{not json"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64("{\"sub\":"), parts[2]),
        format!("{}.{}.{}", parts[0], b64("[\"array\"]"), parts[2]),
        format!("{}.{}.{}", b64(r#"{"kid":"k"}"#), parts[1], parts[2]),
    ];
    for t in &malformed {
        refused(d.auth.authenticate(t).await, "malformed_token");
    }
    // A large but otherwise valid token: refused on size alone.
    let big = mint(&d.issuer, json!({"padding": "x".repeat(10_000)}));
    refused(d.auth.authenticate(&big).await, "token_too_large");
}

// ---------------------------------------------------------------------------------------------
// An OIDC issuer behind the key server.

#[tokio::test]
async fn oidc_tokens_with_both_algorithms_are_accepted() {
    let o = oidc().await;
    let iss = o.server.issuer.clone();
    let p = o.auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({})))).await.unwrap();
    assert_eq!((p.subject.as_str(), p.issuer.as_str(), p.auth_method), ("alice", iss.as_str(), AuthMethod::Oidc));
    assert_eq!(p.groups, ["eng"]);
    assert_eq!(p.claim("tenant"), Some("acme"));
    o.auth.authenticate(&token(&o.ec, Some("ec-1"), &claims(&iss, json!({})))).await.unwrap();
    // No kid, and exactly one key per algorithm: unambiguous, accepted.
    o.auth.authenticate(&token(&o.rsa, None, &claims(&iss, json!({})))).await.unwrap();
    // Fetched once, then served from the cache.
    assert_eq!(o.server.jwks_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn oidc_hs256_signed_with_the_public_key_is_refused() {
    let o = oidc().await;
    let c = claims(&o.server.issuer, json!({}));
    let jwk_text = o.rsa.public_jwk("rsa-1").to_string();
    for secret in [o.rsa.public_pem().into_bytes(), jwk_text.into_bytes()] {
        for kid in [Some("rsa-1"), None] {
            refused(o.auth.authenticate(&token(&Signer::Hs256(secret.clone()), kid, &c)).await, "alg_not_allowed");
        }
    }
    // Nothing was fetched for these: they are refused before any key is looked at.
    assert_eq!(o.server.jwks_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oidc_attacks_are_refused() {
    let o = oidc().await;
    let iss = o.server.issuer.clone();
    let t = now();
    refused(
        o.auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims("https://evil.example", json!({})))).await,
        "unknown_issuer",
    );
    refused(
        o.auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({"aud": "nope"})))).await,
        "wrong_audience",
    );
    refused(
        o.auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({"exp": t - 3600})))).await,
        "token_expired",
    );
    refused(
        o.auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({"nbf": t + 3600})))).await,
        "token_not_yet_valid",
    );
    // An EdDSA token: a real algorithm, but not in this issuer's allow-list.
    let ed = Signer::EdDsa(aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap());
    refused(o.auth.authenticate(&token(&ed, Some("rsa-1"), &claims(&iss, json!({})))).await, "alg_not_allowed");
    // The RSA key's kid on an ES256 token: the key type must match the algorithm.
    refused(o.auth.authenticate(&token(&o.ec, Some("rsa-1"), &claims(&iss, json!({})))).await, "key_mismatch");
    // Signed by a key the issuer never published, under its kid.
    let stranger = Signer::rsa();
    refused(o.auth.authenticate(&token(&stranger, Some("rsa-1"), &claims(&iss, json!({})))).await, "bad_signature");
    // Payload changed after signing.
    let good = token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({})));
    o.auth.authenticate(&good).await.unwrap();
    let mut c = support::payload_of(&good);
    c["groups"] = json!(["sre"]);
    refused(o.auth.authenticate(&with_payload(&good, &c)).await, "bad_signature");
    c = support::payload_of(&good);
    c["sub"] = json!("root");
    refused(o.auth.authenticate(&with_payload(&good, &c)).await, "bad_signature");
    // Signature bits flipped.
    let mut sig = good.rsplit('.').next().unwrap().to_owned().into_bytes();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{}.{}", good.rsplit_once('.').unwrap().0, String::from_utf8(sig).unwrap());
    refused(o.auth.authenticate(&flipped).await, "bad_signature");
}

#[tokio::test]
async fn unknown_kid_refreshes_once_then_rate_limits() {
    let o = oidc().await;
    let iss = o.server.issuer.clone();
    let auth = oidc_auth(&o.server, Duration::from_secs(1));
    auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({})))).await.unwrap();
    assert_eq!(o.server.jwks_hits.load(Ordering::SeqCst), 1);
    // Right after a fetch, an unknown kid does not trigger another: rate limit.
    let stranger = Signer::rsa();
    refused(auth.authenticate(&token(&stranger, Some("made-up-0"), &claims(&iss, json!({})))).await, "unknown_kid");
    assert_eq!(o.server.jwks_hits.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Many unknown kids at once: one refresh, shared by all, then refused.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let auth = auth.clone();
        let tok = token(&stranger, Some(&format!("made-up-{i}")), &claims(&iss, json!({})));
        tasks.spawn(async move { auth.authenticate(&tok).await });
    }
    while let Some(result) = tasks.join_next().await {
        refused(result.unwrap(), "unknown_kid");
    }
    assert_eq!(o.server.jwks_hits.load(Ordering::SeqCst), 2);
    assert_eq!(auth.key_fetches(&iss).await, Some(2));
    // And the limit holds for the next ones.
    for i in 0..5 {
        let tok = token(&stranger, Some(&format!("again-{i}")), &claims(&iss, json!({})));
        refused(auth.authenticate(&tok).await, "unknown_kid");
    }
    assert_eq!(o.server.jwks_hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn key_rotation_is_picked_up() {
    let o = oidc().await;
    let iss = o.server.issuer.clone();
    let auth = oidc_auth(&o.server, Duration::from_secs(1));
    auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({})))).await.unwrap();
    // The issuer rotates: rsa-2 replaces rsa-1.
    let next = Signer::rsa();
    *o.server.jwks.lock().unwrap() = json!({"keys": [next.public_jwk("rsa-2"), o.ec.public_jwk("ec-1")]});
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let p = auth.authenticate(&token(&next, Some("rsa-2"), &claims(&iss, json!({"sub": "bob"})))).await.unwrap();
    assert_eq!(p.subject, "bob");
    assert_eq!(o.server.jwks_hits.load(Ordering::SeqCst), 2);
    // The withdrawn key no longer verifies anything.
    refused(auth.authenticate(&token(&o.rsa, Some("rsa-1"), &claims(&iss, json!({})))).await, "unknown_kid");
}

#[tokio::test]
async fn a_missing_kid_needs_exactly_one_candidate() {
    let a = Signer::rsa();
    let b = Signer::rsa();
    let server = key_server(json!({"keys": [a.public_jwk("a"), b.public_jwk("b")]})).await;
    let auth = oidc_auth(&server, Duration::from_secs(60));
    refused(auth.authenticate(&token(&a, None, &claims(&server.issuer, json!({})))).await, "no_matching_key");
    auth.authenticate(&token(&a, Some("a"), &claims(&server.issuer, json!({})))).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_or_lying_issuer_fails_closed() {
    // Nothing listens on this port: 503, not 401, and no panic.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let rsa = Signer::rsa();
    let iss = format!("http://127.0.0.1:{port}");
    let cfg = IdentityConfig { oidc: vec![OidcIssuerConfig::new(iss.clone(), AUD)], ..IdentityConfig::default() };
    let auth = Authenticator::new(&cfg, &PathBuf::from("/")).unwrap();
    let err = auth.authenticate(&token(&rsa, Some("k"), &claims(&iss, json!({})))).await.unwrap_err();
    assert_eq!((err.code(), err.status()), ("issuer_unavailable", 503));

    // A discovery document naming another issuer is not trusted.
    let server = key_server(json!({"keys": [rsa.public_jwk("k")]})).await;
    server.lie_about_issuer.store(true, Ordering::SeqCst);
    let auth = oidc_auth(&server, Duration::from_secs(60));
    let err = auth.authenticate(&token(&rsa, Some("k"), &claims(&server.issuer, json!({})))).await.unwrap_err();
    assert_eq!((err.code(), err.status()), ("issuer_unavailable", 503));
    assert_eq!(server.jwks_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn hmac_and_none_cannot_be_configured() {
    for alg in ["HS256", "none"] {
        let text = format!("[[oidc]]\nissuer = \"https://idp.example\"\naudience = \"x\"\nalgorithms = [\"{alg}\"]\n");
        let err = toml::from_str::<IdentityConfig>(&text).unwrap_err().to_string();
        assert!(err.contains("never allowed"), "{err}");
    }
    let err = Authenticator::new(&IdentityConfig::default(), &PathBuf::from("/")).unwrap_err();
    assert!(err.to_string().contains("no issuer"), "{err}");
}

/// RFC 9068: an ID token (or any JWT not typed as an access token) signed by our own issuer and
/// naming our audience is still not an access token.
#[tokio::test]
async fn tokens_not_typed_as_access_tokens_are_refused() {
    let o = oidc().await;
    let c = claims(&o.server.issuer, json!({}));
    for typ in [Some("JWT"), Some("id_token+jwt"), None] {
        let mut header = json!({"alg": "RS256", "kid": "rsa-1"});
        if let Some(t) = typ {
            header["typ"] = json!(t);
        }
        refused(o.auth.authenticate(&sign_jws(&header, &c, &o.rsa)).await, "wrong_token_type");
    }
    let ok = sign_jws(&json!({"alg": "RS256", "kid": "rsa-1", "typ": "AT+JWT"}), &c, &o.rsa);
    assert!(o.auth.authenticate(&ok).await.is_ok(), "typ is compared case-insensitively");
}

/// A header or payload that names a member twice is refused, however genuine its signature:
/// RFC 7519 allows last-wins, but the IdP may have read the first (two `groups`, one for each
/// reader). Each case is a token the issuer really signed.
#[tokio::test]
async fn repeated_members_are_refused_even_when_signed() {
    let o = oidc().await;
    let iss = o.server.issuer.clone();
    let t = now();
    let header = r#"{"alg":"RS256","typ":"at+jwt","kid":"rsa-1"}"#;
    let body = |extra: &str| {
        format!(r#"{{"iss":"{iss}","aud":"{AUD}","sub":"alice","iat":{t},"exp":{},"tenant":"acme"{extra}}}"#, t + 300)
    };
    // The control: the same token without the repeat is accepted, under the groups it names.
    let ok = sign_raw(header, &body(r#","groups":["eng"]"#), &o.rsa);
    assert_eq!(o.auth.authenticate(&ok).await.unwrap().groups, ["eng"]);
    let payloads = [
        r#","groups":["eng"],"groups":["sre"]"#,
        r#","groups":["sre"],"groups":["eng"]"#,
        r#","groups":["eng"],"gr\u006fups":["sre"]"#,
        r#","groups":["eng"],"sub":"root""#,
        r#","groups":["eng"],"tenant":"globex""#,
        r#","groups":["eng"],"aud":"other-service""#,
        r#","groups":["eng"],"exp":99999999999"#,
        r#","groups":["eng"],"iss":"https://evil.example""#,
        r#","realm_access":{"roles":["eng"],"roles":["sre"]}"#,
        r#","groups":["eng"],"nested":[{"a":1,"a":2}]"#,
    ];
    let mut count = 0;
    for extra in payloads {
        let tok = sign_raw(header, &body(extra), &o.rsa);
        let e = o.auth.authenticate(&tok).await.unwrap_err();
        assert_eq!((e.code(), e.status()), ("malformed_token", 401), "{extra}: {e}");
        assert!(e.to_string().contains("payload repeats a member name"), "{extra}: {e}");
        count += 1;
    }
    let headers = [
        r#"{"alg":"RS256","typ":"at+jwt","kid":"rsa-1","kid":"ec-1"}"#,
        r#"{"alg":"ES256","alg":"RS256","typ":"at+jwt","kid":"rsa-1"}"#,
        r#"{"alg":"RS256","typ":"JWT","typ":"at+jwt","kid":"rsa-1"}"#,
    ];
    for h in headers {
        let tok = sign_raw(h, &body(r#","groups":["eng"]"#), &o.rsa);
        let e = o.auth.authenticate(&tok).await.unwrap_err();
        assert_eq!((e.code(), e.status()), ("malformed_token", 401), "{h}: {e}");
        assert!(e.to_string().contains("header repeats a member name"), "{h}: {e}");
        count += 1;
    }
    assert_eq!(count, 13);
    // The dev issuer reads tokens with the same parser.
    let d = dev();
    let der = pem_to_der(&d.pem);
    let signer = Signer::EdDsa(aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&der).unwrap());
    let dev_header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#, d.issuer.kid());
    let dev_body = format!(
        r#"{{"iss":"tracegate-dev","aud":"{AUD}","sub":"alice","exp":{},"groups":["support"],"groups":["sre"]}}"#,
        t + 300
    );
    refused(d.auth.authenticate(&sign_raw(&dev_header, &dev_body, &signer)).await, "malformed_token");
}

// ---------------------------------------------------------------------------------------------
// ID tokens (browser sign-in): the same keys, the ID-token rules.

/// A signed ID token for client `tg-console` with nonce `n-1`, overridable.
fn id_token(o: &Oidc, header: Value, overrides: Value) -> String {
    let mut c = claims(&o.server.issuer, json!({"aud": "tg-console", "nonce": "n-1"}));
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    let mut h = json!({"alg": "RS256", "kid": "rsa-1"});
    for (k, v) in header.as_object().unwrap() {
        h[k] = v.clone();
    }
    sign_jws(&h, &c, &o.rsa)
}

#[tokio::test]
async fn id_tokens_are_checked_like_bearer_tokens_plus_the_id_token_rules() {
    let o = oidc().await;
    let iss = o.server.issuer.clone();
    let check = |t: String, access: Option<&'static str>| {
        let auth = o.auth.clone();
        let iss = iss.clone();
        async move { auth.verify_id_token(&iss, &t, "tg-console", "n-1", access).await }
    };
    let p = check(id_token(&o, json!({}), json!({})), None).await.unwrap();
    assert_eq!((p.subject.as_str(), p.groups.clone()), ("alice", vec!["eng".to_owned()]));
    assert!(!p.claims.contains_key("nonce") && p.claims.get("tenant").is_some_and(|t| t == "acme"));
    assert!(check(id_token(&o, json!({"typ": "JWT"}), json!({})), None).await.is_ok(), "typ JWT is an ID token");

    refused(check(id_token(&o, json!({}), json!({"nonce": "n-2"})), None).await, "nonce_mismatch");
    refused(check(id_token(&o, json!({}), json!({"nonce": null})), None).await, "missing_claim");
    refused(check(id_token(&o, json!({}), json!({"aud": "tracegate"})), None).await, "wrong_audience");
    refused(check(id_token(&o, json!({"typ": "at+jwt"}), json!({})), None).await, "wrong_token_type");
    refused(check(id_token(&o, json!({}), json!({"azp": "someone-else"})), None).await, "wrong_azp");
    refused(check(id_token(&o, json!({}), json!({"aud": ["tg-console", "other"]})), None).await, "wrong_azp");
    assert!(check(id_token(&o, json!({}), json!({"aud": ["tg-console", "other"], "azp": "tg-console"})), None).await.is_ok());
    refused(check(id_token(&o, json!({}), json!({"exp": now() - 3600})), None).await, "token_expired");
    refused(check(id_token(&o, json!({}), json!({"sub": ""})), None).await, "invalid_claim");
    let mut forged = id_token(&o, json!({}), json!({}));
    forged = with_payload(&forged, &claims(&iss, json!({"aud": "tg-console", "nonce": "n-1", "groups": ["admin"]})));
    refused(check(forged, None).await, "bad_signature");
    // Another trusted issuer's name is not this sign-in's issuer.
    let genuine = id_token(&o, json!({}), json!({}));
    refused(o.auth.verify_id_token("https://other.example", &genuine, "tg-console", "n-1", None).await, "wrong_issuer");

    // at_hash: the left half of SHA-256 of the access token, base64url.
    use base64::Engine as _;
    use sha2::Digest as _;
    let at = "the-access-token";
    let digest = sha2::Sha256::digest(at.as_bytes());
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    assert!(check(id_token(&o, json!({}), json!({"at_hash": hash})), Some(at)).await.is_ok());
    refused(check(id_token(&o, json!({}), json!({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"})), Some(at)).await, "at_hash_mismatch");

    // And an ID token is still no bearer token.
    refused(o.auth.authenticate(&id_token(&o, json!({}), json!({"aud": AUD}))).await, "wrong_token_type");
}
