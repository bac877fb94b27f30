//! Every request is on the record: each route and each shape of failure — served, 401, unknown
//! route, wrong method, bad query, a path that does not decode, an oversized body — leaves
//! exactly one `request` record, found by the `x-request-id` the client got, with the status and
//! the digest of the bytes sent. Only `GET /healthz` and `GET /metrics` are exempt, and they
//! show nothing about traces or principals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::Gateway;
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn request_records(data: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data.join("audit/audit.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|r| r["kind"] == "request").collect()
}

/// What to send: a label, method, path, bearer token, body, and the status expected.
type Case<'a> = (&'static str, Method, &'a str, Option<&'a str>, Vec<u8>, u16);

struct Sent {
    what: &'static str,
    id: String,
    status: u16,
    body: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_shape_leaves_exactly_one_record() {
    let gw = Gateway::start_with(|t| t.replace("max_trace_bytes = 16777216", "max_trace_bytes = 1024")).await;
    let erin = gw.token("erin", &["eng"], &[]);
    let writer = gw.token("wes", &["agents"], &[("tenant", "acme")]);
    let sec = gw.token("sam", &["security"], &[]);
    let big = vec![b' '; 20 * 1024];
    let cases: Vec<Case<'_>> = vec![
        ("whoami", Method::GET, "/v1/whoami", Some(erin.as_str()), vec![], 200),
        ("whoami without a token", Method::GET, "/v1/whoami", None, vec![], 401),
        ("whoami with a bad token", Method::GET, "/v1/whoami", Some("not-a-token"), vec![], 401),
        ("read", Method::GET, "/v1/traces/demo-agent-1", Some(erin.as_str()), vec![], 200),
        ("read without a token", Method::GET, "/v1/traces/demo-agent-1", None, vec![], 401),
        ("search", Method::GET, "/v1/traces?agent=refund-agent", Some(erin.as_str()), vec![], 200),
        ("search with a bad query", Method::GET, "/v1/traces?agnt=refund-agent", Some(erin.as_str()), vec![], 400),
        ("audit trail refused", Method::GET, "/v1/audit", Some(erin.as_str()), vec![], 403),
        ("audit replay refused", Method::GET, "/v1/audit/some-request/replay", Some(erin.as_str()), vec![], 403),
        ("audit checkpoint refused", Method::GET, "/v1/audit/checkpoint", Some(erin.as_str()), vec![], 403),
        ("read with its withheld paths", Method::GET, "/v1/traces/demo-agent-1?explain=withheld", Some(erin.as_str()), vec![], 200),
        ("read with a bad explain", Method::GET, "/v1/traces/demo-agent-1?explain=everything", Some(erin.as_str()), vec![], 400),
        ("access requests", Method::GET, "/v1/access-requests", Some(sec.as_str()), vec![], 200),
        ("unknown route", Method::GET, "/v1/nothing-here", Some(erin.as_str()), vec![], 404),
        ("unknown route, no token", Method::GET, "/nope", None, vec![], 404),
        ("too deep", Method::GET, "/v1/traces/demo-agent-1/more", Some(erin.as_str()), vec![], 404),
        ("wrong method on a trace", Method::POST, "/v1/traces/demo-agent-1", Some(erin.as_str()), vec![], 405),
        ("wrong method on whoami", Method::DELETE, "/v1/whoami", Some(erin.as_str()), vec![], 405),
        ("wrong method on healthz", Method::POST, "/healthz", None, vec![], 405),
        ("path that does not decode", Method::GET, "/v1/traces/%FF%FE", Some(erin.as_str()), vec![], 400),
        ("decision path that does not decode", Method::POST, "/v1/access-requests/%C3%28/approve", Some(sec.as_str()), vec![], 400),
        ("oversized trace", Method::PUT, "/v1/traces/new-one", Some(writer.as_str()), big.clone(), 413),
        ("oversized decision", Method::POST, "/v1/access-requests/ar_nope/approve", Some(sec.as_str()), big, 413),
    ];
    let before = request_records(&gw.data_dir()).len();
    let mut sent = Vec::new();
    for (what, method, path, token, body, want) in cases {
        let mut req = gw.client.request(method, gw.url(path)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, want, "{what}");
        if status == 405 {
            assert!(r.headers().get("allow").is_some(), "{what}: a 405 says what is allowed");
        }
        let id = r.headers().get("x-request-id").unwrap_or_else(|| panic!("{what}: no x-request-id")).to_str().unwrap().to_owned();
        let body = r.bytes().await.unwrap().to_vec();
        if status >= 400 {
            // Every refusal is the gateway's one JSON error shape, with a stable code.
            let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e})"));
            assert!(v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{what}: {v}");
        }
        sent.push(Sent { what, id, status, body });
    }

    // The exempt routes: answered, not recorded, and naming nothing.
    for path in ["/healthz", "/metrics"] {
        let r = gw.client.get(gw.url(path)).bearer_auth(&erin).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(r.headers().get("x-request-id").is_none(), "{path} is not recorded, so it has no record id");
        let text = r.text().await.unwrap();
        for leak in ["erin", "demo-agent", "refund", "acme"] {
            assert!(!text.contains(leak), "{path} shows `{leak}`: {text}");
        }
    }

    let records = request_records(&gw.data_dir());
    assert_eq!(records.len() - before, sent.len(), "one record per recorded request, and none for the exempt routes");
    for s in &sent {
        let mine: Vec<&Value> = records.iter().filter(|r| r["request_id"] == s.id.as_str()).collect();
        assert_eq!(mine.len(), 1, "{}: exactly one record", s.what);
        let r = mine[0];
        assert_eq!(r["status"], s.status, "{}", s.what);
        assert_eq!(r["bytes_sent"], s.body.len(), "{}", s.what);
        assert_eq!(r["body_sha256"], hex::encode(Sha256::digest(&s.body)), "{}: digest of exactly the bytes sent", s.what);
        let want = if s.status < 400 { "allow" } else if s.status == 403 { "deny" } else { "error" };
        assert_eq!(r["decision"], want, "{}", s.what);
    }
    let by_what = |w: &str| {
        let s = sent.iter().find(|s| s.what == w).unwrap();
        records.iter().find(|r| r["request_id"] == s.id.as_str()).unwrap().clone()
    };
    // Who asked is on the record whenever the token was good, even where no handler ran.
    let who = by_what("whoami");
    assert_eq!((who["principal"]["subject"].as_str(), who["request"]["route"].as_str()), (Some("erin"), Some("/v1/whoami")));
    let unknown = by_what("unknown route");
    assert_eq!(unknown["principal"]["subject"], "erin");
    assert_eq!((unknown["request"]["route"].as_str(), unknown["deny_code"].as_str()), (Some("unmatched"), Some("no_route")));
    let wrong = by_what("wrong method on a trace");
    assert_eq!(wrong["request"]["method"], "POST");
    assert_eq!((wrong["request"]["route"].as_str(), wrong["deny_code"].as_str()), (Some("/v1/traces/{id}"), Some("method_not_allowed")));
    let undecodable = by_what("path that does not decode");
    assert_eq!((undecodable["principal"]["subject"].as_str(), undecodable["request"]["route"].as_str()), (Some("erin"), Some("/v1/traces/{id}")));
    assert!(by_what("whoami without a token").get("principal").is_none());
    assert!(by_what("unknown route, no token").get("principal").is_none());
    assert_eq!(by_what("oversized trace")["deny_code"], "too_large");
}

/// When the record cannot be written, a request no handler recorded fails closed too: 503 and
/// none of its own body.
#[test]
fn unrecorded_shapes_fail_closed_when_the_trail_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tracegate::commands::quickstart::lay_out(&data).unwrap();
    let (mut child, url) = common::spawn_serve(&data, "trap '' XFSZ; ulimit -f 96;");
    let client = reqwest::blocking::Client::new();
    // Fill the trail until it fails, with unknown routes alone.
    let mut failed = false;
    for _ in 0..600 {
        let r = client.get(format!("{url}/no/such/route")).send().unwrap();
        match r.status().as_u16() {
            404 => {}
            503 => {
                failed = true;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(failed, "the trail never filled");
    for (method, path) in [(Method::GET, "/v1/whoami"), (Method::POST, "/v1/traces/demo-agent-1"), (Method::GET, "/v1/traces/%FF")] {
        let r = client.request(method, format!("{url}{path}")).send().unwrap();
        assert_eq!(r.status().as_u16(), 503, "{path}");
        assert!(r.text().unwrap().contains("audit_unavailable"), "{path}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
