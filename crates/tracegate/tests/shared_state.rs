//! Two gateways over one `[state]` database and one store: what one replica does, the other sees
//! on its next request. A write through A is read and found through B, a grant approved through
//! B is served through A, and both append to one audit chain that verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Gateway;
use serde_json::{json, Value};
use tracegate_server::{AppState, GatewayConfig};

/// A second replica: the same config file (same store, database, keys), its own state and port.
struct Replica {
    url: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Replica {
    async fn of(a: &Gateway) -> Replica {
        let cfg = GatewayConfig::load(&a.data_dir().join("tracegate.toml")).unwrap();
        let state = Arc::new(AppState::from_config(&cfg).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tracegate_server::serve(state, listener, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Replica { url, client, _stop: tx }
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self.client.get(format!("{}{path}", self.url)).bearer_auth(token).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let r = self.client.post(format!("{}{path}", self.url)).bearer_auth(token).json(&body).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_index_grants_and_one_audit_chain() {
    let Some(db) = tracegate_state::testing::TestDb::create().await else { return };
    let url = db.config().url.unwrap();
    let a = Gateway::start_with(|t| format!("{t}\n[state]\nurl = {url:?}\n")).await;
    let b = Replica::of(&a).await;

    // Written through A; B has never seen it, yet reads and finds it at once (shared index).
    let writer = a.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let doc = json!({"metadata": {"tenant": "acme", "agent": "shared-agent", "started_at": "2026-11-24T00:00:00Z"}, "final_output": "done"});
    let (s, body) = a.put("/v1/traces/shared-1", &writer, serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(s, 201, "{body}");
    let erin = a.token("erin", &["eng"], &[]);
    let (s, body) = b.get("/v1/traces/shared-1", &erin).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["final_output"], "done");
    let (s, found) = b.get("/v1/traces?agent=shared-agent", &erin).await;
    assert_eq!(s, 200, "{found}");
    assert!(found.to_string().contains("shared-1"), "{found}");

    // Asked through A, approved through B, served through A — exactly once asked for.
    let sid = a.token("sid", &["sre"], &[]);
    let sam = a.token("sam", &["security"], &[]);
    let (s, asked) = a.get("/v1/traces/shared-1", &sid).await;
    assert_eq!(s, 202, "{asked}");
    let id = asked["access_request"]["id"].as_str().unwrap().to_owned();
    let (s, shown) = b.get(&format!("/v1/access-requests/{id}"), &sam).await;
    assert_eq!((s, shown["status"].as_str()), (200, Some("pending")), "{shown}");
    let (s, approved) = b.post(&format!("/v1/access-requests/{id}/approve"), &sam, json!({"comment": "ok"})).await;
    assert_eq!((s, approved["status"].as_str()), (200, Some("approved")), "{approved}");
    let (s, served) = a.get("/v1/traces/shared-1", &sid).await;
    assert_eq!(s, 200, "{served}");
    assert_eq!(served["final_output"], "done");

    // Both replicas wrote to one chain; it verifies, and it holds B's approval and A's reads.
    let (s, trail) = b.get("/v1/audit?limit=1000", &a.token("audrey", &["audit"], &[])).await;
    assert_eq!(s, 200, "{trail}");
    let text = trail.to_string();
    assert!(text.contains(&id) && text.contains("shared-1"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracegate"))
        .args(["audit", "verify", "--config"])
        .arg(a.data_dir().join("tracegate.toml"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
}
