//! The audit trail through the running gateway: one record per request, readable by auditors,
//! failing closed when it cannot be written, and intact after `kill -9` under load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{cli_token, code, replay, spawn_serve, Gateway};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_tracegate");

fn log_records(data: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data.join("audit/audit.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_one_record() {
    let gw = Gateway::start().await;
    let sam = gw.token("sam", &["support"], &[("tenant", "acme")]);
    let erin = gw.token("erin", &["eng"], &[]);
    let ada = gw.token("ada", &["audit"], &[]);

    let mut seen = Vec::new(); // (request id, status, body bytes)
    for (path, token) in [
        ("/v1/traces/demo-agent-1?purpose=ticket-4711", sam.as_str()),
        ("/v1/traces/demo-agent-1?fields=$..reasoning", sam.as_str()),
        ("/v1/traces/demo-agent-1?fields=$.steps[", erin.as_str()),
        ("/v1/traces/demo-agent-1", "not-a-token"),
        ("/v1/traces?agent=refund-agent", erin.as_str()),
    ] {
        let r = gw.client.get(gw.url(path)).bearer_auth(token).send().await.unwrap();
        let id = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
        let status = r.status().as_u16();
        seen.push((id, status, r.bytes().await.unwrap().to_vec()));
    }
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [200, 403, 400, 401, 200]);

    // Support may not read the trail; auditors may.
    let (s, body) = gw.get("/v1/audit", &sam).await;
    assert_eq!((s, code(&body)), (403, "action_not_permitted"));
    let (s, body) = gw.get("/v1/audit?limit=100", &ada).await;
    assert_eq!(s, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    for (id, status, bytes) in &seen {
        let r = records.iter().find(|r| r["request_id"] == id.as_str()).unwrap_or_else(|| panic!("no record for {id}"));
        assert_eq!(r["status"], *status);
        assert_eq!(r["body_sha256"], hex::encode(Sha256::digest(bytes)), "digest of exactly the bytes sent");
        assert_eq!(r["bytes_sent"], bytes.len());
    }
    let read = records.iter().find(|r| r["request_id"] == seen[0].0.as_str()).unwrap();
    assert_eq!(read["decision"], "allow");
    assert_eq!(read["request"]["purpose"], "ticket-4711");
    assert_eq!(read["role"], "support");
    assert_eq!(read["principal"]["subject"], "sam");
    assert_eq!(read["principal"]["claims"]["tenant"], "acme");
    assert!(read["object_version"].as_str().unwrap().starts_with("sha256:"));
    assert!(read["policy_version"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(read["slice"]["deny"][0], "$..reasoning");
    let denied = records.iter().find(|r| r["request_id"] == seen[1].0.as_str()).unwrap();
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["deny_code"], "field_denied");
    assert_eq!(denied["rules"][0], "roles.support.fields.deny[0]");
    assert_eq!(denied["request"]["fields"][0], "$..reasoning");
    let unauth = records.iter().find(|r| r["request_id"] == seen[3].0.as_str()).unwrap();
    assert_eq!(unauth["decision"], "error");
    assert!(unauth.get("principal").is_none());

    // Filters.
    let (s, body) = gw.get("/v1/audit?subject=sam&decision=deny", &ada).await;
    assert_eq!(s, 200);
    let only: Vec<_> = body["records"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap().to_owned()).collect();
    assert!(only.contains(&seen[1].0) && only.iter().all(|id| *id != seen[0].0), "{only:?}");
    let (s, body) = gw.get("/v1/audit?decision=maybe", &ada).await;
    assert_eq!((s, code(&body)), (400, "bad_parameter"));

    // No credential ever reaches the trail.
    let raw = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    for t in [&sam, &erin, &ada] {
        let sig = t.rsplit('.').next().unwrap();
        assert!(!raw.contains(sig), "a token signature leaked into the audit log");
    }
}

/// A read whose body is the stored bytes verbatim (a clean trace written through the gateway,
/// read whole) and reads whose bodies differ (masked, projected): each record's `body_sha256` is
/// the digest of exactly the bytes sent, and `object_version` of exactly the bytes stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_digests_are_of_the_bytes_served_and_stored() {
    let gw = Gateway::start().await;
    let w = gw.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let clean = serde_json::json!({
        "metadata": {"tenant": "acme", "agent": "clean-agent", "started_at": "2026-11-24T00:00:00Z"},
        "steps": [{"index": 0, "output": "The parcel should arrive within two days."}],
        "final_output": "done",
    });
    let (s, body) = gw.put("/v1/traces/clean-1", &w, serde_json::to_vec(&clean).unwrap()).await;
    assert_eq!(s, 201, "{body}");
    let erin = gw.token("erin", &["eng"], &[]);
    let sam = gw.token("sam", &["support"], &[("tenant", "acme")]);
    let ada = gw.token("ada", &["audit"], &[]);
    let mut seen = Vec::new(); // (request id, body bytes, stored bytes)
    for (id, token) in [("clean-1", &erin), ("clean-1", &sam), ("demo-agent-1", &erin), ("demo-agent-1", &sam)] {
        let stored = std::fs::read(gw.data_dir().join(format!("traces/{id}.json"))).unwrap();
        let r = gw.client.get(gw.url(&format!("/v1/traces/{id}"))).bearer_auth(token.as_str()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let rid = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
        seen.push((rid, r.bytes().await.unwrap().to_vec(), stored));
    }
    assert_eq!(seen[0].1, seen[0].2, "the clean trace is served verbatim to the engineer");
    assert!(seen[2..].iter().all(|(_, body, stored)| body != stored), "the demo trace's reads change the bytes");
    let (s, body) = gw.get("/v1/audit?limit=100", &ada).await;
    assert_eq!(s, 200, "{body}");
    let records = body["records"].as_array().unwrap();
    for (rid, bytes, stored) in &seen {
        let r = records.iter().find(|r| r["request_id"] == rid.as_str()).unwrap_or_else(|| panic!("no record for {rid}"));
        assert_eq!(r["body_sha256"], hex::encode(Sha256::digest(bytes)), "digest of exactly the bytes sent");
        assert_eq!(r["bytes_sent"], bytes.len());
        assert_eq!(r["object_version"], format!("sha256:{}", hex::encode(Sha256::digest(stored))), "version of exactly the bytes stored");
    }
}

fn token(data: &Path, sub: &str, groups: &str) -> String {
    cli_token(data, sub, groups)
}

fn verify(data: &Path) -> (bool, String) {
    let out = Command::new(BIN).args(["audit", "verify", "--config"]).arg(data.join("tracegate.toml")).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn audit_write_failure_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tracegate::commands::quickstart::lay_out(&data).unwrap();
    let tok = token(&data, "erin", "eng");
    // Files this process writes may not grow past 48 KiB; once the audit log reaches that, its
    // writes fail with EFBIG (the signal is ignored so the failure surfaces as an I/O error).
    let (mut child, url) = spawn_serve(&data, "trap '' XFSZ; ulimit -f 96;");
    let client = reqwest::blocking::Client::new();
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..400 {
        let r = client.get(format!("{url}/v1/traces/demo-agent-1")).bearer_auth(&tok).send().unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        match status {
            200 => {
                assert_eq!(failed, 0, "a request was served after the audit trail failed");
                ok += 1;
            }
            503 => {
                assert!(body.contains("audit_unavailable"), "{body}");
                assert!(!body.contains("refund") && !body.contains("final_output"), "trace data in a failed response: {body}");
                failed += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
        if failed >= 5 {
            break;
        }
    }
    // Readiness says so, so a load balancer stops sending traffic here.
    let health = client.get(format!("{url}/healthz")).send().unwrap();
    assert_eq!(health.status().as_u16(), 503);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ok > 0 && failed >= 5, "ok={ok} failed={failed}");
    // Every response released has its record.
    let served = log_records(&data).iter().filter(|r| r["status"] == 200).count();
    assert!(served >= ok, "{ok} responses released but only {served} records with status 200");

    // Restarted without the limit, the gateway recovers the trail and it verifies.
    let (mut child, _) = spawn_serve(&data, "");
    child.kill().unwrap();
    child.wait().unwrap();
    let (good, report) = verify(&data);
    assert!(good, "{report}");
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tracegate::commands::quickstart::lay_out(&data).unwrap();
    let tok = token(&data, "erin", "eng");
    let (mut child, url) = spawn_serve(&data, "");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let (acked, stop, url, tok) = (acked.clone(), stop.clone(), url.clone(), tok.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                let path = if i % 2 == 0 { "/v1/traces/demo-agent-1" } else { "/v1/traces?agent=refund-agent" };
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2000 {
                    n += 1;
                    let Ok(r) = client.get(format!("{url}{path}")).bearer_auth(&tok).send() else { break };
                    let id = r.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
                    // Acknowledged means the whole response reached the client.
                    if r.status().is_success() && r.bytes().is_ok() {
                        acked.lock().unwrap().push(id.unwrap());
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL, mid-flight
    child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the load run did too little: {}", acked.len());

    // Restart (recovery), stop, verify; every acknowledged response has its record.
    let (mut child, _) = spawn_serve(&data, "");
    child.kill().unwrap();
    child.wait().unwrap();
    let (good, report) = verify(&data);
    assert!(good, "{report}");
    let ids: HashSet<String> = log_records(&data).iter().filter_map(|r| r["request_id"].as_str().map(str::to_owned)).collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(missing.is_empty(), "{} of {} acknowledged responses have no record", missing.len(), acked.len());
}

/// `[server] acceptors = 3`: three threads share the port, every one of many connections is
/// served and recorded, no second gateway can take the port, and SIGTERM drains every thread
/// and seals the trail with a final checkpoint.
#[cfg(target_os = "linux")]
#[test]
fn acceptor_threads_serve_every_connection_keep_the_port_and_seal_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tracegate::commands::quickstart::lay_out(&data).unwrap();
    let cfg = data.join("tracegate.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[server]\n"));
    std::fs::write(&cfg, text.replacen("[server]\n", "[server]\nacceptors = 3\n", 1)).unwrap();
    let tok = token(&data, "erin", "eng");
    let (mut child, url) = spawn_serve(&data, "");

    let threads = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let want: Vec<String> = (0..3).map(|i| format!("tg-acceptor-{i}")).collect();
    for _ in 0..100 {
        if want.iter().all(|w| threads().contains(w)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let named: Vec<String> = threads().into_iter().filter(|t| t.starts_with("tg-acceptor-")).collect();
    assert_eq!(named.len(), 3, "{named:?}");
    assert!(want.iter().all(|w| named.contains(w)), "{named:?}");

    // 4 clients at once, 12 requests each, every request on a connection of its own (the
    // kernel spreads new connections over the three sockets).
    let path = "/v1/traces/demo-agent-1";
    let reference = reqwest::blocking::Client::new().get(format!("{url}{path}")).bearer_auth(&tok).send().unwrap();
    assert_eq!(reference.status().as_u16(), 200);
    let reference = reference.text().unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, tok, reference) = (url.clone(), tok.clone(), reference.clone());
            std::thread::spawn(move || {
                (0..12)
                    .map(|_| {
                        let client = reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                        let r = client.get(format!("{url}{path}")).bearer_auth(&tok).send().unwrap();
                        assert_eq!(r.status().as_u16(), 200);
                        let id = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
                        assert_eq!(r.text().unwrap(), reference, "every thread serves the same slice");
                        id
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let ids: Vec<String> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert_eq!(ids.len(), 48);

    // A second gateway (its own data directory) on the same port is refused, not let in.
    let other = dir.path().join("other");
    tracegate::commands::quickstart::lay_out(&other).unwrap();
    let listen = url.trim_start_matches("http://");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(other.join("tracegate.toml"))
        .args(["--listen", listen])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("binding `{listen}`")) && err.contains("in use"), "{err}");

    // SIGTERM: every thread drains, the trail is sealed, the process exits cleanly.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let (good, report) = verify(&data);
    assert!(good, "{report}");
    assert!(report.contains(" 0 records after the last checkpoint"), "not sealed: {report}");
    let recorded: HashSet<String> =
        log_records(&data).iter().filter_map(|r| r["request_id"].as_str().map(str::to_owned)).collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !recorded.contains(*id)).collect();
    assert!(missing.is_empty(), "{} of 48 responses have no record", missing.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reproduces_exactly_what_was_shown_or_says_why_not() {
    let gw = Gateway::start().await;
    let sam = gw.token("sam", &["support"], &[("tenant", "acme")]);
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    for path in ["/v1/traces/demo-agent-1?fields=$.final_output&fields=$.metadata", "/v1/traces/demo-otlp-1", "/v1/traces/demo-agent-1"] {
        let r = gw.client.get(gw.url(path)).bearer_auth(&sam).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        ids.push(r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned());
        bodies.push(r.text().await.unwrap());
    }
    let data = gw.data_dir();
    for (id, body) in ids.iter().zip(&bodies) {
        let (ok, outcome, shown) = replay(&data, id);
        assert!(ok, "{outcome}");
        assert_eq!(outcome["result"], "reproduced");
        assert_eq!(&shown, body, "replay shows the very bytes the client got");
    }

    // A denied request is not replayable; it says so.
    let r = gw.client.get(gw.url("/v1/traces/demo-agent-2")).bearer_auth(&sam).send().await.unwrap();
    let denied = r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    let (ok, outcome, _) = replay(&data, &denied);
    assert!(!ok);
    assert_eq!(outcome["result"], "not_replayable");

    // Changed or deleted since: said plainly, nothing else shown.
    let path = data.join("traces/demo-agent-1.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("refunded", "reimbursed")).unwrap();
    let (ok, outcome, shown) = replay(&data, &ids[0]);
    assert!(!ok);
    assert_eq!(outcome["result"], "object_changed", "{outcome}");
    assert!(shown.is_empty());
    std::fs::remove_file(data.join("traces/demo-otlp-1.json")).unwrap();
    let (ok, outcome, _) = replay(&data, &ids[1]);
    assert!(!ok);
    assert_eq!(outcome["result"], "object_deleted");
}
