//! Abuse bounds over HTTP: a principal's request rate, its rate of new access requests, and its
//! number of pending access requests are capped by `[limits]`; refusals are `429` with
//! `Retry-After`, on the audit trail, and touch nobody else's budget.
//!
//! The limits here replenish per minute or per hour, so a test never races the refill.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{code, Gateway};
use serde_json::Value;

async fn get_full(gw: &Gateway, path: &str, token: &str) -> (u16, Option<u64>, String, Value) {
    let r = gw.client.get(gw.url(path)).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, retry, id, r.json().await.unwrap_or(Value::Null))
}

fn record(gw: &Gateway, id: &str) -> Value {
    let text = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    let mut mine = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|r| r["kind"] == "request" && r["request_id"] == id);
    let r = mine.next().unwrap_or_else(|| panic!("no record for {id}"));
    assert!(mine.next().is_none());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_a_principals_budget_get_429_and_are_audited() {
    let gw = Gateway::start_with(|t| format!("{t}\n[limits]\nrequests_per_minute = 1\nrequest_burst = 3\n")).await;
    let erin = gw.token("erin", &["eng"], &[]);
    for _ in 0..3 {
        let (s, ..) = get_full(&gw, "/v1/traces/demo-agent-1", &erin).await;
        assert_eq!(s, 200);
    }
    let (s, retry, id, body) = get_full(&gw, "/v1/traces/demo-agent-1", &erin).await;
    assert_eq!((s, code(&body)), (429, "rate_limited"), "{body}");
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "Retry-After {retry:?}");
    assert!(!body.to_string().contains("refund"), "a refusal carries no trace data");
    // Every route spends from the same budget; a new token for the same person does too.
    let again = gw.token("erin", &["eng"], &[]);
    for path in ["/v1/whoami", "/v1/traces?agent=refund-agent", "/v1/access-requests"] {
        let (s, ..) = get_full(&gw, path, &again).await;
        assert_eq!(s, 429, "{path}");
    }
    // Someone else is not held back.
    let (s, ..) = get_full(&gw, "/v1/traces/demo-agent-1", &gw.token("eve", &["eng"], &[])).await;
    assert_eq!(s, 200);
    // On the record: who, and why.
    let r = record(&gw, &id);
    assert_eq!((r["status"].as_u64(), r["decision"].as_str(), r["deny_code"].as_str()), (Some(429), Some("deny"), Some("rate_limited")));
    assert_eq!(r["principal"]["subject"], "erin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_access_requests_are_rate_limited_but_joining_one_is_free() {
    let gw = Gateway::start_with(|t| format!("{t}\n[limits]\naccess_requests_per_hour = 1\naccess_request_burst = 2\n")).await;
    let sid = gw.token("sid", &["sre"], &[]);
    for path in ["/v1/traces/demo-agent-1", "/v1/traces/demo-agent-2", "/v1/traces/demo-agent-1"] {
        let (s, _, _, body) = get_full(&gw, path, &sid).await;
        assert_eq!(s, 202, "{path}: {body}");
    }
    let (s, retry, id, body) = get_full(&gw, "/v1/traces/demo-otlp-1", &sid).await;
    assert_eq!((s, code(&body)), (429, "rate_limited"), "{body}");
    assert!(retry.is_some_and(|r| (1..=3600).contains(&r)), "Retry-After {retry:?}");
    let r = record(&gw, &id);
    assert_eq!((r["status"].as_u64(), r["deny_code"].as_str()), (Some(429), Some("rate_limited")));
    // No access request was opened for it.
    let sam = gw.token("sam", &["security"], &[]);
    let (_, _, _, list) = get_full(&gw, "/v1/access-requests", &sam).await;
    assert_eq!(list["access_requests"].as_array().map(Vec::len), Some(2), "{list}");
    // Another requester has their own budget.
    let (s, ..) = get_full(&gw, "/v1/traces/demo-otlp-1", &gw.token("sue", &["sre"], &[])).await;
    assert_eq!(s, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_access_requests_per_requester_are_capped() {
    let gw = Gateway::start_with(|t| format!("{t}\n[limits]\nmax_pending_access_requests = 2\n")).await;
    let sid = gw.token("sid", &["sre"], &[]);
    let mut ids = Vec::new();
    for path in ["/v1/traces/demo-agent-1", "/v1/traces/demo-agent-2"] {
        let (s, _, _, body) = get_full(&gw, path, &sid).await;
        assert_eq!(s, 202, "{body}");
        ids.push(body["access_request"]["id"].as_str().unwrap().to_owned());
    }
    let (s, retry, id, body) = get_full(&gw, "/v1/traces/demo-otlp-1", &sid).await;
    assert_eq!((s, code(&body)), (429, "rate_limited"), "{body}");
    // The example policy's requests wait an hour: a slot frees when the oldest expires.
    assert!(retry.is_some_and(|r| (3000..=3600).contains(&r)), "Retry-After {retry:?}");
    assert_eq!(record(&gw, &id)["status"], 429);
    // Once one is decided, there is room again.
    let sam = gw.token("sam", &["security"], &[]);
    let r = gw.client.post(gw.url(&format!("/v1/access-requests/{}/deny", ids[0]))).bearer_auth(&sam).json(&serde_json::json!({ "comment": "no" })).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, ..) = get_full(&gw, "/v1/traces/demo-otlp-1", &sid).await;
    assert_eq!(s, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_zero_or_an_unknown_key_refuses_to_start() {
    for bad in ["[limits]\nrequest_burst = 0\n", "[limits]\nrequests_per_second = 5\n"] {
        let dir = tempfile::tempdir().unwrap();
        tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
        let path = dir.path().join("tracegate.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n{bad}")).unwrap();
        let started = match tracegate_server::GatewayConfig::load(&path) {
            Err(e) => Err(e.to_string()),
            Ok(cfg) => tracegate_server::AppState::from_config(&cfg).await.map(|_| ()).map_err(|e| e.to_string()),
        };
        let err = started.err().unwrap_or_else(|| panic!("{bad} started"));
        assert!(err.contains("request_burst") || err.contains("requests_per_second"), "{err}");
    }
}
