//! Identity end to end, over real HTTP on loopback: service accounts (created, used, rotated and
//! revoked through the CLI against the admin API, audited as `service_account`, revocation seen
//! by a second gateway sharing the store on its next request), self-approval through a linked
//! second account, the key-freshness report of `/healthz`, and the dev issuer refusing to serve
//! beyond loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::ExitCode;

use common::{code, Gateway};
use serde_json::{json, Value};
use tracegate::commands::requests::Conn;
use tracegate::commands::service_accounts::{execute, Cmd};

fn conn(gw: &Gateway, token: &str) -> Conn {
    Conn { config: None, url: Some(gw.url("")), token: token.to_owned(), json: true }
}

async fn cli(cmd: Cmd) -> (ExitCode, Value, String) {
    let (code, out) = execute(cmd).await.unwrap();
    let json = serde_json::from_str(&out).unwrap_or(Value::Null);
    (code, json, out)
}

async fn post(gw: &Gateway, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = gw.client.post(gw.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn with_service_accounts(path: &str) -> impl FnOnce(String) -> String + '_ {
    move |cfg| format!("{cfg}\n[identity.service_accounts]\npath = \"{path}\"\nadmin_groups = [\"platform-admin\"]\n")
}

/// Every audit record's text, for looking for what must never be there.
fn audit_text(gw: &Gateway) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(gw.data_dir().join("audit")).unwrap().flatten() {
        if e.path().is_file() {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_are_created_used_rotated_and_revoked_on_every_replica() {
    let shared = tempfile::tempdir().unwrap();
    let sa_dir = shared.path().join("service-accounts").display().to_string();
    let a = Gateway::start_with(with_service_accounts(&sa_dir)).await;
    let b = Gateway::start_with(with_service_accounts(&sa_dir)).await;
    // Each gateway has its own dev issuer key: tokens are per gateway, the accounts are shared.
    let admin = a.token("olga", &["platform-admin"], &[]);
    let admin_b = b.token("olga", &["platform-admin"], &[]);
    let eng = a.token("erin", &["eng"], &[]);

    // Only admins may manage service accounts.
    let create = |token: &str, gw: &Gateway| Cmd::Create {
        name: "exporter".into(),
        roles: vec!["engineer".into()],
        claims: vec!["tenant=acme".into()],
        description: Some("nightly export".into()),
        ttl: Some("30d".into()),
        conn: conn(gw, token),
    };
    let (status, _, out) = cli(create(&eng, &a)).await;
    assert_eq!(status, ExitCode::FAILURE);
    assert!(out.contains("not_admin (403)"), "{out}");
    let (status, created, out) = cli(create(&admin, &a)).await;
    assert_eq!(status, ExitCode::SUCCESS, "{out}");
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("tgsa_{key_id}_")) && key.len() == 86, "{key}");
    assert_eq!(created["service_account"]["roles"], json!(["engineer"]));
    // The same name again: 409.
    let (status, _, out) = cli(create(&admin, &a)).await;
    assert_eq!(status, ExitCode::FAILURE);
    assert!(out.contains("service_account_exists (409)"), "{out}");

    // The key is a bearer token on both gateways: a principal scoped to exactly its role.
    for gw in [&a, &b] {
        let (s, who) = gw.get("/v1/whoami", &key).await;
        assert_eq!(s, 200, "{who}");
        assert_eq!(who["principal"]["auth_method"], "service_account");
        assert_eq!(who["principal"]["subject"], "exporter");
        assert_eq!(who["principal"]["groups"], json!(["eng"]));
        assert_eq!(who["roles"], json!(["engineer"]));
        assert_eq!(who["principal"]["claims"]["tenant"], "acme");
    }
    let (s, body) = a.get("/v1/traces/demo-agent-1", &key).await;
    assert_eq!(s, 200, "{body}");
    // A key cannot manage keys, whatever its roles.
    let (s, body) = post(&a, "/v1/service-accounts", &key, json!({"name": "x", "roles": ["engineer"]})).await;
    assert_eq!((s, code(&body)), (403, "not_admin"), "{body}");
    // A flipped secret digit is an invalid key, like any garbage.
    let mut forged = key.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let (s, body) = a.get("/v1/whoami", &String::from_utf8(forged).unwrap()).await;
    assert_eq!((s, code(&body)), (401, "invalid_service_account_key"), "{body}");

    // Rotation: two live keys, not three.
    let rotate = |gw: &Gateway, token: &str| Cmd::Rotate { name: "exporter".into(), ttl: None, conn: conn(gw, token) };
    let (status, rotated, out) = cli(rotate(&b, &admin_b)).await;
    assert_eq!(status, ExitCode::SUCCESS, "{out}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["service_account"]["live_keys"], 2);
    assert_eq!(a.get("/v1/whoami", &new_key).await.0, 200);
    assert_eq!(a.get("/v1/whoami", &key).await.0, 200);
    let (status, _, out) = cli(rotate(&a, &admin)).await;
    assert!(status == ExitCode::FAILURE && out.contains("too_many_keys (409)"), "{out}");

    // Revoking the old key through `b` takes effect on `a` at its next request.
    let revoke = Cmd::Revoke { name: "exporter".into(), key_id: Some(key_id.clone()), conn: conn(&b, &admin_b) };
    let (status, _, out) = cli(revoke).await;
    assert_eq!(status, ExitCode::SUCCESS, "{out}");
    let (s, body) = a.get("/v1/traces/demo-agent-1", &key).await;
    assert_eq!((s, code(&body)), (401, "service_account_key_revoked"), "{body}");
    assert_eq!(a.get("/v1/whoami", &new_key).await.0, 200);
    // Listing shows keys and their state, never a secret or a hash.
    let (status, listed, out) = cli(Cmd::List { conn: conn(&a, &admin) }).await;
    assert_eq!(status, ExitCode::SUCCESS, "{out}");
    let keys = &listed["service_accounts"][0]["keys"];
    assert_eq!(keys[0]["live"], false);
    assert_eq!(keys[1]["live"], true);
    assert!(keys[0]["last_used_at"].is_string(), "{listed}");
    assert!(!out.contains(&key[22..]) && !out.contains(&new_key[22..]) && !out.contains("hash"), "{out}");
    // The whole account, through `a`: refused on `b`.
    let (status, _, out) = cli(Cmd::Revoke { name: "exporter".into(), key_id: None, conn: conn(&a, &admin) }).await;
    assert_eq!(status, ExitCode::SUCCESS, "{out}");
    let (s, body) = b.get("/v1/whoami", &new_key).await;
    assert_eq!((s, code(&body)), (401, "service_account_key_revoked"), "{body}");

    // Audited: the read as a `service_account`, each admin call with what changed; no key
    // (nor its secret half) anywhere in the trail.
    let trail = audit_text(&a);
    let records: Vec<Value> = trail.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let read = records
        .iter()
        .find(|r| r["request"]["route"] == "/v1/traces/{id}" && r["principal"]["subject"] == "exporter")
        .unwrap_or_else(|| panic!("no read by the service account in {trail}"));
    assert_eq!(read["principal"]["auth_method"], "service_account");
    assert_eq!(read["decision"], "allow");
    let created_rec = records.iter().find(|r| r["event"]["change"] == "created").unwrap();
    assert_eq!((created_rec["event"]["key_id"].as_str(), created_rec["principal"]["subject"].as_str()), (Some(key_id.as_str()), Some("olga")));
    assert!(records.iter().any(|r| r["event"]["change"] == "account_revoked" && r["status"] == 200));
    assert!(records.iter().any(|r| r["deny_code"] == "not_admin"));
    for secret in [&key, &new_key] {
        assert!(!trail.contains(&secret[22..]), "a key reached the audit trail");
        assert!(!audit_text(&b).contains(&secret[22..]), "a key reached the audit trail");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_are_scoped_to_roles_that_exist_and_the_api_needs_the_config() {
    let gw = Gateway::start_with(with_service_accounts("sa")).await;
    let admin = gw.token("olga", &["platform-admin"], &[]);
    let (s, body) = post(&gw, "/v1/service-accounts", &admin, json!({"name": "ghost", "roles": ["no-such-role"]})).await;
    assert_eq!((s, code(&body)), (400, "invalid_request"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no-such-role"), "{body}");
    let (s, body) = post(&gw, "/v1/service-accounts", &admin, json!({"name": "x", "roles": ["engineer"], "ttl": "5y"})).await;
    assert_eq!((s, code(&body)), (400, "invalid_request"), "{body}");
    let (s, body) = post(&gw, "/v1/service-accounts", &admin, json!({"name": "x", "roles": ["engineer"], "admin": true})).await;
    assert_eq!((s, code(&body)), (400, "invalid_json"), "{body}");

    // Without `[identity.service_accounts]`: no API, and `tgsa_` keys are never valid.
    let plain = Gateway::start().await;
    let admin = plain.token("olga", &["platform-admin"], &[]);
    let (s, body) = plain.get("/v1/service-accounts", &admin).await;
    assert_eq!((s, code(&body)), (404, "no_route"), "{body}");
    let fake = format!("tgsa_{}_{}", "0".repeat(16), "0".repeat(64));
    let (s, body) = plain.get("/v1/whoami", &fake).await;
    assert_eq!((s, code(&body)), (401, "invalid_service_account_key"), "{body}");
}

/// `[identity.persons]` links two accounts to one person: the SRE who asked cannot approve
/// their own read by signing in as their second account (here two subjects of the dev issuer;
/// the check is on (issuer, subject) pairs, so a second issuer behaves the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_second_account_cannot_approve_its_own_request() {
    let gw = Gateway::start_with(|cfg| {
        format!(
            "{cfg}\n[identity.persons]\nsid = [{{ issuer = \"tracegate-dev\", subject = \"sid\" }}, {{ issuer = \"tracegate-dev\", subject = \"sid-sec\" }}]\n"
        )
    })
    .await;
    let sre = gw.token("sid", &["sre"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &sre).await;
    assert_eq!(s, 202, "{body}");
    let id = body["access_request"]["id"].as_str().unwrap().to_owned();
    let second = gw.token("sid-sec", &["security"], &[]);
    let (s, body) = post(&gw, &format!("/v1/access-requests/{id}/approve"), &second, json!({"comment": "me"})).await;
    assert_eq!((s, code(&body)), (403, "own_request"), "{body}");
    // Someone else in security may.
    let sam = gw.token("sam", &["security"], &[]);
    let (s, body) = post(&gw, &format!("/v1/access-requests/{id}/approve"), &sam, json!({"comment": "ok"})).await;
    assert_eq!(s, 200, "{body}");
    let (_, who) = gw.get("/v1/whoami", &second).await;
    assert_eq!(who["principal"]["person"], "sid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_key_freshness_per_issuer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gw = Gateway::start_with(|cfg| format!("{cfg}\n[[identity.oidc]]\nissuer = \"http://127.0.0.1:{port}\"\naudience = \"tracegate\"\n")).await;
    let (s, h) = gw.get("/healthz", "").await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["identity"][0]["issuer"], format!("http://127.0.0.1:{port}"));
    assert_eq!(h["identity"][0]["state"], "not_fetched");
    assert_eq!(h["identity"][1], json!({"issuer": "tracegate-dev", "state": "local"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_issuer_refuses_to_serve_beyond_loopback_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
    let cfg = dir.path().join("tracegate.toml");
    // Refused before anything binds: nothing listens on 0.0.0.0, even briefly.
    let err = tracegate::commands::serve::serve(&cfg, Some("0.0.0.0:0"), |_| panic!("it listened")).await.unwrap_err();
    assert!(format!("{err:#}").contains("allow_non_loopback"), "{err:#}");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("key_file = \"dev-signing-key.pem\"", "key_file = \"dev-signing-key.pem\"\nallow_non_loopback = true");
    assert!(text.contains("allow_non_loopback = true"));
    let parsed = tracegate_server::GatewayConfig::parse(&cfg, &text).unwrap();
    parsed.identity.dev.unwrap().check_listen("0.0.0.0:8080".parse().unwrap()).unwrap();
}
