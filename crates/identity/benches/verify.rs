//! The cost of authenticating a request: a bearer token in, a principal out.
//!
//! - cache hit: a token seen before (one SHA-256 of the token, a map lookup, and the check that
//!   the key that verified it is still in its issuer's set);
//! - cache miss: a token never seen (strict JSON parse of header and payload, key choice,
//!   signature, claims), for the dev issuer (EdDSA) and an OIDC issuer (RS256, ES256) whose JWKS
//!   is served on loopback by this bench;
//! - a service-account key (store freshness check, SHA-256, constant-time compare).
//!
//! `cargo bench -p tracegate-identity --bench verify`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Map, Value};
use tracegate_identity::dev::{generate_key_pem, DevIssuer};
use tracegate_identity::service_accounts::NewAccount;
use tracegate_identity::{Authenticator, DevIssuerConfig, IdentityConfig, OidcIssuerConfig, ServiceAccountsConfig};

use support::{now, sign_jws, Signer};

static N: AtomicU64 = AtomicU64::new(0);

fn unique() -> u64 {
    N.fetch_add(1, Ordering::Relaxed)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let tmp = support::TempDir::new("bench");

    // The dev issuer, and service accounts beside it.
    std::fs::write(tmp.path().join("dev.pem"), generate_key_pem().unwrap()).unwrap();
    let dev_cfg = DevIssuerConfig::new("tracegate-dev", "tracegate", "dev.pem");
    let sa_cfg = ServiceAccountsConfig { admin_groups: vec!["ops".into()], ..ServiceAccountsConfig::default() };

    // An OIDC issuer with one RSA and one EC key, served on loopback.
    let rsa = Signer::rsa();
    let ec = Signer::ec();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let iss = format!("http://{}", listener.local_addr().unwrap());
    let jwks = json!({"keys": [rsa.public_jwk("rsa-1"), ec.public_jwk("ec-1")]});
    let discovery = json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")});
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(move || async move { Json(discovery.clone()) }))
        .route("/jwks", get(move || async move { Json(jwks.clone()) }));
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let cfg = IdentityConfig {
        dev: Some(dev_cfg.clone()),
        oidc: vec![OidcIssuerConfig::new(iss.clone(), "tracegate")],
        service_accounts: Some(sa_cfg),
        ..IdentityConfig::default()
    };
    let auth = Authenticator::new(&cfg, tmp.path()).unwrap();
    let dev = DevIssuer::load(&dev_cfg, tmp.path()).unwrap();
    let mint_dev = || {
        let mut extra = Map::new();
        extra.insert("tenant".into(), "acme".into());
        extra.insert("n".into(), unique().into());
        dev.mint("alice", &["eng".into()], extra, Duration::from_secs(600)).unwrap()
    };
    let oidc_token = |signer: &Signer, kid: &str| {
        let t = now();
        let claims = json!({"iss": iss, "aud": "tracegate", "sub": "alice", "iat": t, "exp": t + 600,
            "groups": ["eng"], "tenant": "acme", "n": unique()});
        sign_jws(&json!({"alg": signer.alg(), "typ": "at+jwt", "kid": kid}), &claims, signer)
    };
    let accounts = auth.service_accounts().unwrap();
    let key = rt
        .block_on(accounts.create(
            &NewAccount { name: "bench".into(), roles: vec!["engineer".into()], ..NewAccount::default() },
            "ops",
            &|_| Ok(()),
            SystemTime::now(),
        ))
        .unwrap()
        .key;

    let mut g = c.benchmark_group("authenticate");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    let check = |t: &str| {
        let p: Value = serde_json::to_value(rt.block_on(auth.authenticate(t)).unwrap()).unwrap();
        assert_eq!(p["subject"], json!(if t.starts_with("tgsa_") { "bench" } else { "alice" }));
    };

    let hit = mint_dev();
    check(&hit);
    g.bench_function("dev EdDSA, cache hit", |b| b.iter(|| rt.block_on(auth.authenticate(&hit)).unwrap()));
    g.bench_function("dev EdDSA, cache miss", |b| {
        b.iter_batched(mint_dev, |t| rt.block_on(auth.authenticate(&t)).unwrap(), BatchSize::SmallInput)
    });
    for (name, signer, kid) in [("oidc RS256", &rsa, "rsa-1"), ("oidc ES256", &ec, "ec-1")] {
        let hit = oidc_token(signer, kid);
        check(&hit);
        g.bench_function(format!("{name}, cache hit"), |b| b.iter(|| rt.block_on(auth.authenticate(&hit)).unwrap()));
        g.bench_function(format!("{name}, cache miss"), |b| {
            b.iter_batched(|| oidc_token(signer, kid), |t| rt.block_on(auth.authenticate(&t)).unwrap(), BatchSize::SmallInput)
        });
    }
    check(&key);
    g.bench_function("service-account key", |b| b.iter(|| rt.block_on(auth.authenticate(&key)).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
