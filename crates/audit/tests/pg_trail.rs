//! The audit trail in a real PostgreSQL (a database of its own per test): two handles on two
//! pools stand for two replicas. One chain with no gaps or forks under concurrent appends; the
//! file log's verifier finds tampering; an unreachable database refuses appends and the trail
//! recovers without reopening; the same entries give byte-identical exports on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tracegate_audit::{
    AuditError, AuditLog, AuditQuery, AuditSource, AuditTrail, Decision, Entry, Kind, LogOptions, PgAuditLog, PgOptions,
    ProblemKind, PublicKey, SigningKey, Timestamp,
};
use tracegate_state::sqlx;
use tracegate_state::testing::TestDb;

use common::{entry, entry_at};

struct Keys {
    _root: TempDir,
    path: PathBuf,
}

impl Keys {
    fn new() -> Keys {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("audit.key");
        SigningKey::generate(&path).unwrap();
        Keys { _root: root, path }
    }
    fn signing(&self) -> SigningKey {
        SigningKey::load(&self.path).unwrap()
    }
    fn public(&self) -> PublicKey {
        PublicKey::load(&tracegate_audit::public_key_path(&self.path)).unwrap()
    }
}

fn opts(every: u64) -> PgOptions {
    PgOptions { checkpoint_every_records: every, checkpoint_interval: Duration::from_secs(3600), max_batch: 256 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_appending_at_once_make_one_chain_that_verifies() {
    let Some(db) = TestDb::create().await else { return };
    let keys = Keys::new();
    let a = Arc::new(PgAuditLog::open(db.pool().await, opts(100), keys.signing()).await.unwrap());
    let b = Arc::new(PgAuditLog::open(db.pool().await, opts(100), keys.signing()).await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let log = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..20 {
                seqs.push(log.append(&entry(t * 100 + i, "alice", Decision::Allow)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=640).collect::<Vec<_>>(), "every record got its own seq, none skipped");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();

    let src = AuditSource::Postgres(db.pool().await);
    let r = src.verify(&[keys.public()]).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.records, r.first_seq, r.last_seq), (640, Some(1), Some(640)));
    assert_eq!(r.last_signed_seq, Some(640), "shutdown signs the head");
    assert!(r.checkpoints >= 2, "checkpoints every 100 records, from both replicas");
    // No fork: each seq once, each prev_hash used once.
    let pool = db.raw_pool().await;
    let prevs: Vec<String> = sqlx::query_scalar("SELECT prev_hash FROM audit_records").fetch_all(&pool).await.unwrap();
    assert_eq!(prevs.iter().collect::<BTreeSet<_>>().len(), 640);
}

/// The one-statement append is taken only while the head is where this replica left it; once
/// the other replica has appended, the stale head matches nothing and the batch goes through
/// the locked transaction, after the other's records. The chain stays one, with no record lost.
#[tokio::test]
async fn a_replica_whose_head_is_stale_appends_after_the_other_and_never_forks() {
    use tracegate_audit::AppendPaths;
    let Some(db) = TestDb::create().await else { return };
    let keys = Keys::new();
    let a = PgAuditLog::open(db.pool().await, opts(1000), keys.signing()).await.unwrap();
    let b = PgAuditLog::open(db.pool().await, opts(1000), keys.signing()).await.unwrap();
    let paths = |l: &PgAuditLog| l.append_paths();
    let at = |one_statement, locked, conflicts| AppendPaths { one_statement, locked, conflicts };
    // Alone: one statement per append.
    for i in 1..=3 {
        assert_eq!(a.append(&entry(i, "alice", Decision::Allow)).await.unwrap().seq, i);
    }
    assert_eq!(paths(&a), at(3, 0, 0));
    // b opened at seq 0: its head is stale, so its statement writes nothing and it locks and
    // goes in after a's three.
    assert_eq!(b.append(&entry(4, "bob", Decision::Allow)).await.unwrap().seq, 4);
    assert_eq!(paths(&b), at(0, 1, 1));
    // Now a's head is stale: a conflict, then locked while it is contended; the locked batch
    // that finds the head where a left it lets the next go back to one statement.
    for i in 5..=7 {
        assert_eq!(a.append(&entry(i, "alice", Decision::Allow)).await.unwrap().seq, i);
    }
    assert_eq!(paths(&a), at(4, 2, 1), "conflict at 5 (locked), 6 locked and found a's head, 7 one statement");
    // Strict alternation: every append finds the head moved by the other; b stays on the lock
    // without trying the statement, a tries once more and joins it.
    for i in 8..=13 {
        let log = if i % 2 == 0 { &b } else { &a };
        assert_eq!(log.append(&entry(i, "carol", Decision::Allow)).await.unwrap().seq, i);
    }
    assert_eq!(paths(&a), at(4, 5, 2));
    assert_eq!(paths(&b), at(0, 4, 1));
    // a alone again: one locked batch finds its own head, then one statement.
    for i in 14..=15 {
        assert_eq!(a.append(&entry(i, "alice", Decision::Allow)).await.unwrap().seq, i);
    }
    assert_eq!(paths(&a), at(5, 6, 2));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let r = AuditSource::Postgres(db.pool().await).verify(&[keys.public()]).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.records, r.first_seq, r.last_seq), (15, Some(1), Some(15)));
    let pool = db.raw_pool().await;
    let order: Vec<String> = sqlx::query_scalar("SELECT request_id FROM audit_records ORDER BY seq").fetch_all(&pool).await.unwrap();
    assert_eq!(order, (1..=15).map(|i| format!("req-{i}")).collect::<Vec<_>>(), "each record at the seq its append returned");
}

#[tokio::test]
async fn tampered_deleted_and_forged_rows_are_found_by_verify() {
    let Some(db) = TestDb::create().await else { return };
    let keys = Keys::new();
    let log = PgAuditLog::open(db.pool().await, opts(4), keys.signing()).await.unwrap();
    for i in 0..10 {
        log.append(&entry(i, "alice", Decision::Allow)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    let pool = db.raw_pool().await;
    let src = AuditSource::Postgres(pool.clone());
    assert!(src.verify(&[keys.public()]).await.unwrap().ok());

    // An edited decision: the record no longer hashes to its hash.
    sqlx::query("UPDATE audit_records SET line = replace(line, '\"decision\":\"allow\"', '\"decision\":\"deny\"') WHERE seq = 5")
        .execute(&pool)
        .await
        .unwrap();
    let r = src.verify(&[keys.public()]).await.unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!((r.problems[0].kind, r.problems[0].seq, r.problems[0].file), (ProblemKind::HashMismatch, Some(5), "audit_records"));
    assert_eq!(r.last_seq, Some(4), "intact up to the record before");

    // Columns copied for the `GET /v1/audit` filters that no longer say what the hashed line
    // says: the chain is intact, yet verify names the row and the column.
    let db3 = TestDb::create().await.unwrap();
    let log = PgAuditLog::open(db3.pool().await, opts(4), keys.signing()).await.unwrap();
    for i in 0..10 {
        log.append(&entry(i, "alice", Decision::Allow)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    let pool3 = db3.raw_pool().await;
    let src3 = AuditSource::Postgres(pool3.clone());
    assert!(src3.verify(&[keys.public()]).await.unwrap().ok(), "columns as written match their lines");
    for (seq, edit, column) in [
        (3, "UPDATE audit_records SET subject = 'mallory' WHERE seq = 3", "subject"),
        (6, "UPDATE audit_records SET trace_ids = '{}' WHERE seq = 6", "trace_ids"),
        (8, "UPDATE audit_records SET decision = 'deny' WHERE seq = 8", "decision"),
        (9, "UPDATE audit_records SET time = time - interval '1 day' WHERE seq = 9", "time"),
    ] {
        sqlx::query(edit).execute(&pool3).await.unwrap();
        let r = src3.verify(&[keys.public()]).await.unwrap();
        let found = r.problems.iter().find(|p| p.seq == Some(seq)).unwrap_or_else(|| panic!("seq {seq} not reported: {:?}", r.problems));
        assert_eq!(found.kind, ProblemKind::ColumnMismatch, "{found:?}");
        assert!(found.detail.contains(column), "{found:?}");
        assert_eq!(r.last_seq, Some(10), "the chain itself is intact");
    }

    // Put it back, then delete a record: a gap.
    let db2 = TestDb::create().await.unwrap();
    let log = PgAuditLog::open(db2.pool().await, opts(4), keys.signing()).await.unwrap();
    for i in 0..10 {
        log.append(&entry(i, "alice", Decision::Allow)).await.unwrap();
    }
    log.shutdown().await.unwrap();
    let pool2 = db2.raw_pool().await;
    sqlx::query("DELETE FROM audit_records WHERE seq = 7").execute(&pool2).await.unwrap();
    let src2 = AuditSource::Postgres(pool2.clone());
    let r = src2.verify(&[keys.public()]).await.unwrap();
    assert_eq!(r.problems[0].kind, ProblemKind::SeqGap, "{:?}", r.problems);
    // Cutting the tail below a signed checkpoint is found too.
    sqlx::query("DELETE FROM audit_records WHERE seq >= 7").execute(&pool2).await.unwrap();
    let r = src2.verify(&[keys.public()]).await.unwrap();
    assert_eq!(r.problems[0].kind, ProblemKind::Truncated, "{:?}", r.problems);
    // A checkpoint signed by someone else.
    let other = Keys::new();
    let r = src2.verify(&[other.public()]).await.unwrap();
    assert!(r.problems.iter().any(|p| p.kind == ProblemKind::CheckpointUnknownKey), "{:?}", r.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_refuses_appends_and_the_trail_recovers_without_reopening() {
    let Some(db) = TestDb::create().await else { return };
    let keys = Keys::new();
    let cfg = tracegate_state::StateConfig { acquire_timeout: Some("2s".into()), ..db.config() };
    let pool = tracegate_state::open(&cfg).await.unwrap();
    let trail = AuditTrail::Postgres(PgAuditLog::open(pool, opts(1000), keys.signing()).await.unwrap());
    trail.append(&entry(1, "alice", Decision::Allow)).await.unwrap();
    assert!(trail.health().await.is_ok());

    // PostgreSQL goes away for this database: new connections refused, open ones killed.
    db.allow_connections(false).await;
    db.terminate_connections().await;
    let err = trail.append(&entry(2, "alice", Decision::Allow)).await.unwrap_err();
    assert!(matches!(err, AuditError::Database(_)), "{err}");
    let why = trail.health().await.unwrap_err();
    assert!(!why.is_empty());

    // It comes back: the same handle works again, and the refused record left no trace.
    db.allow_connections(true).await;
    trail.health().await.unwrap();
    let s = trail.append(&entry(3, "alice", Decision::Allow)).await.unwrap();
    assert_eq!(s.seq, 2, "the refused record did not take a seq");
    trail.shutdown().await.unwrap();
    let r = trail.source().verify(&[keys.public()]).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.records, 2);
    let q = AuditQuery { request_id: Some("req-2".into()), ..AuditQuery::default() };
    assert!(trail.source().query(&q).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_same_entries_give_the_same_chain_queries_and_export_on_both_backends() {
    let Some(db) = TestDb::create().await else { return };
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let file = AuditLog::open(
        LogOptions { dir: dir.path().join("audit"), checkpoint_every_records: 5, checkpoint_interval: Duration::from_secs(3600), max_batch: 64, sync_threads: 1, flush_delay: Duration::ZERO, journal: true },
        keys.signing(),
    )
    .unwrap();
    let pg = PgAuditLog::open(db.pool().await, opts(5), keys.signing()).await.unwrap();
    let t0 = Timestamp::parse("2026-11-01T10:00:00Z").unwrap();
    for i in 0..30u64 {
        let time = Timestamp::from_system(t0.system() + Duration::from_secs(i * 60));
        let (subject, decision) = match i % 3 {
            0 => ("alice", Decision::Allow),
            1 => ("bob", Decision::Deny),
            _ => ("carol", Decision::Error),
        };
        let mut e = entry_at(i, subject, decision, time);
        if i % 7 == 0 {
            e = Entry::approval(format!("req-{i}"), format!("ar-{i}"), Decision::Pending, serde_json::json!({"type": "created"}));
            e.time = time;
        }
        let a = file.append(&e).await.unwrap();
        let b = pg.append(&e).await.unwrap();
        assert_eq!(a, b, "same seq and hash on both backends");
    }
    file.shutdown().await.unwrap();
    pg.shutdown().await.unwrap();
    let (fs, ps) = (AuditSource::Dir(dir.path().join("audit")), AuditSource::Postgres(db.pool().await));
    let at = |m: u64| Some(Timestamp::from_system(t0.system() + Duration::from_secs(m * 60)));
    let queries = [
        AuditQuery::default(),
        AuditQuery { subject: Some("bob".into()), ..AuditQuery::default() },
        AuditQuery { decision: Some(Decision::Error), limit: Some(3), ..AuditQuery::default() },
        AuditQuery { trace_id: Some("t1".into()), since: at(5), until: at(20), ..AuditQuery::default() },
        AuditQuery { kind: Some(Kind::Approval), ..AuditQuery::default() },
        AuditQuery { request_id: Some("req-8".into()), ..AuditQuery::default() },
        AuditQuery { since: at(29), ..AuditQuery::default() },
        AuditQuery { until: at(0), ..AuditQuery::default() },
    ];
    for q in &queries {
        assert_eq!(fs.query(q).await.unwrap(), ps.query(q).await.unwrap(), "query {q:?}");
        let (mut x, mut y) = (Vec::new(), Vec::new());
        fs.export(q, &mut x).await.unwrap();
        ps.export(q, &mut y).await.unwrap();
        assert_eq!(String::from_utf8(x).unwrap(), String::from_utf8(y).unwrap(), "export {q:?}");
    }
    let (rf, rp) = (fs.verify(&[keys.public()]).await.unwrap(), ps.verify(&[keys.public()]).await.unwrap());
    assert!(rf.ok() && rp.ok());
    assert_eq!((rf.records, rf.head_hash), (rp.records, rp.head_hash));
}

#[tokio::test]
async fn the_policy_archive_in_postgresql_detects_edits() {
    let Some(db) = TestDb::create().await else { return };
    let pool = db.pool().await;
    let src = AuditSource::Postgres(pool.clone());
    let v = src.put_policy("x = 1\n").await.unwrap();
    assert_eq!(src.put_policy("x = 1\n").await.unwrap(), v, "idempotent");
    assert_eq!(src.policy(&v).await.unwrap(), "x = 1\n");
    assert_eq!(tracegate_audit::pg::list_policies(&pool).await.unwrap(), vec![v.clone()]);
    sqlx::query("UPDATE audit_policies SET text = 'x = 2\n'").execute(&pool).await.unwrap();
    assert!(matches!(src.policy(&v).await, Err(AuditError::PolicyTampered(_))));
    assert!(matches!(src.put_policy("x = 1\n").await, Err(AuditError::PolicyTampered(_))));
    assert!(matches!(src.policy(&tracegate_core::PolicyVersion::of(b"nope")).await, Err(AuditError::PolicyNotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_exports_anchors_and_the_rest_still_verifies_while_another_replica_appends() {
    let Some(db) = TestDb::create().await else { return };
    let keys = Keys::new();
    let (a, b) = (
        PgAuditLog::open(db.pool().await, opts(4), keys.signing()).await.unwrap(),
        Arc::new(PgAuditLog::open(db.pool().await, opts(4), keys.signing()).await.unwrap()),
    );
    let old = Timestamp::parse("2020-01-01T00:00:00Z").unwrap();
    for i in 0..12 {
        a.append(&entry_at(i, "alice", Decision::Allow, old)).await.unwrap();
    }
    for i in 12..15 {
        a.append(&entry(i, "bob", Decision::Allow)).await.unwrap();
    }
    // Replica B keeps appending while A prunes.
    let appender = {
        let b = b.clone();
        tokio::spawn(async move {
            for i in 100..140 {
                b.append(&entry(i, "carol", Decision::Deny)).await.unwrap();
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("pruned.jsonl");
    let cut = std::time::SystemTime::now() - Duration::from_secs(86400);
    let report = a.prune(cut, export.clone()).await.unwrap();
    appender.await.unwrap();
    assert_eq!((report.pruned, report.first_seq), (12, Some(13)));
    let exported = std::fs::read_to_string(&export).unwrap();
    assert_eq!(exported.lines().count(), 12);
    assert!(exported.contains("alice") && !exported.contains("bob"));
    let anchor = report.anchor.unwrap().anchor.unwrap();
    assert_eq!(anchor.export_sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(exported.as_bytes())));

    // What remains verifies from the anchor; the export verifies as the chain's first segment.
    let pool = db.raw_pool().await;
    let src = AuditSource::Postgres(pool.clone());
    let r = src.verify(&[keys.public()]).await.unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.first_seq, Some(13));
    assert_eq!(r.records, 3 + 40 + 1, "bob's, carol's, and the prune's own record");
    let remaining: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE subject = 'alice'").fetch_one(&pool).await.unwrap();
    assert_eq!(remaining, 0);
    // Nothing is old enough now: a second prune removes nothing and writes no file.
    let again = a.prune(cut, dir.path().join("again.jsonl")).await.unwrap();
    assert_eq!(again.pruned, 0);
    assert!(!dir.path().join("again.jsonl").exists());
    // Deleting a kept record is still found (the anchor does not excuse later gaps).
    sqlx::query("DELETE FROM audit_records WHERE seq = 20").execute(&pool).await.unwrap();
    let r = src.verify(&[keys.public()]).await.unwrap();
    assert!(r.problems.iter().any(|p| p.kind == ProblemKind::SeqGap), "{:?}", r.problems);
}
