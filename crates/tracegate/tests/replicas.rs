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
//! Missing moto, nginx or PostgreSQL fails the test (the script never skips).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tracegate_identity::dev::DevIssuer;
use tracegate_server::GatewayConfig;

/// A role whose approved grant serves one read only, appended to the quickstart policy.
const ONE_TIME_ROLE: &str = r#"
[roles.oncall]
groups = ["oncall"]
actions = ["read"]

[roles.oncall.fields]
allow = ["$"]

[roles.oncall.approval]
approvers = ["security"]
approvals = 1
pending_ttl = "1h"
grant_ttl = "1h"
one_time = true
"#;

/// Clients of the load section, as the issue asks.
const CLIENTS: usize = 64;

/// The running deployment: the script's process (which owns every peer) and what it wrote.
struct Deployment {
    script: Child,
    env: HashMap<String, String>,
    issuer: DevIssuer,
    work: tempfile::TempDir,
    client: reqwest::Client,
}

impl Deployment {
    fn start() -> Deployment {
        let work = tempfile::tempdir().unwrap();
        let data = work.path().join("data");
        tracegate::commands::quickstart::lay_out(&data).unwrap();
        let policy = data.join("policy.toml");
        let text = std::fs::read_to_string(&policy).unwrap();
        std::fs::write(&policy, format!("{text}{ONE_TIME_ROLE}")).unwrap();
        // 64 clients share a handful of principals: lift the per-principal request budget.
        let cfg = data.join("tracegate.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, format!("{text}\n[limits]\nrequests_per_minute = 100000000\nrequest_burst = 1000000\n")).unwrap();

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
        Deployment { script: child, env, issuer, work, client }
    }

    fn url(&self, which: &str) -> &str {
        &self.env[which]
    }

    fn token(&self, sub: &str, groups: &[&str], claims: &[(&str, &str)]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let extra = claims.iter().map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned()))).collect();
        self.issuer.mint(sub, &groups, extra, Duration::from_secs(3600)).unwrap()
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
            // Lost the race, or came after the use: nothing of the trace is sent.
            409 | 202 => assert!(!body.to_string().contains("written-through-a"), "{body}"),
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
