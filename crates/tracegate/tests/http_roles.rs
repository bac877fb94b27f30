//! Every role of the example policy over real HTTP: what each sees, what each is refused, why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{code, rules, Gateway};
use serde_json::json;

fn text(v: &serde_json::Value) -> String {
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_sees_outputs_of_its_tenant_only() {
    let gw = Gateway::start().await;
    let t = gw.token("sam", &["support"], &[("tenant", "acme")]);

    let (s, body) = gw.get("/v1/traces/demo-agent-1", &t).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["final_output"].as_str().is_some_and(|o| o.contains("refunded")));
    assert_eq!(body["metadata"]["tenant"], "acme");
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(4));
    let all = text(&body);
    for hidden in ["reasoning", "system_instructions", "tool_calls", "arguments", "S3cr3t-Pa55w0rd", "sk_live_"] {
        assert!(!all.contains(hidden), "support must not see `{hidden}`: {all}");
    }

    // OTLP: only output messages, with reasoning and tool-call parts removed inside the string.
    let (s, body) = gw.get("/v1/traces/demo-otlp-1", &t).await;
    assert_eq!(s, 200, "{body}");
    let all = text(&body);
    assert!(all.contains("gen_ai.output.messages"));
    assert!(all.contains("has shipped with UPS"));
    for hidden in ["gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.tool.call.arguments", "reasoning", "call_7Qx", "customer_email", "do not echo the card"] {
        assert!(!all.contains(hidden), "support must not see `{hidden}`: {all}");
    }
    // The projected attribute is still a JSON-encoded string, and valid.
    let attrs = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"];
    let encoded = attrs[0]["value"]["stringValue"].as_str().unwrap();
    let decoded: serde_json::Value = serde_json::from_str(encoded).unwrap();
    assert!(decoded.is_array());

    // A narrower slice is served exactly.
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fields=$.final_output", &t).await;
    assert_eq!(s, 200);
    assert_eq!(body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["final_output".to_owned()]));

    // Wider requests are blocked with the reason and the rule.
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fields=$..reasoning", &t).await;
    assert_eq!((s, code(&body)), (403, "field_denied"), "{body}");
    assert_eq!(rules(&body), ["roles.support.fields.deny[0]"]);
    assert_eq!(body["error"]["role"], "support");
    let (s, body) = gw.get("/v1/traces/demo-otlp-1?fields=$.nothing_here", &t).await;
    assert_eq!((s, code(&body)), (403, "field_outside_view"), "{body}");
    // Wider requests that reach into the view are served over it: a whole step comes back as
    // the view shows it, never with its reasoning.
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fields=$.final_output&fields=$.steps[1]", &t).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["final_output"].is_string() && body["steps"][0]["output"].is_string(), "{body}");
    assert!(!text(&body).contains("reasoning"), "{body}");
    let (s, body) = gw.get("/v1/traces/demo-otlp-1?fields=$..attributes", &t).await;
    assert_eq!(s, 200, "{body}");
    assert!(!text(&body).contains("gen_ai.system_instructions"), "{body}");

    // Another tenant's trace answers exactly like a trace that does not exist; searching is
    // refused.
    let (s, hidden) = gw.get("/v1/traces/demo-agent-2", &t).await;
    let (s2, missing) = gw.get("/v1/traces/no-such-trace", &t).await;
    assert_eq!((s, code(&hidden)), (404, "not_found"), "{hidden}");
    assert_eq!((s2, code(&missing)), (404, "not_found"));
    assert_eq!(hidden["error"].as_object().map(|o| o.len()), missing["error"].as_object().map(|o| o.len()));
    assert!(!text(&hidden).contains("globex"), "{hidden}");
    let (s, body) = gw.get("/v1/traces", &t).await;
    assert_eq!((s, code(&body)), (403, "action_not_permitted"), "{body}");

    // No tenant claim: nothing (fail closed).
    let t2 = gw.token("sam", &["support"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &t2).await;
    assert_eq!((s, code(&body)), (404, "not_found"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineer_reads_and_searches_everything() {
    let gw = Gateway::start().await;
    let t = gw.token("erin", &["eng"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-otlp-1", &t).await;
    assert_eq!(s, 200);
    let all = text(&body);
    assert!(all.contains("gen_ai.system_instructions") && all.contains("gen_ai.input.messages"));
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fields=$..reasoning", &t).await;
    assert_eq!(s, 200);
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(3), "three steps carry reasoning: {body}");

    let (s, body) = gw.get("/v1/traces?agent=refund-agent", &t).await;
    assert_eq!(s, 200, "{body}");
    let ids: Vec<&str> = body["traces"].as_array().unwrap().iter().filter_map(|m| m["trace_id"].as_str()).collect();
    assert_eq!(ids, ["demo-agent-1"]);
    let (s, body) = gw.get("/v1/traces?tenant=acme&limit=1", &t).await;
    assert_eq!(s, 200);
    assert_eq!(body["traces"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["more"], true);
    let (s, body) = gw.get("/v1/traces?since=2026-11-21T00:00:00Z", &t).await;
    assert_eq!(s, 200);
    assert_eq!(body["traces"][0]["trace_id"], "demo-agent-2");
    let (s, body) = gw.get("/v1/traces?limit=1000", &t).await;
    assert_eq!((s, code(&body)), (403, "count_over_limit"), "{body}");
    assert_eq!(rules(&body), ["roles.engineer.rows.max_count"]);

    // Bad input gets typed 400s and 404s, never a partial body.
    let (s, body) = gw.get("/v1/traces?agnet=x", &t).await;
    assert_eq!((s, code(&body)), (400, "unknown_parameter"));
    let (s, body) = gw.get("/v1/traces?limit=-1", &t).await;
    assert_eq!((s, code(&body)), (400, "bad_parameter"));
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fields=$.steps[", &t).await;
    assert_eq!((s, code(&body)), (400, "bad_field"));
    let (s, body) = gw.get("/v1/traces/demo-agent-1?fieldz=$", &t).await;
    assert_eq!((s, code(&body)), (400, "unknown_parameter"));
    let (s, body) = gw.get("/v1/traces/no-such-trace", &t).await;
    assert_eq!((s, code(&body)), (404, "not_found"));
    let (s, body) = gw.get("/v1/traces/..%2F..%2Fetc%2Fpasswd", &t).await;
    assert_eq!((s, code(&body)), (400, "bad_trace_id"), "{body}");
    let (s, body) = gw.get("/v1/traces/.hidden", &t).await;
    assert_eq!((s, code(&body)), (400, "bad_trace_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_writes_its_tenant_and_reads_nothing() {
    let gw = Gateway::start_with(|t| t.replace("max_trace_bytes = 16777216", "max_trace_bytes = 4096")).await;
    let w = gw.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let doc = json!({"metadata": {"tenant": "acme", "agent": "new-agent", "started_at": "2026-11-24T00:00:00Z"}, "final_output": "hi"});
    let (s, body) = gw.put("/v1/traces/new-1", &w, serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(s, 201, "{body}");
    assert!(body["version"].as_str().is_some_and(|v| v.starts_with("sha256:")));
    assert_eq!(body["role"], "writer");

    // Visible to an engineer right away, through the index.
    let e = gw.token("erin", &["eng"], &[]);
    let (s, body) = gw.get("/v1/traces?agent=new-agent", &e).await;
    assert_eq!(s, 200);
    assert_eq!(body["traces"][0]["trace_id"], "new-1");
    let (s, body) = gw.get("/v1/traces/new-1", &e).await;
    assert_eq!((s, &body), (200, &doc));

    // Refusals and bad bodies; nothing stored is replaced by a refused write.
    let other = json!({"metadata": {"tenant": "globex"}});
    let (s, body) = gw.put("/v1/traces/new-1", &w, serde_json::to_vec(&other).unwrap()).await;
    assert_eq!((s, code(&body)), (403, "outside_row_scope"), "{body}");
    let (s, body) = gw.put("/v1/traces/new-1", &w, b"{\"metadata\": ".to_vec()).await;
    assert_eq!((s, code(&body)), (400, "invalid_json"));
    let (s, body) = gw.put("/v1/traces/new-1", &w, b"[1,2]".to_vec()).await;
    assert_eq!((s, code(&body)), (400, "invalid_trace"));
    let big = format!("{{\"metadata\": {{\"tenant\": \"acme\"}}, \"x\": \"{}\"}}", "a".repeat(5000));
    let (s, body) = gw.put("/v1/traces/new-1", &w, big.into_bytes()).await;
    assert_eq!((s, code(&body)), (413, "too_large"));
    let (s, body) = gw.get("/v1/traces/new-1", &e).await;
    assert_eq!((s, &body), (200, &doc), "the stored trace is intact");

    // Writers read nothing; readers write nothing.
    let (s, body) = gw.get("/v1/traces/new-1", &w).await;
    assert_eq!((s, code(&body)), (403, "action_not_permitted"));
    let (s, body) = gw.put("/v1/traces/new-2", &e, b"{}".to_vec()).await;
    assert_eq!((s, code(&body)), (403, "action_not_permitted"));
    let (s, body) = gw.put("/v1/traces/a%2F..%2Fb", &w, b"{}".to_vec()).await;
    assert_eq!((s, code(&body)), (400, "bad_trace_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_sre_and_strangers_are_refused_with_reasons() {
    let gw = Gateway::start().await;
    let a = gw.token("ada", &["audit"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &a).await;
    assert_eq!((s, code(&body)), (403, "action_not_permitted"));
    assert_eq!(rules(&body), ["roles.auditor.actions"]);

    let sre = gw.token("sid", &["sre"], &[]);
    // SREs wait for security: 202 and an access request, no trace data (tests/approvals.rs).
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &sre).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["rules"], serde_json::json!(["roles.sre.actions", "roles.sre.approval"]));
    assert!(body["message"].as_str().unwrap().contains("security"));

    let m = gw.token("mallory", &["marketing"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &m).await;
    assert_eq!((s, code(&body)), (403, "no_role"));
    // A caller with no read role learns nothing about which traces exist.
    let (s, body) = gw.get("/v1/traces/no-such-trace", &m).await;
    assert_eq!((s, code(&body)), (403, "no_role"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_forged_requests_get_401() {
    let gw = Gateway::start().await;
    let r = gw.client.get(gw.url("/v1/traces/demo-agent-1")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(code(&body), "missing_token");
    for bad in ["garbage", "a.b.c", ""] {
        let (s, _) = gw.get("/v1/traces/demo-agent-1", bad).await;
        assert_eq!(s, 401, "{bad:?}");
    }
    let r = gw.client.get(gw.url("/v1/traces/demo-agent-1")).header("authorization", "Basic dXNlcjpwYXNz").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // A token accepted once (and so cached) does not make a tampered copy acceptable.
    let good = gw.token("sam", &["support"], &[("tenant", "acme")]);
    let (s, _) = gw.get("/v1/traces/demo-agent-1", &good).await;
    assert_eq!(s, 200);
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["groups"] = json!(["eng"]);
    let promoted = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &promoted).await;
    assert_eq!((s, code(&body)), (401, "bad_signature"), "{body}");
    let (s, _) = gw.get("/v1/traces/demo-agent-1", &good).await;
    assert_eq!(s, 200);

    // A token from another gateway's dev key, same issuer name: refused.
    let other = Gateway::start().await;
    let forged = other.token("erin", &["eng"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &forged).await;
    assert_eq!(s, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let gw = Gateway::start().await;
    let r = gw.client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["traces_indexed"], 3);
    assert!(body["policy_version"].as_str().unwrap().starts_with("sha256:"));

    let t = gw.token("sam", &["support"], &[("tenant", "acme")]);
    gw.get("/v1/traces/demo-agent-1", &t).await;
    gw.get("/v1/traces/demo-agent-2", &t).await;
    let m = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains(r#"tracegate_http_requests_total{route="/v1/traces/{id}",status="200",decision="allow"} 1"#), "{m}");
    assert!(m.contains(r#"tracegate_http_requests_total{route="/v1/traces/{id}",status="404",decision="deny"} 1"#), "{m}");
    assert!(m.contains("tracegate_http_request_duration_seconds_bucket"));
    let r = gw.client.get(gw.url("/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_fail_closed() {
    let gw = Gateway::start().await;
    let t = gw.token("erin", &["eng"], &[]);
    let traces = gw.data_dir().join("traces");
    // An object the store cannot read: 503, no body data.
    std::fs::remove_file(traces.join("demo-agent-1.json")).unwrap();
    std::os::unix::fs::symlink("demo-agent-1.json", traces.join("demo-agent-1.json")).unwrap();
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &t).await;
    assert_eq!((s, code(&body)), (503, "store_unavailable"), "{body}");
    assert!(body.get("steps").is_none() && !body.to_string().contains("refund"));
    // A stored object that is not JSON: an error, never the raw bytes.
    std::fs::write(traces.join("demo-agent-2.json"), b"{\"secret\": \"sk_live_oops\", ").unwrap();
    let (s, body) = gw.get("/v1/traces/demo-agent-2", &t).await;
    assert_eq!((s, code(&body)), (500, "trace_corrupt"), "{body}");
    assert!(!body.to_string().contains("sk_live_oops"));
    // Deleted behind the gateway's back: 404.
    std::fs::remove_file(traces.join("demo-otlp-1.json")).unwrap();
    let (s, body) = gw.get("/v1/traces/demo-otlp-1", &t).await;
    assert_eq!((s, code(&body)), (404, "not_found"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_written_through_the_gateway_never_reach_the_store() {
    let gw = Gateway::start().await;
    let w = gw.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let aws = "AKIAQ7ZTY4RXPL2MNB3V";
    let dsn = "postgres://app:Hunter2-Sup3rSecret@db.internal:5432/app";
    let doc = json!({
        "metadata": {"tenant": "acme", "agent": "writer-test"},
        "steps": [{"tool_calls": [{"arguments": {"dsn": dsn, "aws_key": aws, "note": "deploy"}}]}],
        "final_output": "ok"
    });
    let (s, body) = gw.put("/v1/traces/masked-on-write", &w, serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(s, 201, "{body}");
    assert!(body["masked"].as_u64().unwrap() >= 2, "{body}");
    let stored = std::fs::read_to_string(gw.data_dir().join("traces/masked-on-write.json")).unwrap();
    assert!(!stored.contains(aws) && !stored.contains("Hunter2-Sup3rSecret"), "{stored}");
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["steps"][0]["tool_calls"][0]["arguments"]["note"], "deploy", "the rest is intact");
    assert_eq!(stored["final_output"], "ok");

    // A trace with nothing to mask is stored byte for byte.
    let plain = b"{\"metadata\": {\"tenant\": \"acme\"},   \"final_output\": \"fine\"}".to_vec();
    let (s, body) = gw.put("/v1/traces/plain", &w, plain.clone()).await;
    assert_eq!((s, body["masked"].as_u64()), (201, Some(0)));
    assert_eq!(std::fs::read(gw.data_dir().join("traces/plain.json")).unwrap(), plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_pseudonymises_without_a_key_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
    let cfg_path = dir.path().join("tracegate.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("key_file = \"mask.key\"", "")).unwrap();
    let cfg = tracegate_server::GatewayConfig::load(&cfg_path).unwrap();
    let err = tracegate_server::AppState::from_config(&cfg).await.err().expect("must refuse to start");
    assert!(err.to_string().contains("role `engineer` pseudonymises"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_results_are_masked_like_reads() {
    let gw = Gateway::start().await;
    let w = gw.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let doc = json!({"metadata": {"tenant": "acme", "agent": "pii-agent", "user": "pat.doe@example.com"}, "final_output": "ok"});
    let (s, body) = gw.put("/v1/traces/pii-user", &w, serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(s, 201, "{body}");
    let e = gw.token("erin", &["eng"], &[]);
    let (s, body) = gw.get("/v1/traces?agent=pii-agent", &e).await;
    assert_eq!(s, 200, "{body}");
    assert!(!body.to_string().contains("pat.doe@example.com"), "{body}");
    assert!(body["traces"][0]["user"].as_str().unwrap().starts_with("EMAIL_"), "{body}");
    assert_eq!(body["traces"][0]["trace_id"], "pii-user");
    // Filters see what the caller sees: the raw email (a guess) matches nothing, its pseudonym
    // matches (so a guessed email cannot be confirmed and linked to its pseudonym).
    let pseudonym = body["traces"][0]["user"].as_str().unwrap().to_owned();
    let (s, body) = gw.get("/v1/traces?user=pat.doe%40example.com", &e).await;
    assert_eq!((s, body["traces"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let (s, body) = gw.get(&format!("/v1/traces?user={pseudonym}"), &e).await;
    assert_eq!((s, body["traces"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
}

/// A stored trace over `server.max_read_bytes` is refused from its size, before it is loaded:
/// `500 trace_too_large`, nothing of it in the body, and an audit record with no object version
/// (the bytes were never read, so there is no version to name). One under the limit is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_over_the_read_limit_is_refused_before_it_is_read() {
    let gw = Gateway::start_with(|t| t.replace("max_trace_bytes = 16777216", "max_trace_bytes = 16777216\nmax_read_bytes = 2048")).await;
    let e = gw.token("erin", &["eng"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &e).await;
    assert_eq!((s, code(&body)), (500, "trace_too_large"), "{body}");
    assert!(body.get("metadata").is_none() && !text(&body).contains("refund"), "{body}");
    let (s, body) = gw.get("/v1/traces/demo-agent-2", &e).await;
    assert_eq!(s, 200, "{body}");
    let trail = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    let refused: Vec<serde_json::Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["request"]["trace_ids"] == json!(["demo-agent-1"]))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 500, "{}", refused[0]);
    assert!(refused[0].get("object_version").is_none_or(serde_json::Value::is_null), "{}", refused[0]);
}

/// A write over a trace as large as the whole read budget: the route's look at the current
/// version and the store's own re-read under `put` each need the whole budget, so the first must
/// be let go before the second is asked for — or the write waits on itself forever (and so would
/// concurrent writes each holding a share while waiting for a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_a_trace_the_size_of_the_read_budget_does_not_wait_on_itself() {
    let gw = Gateway::start_with(|t| t.replace("max_trace_bytes = 16777216", "max_trace_bytes = 16777216\nread_budget_bytes = 2048")).await;
    let w = gw.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let doc = json!({"metadata": {"tenant": "acme", "agent": "refund-agent"}, "final_output": "rewritten"});
    // demo-agent-1 is 3 KB: its read takes all of a 2 KiB budget.
    let put = gw.client.put(gw.url("/v1/traces/demo-agent-1")).bearer_auth(&w).body(serde_json::to_vec(&doc).unwrap()).send();
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), put).await.expect("the write waited on itself").unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let e = gw.token("erin", &["eng"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &e).await;
    assert_eq!((s, &body["final_output"]), (200, &json!("rewritten")), "{body}");
}
