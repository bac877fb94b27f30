//! Just-in-time approval over real HTTP: the `sre` role of the example policy waits for
//! `security`, is served exactly what was approved, and nothing else; refusals, expiry,
//! revocation, one-time grants under concurrency, restarts and the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{code, Gateway};
use serde_json::{json, Value};
use tracegate_identity::dev::DevIssuer;
use tracegate_server::{AppState, GatewayConfig};

/// A policy file beside nothing else, for tests that change the `sre` approval rule; the
/// gateway's config is pointed at it.
struct CustomPolicy(tempfile::TempDir);

impl CustomPolicy {
    fn new(approval_extra: &str, replace: &[(&str, &str)]) -> CustomPolicy {
        let dir = tempfile::tempdir().unwrap();
        let mut text = tracegate::samples::POLICY.to_owned();
        for (from, to) in replace {
            assert!(text.contains(from), "{from}");
            text = text.replace(from, to);
        }
        text.push_str(approval_extra);
        std::fs::write(dir.path().join("policy.toml"), text).unwrap();
        CustomPolicy(dir)
    }

    fn config(&self, extra: &str) -> impl FnOnce(String) -> String {
        let path = self.0.path().join("policy.toml");
        let extra = extra.to_owned();
        move |t: String| {
            let t = t.replace("path = \"policy.toml\"", &format!("path = {:?}", path.display().to_string()));
            format!("{t}\n{extra}")
        }
    }
}

async fn post(gw: &Gateway, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = gw.client.post(gw.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// GET with the purpose header.
async fn get_for(gw: &Gateway, path: &str, token: &str, purpose: &str) -> (u16, Value) {
    let r = gw.client.get(gw.url(path)).bearer_auth(token).header("x-tracegate-purpose", purpose).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn request_id(body: &Value) -> String {
    body["access_request"]["id"].as_str().unwrap_or_else(|| panic!("no access request in {body}")).to_owned()
}

fn assert_no_trace_data(body: &Value) {
    let text = body.to_string();
    for leak in ["final_output", "steps", "reasoning", "resourceSpans", "refunded"] {
        assert!(!text.contains(leak), "a waiting answer must carry no trace data, found `{leak}`: {text}");
    }
}

/// Polls `f` until it returns `Some`, failing after `secs`.
async fn eventually<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sre_read_waits_for_security_then_exactly_that_request_is_served() {
    let gw = Gateway::start().await;
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);
    let erin = gw.token("erin", &["eng"], &[]);

    // Asking: 202, an id, where to follow it, and no trace data.
    let r = gw.client.get(gw.url("/v1/traces/demo-agent-1")).bearer_auth(&sid).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers().get("location").unwrap().to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = request_id(&body);
    assert!(id.starts_with("ar_"));
    assert_eq!(body["access_request"]["status"], "pending");
    assert_eq!(body["access_request"]["url"], format!("/v1/access-requests/{id}"));
    assert_eq!(location, format!("/v1/access-requests/{id}"));
    assert_eq!(body["access_request"]["approvers"], json!(["security"]));
    assert_eq!(body["rules"], json!(["roles.sre.actions", "roles.sre.approval"]));
    assert_no_trace_data(&body);

    // Asking again while pending joins the same request.
    let (s, again) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!((s, request_id(&again)), (202, id.clone()));

    // The requester and the approvers see it; others do not learn it exists.
    let (s, mine) = gw.get("/v1/access-requests", &sid).await;
    assert_eq!(s, 200);
    assert_eq!(mine["access_requests"].as_array().map(Vec::len), Some(1));
    let (s, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sam).await;
    assert_eq!(s, 200, "{shown}");
    assert_eq!((shown["status"].as_str(), shown["you_may_decide"].as_bool()), (Some("pending"), Some(true)));
    assert_eq!(shown["shape"]["traces"], json!(["demo-agent-1"]));
    let (s, hidden) = gw.get(&format!("/v1/access-requests/{id}"), &erin).await;
    assert_eq!((s, code(&hidden)), (404, "not_found"));
    let (_, none) = gw.get("/v1/access-requests", &erin).await;
    assert_eq!(none["access_requests"], json!([]));

    // Security approves, with a comment.
    let (s, approved) = post(&gw, &format!("/v1/access-requests/{id}/approve"), &sam, json!({ "comment": "INC-42, go" })).await;
    assert_eq!(s, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approved_by"], json!(["sam"]));
    assert_eq!(approved["decisions"][0]["comment"], "INC-42, go");

    // The same request is now served: every field, unmasked — what an engineer sees.
    let r = gw.client.get(gw.url("/v1/traces/demo-agent-1")).bearer_auth(&sid).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("x-tracegate-role").unwrap(), "sre");
    assert_eq!(r.headers().get("x-tracegate-access-request").unwrap().to_str().unwrap(), id);
    let served: Value = r.json().await.unwrap();
    let stored: Value = serde_json::from_slice(&std::fs::read(gw.data_dir().join("traces/demo-agent-1.json")).unwrap()).unwrap();
    assert_eq!(served, stored);
    assert!(served.to_string().contains("reasoning"));
    // Time-bound (not one-time): served again within the hour.
    let (s, _) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 200);
    // Or fetched by the request id: the same read, judged the same way.
    let (s, by_id) = gw.get(&format!("/v1/access-requests/{id}/result"), &sid).await;
    assert_eq!((s, &by_id), (200, &stored));
    let (s, _) = gw.get(&format!("/v1/access-requests/{id}/result"), &sam).await;
    assert_eq!(s, 404, "only the requester fetches the result");
    let (_, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sid).await;
    assert_eq!(shown["uses"], 3);

    // Anything else is not covered: another trace, a narrower slice, a stated purpose.
    for (path, purpose) in [
        ("/v1/traces/demo-agent-2", None),
        ("/v1/traces/demo-agent-1?fields=$.final_output", None),
        ("/v1/traces/demo-agent-1", Some("INC-43")),
    ] {
        let (s, body) = match purpose {
            None => gw.get(path, &sid).await,
            Some(p) => get_for(&gw, path, &sid, p).await,
        };
        assert_eq!(s, 202, "{path}: {body}");
        assert_ne!(request_id(&body), id);
        assert_no_trace_data(&body);
    }
    // Nor is the same request by someone else in the same role.
    let sue = gw.token("sue", &["sre"], &[]);
    let (s, _) = gw.get("/v1/traces/demo-agent-1", &sue).await;
    assert_eq!(s, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_approves_their_own_request_and_non_approvers_are_refused() {
    let gw = Gateway::start().await;
    // An SRE who is also in security (an "admin" of sorts) still cannot approve their own.
    let sid = gw.token("sid", &["sre", "security"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 202);
    let id = request_id(&body);
    for verb in ["approve", "deny"] {
        let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/{verb}"), &sid, json!({ "comment": "mine" })).await;
        assert_eq!((s, code(&err)), (403, "own_request"), "{verb}: {err}");
    }
    let (_, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sid).await;
    assert_eq!((shown["status"].as_str(), shown["you_may_decide"].as_bool()), (Some("pending"), Some(false)));

    // Not an approver: another SRE, an engineer — the request does not exist for them.
    for who in [gw.token("sue", &["sre"], &[]), gw.token("erin", &["eng"], &[])] {
        let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/approve"), &who, json!({})).await;
        assert_eq!((s, code(&err)), (404, "not_found"), "{err}");
    }
    // No such decision: 404, whoever asks.
    let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/force-approve"), &sid, json!({})).await;
    assert_eq!((s, code(&err)), (404, "no_route"), "{err}");
    // Unauthenticated: 401.
    let r = gw.client.post(gw.url(&format!("/v1/access-requests/{id}/approve"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Still pending: nothing was recorded.
    let (_, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sid).await;
    assert_eq!(shown["decisions"], json!([]));

    // Yet every attempt is on the audit trail, refusals included, with the reason.
    let ada = gw.token("ada", &["audit"], &[]);
    let (s, trail) = gw.get("/v1/audit?subject=sid&decision=deny", &ada).await;
    assert_eq!(s, 200, "{trail}");
    let refused: Vec<&serde_json::Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["approval_id"] == id.as_str() && r["deny_code"] == "own_request")
        .collect();
    assert_eq!(refused.len(), 2, "{trail}");
    assert!(refused.iter().any(|r| r["request"]["route"] == "/v1/access-requests/{id}/approve"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_ends_it_with_its_reason() {
    let gw = Gateway::start().await;
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);
    let olga = gw.token("olga", &["security"], &[]);
    let (_, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    let id = request_id(&body);
    let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/deny"), &sam, json!({})).await;
    assert_eq!((s, code(&err)), (400, "comment_required"));
    let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/deny"), &sam, json!({ "comment": "x", "extra": 1 })).await;
    assert_eq!((s, code(&err)), (400, "invalid_json"));
    let (s, denied) = post(&gw, &format!("/v1/access-requests/{id}/deny"), &sam, json!({ "comment": "use the masked view" })).await;
    assert_eq!(s, 200, "{denied}");
    assert_eq!(denied["status"], "denied");
    let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/approve"), &olga, json!({})).await;
    assert_eq!((s, code(&err)), (409, "request_not_pending"));
    // The requester sees why.
    let (_, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sid).await;
    assert_eq!(shown["decisions"][0]["comment"], "use the masked view");
    // Asking again is a new request, not a reopened one.
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 202);
    assert_ne!(request_id(&body), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_and_grants_expire() {
    let policy = CustomPolicy::new("", &[("pending_ttl = \"1h\"\ngrant_ttl = \"1h\"", "pending_ttl = \"1s\"\ngrant_ttl = \"2s\"")]);
    let gw = Gateway::start_with(policy.config("[approvals]\nsweep_interval = \"100ms\"\n")).await;
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);

    // Nobody decides: the request expires on its own, and can no longer be approved.
    let (_, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    let id = request_id(&body);
    let path = format!("/v1/access-requests/{id}");
    eventually("the request to expire", 10, async || {
        let (_, r) = gw.get(&path, &sid).await;
        (r["status"] == "expired").then_some(())
    })
    .await;
    let (s, err) = post(&gw, &format!("{path}/approve"), &sam, json!({})).await;
    assert_eq!((s, code(&err)), (409, "request_not_pending"), "{err}");

    // An approved grant lasts grant_ttl, then the same read waits again.
    let (_, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    let id2 = request_id(&body);
    assert_ne!(id2, id);
    let (s, _) = post(&gw, &format!("/v1/access-requests/{id2}/approve"), &sam, json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 200);
    eventually("the grant to expire", 10, async || {
        let (s, _) = gw.get("/v1/traces/demo-agent-1", &sid).await;
        (s == 202).then_some(())
    })
    .await;
    let (_, r) = gw.get(&format!("/v1/access-requests/{id2}"), &sid).await;
    assert_eq!(r["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_ends_a_grant_early() {
    let gw = Gateway::start().await;
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);
    let (_, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    let id = request_id(&body);
    post(&gw, &format!("/v1/access-requests/{id}/approve"), &sam, json!({})).await;
    let (s, _) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 200);
    let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/revoke"), &gw.token("erin", &["eng"], &[]), json!({ "comment": "x" })).await;
    assert_eq!((s, code(&err)), (404, "not_found"));
    let (s, revoked) = post(&gw, &format!("/v1/access-requests/{id}/revoke"), &sam, json!({ "comment": "incident closed" })).await;
    assert_eq!(s, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 202);
    assert_no_trace_data(&body);
    let (s, err) = post(&gw, &format!("/v1/access-requests/{id}/revoke"), &sam, json!({ "comment": "again" })).await;
    assert_eq!((s, code(&err)), (409, "grant_not_active"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_grant_serves_exactly_one_of_concurrent_reads() {
    let policy = CustomPolicy::new("", &[("grant_ttl = \"1h\"", "grant_ttl = \"1h\"\none_time = true")]);
    let gw = Arc::new(Gateway::start_with(policy.config("")).await);
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);
    let (_, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    let id = request_id(&body);
    let (s, _) = post(&gw, &format!("/v1/access-requests/{id}/approve"), &sam, json!({})).await;
    assert_eq!(s, 200);

    let reads: Vec<_> = (0..8)
        .map(|_| {
            let (gw, sid) = (gw.clone(), sid.clone());
            tokio::spawn(async move { gw.get("/v1/traces/demo-agent-1", &sid).await })
        })
        .collect();
    let mut served = 0;
    for r in reads {
        let (s, body) = r.await.unwrap();
        match s {
            200 => served += 1,
            // Lost the race after finding the grant, or came after it was used: nothing sent.
            409 | 202 => assert_no_trace_data(&body),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(served, 1);
    let (_, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sid).await;
    assert_eq!((shown["status"].as_str(), shown["uses"].as_u64()), (Some("used"), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purpose_is_required_when_the_rule_says_so_and_is_bound() {
    let policy = CustomPolicy::new("", &[("grant_ttl = \"1h\"", "grant_ttl = \"1h\"\nreason_required = true")]);
    let gw = Gateway::start_with(policy.config("")).await;
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);
    let (s, err) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!((s, code(&err)), (403, "purpose_required"), "{err}");
    let (s, body) = get_for(&gw, "/v1/traces/demo-agent-1", &sid, "INC-42 refund bug").await;
    assert_eq!(s, 202, "{body}");
    let id = request_id(&body);
    // The query parameter is the same purpose.
    let (s, again) = gw.get("/v1/traces/demo-agent-1?purpose=INC-42%20refund%20bug", &sid).await;
    assert_eq!((s, request_id(&again)), (202, id.clone()));
    let (_, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sam).await;
    assert_eq!(shown["shape"]["purpose"], "INC-42 refund bug");
    post(&gw, &format!("/v1/access-requests/{id}/approve"), &sam, json!({})).await;
    let (s, _) = get_for(&gw, "/v1/traces/demo-agent-1", &sid, "INC-42 refund bug").await;
    assert_eq!(s, 200);
    let (s, _) = get_for(&gw, "/v1/traces/demo-agent-1", &sid, "something else").await;
    assert_eq!(s, 202);
}

/// A gateway on an existing data directory (so it can be restarted on the same one).
struct Running {
    addr: std::net::SocketAddr,
    issuer: DevIssuer,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    state: Arc<AppState>,
}

async fn serve_dir(dir: &Path) -> Running {
    tracegate::commands::quickstart::lay_out(dir).unwrap();
    let cfg = GatewayConfig::load(&dir.join("tracegate.toml")).unwrap();
    let issuer = DevIssuer::load(cfg.identity.dev.as_ref().unwrap(), &cfg.base_dir).unwrap();
    let state = Arc::new(AppState::from_config(&cfg).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(tracegate_server::serve(state.clone(), listener, async {
        let _ = rx.await;
    }));
    Running { addr, issuer, stop, done, state }
}

impl Running {
    /// Stops like `tracegate serve` does: drain, then seal and release the audit trail.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.done.await.unwrap().unwrap();
        self.state.audit.shutdown().await.unwrap();
    }

    fn token(&self, sub: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        self.issuer.mint(sub, &groups, serde_json::Map::new(), Duration::from_secs(300)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let gw = serve_dir(dir.path()).await;
    let (sid, sam) = (gw.token("sid", &["sre"]), gw.token("sam", &["security"]));
    let url = |gw: &Running, p: &str| format!("http://{}{p}", gw.addr);
    let r = client.get(url(&gw, "/v1/traces/demo-agent-1")).bearer_auth(&sid).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = request_id(&r.json().await.unwrap());
    let r = client.post(url(&gw, &format!("/v1/access-requests/{id}/approve"))).bearer_auth(&sam).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A second request left pending.
    let r = client.get(url(&gw, "/v1/traces/demo-agent-2")).bearer_auth(&sid).send().await.unwrap();
    let pending = request_id(&r.json().await.unwrap());
    drop(client);
    gw.stop().await;

    let gw = serve_dir(dir.path()).await;
    let client = reqwest::Client::new();
    let sid = gw.token("sid", &["sre"]);
    let r = client.get(url(&gw, "/v1/traces/demo-agent-1")).bearer_auth(&sid).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the grant survives the restart");
    assert_eq!(r.headers().get("x-tracegate-access-request").unwrap().to_str().unwrap(), id);
    let r = client.get(url(&gw, "/v1/traces/demo-agent-2")).bearer_auth(&sid).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(request_id(&r.json().await.unwrap()), pending, "the pending request survives too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_decides_through_the_api() {
    use tracegate::commands::requests::{execute, Cmd, Conn};
    let gw = Gateway::start().await;
    let sid = gw.token("sid", &["sre"], &[]);
    let (_, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    let id = request_id(&body);
    let conn = |token: String| Conn { config: None, url: Some(format!("http://{}", gw.addr)), token, json: false };
    let sam = gw.token("sam", &["security"], &[]);

    let (code_, out) = execute(Cmd::List { status: Some("pending".into()), conn: conn(sam.clone()) }).await.unwrap();
    assert_eq!(code_, std::process::ExitCode::SUCCESS);
    assert!(out.contains(&id) && out.contains("pending") && out.contains("sid") && out.contains("demo-agent-1"), "{out}");
    let (code_, out) = execute(Cmd::Approve { id: id.clone(), comment: None, conn: conn(sid.clone()) }).await.unwrap();
    assert_eq!(code_, std::process::ExitCode::FAILURE);
    assert!(out.contains("own_request"), "{out}");
    let (code_, out) = execute(Cmd::Approve { id: id.clone(), comment: Some("ok".into()), conn: conn(sam.clone()) }).await.unwrap();
    assert_eq!(code_, std::process::ExitCode::SUCCESS, "{out}");
    assert!(out.contains("approved") && out.contains("approved_by=sam"), "{out}");
    let (code_, out) = execute(Cmd::Show { id: id.clone(), conn: conn(sid.clone()) }).await.unwrap();
    assert_eq!(code_, std::process::ExitCode::SUCCESS);
    assert!(out.contains("\"status\": \"approved\""), "{out}");
    let (code_, out) = execute(Cmd::Revoke { id: id.clone(), comment: "done".into(), conn: conn(sam) }).await.unwrap();
    assert_eq!(code_, std::process::ExitCode::SUCCESS, "{out}");
    assert!(out.contains("revoked"), "{out}");
    let (code_, _) = execute(Cmd::Show { id: "../etc".into(), conn: conn(sid) }).await.map_or((std::process::ExitCode::FAILURE, String::new()), |r| r);
    assert_eq!(code_, std::process::ExitCode::FAILURE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_and_the_served_read_names_grant_and_approvers() {
    let gw = Gateway::start().await;
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);
    let ada = gw.token("ada", &["audit"], &[]);
    let (_, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    let id = request_id(&body);
    post(&gw, &format!("/v1/access-requests/{id}/approve"), &sam, json!({ "comment": "INC-42" })).await;
    let (s, _) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 200);

    let (s, trail) = gw.get("/v1/audit?kind=approval", &ada).await;
    assert_eq!(s, 200, "{trail}");
    let records = trail["records"].as_array().unwrap();
    let mut changes: Vec<(&str, &str, &str)> = records
        .iter()
        .filter(|r| r["approval_id"] == id.as_str())
        .map(|r| (r["event"]["change"].as_str().unwrap(), r["decision"].as_str().unwrap(), r["principal"]["subject"].as_str().unwrap_or("")))
        .collect();
    changes.reverse(); // newest first → oldest first
    assert_eq!(changes, [("created", "pending", "sid"), ("approved", "allow", "sam"), ("used", "allow", "sid")]);
    let approved = records.iter().find(|r| r["event"]["change"] == "approved").unwrap();
    assert_eq!((approved["event"]["comment"].as_str(), approved["rules"][0].as_str()), (Some("INC-42"), Some("roles.sre.approval")));

    let (_, trail) = gw.get("/v1/audit?kind=request&subject=sid", &ada).await;
    let reads: Vec<&Value> = trail["records"].as_array().unwrap().iter().collect();
    let served = reads.iter().find(|r| r["status"] == 200).unwrap();
    assert_eq!(served["approval_id"], id.as_str());
    assert_eq!(served["event"]["approved_by"], json!(["sam"]));
    assert_eq!(served["role"], "sre");
    assert!(served["rules"].as_array().unwrap().iter().any(|r| r == "roles.sre.approval"));
    let waited = reads.iter().find(|r| r["status"] == 202).unwrap();
    assert_eq!((waited["decision"].as_str(), waited["approval_id"].as_str()), (Some("pending"), Some(id.as_str())));
    assert!(waited.get("body_sha256").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_posts_signed_notifications_and_counts_failures() {
    const SECRET: &str = "a-webhook-secret-of-at-least-32-bytes!";
    // A receiver on loopback: verifies each POST and fails the first with a 500.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, Value)>();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum_router(tx, hits.clone(), SECRET);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("webhook.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let extra = format!(
        "[approvals]\npublic_url = \"https://tracegate.example\"\n[approvals.webhook]\nurl = {hook:?}\nsecret_file = {:?}\nbackoff = \"20ms\"\n",
        secret_file.display().to_string()
    );
    let gw = Gateway::start_with(move |t| format!("{t}\n{extra}")).await;
    let sid = gw.token("sid", &["sre"], &[]);
    let (s, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(s, 202);
    assert_eq!(body["access_request"]["url"], format!("https://tracegate.example/v1/access-requests/{}", request_id(&body)));
    let mut recv = async || tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    let (ok1, first) = recv().await;
    let (ok2, second) = recv().await;
    assert!(ok1 && ok2, "signatures verify");
    assert_eq!(first, second, "the retry carries the same event");
    assert_eq!(second["type"], "access_request.created");
    assert_eq!(second["request"]["shape"]["requester"]["subject"], "sid");
    let m = eventually("the delivery to be counted", 10, async || {
        let m = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
        m.contains("tracegate_webhook_delivered_total 1").then_some(m)
    })
    .await;
    assert!(m.contains("tracegate_webhook_retried_total 1"), "{m}");
    assert!(m.contains("tracegate_webhook_failed_total 0"), "{m}");
}

fn axum_router(tx: tokio::sync::mpsc::UnboundedSender<(bool, Value)>, hits: Arc<std::sync::atomic::AtomicUsize>, secret: &'static str) -> axum::Router {
    use axum::http::{HeaderMap, StatusCode};
    use tracegate_approvals::notify::{verify, SIGNATURE_HEADER, TIMESTAMP_HEADER};
    axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, hits) = (tx.clone(), hits.clone());
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let ok = verify(secret.as_bytes(), h(TIMESTAMP_HEADER).parse().unwrap_or(0), &body, &h(SIGNATURE_HEADER));
                let _ = tx.send((ok, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                if hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    )
}

/// Audit first: with the audit log unwritable (the process may not grow files past 48 KiB, so
/// the trail fails once it reaches that), an approval is refused with 503 and does not happen —
/// the request is still pending after a restart, and its log holds no approval.
#[test]
fn an_approval_that_cannot_be_audited_does_not_happen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tracegate::commands::quickstart::lay_out(&data).unwrap();
    let (sid, sam, erin) = (common::cli_token(&data, "sid", "sre"), common::cli_token(&data, "sam", "security"), common::cli_token(&data, "erin", "eng"));
    let (mut child, url) = common::spawn_serve(&data, "trap '' XFSZ; ulimit -f 96;");
    let client = reqwest::blocking::Client::new();
    let r = client.get(format!("{url}/v1/traces/demo-agent-1")).bearer_auth(&sid).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = request_id(&r.json().unwrap());
    // Fill the trail until it fails.
    let mut failed = false;
    for _ in 0..400 {
        let r = client.get(format!("{url}/v1/traces/demo-agent-1")).bearer_auth(&erin).send().unwrap();
        if r.status().as_u16() == 503 {
            failed = true;
            break;
        }
    }
    assert!(failed, "the audit trail never failed");
    for verb in ["approve", "deny"] {
        let r = client.post(format!("{url}/v1/access-requests/{id}/{verb}")).bearer_auth(&sam).json(&json!({ "comment": "go" })).send().unwrap();
        assert_eq!(r.status().as_u16(), 503, "{verb}");
        assert!(r.text().unwrap().contains("audit_unavailable"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(data.join("approvals/access-requests.jsonl")).unwrap();
    let changes: Vec<String> = log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).map(|e| e["change"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(changes, ["created"], "no decision reached the approvals log");

    // Restarted with a writable trail: still pending, nobody has decided, and now it can be.
    let (mut child, url) = common::spawn_serve(&data, "");
    let shown: Value = client.get(format!("{url}/v1/access-requests/{id}")).bearer_auth(&sam).send().unwrap().json().unwrap();
    assert_eq!((shown["status"].as_str(), shown["decisions"].as_array().map(Vec::len)), (Some("pending"), Some(0)), "{shown}");
    let r = client.post(format!("{url}/v1/access-requests/{id}/approve")).bearer_auth(&sam).json(&json!({ "comment": "go" })).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
    // The trail shows the created and the (later) approved change, and no approval before it.
    let trail = std::fs::read_to_string(data.join("audit/audit.jsonl")).unwrap();
    let approvals: Vec<String> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "approval" && r["approval_id"] == id.as_str())
        .map(|r| r["event"]["change"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(approvals, ["created", "approved"]);
}

/// Requesters' text reaches approvers inert: the Slack message cannot page the channel, mention
/// anyone or disguise a link; the JSON API carries it exactly (escaped by JSON); the CLI prints
/// no control characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_purposes_are_shown_to_approvers_as_text() {
    const SECRET: &str = "a-webhook-secret-of-at-least-32-bytes!";
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, Value)>();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(1)); // no first failure
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum_router(tx, hits, SECRET);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("webhook.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let extra = format!("[approvals.webhook]\nurl = {hook:?}\nformat = \"slack\"\nsecret_file = {:?}\n", secret_file.display().to_string());
    let gw = Gateway::start_with(move |t| format!("{t}\n{extra}")).await;
    let sid = gw.token("sid", &["sre"], &[]);
    let sam = gw.token("sam", &["security"], &[]);

    let hostile = "INC-1 <!channel> <@U024BE7LH> <https://evil.example|approve here>\n\u{1b}[32mapproved by security\u{1b}[0m & \u{202e}gnp.exe";
    let q: String = hostile.bytes().map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }).collect();
    let (s, body) = gw.get(&format!("/v1/traces/demo-agent-1?purpose={q}"), &sid).await;
    assert_eq!(s, 202, "{body}");
    let id = request_id(&body);

    let (ok, msg) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    assert!(ok);
    let text = msg["text"].as_str().unwrap();
    for bad in ["<!channel>", "<@U024BE7LH>", "<https://evil.example", "\n", "\u{1b}", "\u{202e}"] {
        assert!(!text.contains(bad), "Slack text carries {bad:?}: {text:?}");
    }
    assert!(text.contains("&lt;!channel&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example|approve here&gt;"), "{text}");
    assert!(text.contains(" &amp; "), "{text}");

    // JSON: exactly the text, as a JSON string.
    let (s, shown) = gw.get(&format!("/v1/access-requests/{id}"), &sam).await;
    assert_eq!(s, 200);
    assert_eq!(shown["shape"]["purpose"], hostile);

    // The CLI: one line per request, no control or invisible characters.
    use tracegate::commands::requests::{execute, Cmd, Conn};
    let conn = Conn { config: None, url: Some(format!("http://{}", gw.addr)), token: sam, json: false };
    let (_, out) = execute(Cmd::List { status: None, conn: conn.clone() }).await.unwrap();
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert!(out.chars().all(|c| !c.is_control() && c != '\u{202e}'), "{out:?}");
    assert!(out.contains("\\u001b[32mapproved"), "{out}");
    let (_, out) = execute(Cmd::Show { id, conn: Conn { json: true, ..conn } }).await.unwrap();
    assert!(out.chars().all(|c| c == '\n' || (!c.is_control() && c != '\u{202e}')), "{out:?}");
    let back: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(back["shape"]["purpose"], hostile, "escaped, the JSON still says exactly the same");
}
