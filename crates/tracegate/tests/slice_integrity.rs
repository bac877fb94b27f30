//! Issue 8's exploits as regression tests over HTTP, on the quickstart: filters cannot read
//! around the view, and writers cannot destroy or reach another tenant's traces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{code, replay, Gateway};
use serde_json::json;

async fn get_raw(gw: &Gateway, path: &str, token: &str) -> (u16, String) {
    let r = gw.client.get(gw.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_over_hidden_reasoning_and_masked_cards_learn_nothing() {
    let gw = Gateway::start().await;
    let t = gw.token("sam", &["support"], &[("tenant", "acme")]);
    // `duplicate` is in demo-agent-1's (hidden) reasoning; `zebra` is not.
    let right = get_raw(&gw, "/v1/traces/demo-agent-1?fields=$.steps[?search(@.reasoning,'duplicate')].output", &t).await;
    let wrong = get_raw(&gw, "/v1/traces/demo-agent-1?fields=$.steps[?search(@.reasoning,'zebra')].output", &t).await;
    assert_eq!(right, wrong);
    assert_eq!(right.0, 200);
    // The card number is masked in what support sees: guessing its digits confirms nothing.
    let right = get_raw(&gw, "/v1/traces/demo-agent-1?fields=$.steps[?search(@.messages[0].content,'4111')].index", &t).await;
    let wrong = get_raw(&gw, "/v1/traces/demo-agent-1?fields=$.steps[?search(@.messages[0].content,'9999')].index", &t).await;
    assert_eq!(right, wrong);
    let right = get_raw(&gw, "/v1/traces/demo-agent-1?fields=$..[?search(@,'4111')]", &t).await;
    let wrong = get_raw(&gw, "/v1/traces/demo-agent-1?fields=$..[?search(@,'9999')]", &t).await;
    assert_eq!(right, wrong);
    // Over-limit queries are refused with 400 naming the limit, before anything is evaluated.
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fields=$..a..b..c", &t).await;
    assert_eq!((s, code(&body)), (400, "query_too_costly"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("max_descendants"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_cannot_overwrite_another_tenants_trace() {
    let gw = Gateway::start().await;
    let before = gw.token("erin", &["eng"], &[]);
    let (_, original) = gw.get("/v1/traces/demo-agent-1", &before).await;
    let globex = gw.token("intruder", &["agents"], &[("tenant", "globex")]);
    let forged = json!({"metadata": {"tenant": "globex"}, "final_output": "replaced"});
    let (s, body) = gw.put("/v1/traces/demo-agent-1", &globex, serde_json::to_vec(&forged).unwrap()).await;
    assert_eq!((s, code(&body)), (403, "outside_row_scope"), "{body}");
    assert!(!body.to_string().contains("acme"), "the refusal must not quote the other tenant: {body}");
    let (_, after) = gw.get("/v1/traces/demo-agent-1", &before).await;
    assert_eq!(original, after, "acme's trace is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_versioned_and_conditional_and_old_reads_still_replay() {
    let gw = Gateway::start().await;
    let w = gw.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let e = gw.token("erin", &["eng"], &[]);
    let v1 = json!({"metadata": {"tenant": "acme", "agent": "a"}, "final_output": "first"});
    let put = |cond: Option<(&'static str, String)>, body: serde_json::Value| {
        let mut r = gw.client.put(gw.url("/v1/traces/versioned")).bearer_auth(&w).body(serde_json::to_vec(&body).unwrap());
        if let Some((h, v)) = cond {
            r = r.header(h, v);
        }
        async move {
            let r = r.send().await.unwrap();
            let s = r.status().as_u16();
            let etag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
            (s, etag, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (s, etag1, _) = put(Some(("if-none-match", "*".into())), v1.clone()).await;
    assert_eq!(s, 201);
    let etag1 = etag1.unwrap();
    let (s, _, body) = put(Some(("if-none-match", "*".into())), v1.clone()).await;
    assert_eq!((s, code(&body)), (412, "precondition_failed"), "{body}");

    // A read of version 1, then an overwrite: the read still replays exactly.
    let r = gw.client.get(gw.url("/v1/traces/versioned")).bearer_auth(&e).send().await.unwrap();
    let read_id = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    let shown = r.text().await.unwrap();
    let stale = format!("\"sha256:{}\"", "0".repeat(64));
    let (s, _, body) = put(Some(("if-match", stale)), json!({"metadata": {"tenant": "acme"}, "final_output": "x"})).await;
    assert_eq!((s, code(&body)), (412, "precondition_failed"), "{body}");
    let (s, etag2, _) = put(Some(("if-match", etag1.clone())), json!({"metadata": {"tenant": "acme"}, "final_output": "second"})).await;
    assert_eq!(s, 201);
    assert_ne!(etag2.as_deref(), Some(etag1.as_str()));
    let (_, now) = gw.get("/v1/traces/versioned", &e).await;
    assert_eq!(now["final_output"], "second");
    let (ok, outcome, body) = replay(&gw.data_dir(), &read_id);
    assert!(ok, "{outcome}");
    assert_eq!(outcome["result"], "reproduced");
    assert_eq!(body, shown);
}
