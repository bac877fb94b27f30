//! The identity provider goes down, comes back, and rotates its keys: against the real
//! provider (npm `oidc-provider`), stopped and restarted on the same port. Every start of the
//! provider generates fresh keys, so a restart also withdraws every key it published before.
//!
//! What must hold: keys already fetched keep working while the provider is unreachable, for
//! `jwks_max_age`; then its tokens are refused (401 `issuer_keys_stale`, cached ones included)
//! and the health report says so; once it answers again its new tokens are accepted and tokens
//! signed by withdrawn keys are refused within `jwks_refresh_interval`, cached or not; a flood of
//! forged key ids costs no more fetches than the rate limit allows, up or down.
//!
//! The waits below only ever make sure that *at least* some time has passed; no assertion
//! depends on something happening *within* a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracegate_identity::{AuthError, Authenticator, IdentityConfig, KeyState, OidcIssuerConfig};

use support::provider::Provider;
use support::{sign_jws, Signer};

fn config() -> Value {
    json!({
        "clients": [{"client_id": "eng-bot", "client_secret": "eng-secret", "groups": ["eng"], "tenant": "acme"}],
        "resources": {"urn:tracegate": {"audience": "tracegate", "alg": "RS256", "ttl": 300}},
    })
}

fn authenticator(p: &Provider, min_refresh: u64, refresh: u64, max_age: u64) -> Authenticator {
    let mut issuer = OidcIssuerConfig::new(p.issuer.clone(), "tracegate");
    issuer.jwks_min_refresh_interval = Duration::from_secs(min_refresh);
    issuer.jwks_refresh_interval = Duration::from_secs(refresh);
    issuer.jwks_max_age = Duration::from_secs(max_age);
    issuer.request_timeout = Duration::from_secs(2);
    let cfg = IdentityConfig { oidc: vec![issuer], ..IdentityConfig::default() };
    Authenticator::new(&cfg, Path::new("/")).unwrap()
}

async fn token(p: &Provider) -> String {
    p.access_token("eng-bot", "eng-secret", "urn:tracegate").await
}

#[track_caller]
fn refused(result: Result<tracegate_core::Principal, AuthError>, code: &str) -> AuthError {
    match result {
        Ok(p) => panic!("accepted {p:?}, expected `{code}`"),
        Err(e) => {
            assert_eq!((e.code(), e.status()), (code, 401), "{e}");
            e
        }
    }
}

/// Sleeps until at least `d` has passed since `since`.
async fn until(since: Instant, d: Duration) {
    if let Some(left) = d.checked_sub(since.elapsed()) {
        tokio::time::sleep(left).await;
    }
}

fn state(auth: &Authenticator) -> KeyState {
    auth.health()[0].state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_outlive_an_outage_for_their_max_age_then_fail_closed_until_the_provider_returns() {
    let mut p = Provider::start(&config());
    let auth = authenticator(&p, 1, 1, 6);
    assert_eq!(state(&auth), KeyState::NotFetched);
    let cached = token(&p).await;
    let unseen = token(&p).await;
    auth.authenticate(&cached).await.unwrap();
    let fetched = Instant::now();
    assert_eq!(state(&auth), KeyState::Fresh);

    p.stop();
    until(fetched, Duration::from_millis(1200)).await;
    // Past the refresh interval, the provider is down: the keys in hand still serve, for the
    // cached token and for one never seen before alike.
    auth.authenticate(&cached).await.unwrap();
    assert_eq!(auth.authenticate(&unseen).await.unwrap().subject, "eng-bot");
    let h = &auth.health()[0];
    assert_eq!(h.state, KeyState::Stale, "{h:?}");
    assert!(h.last_error.is_some(), "{h:?}");

    // Past the maximum age: refused, cached or not, with a reason that says why.
    until(fetched, Duration::from_millis(6300)).await;
    let e = refused(auth.authenticate(&cached).await, "issuer_keys_stale");
    assert!(e.to_string().contains("could not be refreshed"), "{e}");
    refused(auth.authenticate(&unseen).await, "issuer_keys_stale");
    assert_eq!(state(&auth), KeyState::Expired);

    // Back (with new keys): its new tokens are accepted; tokens of the keys it no longer
    // publishes are not.
    p.restart();
    let restarted = Instant::now();
    until(restarted, Duration::from_millis(1100)).await; // past the failure back-off
    let fresh = token(&p).await;
    assert_eq!(auth.authenticate(&fresh).await.unwrap().groups, ["eng"]);
    assert_eq!(state(&auth), KeyState::Fresh);
    refused(auth.authenticate(&cached).await, "unknown_kid");
    refused(auth.authenticate(&unseen).await, "unknown_kid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_key_stops_vouching_for_cached_tokens_within_the_refresh_interval() {
    let mut p = Provider::start(&config());
    let auth = authenticator(&p, 1, 2, 60);
    let old = token(&p).await;
    auth.authenticate(&old).await.unwrap();
    let fetched = Instant::now();
    // Served from the cache now (no second fetch).
    auth.authenticate(&old).await.unwrap();
    assert_eq!(auth.key_fetches(&p.issuer).await, Some(1));

    // The provider rotates every key (a restart generates new ones).
    p.restart();
    until(fetched, Duration::from_millis(2100)).await;
    refused(auth.authenticate(&old).await, "unknown_kid");
    let new = token(&p).await;
    auth.authenticate(&new).await.unwrap();
    // Once refused, the old token stays refused (it left the cache).
    refused(auth.authenticate(&old).await, "unknown_kid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_key_ids_costs_no_fetch_beyond_the_rate_limit_up_or_down() {
    let mut p = Provider::start(&config());
    // Defaults: at most one miss-triggered fetch per 30s, re-check every 60s.
    let auth = authenticator(&p, 30, 60, 600);
    let real = token(&p).await;
    auth.authenticate(&real).await.unwrap();
    assert_eq!(auth.key_fetches(&p.issuer).await, Some(1));
    let claims = support::payload_of(&real);
    let stranger = Signer::rsa();
    let forged: Vec<String> = (0..300)
        .map(|i| sign_jws(&json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("forged-{i}")}), &claims, &stranger))
        .collect();

    let flood = |tokens: Vec<String>| {
        let auth = auth.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for t in tokens {
                let auth = auth.clone();
                tasks.spawn(async move { auth.authenticate(&t).await });
            }
            let mut codes = Vec::new();
            while let Some(r) = tasks.join_next().await {
                codes.push(r.unwrap().unwrap_err().code());
            }
            codes
        }
    };
    let codes = flood(forged[..150].to_vec()).await;
    assert!(codes.iter().all(|c| *c == "unknown_kid"), "{codes:?}");
    assert_eq!(auth.key_fetches(&p.issuer).await, Some(1), "a forged kid right after a fetch triggers none");

    // The provider goes down: forged kids are still 401 unknown_kid (the keys in hand decide),
    // never a fetch storm, never a 503.
    p.stop();
    let codes = flood(forged[150..].to_vec()).await;
    assert!(codes.iter().all(|c| *c == "unknown_kid"), "{codes:?}");
    assert_eq!(auth.key_fetches(&p.issuer).await, Some(1));
    // And the genuine token still passes.
    auth.authenticate(&real).await.unwrap();
}
