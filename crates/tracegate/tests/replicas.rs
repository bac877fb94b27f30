//! The scaled-out deployment as an operator runs it, with real parts only: two `tracegate serve`
//! processes over a moto S3 bucket and one PostgreSQL database, behind nginx, all started by
//! `scripts/start-replicas.sh`. Requests go through nginx and to each replica directly.
//!
//! One harness for the file (one test function in sections, in order), because the last
//! section kills a replica: a write through A is read through B at once; a grant asked through
//! A and approved through B is served through A; a one-time grant is served exactly once under
//! concurrent reads through both; search answers the same through either; and `kill -9` of A
//! under 64 clients through nginx loses no acknowledged request: every 2xx's `x-request-id` has
//! its audit record in PostgreSQL, the one chain verifies, and nginx serves on through B.
//!
//! Before the kill, the same peers are attacked as a hostile caller would across replicas: one
//! SAML response raced to both replicas through nginx and directly (exactly one sign-in wins);
//! an access-request budget spent through nginx and both replicas at once (the 2xx never exceed
//! it); a session signed out on one replica refused on the other at once, and cookies planted
//! before a sign-in never becoming the signed-in session; a grant used through both replicas,
//! then refused by both once it expired.
//!
//! Missing moto, nginx, PostgreSQL or the SAML IdP fails the test (the script never skips).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::saml::{self, Saml, SESSION};
use serde_json::{json, Value};
use tracegate_identity::dev::DevIssuer;
use tracegate_server::GatewayConfig;

/// A role reached by `group` whose reads all need one approval from `security`, with the given
/// `grant_ttl` and `one_time`, appended to the quickstart policy.
fn approval_role(group: &str, grant_ttl: &str, one_time: bool) -> String {
    format!(
        "\n[roles.{group}]\ngroups = [\"{group}\"]\nactions = [\"read\"]\n\n[roles.{group}.fields]\nallow = [\"$\"]\n\n\
         [roles.{group}.approval]\napprovers = [\"security\"]\napprovals = 1\npending_ttl = \"1h\"\ngrant_ttl = \"{grant_ttl}\"\n\
         one_time = {one_time}\n"
    )
}

/// New access requests one principal may open: one an hour sustained, this many at once, so
/// nothing refills while the test runs. The one-time grant's racing reads after the use may
/// each try to open a request and meet this budget (`429`, nothing sent).
const OPEN_BURST: usize = 4;

/// The public ACS URL both replicas stand behind (nginx's, in production a hostname): every
/// response names it as its destination, whichever replica it is posted to.
const ACS: &str = "https://tracegate.test/saml/acs";

/// Clients of the load section, as the issue asks.
const CLIENTS: usize = 64;

/// The running deployment: the script's process (which owns every peer) and what it wrote.
struct Deployment {
    script: Child,
    env: HashMap<String, String>,
    issuer: DevIssuer,
    saml: Saml,
    work: tempfile::TempDir,
    client: reqwest::Client,
    /// For SAML and browser sessions: redirects are looked at, not followed.
    browser: reqwest::Client,
}

impl Deployment {
    fn start() -> Deployment {
        let work = tempfile::tempdir().unwrap();
        let data = work.path().join("data");
        tracegate::commands::quickstart::lay_out(&data).unwrap();
        let policy = data.join("policy.toml");
        let text = std::fs::read_to_string(&policy).unwrap();
        // `oncall`: a grant that serves one read only; `brief`: one that expires within the test.
        let roles = format!("{}{}", approval_role("oncall", "1h", true), approval_role("brief", "3s", false));
        std::fs::write(&policy, format!("{text}{roles}")).unwrap();
        // 64 clients share a handful of principals: lift the per-principal request budget.
        let cfg = data.join("tracegate.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        // The access-request budget stays small, for the budget section (nothing refills in an hour).
        let saml = Saml::new(&work.path().join("saml"), ACS);
        let limits = format!(
            "\n[limits]\nrequests_per_minute = 100000000\nrequest_burst = 1000000\n\
             access_requests_per_hour = 1\naccess_request_burst = {OPEN_BURST}\nmax_pending_access_requests = 100\n"
        );
        let sections = format!("{}{}", saml.config("5m"), saml.browser_config("/v1/whoami"));
        std::fs::write(&cfg, format!("{text}{sections}{limits}")).unwrap();

        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/start-replicas.sh");
        let log = std::fs::File::create(work.path().join("script.log")).unwrap();
        let mut child = Command::new("bash")
            .arg(script)
            .args(["--bin", env!("CARGO_BIN_EXE_tracegate"), "--work"])
            .arg(work.path())
            .arg("--data")
            .arg(&data)
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("running scripts/start-replicas.sh");
        // The script bounds its own waits: either the env file appears or the script exits.
        let env_file = work.path().join("replicas.env");
        while !env_file.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                let said = std::fs::read_to_string(work.path().join("script.log")).unwrap_or_default();
                panic!("scripts/start-replicas.sh exited ({status}) before the deployment was up:\n{said}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let env: HashMap<String, String> = std::fs::read_to_string(&env_file)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let cfg = GatewayConfig::load(Path::new(&env["CONFIG"])).unwrap();
        let issuer = DevIssuer::load(cfg.identity.dev.as_ref().unwrap(), &cfg.base_dir).unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(CLIENTS).build().unwrap();
        let browser = reqwest::Client::builder().timeout(Duration::from_secs(60)).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Deployment { script: child, env, issuer, saml, work, client, browser }
    }

    fn url(&self, which: &str) -> &str {
        &self.env[which]
    }

    fn token(&self, sub: &str, groups: &[&str], claims: &[(&str, &str)]) -> String {
        common::mint(&self.issuer, sub, groups, claims, Duration::from_secs(3600))
    }

    /// `tracegate audit verify` on the shared config, with the replicas' environment.
    fn verify_chain(&self) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracegate"));
        cmd.args(["audit", "verify", "--config", &self.env["CONFIG"]]);
        for (k, v) in self.env.iter().filter(|(k, _)| k.starts_with("AWS_")) {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "audit verify failed: {said}");
        said
    }

    fn logs(&self) -> Vec<PathBuf> {
        let w = self.work.path();
        vec![w.join("replica-a.log"), w.join("replica-b.log"), w.join("migrate.log"), w.join("script.log"), w.join("nginx/error.log")]
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // A failing test says what the peers said before their directory goes.
        if std::thread::panicking() {
            for log in self.logs() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                eprintln!("--- {} (last lines)", log.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        // SIGTERM: the script stops nginx, the replicas and moto, and drops the database.
        let _ = Command::new("kill").arg(self.script.id().to_string()).status();
        let _ = self.script.wait();
    }
}

/// One HTTP exchange: status, `x-request-id`, body.
async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Option<String>, Value), reqwest::Error> {
    let r = req.send().await?;
    let status = r.status().as_u16();
    let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = r.bytes().await?;
    Ok((status, id, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

async fn get(d: &Deployment, base: &str, path: &str, token: &str) -> (u16, Value) {
    let (s, _, body) = send(d.client.get(format!("{}{path}", d.url(base))).bearer_auth(token)).await.unwrap();
    (s, body)
}

async fn post(d: &Deployment, base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let (s, _, body) = send(d.client.post(format!("{}{path}", d.url(base))).bearer_auth(token).json(&body)).await.unwrap();
    (s, body)
}

async fn put(d: &Deployment, base: &str, id: &str, token: &str, doc: &Value) -> (u16, Value) {
    let req = d.client.put(format!("{}/v1/traces/{id}", d.url(base))).bearer_auth(token).json(doc);
    let (s, _, body) = send(req).await.unwrap();
    (s, body)
}

fn trace(agent: &str, marker: &str) -> Value {
    json!({"metadata": {"tenant": "acme", "agent": agent, "started_at": "2026-11-24T00:00:00Z"}, "final_output": marker})
}

fn access_request_id(body: &Value) -> String {
    body["access_request"]["id"].as_str().unwrap_or_else(|| panic!("no access request in {body}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_behind_nginx_on_s3_and_postgres() {
    let d = tokio::task::spawn_blocking(Deployment::start).await.unwrap();
    assert!(d.env["STORE_URL"].starts_with("s3://"), "{:?}", d.env);

    write_through_a_read_through_b(&d).await;
    approve_through_b_serve_through_a(&d).await;
    one_time_grant_is_served_once_across_replicas(&d).await;
    search_answers_the_same_through_either(&d).await;
    d.saml.fetch_metadata(&d.browser, d.url("NGINX_URL")).await;
    one_saml_response_raced_to_every_replica_signs_in_once(&d).await;
    an_access_request_budget_is_one_across_replicas(&d).await;
    one_callers_openings_leave_the_pool_to_others(&d).await;
    racing_identical_openings_spend_one_opening(&d).await;
    sign_out_on_one_replica_ends_the_session_on_all(&d).await;
    cookies_planted_before_sign_in_never_become_the_session(&d).await;
    a_grant_serves_through_both_replicas_until_it_expires_on_both(&d).await;
    kill_a_replica_under_load(&d).await;

    // The store credential reaches the replicas through the environment only: it is in no log.
    let secret = &d.env["AWS_SECRET_ACCESS_KEY"];
    for log in d.logs() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains(secret.as_str()), "{} shows the bucket secret", log.display());
    }
    assert!(!std::fs::read_to_string(&d.env["CONFIG"]).unwrap().contains(secret.as_str()));
}

async fn write_through_a_read_through_b(d: &Deployment) {
    let writer = d.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let erin = d.token("erin", &["eng"], &[]);
    let (s, body) = put(d, "A_URL", "rep-1", &writer, &trace("replica-agent", "written-through-a")).await;
    assert_eq!(s, 201, "{body}");
    // B never saw the write: the object is in the bucket, the index row in PostgreSQL.
    let (s, body) = get(d, "B_URL", "/v1/traces/rep-1", &erin).await;
    assert_eq!((s, body["final_output"].as_str()), (200, Some("written-through-a")), "{body}");
    // Through nginx, round robin: both replicas answer the same.
    for _ in 0..4 {
        let (s, body) = get(d, "NGINX_URL", "/v1/traces/rep-1", &erin).await;
        assert_eq!((s, body["final_output"].as_str()), (200, Some("written-through-a")), "{body}");
    }
    // A second writer through B that did not see A's version is refused, not silently merged.
    let stale = d
        .client
        .put(format!("{}/v1/traces/rep-1", d.url("B_URL")))
        .bearer_auth(&writer)
        .header("if-match", format!("\"sha256:{}\"", "0".repeat(64)))
        .json(&trace("replica-agent", "stale"));
    let (s, _, body) = send(stale).await.unwrap();
    assert_eq!(s, 412, "{body}");
}

async fn approve_through_b_serve_through_a(d: &Deployment) {
    let sid = d.token("sid", &["sre"], &[]);
    let sam = d.token("sam", &["security"], &[]);
    let (s, asked) = get(d, "A_URL", "/v1/traces/rep-1", &sid).await;
    assert_eq!(s, 202, "{asked}");
    let id = access_request_id(&asked);
    let (s, approved) = post(d, "B_URL", &format!("/v1/access-requests/{id}/approve"), &sam, json!({"comment": "ok"})).await;
    assert_eq!((s, approved["status"].as_str()), (200, Some("approved")), "{approved}");
    let (s, served) = get(d, "A_URL", "/v1/traces/rep-1", &sid).await;
    assert_eq!((s, served["final_output"].as_str()), (200, Some("written-through-a")), "{served}");
    // Not one-time: the grant holds through the load balancer, whichever replica answers.
    for _ in 0..2 {
        let (s, served) = get(d, "NGINX_URL", "/v1/traces/rep-1", &sid).await;
        assert_eq!(s, 200, "{served}");
    }
}

async fn one_time_grant_is_served_once_across_replicas(d: &Deployment) {
    let olga = d.token("olga", &["oncall"], &[]);
    let sam = d.token("sam", &["security"], &[]);
    let (s, asked) = get(d, "NGINX_URL", "/v1/traces/rep-1", &olga).await;
    assert_eq!(s, 202, "{asked}");
    let id = access_request_id(&asked);
    let (s, approved) = post(d, "A_URL", &format!("/v1/access-requests/{id}/approve"), &sam, json!({})).await;
    assert_eq!((s, approved["status"].as_str()), (200, Some("approved")), "{approved}");

    // 16 reads at once, alternating between the replicas: exactly one gets the trace.
    let reads: Vec<_> = (0..16)
        .map(|n| {
            let req = d.client.get(format!("{}/v1/traces/rep-1", d.url(if n % 2 == 0 { "A_URL" } else { "B_URL" }))).bearer_auth(&olga);
            tokio::spawn(send(req))
        })
        .collect();
    let mut served = 0;
    for r in reads {
        let (s, _, body) = r.await.unwrap().unwrap();
        match s {
            200 => served += 1,
            // Lost the race, or came after the use (asking again, or out of access-request
            // budget for that): nothing of the trace is sent.
            409 | 202 | 429 => assert!(!body.to_string().contains("written-through-a"), "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(served, 1, "a one-time grant must serve exactly one read across replicas");
    let (_, shown) = get(d, "B_URL", &format!("/v1/access-requests/{id}"), &olga).await;
    assert_eq!((shown["status"].as_str(), shown["uses"].as_u64()), (Some("used"), Some(1)), "{shown}");
}

async fn search_answers_the_same_through_either(d: &Deployment) {
    let writer = d.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let (s, body) = put(d, "B_URL", "rep-2", &writer, &trace("replica-agent", "written-through-b")).await;
    assert_eq!(s, 201, "{body}");
    let erin = d.token("erin", &["eng"], &[]);
    let mut answers = Vec::new();
    for base in ["A_URL", "B_URL", "NGINX_URL", "NGINX_URL"] {
        let (s, found) = get(d, base, "/v1/traces?agent=replica-agent", &erin).await;
        assert_eq!(s, 200, "{found}");
        answers.push(found["traces"].clone());
    }
    let ids: BTreeSet<String> = answers[0].as_array().unwrap().iter().filter_map(|t| t["trace_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(ids, BTreeSet::from(["rep-1".to_owned(), "rep-2".to_owned()]), "{}", answers[0]);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
}

/// Where the attack sections send each of their concurrent requests: round robin through nginx
/// and straight to either replica.
const EVERY_WAY: [&str; 3] = ["NGINX_URL", "A_URL", "B_URL"];

/// A browser request carrying `cookie`: status and body.
async fn with_cookie(req: reqwest::RequestBuilder, cookie: &str) -> (u16, Value) {
    let (s, _, body) = send(req.header("cookie", cookie)).await.unwrap();
    (s, body)
}

async fn whoami_with(d: &Deployment, base: &str, cookie: &str) -> (u16, Value) {
    with_cookie(d.browser.get(format!("{}/v1/whoami", d.url(base))), cookie).await
}

/// A SAML browser sign-in started at `start` and finished at `finish` (with the binding cookie
/// and `extra` cookies): the ACS's response.
async fn browser_sign_in(d: &Deployment, start: &str, finish: &str, subject: &str, extra: &str) -> reqwest::Response {
    let login = d.saml.login(&d.browser, d.url(start), true).await;
    let response = d.saml.answer(&login.saml_request, subject, &["eng"]);
    let cookie = format!("{}{extra}", login.binding.expect("a browser sign-in sets its binding cookie"));
    saml::acs(&d.browser, d.url(finish), &response, Some(&cookie)).await
}

/// (a) One signed SAML response posted nine times at once, three through nginx and three to each
/// replica directly: exactly one sign-in wins; every other answer is `401 saml_replayed` with no
/// token, because the assertion id is spent in PostgreSQL before anything else is decided. The
/// winner's token then reads through both replicas, and the trail has one successful sign-in.
async fn one_saml_response_raced_to_every_replica_signs_in_once(d: &Deployment) {
    let (response, _) = d.saml.sign_in(&d.browser, d.url("NGINX_URL"), false, "raced@example.com", &["eng"]).await;
    let posts: Vec<_> = (0..9)
        .map(|n| {
            let base = EVERY_WAY[n % 3];
            let (http, url, response) = (d.browser.clone(), d.url(base).to_owned(), response.clone());
            tokio::spawn(async move {
                let r = saml::acs(&http, &url, &response, None).await;
                let status = r.status().as_u16();
                (base, status, r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for p in posts {
        let (base, status, body) = p.await.unwrap();
        match status {
            200 => tokens.push(body["access_token"].as_str().expect("a sign-in's token").to_owned()),
            401 => {
                assert_eq!(common::code(&body), "saml_replayed", "{base}: {body}");
                assert!(!body.to_string().contains("access_token"), "{base}: {body}");
            }
            other => panic!("{base}: {other} {body}"),
        }
    }
    assert_eq!(tokens.len(), 1, "one SAML response must sign in exactly once across replicas");
    for base in ["A_URL", "B_URL"] {
        let (s, who) = get(d, base, "/v1/whoami", &tokens[0]).await;
        assert_eq!((s, who["principal"]["subject"].as_str()), (200, Some("raced@example.com")), "{base}: {who}");
    }
    let auditor = d.token("ada", &["audit"], &[]);
    let (s, trail) = get(d, "B_URL", "/v1/audit?limit=1000", &auditor).await;
    assert_eq!(s, 200, "{trail}");
    let acs: Vec<u64> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["request"]["route"] == "/saml/acs")
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(acs.iter().filter(|&&s| s == 200).count(), 1, "{acs:?}");
    assert_eq!(acs.iter().filter(|&&s| s == 401).count(), 8, "every refusal is recorded: {acs:?}");
}

/// (b) One principal's access-request budget (`OPEN_BURST` at once, one an hour after that), spent
/// by three times as many reads that each need a new access request (each its own purpose), all
/// at once through nginx and both replicas directly. The budget is one GCRA cell in PostgreSQL,
/// so the 2xx (`202`, a request opened) over every replica never exceed it: exactly `OPEN_BURST`
/// are opened, every other read is `429 rate_limited` with `Retry-After` and opened nothing.
async fn an_access_request_budget_is_one_across_replicas(d: &Deployment) {
    let rita = d.token("rita", &["sre"], &[]);
    let asks = open_at_once(d, &rita, "budget", 3 * OPEN_BURST);
    let (mut opened, mut refused) = (0, 0);
    for a in asks {
        let (base, status, retry, body) = a.await.unwrap();
        match status {
            202 => opened += 1,
            429 => {
                assert!(retry && common::code(&body) == "rate_limited", "{base}: {body}");
                refused += 1;
            }
            other => panic!("{base}: {other} {body}"),
        }
    }
    assert_eq!((opened, refused), (OPEN_BURST, 2 * OPEN_BURST), "the budget is spent once over every replica");
    // Spent on every replica: one more new request is refused whichever way it comes.
    for base in EVERY_WAY {
        let (s, body) = get(d, base, "/v1/traces/rep-1?purpose=budget-after", &rita).await;
        assert_eq!((s, common::code(&body)), (429, "rate_limited"), "{base}: {body}");
    }
    // What was opened is exactly what the 202s said: nothing more reached an approver.
    let pool = tracegate_state::sqlx::PgPool::connect(&d.env["STATE_URL"]).await.unwrap();
    let n: i64 = tracegate_state::sqlx::query_scalar("SELECT count(*) FROM access_requests WHERE requester_subject = 'rita'")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(n, OPEN_BURST as i64);
}

/// Openings by one principal far beyond a replica's pool (60, each its own purpose, through
/// nginx and both replicas at once) while another principal reads through the same gateways.
/// Each replica queues one requester's openings in memory (one at a time, a bounded queue,
/// `429` past it) before taking a pool connection, so the other principal's reads are all
/// served, the opener only ever sees `202` or `429 rate_limited` with `Retry-After` (never a
/// `503`), and no more requests exist than the 202s said, within the burst.
async fn one_callers_openings_leave_the_pool_to_others(d: &Deployment) {
    const OPENINGS: usize = 60;
    let flo = d.token("flo", &["sre"], &[]);
    let erin = d.token("erin", &["eng"], &[]);
    let asks = open_at_once(d, &flo, "flood", OPENINGS);
    let reads: Vec<_> = (0..OPENINGS / 2)
        .map(|n| {
            let base = EVERY_WAY[n % 3];
            let req = d.client.get(format!("{}/v1/traces/rep-1", d.url(base))).bearer_auth(&erin);
            tokio::spawn(async move { (base, send(req).await.unwrap()) })
        })
        .collect();
    let mut opened = 0;
    for a in asks {
        let (base, status, retry, body) = a.await.unwrap();
        match status {
            202 => opened += 1,
            429 => assert!(retry && common::code(&body) == "rate_limited", "{base}: {body}"),
            other => panic!("one caller's openings must not fail the gateway: {base}: {other} {body}"),
        }
    }
    for r in reads {
        let (base, (s, _, body)) = r.await.unwrap();
        assert_eq!((s, body["final_output"].as_str()), (200, Some("written-through-a")), "{base}: another principal's read failed: {body}");
    }
    assert!((1..=OPEN_BURST).contains(&opened), "{opened} opened");
    assert_eq!(requests_of(d, "flo").await, opened as i64, "exactly what the 202s said was opened");
}

/// Racing reads of the *same* new request (one purpose) join one access request, and spend one
/// opening between them: the rest of the burst still opens distinct requests, then no more.
async fn racing_identical_openings_spend_one_opening(d: &Deployment) {
    let ida = d.token("ida", &["sre"], &[]);
    let asks: Vec<_> = (0..9)
        .map(|n| {
            let req = d.client.get(format!("{}/v1/traces/rep-1?purpose=same", d.url(EVERY_WAY[n % 3]))).bearer_auth(&ida);
            tokio::spawn(async move { send(req).await.unwrap() })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for a in asks {
        let (s, _, body) = a.await.unwrap();
        assert_eq!(s, 202, "{body}");
        ids.insert(access_request_id(&body));
    }
    assert_eq!(ids.len(), 1, "identical reads join one request: {ids:?}");
    for n in 1..OPEN_BURST {
        let (s, body) = get(d, EVERY_WAY[n % 3], &format!("/v1/traces/rep-1?purpose=other-{n}"), &ida).await;
        assert_eq!(s, 202, "opening {n} of the burst after the joined race: {body}");
    }
    let (s, body) = get(d, "NGINX_URL", "/v1/traces/rep-1?purpose=one-too-many", &ida).await;
    assert_eq!((s, common::code(&body)), (429, "rate_limited"), "{body}");
    assert_eq!(requests_of(d, "ida").await, OPEN_BURST as i64);
}

/// `count` reads at once that each need a new access request (purpose `{prefix}-{n}`), spread
/// over nginx and both replicas: each answers (way in, status, has `Retry-After`, body).
fn open_at_once(d: &Deployment, token: &str, prefix: &str, count: usize) -> Vec<tokio::task::JoinHandle<(&'static str, u16, bool, Value)>> {
    (0..count)
        .map(|n| {
            let base = EVERY_WAY[n % 3];
            let req = d.client.get(format!("{}/v1/traces/rep-1?purpose={prefix}-{n}", d.url(base))).bearer_auth(token);
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                let (status, retry) = (r.status().as_u16(), r.headers().contains_key("retry-after"));
                (base, status, retry, r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect()
}

async fn requests_of(d: &Deployment, subject: &str) -> i64 {
    let pool = tracegate_state::sqlx::PgPool::connect(&d.env["STATE_URL"]).await.unwrap();
    let n: i64 = tracegate_state::sqlx::query_scalar("SELECT count(*) FROM access_requests WHERE requester_subject = $1")
        .bind(subject)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// (c) A session started through nginx works on every replica; signed out through A, it is
/// refused at once by B, by nginx's picks, and by A — for reads, and for a second sign-out (the
/// revoked cookie replayed for a state change).
async fn sign_out_on_one_replica_ends_the_session_on_all(d: &Deployment) {
    let r = browser_sign_in(d, "NGINX_URL", "NGINX_URL", "sid@example.com", "").await;
    assert_eq!(r.status(), 303);
    let (cookie, _) = saml::session_cookie(r.headers());
    let mut csrf = String::new();
    for base in ["A_URL", "B_URL", "NGINX_URL", "NGINX_URL"] {
        let (s, who) = whoami_with(d, base, &cookie).await;
        assert_eq!((s, who["principal"]["subject"].as_str()), (200, Some("sid@example.com")), "{base}: {who}");
        csrf = who["csrf_token"].as_str().unwrap().to_owned();
    }
    let logout = |base: &str| d.browser.post(format!("{}/auth/logout", d.url(base))).header("x-csrf-token", &csrf);
    let (s, body) = with_cookie(logout("A_URL"), &cookie).await;
    assert_eq!(s, 200, "{body}");
    for base in ["B_URL", "NGINX_URL", "NGINX_URL", "A_URL"] {
        let (s, body) = whoami_with(d, base, &cookie).await;
        assert_eq!((s, common::code(&body)), (401, "session_invalid"), "{base}: {body}");
        let read = d.browser.get(format!("{}/v1/traces/rep-1", d.url(base))).header("sec-fetch-site", "same-origin");
        let (s, body) = with_cookie(read, &cookie).await;
        assert_eq!(s, 401, "{base}: {body}");
    }
    let (s, body) = with_cookie(logout("B_URL"), &cookie).await;
    assert_eq!((s, common::code(&body)), (401, "session_invalid"), "{body}");
}

/// (c) Session fixation across replicas: no cookie that existed before a sign-in becomes the
/// signed-in person's session after it. The binding cookie `/saml/login` set is never a session;
/// a made-up session id and an attacker's own live session, planted in the victim's browser
/// before the victim signs in (started on A, finished on B), are left as they were — the victim
/// gets a fresh id, the made-up one stays refused and the attacker's stays the attacker's, on
/// every replica.
async fn cookies_planted_before_sign_in_never_become_the_session(d: &Deployment) {
    let login = d.saml.login(&d.browser, d.url("A_URL"), true).await;
    let binding = login.binding.clone().expect("a browser sign-in sets its binding cookie");
    let (_, minted) = binding.split_once('=').unwrap();
    for base in EVERY_WAY {
        let (s, body) = whoami_with(d, base, &format!("{SESSION}={minted}")).await;
        assert_eq!(s, 401, "the SAML binding cookie is no session ({base}): {body}");
    }

    let r = browser_sign_in(d, "B_URL", "B_URL", "mallory@example.com", "").await;
    assert_eq!(r.status(), 303);
    let (mallory, _) = saml::session_cookie(r.headers());
    let made_up = format!("{SESSION}=tgs_{}", "f1xat10n".repeat(5));
    for planted in [&mallory, &made_up] {
        let r = browser_sign_in(d, "A_URL", "B_URL", "vic@example.com", &format!("; {planted}")).await;
        assert_eq!(r.status(), 303, "a planted cookie does not stop the sign-in");
        let (fresh, _) = saml::session_cookie(r.headers());
        assert_ne!(&fresh, planted, "the sign-in must mint a new session id");
        for base in EVERY_WAY {
            let (s, who) = whoami_with(d, base, &fresh).await;
            assert_eq!((s, who["principal"]["subject"].as_str()), (200, Some("vic@example.com")), "{base}: {who}");
            let (s, who) = whoami_with(d, base, planted).await;
            let subject = who["principal"]["subject"].as_str();
            assert_ne!(subject, Some("vic@example.com"), "a planted cookie became the victim's session ({base}): {who}");
            if planted == &mallory {
                assert_eq!((s, subject), (200, Some("mallory@example.com")), "{base}: {who}");
            } else {
                assert_eq!((s, common::code(&who)), (401, "session_invalid"), "{base}: {who}");
            }
        }
    }
}

/// (d) A grant (not one-time, `grant_ttl = 3s`) approved through B serves through A, B and nginx;
/// once it has expired — waited for through A's own view of the request, not raced — both
/// replicas refuse it: a read asks for approval again (`202`, a new request, nothing of the trace).
async fn a_grant_serves_through_both_replicas_until_it_expires_on_both(d: &Deployment) {
    let bea = d.token("bea", &["brief"], &[]);
    let sam = d.token("sam", &["security"], &[]);
    let (s, asked) = get(d, "NGINX_URL", "/v1/traces/rep-1", &bea).await;
    assert_eq!(s, 202, "{asked}");
    let id = access_request_id(&asked);
    let (s, approved) = post(d, "B_URL", &format!("/v1/access-requests/{id}/approve"), &sam, json!({})).await;
    assert_eq!((s, approved["status"].as_str()), (200, Some("approved")), "{approved}");
    for base in ["A_URL", "B_URL", "NGINX_URL", "NGINX_URL"] {
        let (s, served) = get(d, base, "/v1/traces/rep-1", &bea).await;
        assert_eq!((s, served["final_output"].as_str()), (200, Some("written-through-a")), "{base}: {served}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, shown) = get(d, "A_URL", &format!("/v1/access-requests/{id}"), &bea).await;
        if shown["status"] == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the grant never expired: {shown}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut reopened = BTreeSet::new();
    for base in ["A_URL", "B_URL", "NGINX_URL"] {
        let (s, body) = get(d, base, "/v1/traces/rep-1", &bea).await;
        assert_eq!(s, 202, "an expired grant serves nothing ({base}): {body}");
        assert!(!body.to_string().contains("written-through-a"), "{base}: {body}");
        reopened.insert(access_request_id(&body));
    }
    assert_eq!(reopened.len(), 1, "every replica joins the one new request: {reopened:?}");
    assert!(!reopened.contains(&id), "the expired grant's request is not reopened");
}

/// What the load clients saw: every acknowledged (2xx) request id, and failures by phase.
#[derive(Default)]
struct Seen {
    acked: Vec<String>,
    failed_before_kill: usize,
    failed_after_kill: usize,
    /// The first few failures, to say what went wrong. In the kill window these are `502`s and
    /// `409 write_conflict`: nginx passes a `PUT` that A took but never answered to B, and A's
    /// store write, already sent, lands first — the conditional write refuses the second.
    samples: Vec<String>,
}

async fn kill_a_replica_under_load(d: &Deployment) {
    let writer = d.token("load-writer", &["agents"], &[("tenant", "acme")]);
    let erin = d.token("erin", &["eng"], &[]);
    let lb = d.url("NGINX_URL").to_owned();
    let acked = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));

    // 64 clients through nginx, each mixing reads, writes and searches until told to stop.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, lb, writer, erin) = (d.client.clone(), lb.clone(), writer.clone(), erin.clone());
            let (acked, killed, stop, seen) = (acked.clone(), killed.clone(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let req = match n % 4 {
                        0 | 1 => client.get(format!("{lb}/v1/traces/rep-{}", 1 + n % 2)).bearer_auth(&erin),
                        2 => client.put(format!("{lb}/v1/traces/load-{c}-{n}")).bearer_auth(&writer).json(&trace("load-agent", "load")),
                        _ => client.get(format!("{lb}/v1/traces?agent=replica-agent")).bearer_auth(&erin),
                    };
                    n += 1;
                    let outcome = send(req).await;
                    // Read after the answer: a request in flight when the kill began belongs to
                    // the kill window.
                    let after = killed.load(Ordering::SeqCst);
                    let mut seen = seen.lock().unwrap();
                    match outcome {
                        Ok((s, Some(id), _)) if (200..300).contains(&s) => {
                            seen.acked.push(id);
                            acked.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        Ok((s, None, body)) if (200..300).contains(&s) => panic!("a {s} without x-request-id: {body}"),
                        Ok((s, _, body)) if seen.samples.len() < 5 => seen.samples.push(format!("{s} {body}")),
                        Err(e) if seen.samples.len() < 5 => seen.samples.push(e.to_string()),
                        _ => {}
                    }
                    if after {
                        seen.failed_after_kill += 1;
                    } else {
                        seen.failed_before_kill += 1;
                    }
                }
            })
        })
        .collect();

    // Kill A once the load is well under way (counted in acknowledged responses, not time).
    wait_for(&acked, 400, &seen).await;
    let pid = d.env["A_PID"].clone();
    killed.store(true, Ordering::SeqCst);
    let at_kill = acked.load(Ordering::SeqCst);
    assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    while process_alive(&pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keep the load on the survivor for as long again.
    wait_for(&acked, at_kill + 400, &seen).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    // After the kill window, nginx serves every request through B: a fresh round from every
    // client, all acknowledged. (nginx passes GET and PUT it could not deliver to A on to B.)
    let after: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let req = match c % 3 {
                0 => d.client.get(format!("{lb}/v1/traces/rep-1")).bearer_auth(&erin),
                1 => d.client.put(format!("{lb}/v1/traces/after-{c}")).bearer_auth(&writer).json(&trace("load-agent", "after")),
                _ => d.client.get(format!("{lb}/v1/traces?agent=replica-agent")).bearer_auth(&erin),
            };
            tokio::spawn(send(req))
        })
        .collect();
    let mut acked_ids = std::mem::take(&mut seen.lock().unwrap().acked);
    for r in after {
        let (s, id, body) = r.await.unwrap().expect("nginx answers after the kill");
        assert!((200..300).contains(&s), "after the kill, through the survivor: {s} {body}");
        acked_ids.push(id.expect("x-request-id"));
    }
    let (before, during, samples) = {
        let s = seen.lock().unwrap();
        (s.failed_before_kill, s.failed_after_kill, s.samples.clone())
    };
    assert_eq!(before, 0, "requests failed before any replica was killed: {samples:?}");
    eprintln!("load: {} acknowledged ({at_kill} before the kill), {during} failed in the kill window: {samples:?}", acked_ids.len());

    // Every acknowledged request has its record in PostgreSQL: acknowledged means committed.
    let pool = tracegate_state::sqlx::PgPool::connect(&d.env["STATE_URL"]).await.unwrap();
    let recorded: Vec<String> = tracegate_state::sqlx::query_scalar("SELECT request_id FROM audit_records WHERE request_id = ANY($1)")
        .bind(&acked_ids)
        .fetch_all(&pool)
        .await
        .unwrap();
    let recorded: BTreeSet<String> = recorded.into_iter().collect();
    let missing: Vec<&String> = acked_ids.iter().filter(|id| !recorded.contains(*id)).collect();
    assert!(missing.is_empty(), "{} acknowledged requests have no audit record: {:?}", missing.len(), &missing[..missing.len().min(10)]);
    let unique: BTreeSet<&String> = acked_ids.iter().collect();
    assert_eq!(unique.len(), acked_ids.len(), "request ids are unique");
    pool.close().await;

    // Both replicas appended to one chain, A until it died, B after: it verifies whole.
    let said = d.verify_chain();
    assert!(said.contains("ok:"), "{said}");
}

/// Waits until `n` responses were acknowledged; a load that only fails ends the test instead of
/// hanging it (nginx would have stopped serving).
async fn wait_for(counter: &AtomicUsize, n: usize, seen: &Mutex<Seen>) {
    while counter.load(Ordering::SeqCst) < n {
        let failed = {
            let s = seen.lock().unwrap();
            s.failed_before_kill + s.failed_after_kill
        };
        assert!(failed < 20 * CLIENTS, "{failed} requests failed under load; nginx is not serving through the survivor");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Gone, or a zombie its parent (the script) has not reaped yet.
fn process_alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
