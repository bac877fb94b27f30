//! End-to-end tests of the audit trail on disk: chain, checkpoints, tamper detection, crash
//! recovery, fail-closed writes, prune, query and export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tempfile::TempDir;
use tracegate_audit::{
    export, query, verify, AuditError, AuditLog, AuditQuery, Decision, Entry, Kind, LogOptions, ProblemKind,
    PublicKey, SigningKey, Timestamp,
};

use common::entry;

struct Env {
    _root: TempDir,
    dir: PathBuf,
    key_path: PathBuf,
}

impl Env {
    fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("audit");
        let key_path = root.path().join("keys").join("audit.key");
        SigningKey::generate(&key_path).unwrap();
        Env { _root: root, dir, key_path }
    }

    fn opts(&self, every: u64) -> LogOptions {
        LogOptions { dir: self.dir.clone(), checkpoint_every_records: every, checkpoint_interval: Duration::from_secs(3600), max_batch: 256, sync_threads: 4, flush_delay: Duration::ZERO, journal: true }
    }

    fn open(&self, every: u64) -> AuditLog {
        AuditLog::open(self.opts(every), SigningKey::load(&self.key_path).unwrap()).unwrap()
    }

    fn key(&self) -> PublicKey {
        PublicKey::load(&tracegate_audit::public_key_path(&self.key_path)).unwrap()
    }

    fn verify(&self) -> tracegate_audit::VerifyReport {
        verify(&self.dir, &[self.key()]).unwrap()
    }

    fn log(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    fn lines(&self) -> Vec<String> {
        fs::read_to_string(self.log()).unwrap().lines().map(str::to_owned).collect()
    }

    fn write_lines(&self, lines: &[String]) {
        fs::write(self.log(), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }
}

async fn fill(log: &AuditLog, n: u64) {
    for i in 0..n {
        log.append(&entry(i, if i % 2 == 0 { "alice" } else { "bob" }, Decision::Allow)).await.unwrap();
    }
}

/// A log of `n` records, the first `signed` of them covered by a checkpoint, closed cleanly
/// without a final checkpoint beyond that.
async fn sample(n: u64, every: u64) -> Env {
    let env = Env::new();
    let log = env.open(every);
    fill(&log, n).await;
    log.shutdown().await.unwrap();
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_form_one_chain_and_reopen_resumes_it() {
    let env = Env::new();
    let log = Arc::new(env.open(50));
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..25 {
                seqs.push(log.append(&entry(t * 100 + i, "alice", Decision::Allow)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<_>>());
    assert_eq!(log.head().seq, 400);
    log.shutdown().await.unwrap();
    assert!(matches!(log.append(&entry(0, "x", Decision::Allow)).await, Err(AuditError::Closed)));

    let log = env.open(50);
    let s = log.append(&entry(999, "carol", Decision::Deny)).await.unwrap();
    assert_eq!(s.seq, 401);
    log.shutdown().await.unwrap();
    let r = env.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.records, r.first_seq, r.last_seq, r.last_signed_seq), (401, Some(1), Some(401), Some(401)));
    assert_eq!(r.unsigned_records, 0);
}

/// Under load (a batch went out lately and records overlap) a batch waits `flush_delay` for
/// more records, so pairs of records arriving tens of milliseconds apart share flushes; without
/// the wait every pair would get one or two flushes of its own. Everything is still
/// acknowledged, in one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_load_a_batch_waits_for_more_records_before_its_flush() {
    let env = Env::new();
    let opts = LogOptions { flush_delay: Duration::from_millis(500), sync_threads: 1, ..env.opts(1_000_000) };
    let log = Arc::new(AuditLog::open(opts, SigningKey::load(&env.key_path).unwrap()).unwrap());
    let mut tasks = Vec::new();
    for t in 0..12u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20 * t)).await;
            let (ea, eb) = (entry(2 * t, "alice", Decision::Allow), entry(2 * t + 1, "bob", Decision::Allow));
            let (a, b) = tokio::join!(log.append(&ea), log.append(&eb));
            [a.unwrap().seq, b.unwrap().seq]
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=24).collect::<Vec<_>>());
    // 12 pairs over 240 ms; once two records overlap, each batch stays open 500 ms.
    let flushes = log.flushes();
    assert!((1..=4).contains(&flushes), "{flushes} flushes for 24 records");
    log.shutdown().await.unwrap();
    let r = env.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records, 24);
}

#[tokio::test]
async fn a_changed_byte_is_a_hash_mismatch_at_that_record() {
    let env = sample(10, 4).await;
    let mut lines = env.lines();
    lines[5] = lines[5].replace("req-5", "req-6");
    assert!(lines[5].contains("req-6"));
    env.write_lines(&lines);
    let r = env.verify();
    let p = &r.problems[0];
    assert_eq!((p.kind, p.line, p.seq), (ProblemKind::HashMismatch, 6, Some(6)), "{r:?}");
}

#[tokio::test]
async fn a_rehashed_edit_is_caught_by_the_checkpoint() {
    // Someone who edits a record and recomputes every later hash still cannot re-sign.
    let env = sample(8, 8).await;
    let log_lines = env.lines();
    let mut edited = Vec::new();
    let mut prev = tracegate_audit::GENESIS_HASH.to_owned();
    for (i, l) in log_lines.iter().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        let m = v.as_object_mut().unwrap();
        m.remove("hash");
        if i == 2 {
            m.insert("status".into(), json!(403));
        }
        m.insert("prev_hash".into(), json!(prev));
        let body = tracegate_audit::canonical::to_canonical(&v).unwrap();
        use sha2::Digest;
        let h = hex::encode(sha2::Sha256::digest(&body));
        v.as_object_mut().unwrap().insert("hash".into(), json!(h));
        prev = h;
        edited.push(String::from_utf8(tracegate_audit::canonical::to_canonical(&v).unwrap()).unwrap());
    }
    env.write_lines(&edited);
    let r = env.verify();
    assert_eq!(r.problems[0].kind, ProblemKind::CheckpointMismatch, "{r:?}");
    assert_eq!(r.problems[0].seq, Some(8));
}

#[tokio::test]
async fn a_deleted_record_is_a_seq_gap() {
    let env = sample(10, 100).await;
    let mut lines = env.lines();
    lines.remove(3);
    env.write_lines(&lines);
    let r = env.verify();
    let p = &r.problems[0];
    assert_eq!((p.kind, p.line, p.seq), (ProblemKind::SeqGap, 4, Some(5)), "{r:?}");
}

#[tokio::test]
async fn a_reordered_pair_is_reported_as_such() {
    let env = sample(10, 100).await;
    let mut lines = env.lines();
    lines.swap(6, 7);
    env.write_lines(&lines);
    let r = env.verify();
    let p = &r.problems[0];
    assert_eq!((p.kind, p.line, p.seq), (ProblemKind::Reordered, 7, Some(8)), "{r:?}");
}

#[tokio::test]
async fn a_truncated_tail_is_caught_by_the_signed_head() {
    let env = sample(10, 100).await; // final checkpoint on shutdown signs seq 10
    let mut lines = env.lines();
    lines.truncate(7);
    env.write_lines(&lines);
    let r = env.verify();
    let p = &r.problems[0];
    assert_eq!((p.kind, p.seq), (ProblemKind::Truncated, Some(10)), "{r:?}");
    // And the gateway refuses to resume on top of it.
    let err = AuditLog::open(env.opts(100), SigningKey::load(&env.key_path).unwrap()).unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn a_forged_or_foreign_checkpoint_is_rejected() {
    let env = sample(10, 5).await;
    let ckpt = env.dir.join("checkpoints.jsonl");
    let text = fs::read_to_string(&ckpt).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    // The first checkpoint signs the durable head once five records are (with the flush
    // journal, a record or two later); claim it signed one record less.
    let seq = serde_json::from_str::<serde_json::Value>(&lines[0]).unwrap()["seq"].as_u64().unwrap();
    assert!((5..10).contains(&seq), "{seq}");
    lines[0] = lines[0].replace(&format!("\"seq\":{seq}"), &format!("\"seq\":{}", seq - 1));
    // A checkpoint signed by a key the verifier does not trust.
    let other = SigningKey::generate(&env.key_path.with_file_name("other.key")).unwrap();
    let foreign = other.sign(10, "00", Timestamp::now(), None).unwrap();
    lines.push(serde_json::to_string(&foreign).unwrap());
    fs::write(&ckpt, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let r = env.verify();
    let kinds: Vec<_> = r.problems.iter().map(|p| (p.kind, p.line)).collect();
    assert_eq!(kinds, vec![(ProblemKind::CheckpointSignatureInvalid, 1), (ProblemKind::CheckpointUnknownKey, 3)]);
}

#[tokio::test]
async fn a_torn_tail_after_a_crash_is_cut_recorded_and_verifies() {
    let env = sample(6, 3).await;
    // A crash mid-write: half of a further record (never acknowledged) is on disk.
    let full = fs::read(env.log()).unwrap();
    let last_line_start = full[..full.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let partial = full[last_line_start..last_line_start + 40].to_vec();
    fs::OpenOptions::new().append(true).open(env.log()).unwrap().write_all_ext(&partial);
    let before = env.verify();
    assert!(before.ok(), "{:?}", before.problems);
    assert_eq!(before.torn_tail_bytes, 40);

    let log = env.open(3);
    let rec = log.recovery().expect("recovery").clone();
    assert_eq!(rec.torn_bytes, 40);
    assert_eq!(fs::read(rec.saved_as.as_ref().unwrap()).unwrap(), partial);
    assert_eq!(rec.record.as_ref().unwrap().seq, 7);
    assert_eq!(log.append(&entry(7, "alice", Decision::Allow)).await.unwrap().seq, 8);
    log.shutdown().await.unwrap();

    let r = env.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.records, r.torn_tail_bytes), (8, 0));
    let system = query(&env.dir, &AuditQuery { kind: Some(Kind::System), ..Default::default() }).unwrap();
    assert_eq!(system[0].entry.event.as_ref().unwrap()["type"], "recovered");
}

trait WriteAllExt {
    fn write_all_ext(self, b: &[u8]);
}
impl WriteAllExt for fs::File {
    fn write_all_ext(mut self, b: &[u8]) {
        use std::io::Write;
        self.write_all(b).unwrap();
    }
}

#[tokio::test]
async fn a_failed_write_fails_the_batch_and_every_later_append() {
    let env = Env::new();
    fs::create_dir_all(&env.dir).unwrap();
    // Every write to /dev/full fails with "no space left on device".
    std::os::unix::fs::symlink("/dev/full", env.log()).unwrap();
    let log = env.open(100);
    let err = log.append(&entry(1, "alice", Decision::Allow)).await.unwrap_err();
    assert!(matches!(err, AuditError::Failed(_)), "{err}");
    assert!(log.is_failed());
    let err = log.append(&entry(2, "alice", Decision::Allow)).await.unwrap_err();
    assert!(matches!(err, AuditError::Failed(_)), "{err}");
    assert_eq!(log.head().seq, 0);
}

/// Appenders on four runtime threads race to seal; whatever the interleaving, the acknowledged
/// records are one gap-free chain, each acknowledgment names the line stored at its seq, and
/// `verify` accepts the file. Run with one sync thread (classic group commit) and with four
/// overlapping flushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appenders_on_many_threads_get_one_gap_free_verified_chain() {
    for sync_threads in [1, 4] {
        let env = Env::new();
        let log = Arc::new(AuditLog::open(LogOptions { sync_threads, ..env.opts(97) }, SigningKey::load(&env.key_path).unwrap()).unwrap());
        let (tasks, per_task) = (48u64, 30u64);
        let mut handles = Vec::new();
        for t in 0..tasks {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..per_task {
                    acked.push(log.append(&entry(t * 1000 + i, "alice", Decision::Allow)).await.unwrap());
                    if i % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                acked
            }));
        }
        let mut acked = Vec::new();
        for h in handles {
            acked.extend(h.await.unwrap());
        }
        acked.sort_by_key(|s| s.seq);
        let n = tasks * per_task;
        assert_eq!(acked.iter().map(|s| s.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "sync_threads {sync_threads}");
        assert_eq!(log.head().seq, n);
        log.shutdown().await.unwrap();

        let lines = env.lines();
        assert_eq!(lines.len() as u64, n);
        let mut prev = tracegate_audit::GENESIS_HASH.to_owned();
        for (line, sealed) in lines.iter().zip(&acked) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["seq"], sealed.seq, "sync_threads {sync_threads}: lines are in seq order");
            assert_eq!(v["hash"], sealed.hash.as_str(), "the acknowledgment names the stored record");
            assert_eq!(v["prev_hash"], prev.as_str(), "each record links to the one before");
            prev = sealed.hash.clone();
        }
        let r = env.verify();
        assert!(r.ok(), "sync_threads {sync_threads}: {:?}", r.problems);
        assert_eq!((r.records, r.last_seq, r.last_signed_seq), (n, Some(n), Some(n)));
    }
}

/// `fdatasync` fails on `/dev/null` (EINVAL: the device has no fsync) while its writes succeed,
/// so this is a real sync failure with the write path working. Every appender waiting on the
/// failed flush and every later one gets `Failed`; none is acknowledged; a checkpoint is refused.
/// With the flush journal on, the journal is the file flushed per batch, so it is the one that
/// fails; with it off, the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_sync_fails_every_waiter_and_every_later_append() {
    for (sync_threads, journal) in [(1, false), (4, false), (1, true), (4, true)] {
        let env = Env::new();
        fs::create_dir_all(&env.dir).unwrap();
        std::os::unix::fs::symlink("/dev/null", env.log()).unwrap();
        if journal {
            std::os::unix::fs::symlink("/dev/null", env.dir.join(tracegate_audit::JOURNAL_FILE)).unwrap();
        }
        let log = Arc::new(AuditLog::open(LogOptions { sync_threads, journal, ..env.opts(100) }, SigningKey::load(&env.key_path).unwrap()).unwrap());
        let mut handles = Vec::new();
        for t in 0..32u64 {
            let log = log.clone();
            handles.push(tokio::spawn(async move { log.append(&entry(t, "alice", Decision::Allow)).await }));
        }
        for h in handles {
            let r = h.await.unwrap();
            assert!(matches!(r, Err(AuditError::Failed(ref m)) if m.contains("flushing")), "sync_threads {sync_threads}, journal {journal}: {r:?}");
        }
        assert!(log.is_failed());
        let later = log.append(&entry(99, "bob", Decision::Allow)).await;
        assert!(matches!(later, Err(AuditError::Failed(_))), "{later:?}");
        assert!(matches!(log.checkpoint().await, Err(AuditError::Failed(_))));
        assert_eq!(log.head().seq, 0, "nothing was acknowledged");
        assert!(log.shutdown().await.is_err(), "a failed log does not report a clean stop");
    }
}

#[tokio::test]
async fn one_writer_per_directory_and_the_key_lives_elsewhere() {
    let env = Env::new();
    let log = env.open(100);
    let second = AuditLog::open(env.opts(100), SigningKey::load(&env.key_path).unwrap());
    assert!(matches!(second, Err(AuditError::Locked(_))));
    log.shutdown().await.unwrap();
    let inside = env.dir.join("audit.key");
    let err = AuditLog::open(env.opts(100), SigningKey::generate(&inside).unwrap()).unwrap_err();
    assert!(matches!(err, AuditError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn prune_exports_old_records_and_what_remains_verifies() {
    let env = Env::new();
    let log = env.open(4);
    fill(&log, 10).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    fill(&log, 3).await;
    let export_path = env.dir.parent().unwrap().join("pruned.jsonl");
    let report = log.prune(cut, export_path.clone()).await.unwrap();
    assert_eq!((report.pruned, report.first_seq), (10, Some(11)));
    let again = log.prune(cut, env.dir.parent().unwrap().join("again.jsonl")).await.unwrap();
    assert_eq!(again.pruned, 0);
    fill(&log, 2).await;
    log.shutdown().await.unwrap();

    let r = env.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.first_seq, r.last_seq, r.anchors), (Some(11), Some(16), 1));
    assert_eq!(fs::read_to_string(&export_path).unwrap().lines().count(), 10);
    let exported_first: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&export_path).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(exported_first["seq"], 1);

    // Without the anchor, the missing head is reported.
    let ckpt = env.dir.join("checkpoints.jsonl");
    let kept: String = fs::read_to_string(&ckpt).unwrap().lines().filter(|l| !l.contains("\"anchor\"")).map(|l| format!("{l}\n")).collect();
    fs::write(&ckpt, kept).unwrap();
    let r = env.verify();
    assert_eq!(r.problems[0].kind, ProblemKind::HeadMissing, "{r:?}");
}

#[tokio::test]
async fn query_filters_newest_first_and_export_is_verbatim() {
    let env = Env::new();
    let log = env.open(100);
    fill(&log, 9).await;
    log.append(&entry(9, "carol", Decision::Deny)).await.unwrap();
    log.shutdown().await.unwrap();

    let bob = query(&env.dir, &AuditQuery { subject: Some("bob".into()), limit: Some(2), ..Default::default() }).unwrap();
    assert_eq!(bob.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![8, 6]);
    let denied = query(&env.dir, &AuditQuery { decision: Some(Decision::Deny), ..Default::default() }).unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].entry.principal.as_ref().unwrap().subject, "carol");
    let t1 = query(&env.dir, &AuditQuery { trace_id: Some("t1".into()), ..Default::default() }).unwrap();
    assert_eq!(t1.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![8, 5, 2]);
    let future = Timestamp::from_system(SystemTime::now() + Duration::from_secs(60));
    assert!(query(&env.dir, &AuditQuery { since: Some(future), ..Default::default() }).unwrap().is_empty());

    let mut out = Vec::new();
    assert_eq!(export(&env.dir, &AuditQuery::default(), &mut out).unwrap(), 10);
    assert_eq!(out, fs::read(env.log()).unwrap());
    let mut out = Vec::new();
    assert_eq!(export(&env.dir, &AuditQuery { subject: Some("alice".into()), ..Default::default() }, &mut out).unwrap(), 5);
}

#[tokio::test]
async fn records_never_carry_floats_and_approval_records_chain_too() {
    let env = Env::new();
    let log = env.open(100);
    let bad = Entry::approval("r", "a1", Decision::Pending, json!({"score": 0.5}));
    assert!(matches!(log.append(&bad).await, Err(AuditError::Serialize(_))));
    let ok = Entry::approval("r", "a1", Decision::Pending, json!({"type": "created", "approvals_needed": 2}));
    assert_eq!(log.append(&ok).await.unwrap().seq, 1);
    log.shutdown().await.unwrap();
    assert!(env.verify().ok());
    let _ = Path::new("");
}

#[tokio::test]
async fn a_power_loss_hole_in_the_unsigned_tail_is_cut_and_recorded() {
    // A file system that persisted a later block of an unflushed write but not an earlier one
    // leaves a hole (zeros) followed by complete lines. Only unsigned records can be affected.
    let env = sample(10, 4).await; // checkpoints every 4 records and at shutdown
    let ckpt = env.dir.join("checkpoints.jsonl");
    // A checkpoint signs the head when it is written, which under load can be a record or two
    // past the fourth; keep those that sign no further than seq 8, as if the crash came before
    // anything later was signed.
    let signed = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap();
    let all: Vec<String> = fs::read_to_string(&ckpt).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(all.last().map(|l| signed(l)), Some(10), "the shutdown checkpoint signs the last record");
    let kept: Vec<&String> = all.iter().filter(|l| signed(l) <= 8).collect();
    assert!(!kept.is_empty(), "some checkpoint signs no further than seq 8: {all:?}");
    fs::write(&ckpt, kept.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let mut lines = env.lines();
    lines[8] = "\0".repeat(lines[8].len()); // seq 9 never reached the disk
    env.write_lines(&lines);

    // The flush journal off: it is removed after replaying what it holds, so this run first
    // takes the journal away, as a log that never had one.
    fs::remove_file(env.dir.join(tracegate_audit::JOURNAL_FILE)).unwrap();
    let log = AuditLog::open(LogOptions { journal: false, ..env.opts(4) }, SigningKey::load(&env.key_path).unwrap()).unwrap();
    let rec = log.recovery().expect("recovery").clone();
    assert_eq!(rec.reason, "damaged_tail");
    assert_eq!(rec.replayed, 0);
    assert_eq!(rec.record.as_ref().unwrap().seq, 9);
    log.shutdown().await.unwrap();
    let r = env.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.last_seq, Some(9));
    let system = query(&env.dir, &AuditQuery { kind: Some(Kind::System), ..Default::default() }).unwrap();
    assert_eq!(system[0].entry.event.as_ref().unwrap()["reason"], "damaged_tail");
}

#[tokio::test]
async fn damage_to_a_signed_record_stops_the_gateway_instead_of_being_cut() {
    let env = sample(10, 4).await;
    let mut lines = env.lines();
    lines[9] = lines[9].replace("req-9", "req-X"); // the last record, signed at shutdown
    env.write_lines(&lines);
    let err = AuditLog::open(env.opts(4), SigningKey::load(&env.key_path).unwrap()).unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
    let mut lines = env.lines();
    lines[9] = lines[9].replace("req-X", "req-9");
    lines[2] = lines[2].replace("req-2", "req-X"); // signed at 4
    lines[9] = "garbage".into();
    env.write_lines(&lines);
    let err = AuditLog::open(env.opts(4), SigningKey::load(&env.key_path).unwrap()).unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn a_crash_between_anchor_and_rewrite_still_verifies_and_reopens() {
    let env = Env::new();
    let log = env.open(100);
    fill(&log, 6).await;
    let before_prune = fs::read(env.log()).unwrap();
    let export_path = env.dir.parent().unwrap().join("pruned.jsonl");
    let cut = SystemTime::now() + Duration::from_secs(1);
    let report = log.prune(cut, export_path).await.unwrap();
    assert_eq!((report.pruned, report.first_seq), (5, Some(6)));
    log.shutdown().await.unwrap();
    // As if the process died after signing the anchor but before swapping the file in (so
    // before the `pruned` record was written, to the log or to the flush journal).
    fs::write(env.log(), before_prune).unwrap();
    fs::remove_file(env.dir.join(tracegate_audit::JOURNAL_FILE)).unwrap();
    let ckpt = env.dir.join("checkpoints.jsonl");
    let anchors: String = fs::read_to_string(&ckpt).unwrap().lines().filter(|l| l.contains("\"anchor\"")).map(|l| format!("{l}\n")).collect();
    fs::write(&ckpt, anchors).unwrap();
    let r = env.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.first_seq, r.last_seq, r.anchors), (Some(1), Some(6), 1));
    let log = env.open(100);
    assert_eq!(log.append(&entry(7, "alice", Decision::Allow)).await.unwrap().seq, 7);
    log.shutdown().await.unwrap();
    assert!(env.verify().ok());
}

#[tokio::test]
async fn checkpoints_come_on_time_and_on_request() {
    let env = Env::new();
    let opts = LogOptions { checkpoint_interval: Duration::from_millis(50), ..env.opts(1_000_000) };
    let log = AuditLog::open(opts, SigningKey::load(&env.key_path).unwrap()).unwrap();
    assert!(log.checkpoint().await.unwrap().is_none(), "nothing to sign yet");
    fill(&log, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signed: Vec<tracegate_audit::Checkpoint> = fs::read_to_string(env.dir.join("checkpoints.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(signed.last().map(|c| c.seq), Some(3), "the interval signs the head");
    fill(&log, 2).await;
    let c = log.checkpoint().await.unwrap().unwrap();
    assert_eq!(c.seq, 5);
    assert!(c.verify(&env.key()));
    assert_eq!(log.head().seq, 5);
    log.shutdown().await.unwrap();
}

/// A power loss can take acknowledged records with it when only the flush journal held them
/// durably (the log is flushed at checkpoints). Reopening appends them back from the journal,
/// byte for byte, in chain order, records that it did, and the log verifies; a torn line where
/// the log stopped is cut first. With the journal turned off, the replay still happens once and
/// the journal is removed.
#[tokio::test]
async fn acknowledged_records_a_power_loss_took_from_the_log_come_back_from_the_journal() {
    for (keep, torn, journal_after) in [(6usize, false, true), (6, true, true), (0, false, false)] {
        let env = sample(10, 1_000_000).await; // only the shutdown checkpoint, at seq 10
        let original = env.lines();
        // The crash came before that checkpoint: the log holds `keep` records and maybe a torn
        // piece of the next one.
        fs::write(env.dir.join("checkpoints.jsonl"), "").unwrap();
        let mut text: String = original[..keep].iter().map(|l| format!("{l}\n")).collect();
        if torn {
            text.push_str(&original[keep][..40]);
        }
        fs::write(env.log(), text).unwrap();

        let log = AuditLog::open(LogOptions { journal: journal_after, ..env.opts(1_000_000) }, SigningKey::load(&env.key_path).unwrap()).unwrap();
        let rec = log.recovery().expect("recovery").clone();
        assert_eq!(rec.replayed, 10 - keep as u64, "keep {keep}");
        assert_eq!(rec.reason, if torn { "torn_tail" } else { "journal_replay" });
        assert_eq!(rec.torn_bytes, if torn { 40 } else { 0 });
        assert_eq!(rec.record.as_ref().unwrap().seq, 11, "the recovery record follows the replayed ones");
        assert_eq!(log.append(&entry(12, "alice", Decision::Allow)).await.unwrap().seq, 12);
        log.shutdown().await.unwrap();
        assert_eq!(env.lines()[..10], original[..], "replayed byte for byte");
        assert_eq!(env.dir.join(tracegate_audit::JOURNAL_FILE).exists(), journal_after);
        let r = env.verify();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.last_seq, r.last_signed_seq), (Some(12), Some(12)));
        let system = query(&env.dir, &AuditQuery { kind: Some(Kind::System), ..Default::default() }).unwrap();
        assert_eq!(system[0].entry.event.as_ref().unwrap()["replayed"], 10 - keep as u64);
    }
}
