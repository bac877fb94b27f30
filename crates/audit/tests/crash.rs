//! kill -9 under concurrent load: the test binary re-runs itself as a child that appends from
//! many tasks and prints each acknowledged record; the parent kills it mid-flight, reopens the
//! log, and checks that `verify` passes and that every acknowledged record is on disk — the
//! property behind "every response a client received has its record".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracegate_audit::{export, verify, Record, AuditLog, AuditQuery, Decision, Entry, LogOptions, PublicKey, SigningKey, Timestamp};

const CHILD_ENV: &str = "TRACEGATE_AUDIT_CRASH_CHILD";

fn opts(dir: PathBuf) -> LogOptions {
    LogOptions { dir, checkpoint_every_records: 64, checkpoint_interval: Duration::from_millis(50), max_batch: 256, sync_threads: 4, flush_delay: Duration::ZERO, journal: true }
}

/// The child: appends from 32 tasks until killed (or 30 s pass), printing `acked <seq> <id>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_appends_until_killed() {
    let Ok(root) = std::env::var(CHILD_ENV) else { return };
    let root = PathBuf::from(root);
    let key = SigningKey::load(&root.join("audit.key")).unwrap();
    let log = Arc::new(AuditLog::open(opts(root.join("audit")), key).unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tasks = Vec::new();
    for t in 0..32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let id = format!("c{t}-{i}");
                let mut e = Entry::request(id.clone(), Timestamp::now());
                e.decision = Some(Decision::Allow);
                let s = log.append(&e).await.unwrap();
                println!("acked {} {id}", s.seq);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn kill_9_under_load_then_recovery_verifies_and_keeps_every_ack() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    SigningKey::generate(&root.path().join("audit.key")).unwrap();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child_appends_until_killed", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acked: BTreeMap<u64, String> = BTreeMap::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while acked.len() < 300 {
            let Some(line) = lines.next() else { panic!("child stopped early") };
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("acked ") {
                let (seq, id) = rest.split_once(' ').unwrap();
                acked.insert(seq.parse().unwrap(), id.to_owned());
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Acks printed after our count but before the kill are acks too.
        for line in lines.map_while(Result::ok) {
            if let Some((seq, id)) = line.strip_prefix("acked ").and_then(|r| r.split_once(' ')) {
                acked.insert(seq.parse().unwrap(), id.to_owned());
            }
        }
        child.wait().unwrap();

        // Restart: recovery, then the same checks an operator would run.
        let dir = root.path().join("audit");
        let log = AuditLog::open(opts(dir.clone()), SigningKey::load(&root.path().join("audit.key")).unwrap()).unwrap();
        assert!(log.head().seq >= *acked.keys().next_back().unwrap(), "round {round}: an acknowledged record is missing");
        tokio::runtime::Runtime::new().unwrap().block_on(log.shutdown()).unwrap();
        let key = PublicKey::load(&root.path().join("audit.key.pub")).unwrap();
        let report = verify(&dir, &[key]).unwrap();
        assert!(report.ok(), "round {round}: {:?}", report.problems);
        let mut all = Vec::new();
        export(&dir, &AuditQuery::default(), &mut all).unwrap();
        let on_disk: BTreeMap<u64, String> = all
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<Record>(l).unwrap())
            .map(|r| (r.seq, r.entry.request_id))
            .collect();
        for (seq, id) in &acked {
            assert_eq!(on_disk.get(seq), Some(id), "round {round}: acknowledged seq {seq} is not on disk as acked");
        }
        eprintln!("round {round}: {} acked, {} on disk", acked.len(), on_disk.len());
    }
}
