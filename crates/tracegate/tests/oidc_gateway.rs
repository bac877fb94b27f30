//! The gateway configured with a real OpenID Provider's issuer URL (npm `oidc-provider`, started
//! by `scripts/start-oidc.sh`): its access tokens are accepted end to end over HTTP and mapped to
//! roles through the groups claim; tampered or foreign-audience tokens are refused with 401.
//! Never skipped: without node/npm the test fails saying what to install.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::{code, Gateway};
use serde_json::{json, Value};

fn start_provider() -> common::Provider {
    common::start_provider(&json!({
        "clients": [
            {"client_id": "helpdesk", "client_secret": "helpdesk-secret", "groups": ["support"], "tenant": "acme"},
            {"client_id": "debugger", "client_secret": "debugger-secret", "groups": ["eng"], "tenant": "acme"},
        ],
        "resources": {
            "urn:tracegate": {"audience": "tracegate", "alg": "ES256", "ttl": 300},
            "urn:other-service": {"audience": "other-service", "alg": "RS256", "ttl": 300},
        },
    }))
}

async fn access_token(issuer: &str, client: &str, secret: &str, resource: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "traces"), ("resource", resource)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "token endpoint: {status} {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_accepts_real_provider_tokens_and_refuses_forgeries() {
    let provider = start_provider();
    let issuer = provider.issuer.clone();
    let gw = Gateway::start_with(|cfg| {
        format!("{cfg}\n[[identity.oidc]]\nissuer = \"{issuer}\"\naudience = \"tracegate\"\nalgorithms = [\"RS256\", \"ES256\"]\n")
    })
    .await;

    // The support client's token: groups → `support`, tenant claim → row scope.
    let support = access_token(&issuer, "helpdesk", "helpdesk-secret", "urn:tracegate").await;
    let (s, who) = gw.get("/v1/whoami", &support).await;
    assert_eq!(s, 200, "{who}");
    assert_eq!(who["principal"]["auth_method"], "oidc");
    assert_eq!(who["principal"]["issuer"], issuer.as_str());
    assert_eq!(who["roles"], json!(["support"]));
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &support).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("final_output").is_some() && !body.to_string().contains("reasoning"));
    let (s, body) = gw.get("/v1/traces/demo-agent-2", &support).await;
    // Outside the row scope reads like a trace that does not exist (main 93a909d).
    assert_eq!((s, code(&body)), (404, "not_found"));

    let eng = access_token(&issuer, "debugger", "debugger-secret", "urn:tracegate").await;
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fields=$..reasoning", &eng).await;
    assert_eq!(s, 200, "{body}");

    // Tampered: the support token promoted to `eng` without re-signing.
    let parts: Vec<&str> = support.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["groups"] = json!(["eng"]);
    let forged = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &forged).await;
    assert_eq!((s, code(&body)), (401, "bad_signature"), "{body}");

    // Issued by the same provider for another service.
    let other = access_token(&issuer, "debugger", "debugger-secret", "urn:other-service").await;
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &other).await;
    assert_eq!((s, code(&body)), (401, "wrong_audience"), "{body}");
}
