//! The gateway end to end on the signed S3 path: `tracegate serve` over an `s3s-fs` bucket,
//! which checks every request's SigV4 signature, with the key pair given only in the standard
//! `AWS_*` environment, and a real PostgreSQL database for the shared state.
//!
//! - Signed with the right key: writes land in the bucket (as files of s3s-fs's directory, the
//!   current object and the immutable version), reads and searches answer, a stale `If-Match` is
//!   refused, `tracegate audit replay` re-fetches the recorded version, `/readyz` says the store
//!   is fine.
//! - A second gateway on the same config whose secret is wrong: nothing it signs is accepted.
//!   It is not ready (`/readyz` 503, the store `failing`), reads and writes are `503
//!   store_unavailable`, nothing lands in the bucket, and no answer shows either secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::peers::{cli, http, lay_out_scaled, s3_env, serve, S3sFs};
use serde_json::{json, Value};
use tracegate_state::testing::TestDb;

const BUCKET: &str = "tracegate-signed";
const KEY: &str = "signed-key-id";
const SECRET: &str = "signed-secret-never-shown";
const WRONG: &str = "not-the-signed-secret";

async fn call(req: reqwest::RequestBuilder) -> (u16, String, String) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = r.text().await.unwrap();
    for secret in [SECRET, WRONG] {
        assert!(!text.contains(secret), "an answer shows a secret: {text}");
    }
    (status, id, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_from_a_bucket_that_checks_signatures() {
    let Some(db) = TestDb::create().await else { return };
    let Some(s3) = S3sFs::start(BUCKET, KEY, SECRET).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, issuer) = lay_out_scaled(dir.path(), Some(&format!("s3://{BUCKET}/run")), &db.url);
    let env = s3_env(&s3.endpoint, KEY, SECRET);
    let logs = dir.path().join("good");
    std::fs::create_dir(&logs).unwrap();
    let gw = serve(&config, &env, &logs).await;
    let http = http();
    let writer = common::mint(&issuer, "refund-agent", &["agents"], &[("tenant", "acme")], Duration::from_secs(600));
    let erin = common::mint(&issuer, "erin", &["eng"], &[], Duration::from_secs(600));
    let doc = json!({"metadata": {"tenant": "acme", "agent": "signed-agent", "started_at": "2026-12-01T00:00:00Z"}, "final_output": "stored signed"});

    let (s, _, ready) = call(http.get(format!("{}/readyz", gw.url))).await;
    assert_eq!(s, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!((&ready["store"], &ready["database"]), (&json!("ok"), &json!("ok")), "{ready}");

    let (s, _, body) = call(http.put(format!("{}/v1/traces/signed-1", gw.url)).bearer_auth(&writer).json(&doc)).await;
    assert_eq!(s, 201, "{body}\n{}", gw.output());
    // In the bucket: the current object and its immutable version are files of s3s-fs's root.
    let run = s3.root.path().join(BUCKET).join("run");
    assert!(run.join("signed-1.json").is_file(), "the current object is in the bucket");
    let versions = std::fs::read_dir(run.join("versions/signed-1")).unwrap().count();
    assert_eq!(versions, 1, "the version is kept");

    let (s, read_id, body) = call(http.get(format!("{}/v1/traces/signed-1", gw.url)).bearer_auth(&erin)).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("stored signed"), "{body}");
    let (s, _, body) = call(http.get(format!("{}/v1/traces?agent=signed-agent", gw.url)).bearer_auth(&erin)).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("signed-1"), "{body}");
    let stale = http
        .put(format!("{}/v1/traces/signed-1", gw.url))
        .bearer_auth(&writer)
        .header("if-match", format!("\"sha256:{}\"", "0".repeat(64)))
        .json(&doc);
    let (s, _, body) = call(stale).await;
    assert_eq!(s, 412, "{body}");
    // Replay fetches the recorded version with the same signed client.
    let config_arg = config.to_str().unwrap();
    let (ok, said) = cli(&["audit", "replay", &read_id, "--config", config_arg], &env);
    assert!(ok, "{said}");
    assert!(!said.contains(SECRET), "{said}");

    // The same config with a wrong secret: every request it signs is refused by the bucket.
    let bad_logs = dir.path().join("bad");
    std::fs::create_dir(&bad_logs).unwrap();
    let bad = serve(&config, &s3_env(&s3.endpoint, KEY, WRONG), &bad_logs).await;
    let (s, _, ready) = call(http.get(format!("{}/readyz", bad.url))).await;
    assert_eq!(s, 503, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!((&ready["ready"], &ready["store"], &ready["database"]), (&json!(false), &json!("failing"), &json!("ok")), "{ready}");
    let (s, _, body) = call(http.get(format!("{}/v1/traces/signed-1", bad.url)).bearer_auth(&erin)).await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("store_unavailable") && !body.contains("stored signed"), "{body}");
    let (s, _, body) = call(http.put(format!("{}/v1/traces/forged-1", bad.url)).bearer_auth(&writer).json(&doc)).await;
    assert_eq!(s, 503, "{body}");
    assert!(!run.join("forged-1.json").exists(), "a refused write left nothing in the bucket");
    // Neither gateway printed either secret.
    for out in [gw.output(), bad.output()] {
        assert!(!out.contains(SECRET) && !out.contains(WRONG), "{out}");
    }
}
