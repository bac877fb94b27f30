//! Fail closed at the gateway, and recover without a restart: `tracegate serve` over a real
//! `moto` bucket (behind a relay the test cuts) and a real PostgreSQL database (whose connections
//! the test forbids and terminates).
//!
//! - PostgreSQL unreachable: reads, writes and searches answer `503 audit_unavailable` with an
//!   error body and nothing else, `/healthz` answers 503 naming why and `/readyz` 503 naming the
//!   database; once the database accepts connections again both recover, and the chain still
//!   verifies.
//! - Bucket unreachable: reads and writes answer `503 store_unavailable`, no trace byte in the
//!   body, and the trail records each as an error with nothing served; `/readyz` answers 503
//!   naming the bucket; once the bucket is back they succeed, and a write that failed left
//!   nothing behind. No health answer shows the bucket's key, secret or endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::peers::{cli, http, lay_out_scaled, s3_env, serve, Moto, Relay, Served};
use serde_json::{json, Value};
use tracegate_identity::dev::DevIssuer;
use tracegate_state::testing::TestDb;

const BUCKET: &str = "tracegate-fail";

/// A gateway process over moto (through a relay) and a fresh database.
struct Rig {
    gw: Served,
    relay: Relay,
    db: TestDb,
    issuer: DevIssuer,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    http: reqwest::Client,
    _moto: Moto,
}

impl Rig {
    async fn start() -> Option<Rig> {
        let db = TestDb::create().await?;
        let moto = Moto::start(BUCKET).await?;
        let relay = Relay::start(moto.addr).await;
        let dir = tempfile::tempdir().unwrap();
        let (cfg_path, issuer) =
            lay_out_scaled(dir.path(), Some(&format!("s3://{BUCKET}/run")), &db.url);
        let env = s3_env(&relay.endpoint(), "fail-closed-key", "fail-closed-secret");
        let gw = serve(&cfg_path, &env, dir.path()).await;
        Some(Rig {
            gw,
            relay,
            db,
            issuer,
            dir,
            env,
            http: http(),
            _moto: moto,
        })
    }

    fn token(&self, sub: &str, groups: &[&str], claims: &[(&str, &str)]) -> String {
        common::mint(&self.issuer, sub, groups, claims, Duration::from_secs(600))
    }

    fn writer(&self) -> String {
        self.token("refund-agent", &["agents"], &[("tenant", "acme")])
    }

    fn reader(&self) -> String {
        self.token("erin", &["eng"], &[])
    }

    /// (status, request id, raw body).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, String, Vec<u8>) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.gw.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let id = r
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let len = r.content_length();
        let bytes = r.bytes().await.unwrap().to_vec();
        if let Some(len) = len {
            assert_eq!(len as usize, bytes.len(), "the body is whole");
        }
        (status, id, bytes)
    }

    async fn read(&self, id: &str) -> (u16, String, Vec<u8>) {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/traces/{id}"),
            &self.reader(),
            None,
        )
        .await
    }

    async fn write(&self, id: &str, doc: &Value) -> (u16, String, Vec<u8>) {
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/traces/{id}"),
            &self.writer(),
            Some(serde_json::to_vec(doc).unwrap()),
        )
        .await
    }

    async fn search(&self, query: &str) -> (u16, String, Vec<u8>) {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/traces?{query}"),
            &self.reader(),
            None,
        )
        .await
    }

    /// `GET /healthz` or `GET /readyz`: status and body.
    async fn health(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.gw.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        for secret in ["fail-closed-secret", "fail-closed-key", &self.relay.endpoint()] {
            assert!(!text.contains(secret), "{path} shows `{secret}`: {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The stored audit record of `request_id`, if the trail has it.
    async fn audit_record(&self, request_id: &str) -> Option<Value> {
        let pool = self.db.raw_pool().await;
        let line: Option<String> = tracegate_state::sqlx::query_scalar(
            "SELECT line FROM audit_records WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        pool.close().await;
        line.map(|l| serde_json::from_str(&l).unwrap())
    }

    async fn audit_count(&self) -> i64 {
        let pool = self.db.raw_pool().await;
        let n: i64 = tracegate_state::sqlx::query_scalar("SELECT count(*) FROM audit_records")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    fn verify(&self) -> (bool, String) {
        let config = self.dir.path().join("tracegate.toml");
        cli(
            &["audit", "verify", "--config", config.to_str().unwrap()],
            &self.env,
        )
    }

    /// Polls `path` (`/healthz` or `/readyz`) until it answers `want` (no time bound is
    /// asserted: the loop is bounded by attempts, each of which waits for the gateway's answer;
    /// the gateway probes its peers at most once a second).
    async fn wait_health(&self, path: &str, want: u16) -> Value {
        self.wait_health_until(path, |s, _| s == want).await
    }

    /// Polls `path` until `done` holds for its status and body (bounded by attempts, as above).
    async fn wait_health_until(&self, path: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            let (s, body) = self.health(path).await;
            if done(s, &body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never answered as expected: {last}");
    }
}

fn doc(tenant: &str, answer: &str) -> Value {
    json!({"metadata": {"tenant": tenant, "agent": "outage-agent", "started_at": "2026-11-30T00:00:00Z"}, "final_output": answer})
}

/// An error body: exactly `{"error": {"code", "message"}}` with the expected code, nothing of
/// any trace in it.
fn assert_only_error(body: &[u8], code: &str, never: &[&str]) {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error"], "{v}");
    let mut inner: Vec<&String> = v["error"].as_object().unwrap().keys().collect();
    inner.sort();
    assert_eq!(inner, ["code", "message"], "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let text = String::from_utf8_lossy(body);
    for s in never {
        assert!(!text.contains(s), "`{s}` leaked into an error body: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_fails_closed_then_recovers_without_restart() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let (s, _, body) = rig
        .write("pg-1", &doc("acme", "the refund was issued"))
        .await;
    assert_eq!(
        s,
        201,
        "{}\n{}",
        String::from_utf8_lossy(&body),
        rig.gw.output()
    );
    let (s, _, body) = rig.read("pg-1").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let before = rig.audit_count().await;

    // PostgreSQL goes away for this database: no new connections, existing ones killed.
    rig.db.allow_connections(false).await;
    rig.db.terminate_connections().await;

    let (s, _, body) = rig.read("pg-1").await;
    assert_eq!(s, 503);
    assert_only_error(
        &body,
        "audit_unavailable",
        &["refund was issued", "outage-agent"],
    );
    let (s, _, body) = rig
        .write("pg-2", &doc("acme", "written while the database was down"))
        .await;
    assert_eq!(s, 503);
    assert_only_error(&body, "audit_unavailable", &["written while"]);
    let (s, _, body) = rig.search("agent=outage-agent").await;
    assert_eq!(s, 503);
    assert_only_error(&body, "audit_unavailable", &["pg-1", "outage-agent"]);
    let health = rig.wait_health("/healthz", 503).await;
    assert_eq!(health["status"], "audit_failed", "{health}");
    let why = health["audit"].as_str().unwrap_or("");
    assert!(
        !why.is_empty() && why != "ok",
        "/healthz names why: {health}"
    );
    // Not ready either; once the next probe runs (at most a second after the last), the
    // database is named as the peer that is gone, and readiness stays 503 meanwhile.
    let ready = rig
        .wait_health_until("/readyz", |s, b| {
            assert_eq!(s, 503, "ready while the database is gone: {b}");
            b["database"] != "ok"
        })
        .await;
    assert_eq!(ready["ready"], false, "{ready}");
    assert!(
        matches!(ready["database"].as_str(), Some("failing" | "timed_out")),
        "{ready}"
    );
    // The metrics endpoint still answers (it records nothing), and counts the refusals.
    let metrics = rig
        .http
        .get(format!("{}/metrics", rig.gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("status=\"503\""), "{metrics}");

    // Back: both recover with no restart of the gateway.
    rig.db.allow_connections(true).await;
    let health = rig.wait_health("/healthz", 200).await;
    assert_eq!(health["audit"], "ok", "{health}");
    let ready = rig.wait_health("/readyz", 200).await;
    assert_eq!(
        (&ready["ready"], &ready["database"], &ready["store"]),
        (&json!(true), &json!("ok"), &json!("ok")),
        "{ready}"
    );
    let (s, read_id, body) = rig.read("pg-1").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("refund was issued"));
    assert!(
        rig.audit_record(&read_id).await.is_some(),
        "the read after recovery is on the trail"
    );
    // The write refused while the database was down reached neither the index nor the trail;
    // the store may hold its bytes (stored before the index failed), which a rebuild would find.
    let (s, _, body) = rig.search("agent=outage-agent").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let found: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        found.to_string().contains("pg-1") && !found.to_string().contains("pg-2"),
        "{found}"
    );
    let (s, _, body) = rig.write("pg-3", &doc("acme", "after recovery")).await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
    // Only the requests after recovery were recorded (a read, a search, a write), and the
    // one chain still verifies.
    assert_eq!(rig.audit_count().await, before + 3);
    let (ok, said) = rig.verify();
    assert!(ok, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_unreachable_fails_closed_records_nothing_served_then_recovers() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let (s, _, body) = rig
        .write("s3-1", &doc("acme", "stored in the bucket"))
        .await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
    let (s, _, _) = rig.read("s3-1").await;
    assert_eq!(s, 200);

    let (s, ready) = rig.health("/readyz").await;
    assert_eq!((s, &ready["store"]), (200, &json!("ok")), "{ready}");

    rig.relay.set_up(false);

    // Not ready: the bucket is named as the peer that is gone. Still live: every request is
    // still recorded (searches are served), so `/healthz` stays 200 and says the same.
    let ready = rig.wait_health("/readyz", 503).await;
    assert!(
        matches!(ready["store"].as_str(), Some("failing" | "timed_out")),
        "{ready}"
    );
    assert_eq!((&ready["ready"], &ready["database"]), (&json!(false), &json!("ok")), "{ready}");
    let (s, health) = rig.health("/healthz").await;
    assert_eq!((s, &health["ready"]), (200, &json!(false)), "{health}");

    let (s, read_id, body) = rig.read("s3-1").await;
    assert_eq!(s, 503);
    assert_only_error(
        &body,
        "store_unavailable",
        &["stored in the bucket", "fail-closed-secret"],
    );
    let (s, write_id, body) = rig
        .write("s3-2", &doc("acme", "written while the bucket was down"))
        .await;
    assert_eq!(s, 503);
    assert_only_error(&body, "store_unavailable", &["written while"]);
    // Each is on the trail as an error, with nothing served: no object version, no slice, no
    // masks, and the digest of the error body that was sent.
    for id in [&read_id, &write_id] {
        let rec = rig
            .audit_record(id)
            .await
            .unwrap_or_else(|| panic!("request {id} is not on the trail"));
        assert_eq!(rec["decision"], "error", "{rec}");
        assert_eq!(rec["deny_code"], "store_unavailable", "{rec}");
        assert_eq!(rec["status"], 503, "{rec}");
        for served in ["object_version", "slice"] {
            assert!(
                rec.get(served).is_none_or(Value::is_null),
                "`{served}` recorded for a failed request: {rec}"
            );
        }
        assert!(
            rec.get("masks")
                .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty)),
            "{rec}"
        );
    }
    // Search answers from the shared index, which does not need the bucket.
    let (s, _, body) = rig.search("agent=outage-agent").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));

    // Back: ready again, and reads and writes succeed through the same process.
    rig.relay.set_up(true);
    let ready = rig.wait_health("/readyz", 200).await;
    assert_eq!(ready["store"], "ok", "{ready}");
    let (s, _, body) = rig.read("s3-1").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("stored in the bucket"));
    // The write that failed left nothing: it is a 404, and writing it now creates it.
    let (s, _, _) = rig.read("s3-2").await;
    assert_eq!(s, 404);
    let (s, _, body) = rig
        .write("s3-2", &doc("acme", "written after the bucket came back"))
        .await;
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
    let (ok, said) = rig.verify();
    assert!(ok, "{said}");
}
