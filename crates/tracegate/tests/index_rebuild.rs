//! `tracegate index rebuild`, run as the CLI, against a directory store and against a real
//! `moto` bucket, with a running gateway (`tracegate serve`) answering searches from the shared
//! PostgreSQL index:
//! - traces put in the store behind the gateway's back are found once rebuilt;
//! - the index rows deleted, searches find nothing; rebuilt, every search answers exactly as
//!   before the deletion;
//! - a rebuild that fails part-way (a trigger refusing one row of the second batch) leaves its
//!   committed batches and resume point; run again, it resumes after the last committed key
//!   (its first progress line is the second batch, not the first) and ends equal;
//! - `--fresh` starts over and ends equal too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::peers::{cli, http, lay_out_scaled, s3_env, serve, Moto, Served};
use serde_json::{json, Value};
use tracegate_state::sqlx;
use tracegate_state::testing::TestDb;

const TRACES: usize = 1100;
const BUCKET: &str = "tracegate-rebuild";

fn trace(i: usize) -> (String, Vec<u8>) {
    let tenant = ["acme", "globex", "initech"][i % 3];
    let doc = json!({
        "metadata": {
            "tenant": tenant,
            "agent": format!("a{}", i % 7),
            "user": format!("u{}", i % 11),
            "started_at": format!("2026-{:02}-{:02}T{:02}:00:00Z", 1 + i % 11, 1 + i % 27, i % 24),
        },
        "final_output": format!("answer {i}"),
    });
    (format!("t{i:05}"), serde_json::to_vec(&doc).unwrap())
}

const QUERIES: [&str; 7] = [
    "limit=100",
    "tenant=acme&limit=100",
    "agent=a3",
    "user=u5&limit=50",
    "tenant=globex&agent=a2",
    "since=2026-03-01T00:00:00Z&until=2026-05-01T00:00:00Z",
    "tenant=initech&since=2026-10-01T00:00:00Z",
];

/// Every query of [`QUERIES`] through the gateway at `base`, as `token`.
async fn search_all(http: &reqwest::Client, base: &str, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for q in QUERIES {
        let r = http.get(format!("{base}/v1/traces?{q}")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{q}");
        out.push(r.json().await.unwrap());
    }
    out
}

struct Case {
    db: TestDb,
    gw: Served,
    config: String,
    env: Vec<(&'static str, String)>,
    erin: String,
    /// Support, tenant `acme`: row-scoped, so every read of theirs is decided on the index.
    sam: String,
    http: reqwest::Client,
}

impl Case {
    async fn searches(&self) -> Vec<Value> {
        search_all(&self.http, &self.gw.url, &self.erin).await
    }

    fn rebuild(&self, extra: &[&str]) -> (bool, String) {
        let mut args = vec!["index", "rebuild", "--config", &self.config];
        args.extend_from_slice(extra);
        cli(&args, &self.env)
    }

    /// Status and error code of a read of `id` as `token`.
    async fn read(&self, token: &str, id: &str) -> (u16, String) {
        let r = self.http.get(format!("{}/v1/traces/{id}", self.gw.url)).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
    }

    async fn sql(&self, statement: &str) {
        let pool = self.db.raw_pool().await;
        sqlx::raw_sql(statement).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `tracegate index rebuild` as a child whose stderr (the progress lines) is piped.
    fn spawn_rebuild(&self, extra: &[&str]) -> std::process::Child {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tracegate"));
        cmd.args(["index", "rebuild", "--config", &self.config]).args(extra);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Every row of the index (all but when it was written), in key order.
    async fn dump(&self) -> Vec<String> {
        let pool = self.db.raw_pool().await;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT (to_jsonb(t) - 'indexed_at')::text FROM trace_index t ORDER BY trace_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    }

    async fn rows(&self) -> i64 {
        let pool = self.db.raw_pool().await;
        let n = sqlx::query_scalar("SELECT count(*) FROM trace_index")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

/// Lays out a gateway over `db` whose `[store]` is `store_url` (`None`: the quickstart's local
/// directory), seeds the store with `seed`, and serves it.
async fn start(
    db: TestDb,
    store_url: Option<&str>,
    env: Vec<(&'static str, String)>,
    dir: &Path,
) -> Case {
    let (cfg_path, issuer) = lay_out_scaled(dir, store_url, &db.url);
    let erin = common::mint(&issuer, "erin", &["eng"], &[], Duration::from_secs(600));
    let sam = common::mint(&issuer, "sam", &["support"], &[("tenant", "acme")], Duration::from_secs(600));
    let gw = serve(&cfg_path, &env, dir).await;
    let http = http();
    Case {
        db,
        gw,
        config: cfg_path.to_str().unwrap().to_owned(),
        env,
        erin,
        sam,
        http,
    }
}

/// The whole story, the same for every backend. `keys` is every trace id of the store.
async fn rebuild_story(case: &Case, mut keys: Vec<String>) {
    // Put in the store behind the gateway's back: not searchable until rebuilt.
    assert_eq!(case.rows().await, 0);
    let (ok, said) = case.rebuild(&[]);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("metadata index rebuilt: {} traces", keys.len())),
        "{said}"
    );
    assert!(
        said.contains("indexed 500 traces, through"),
        "progress after each batch: {said}"
    );
    let before = case.searches().await;
    assert!(
        before
            .iter()
            .all(|r| !r["traces"].as_array().unwrap().is_empty()),
        "every query finds something: {before:?}"
    );

    // The rows gone: nothing is found.
    case.sql("DELETE FROM trace_index").await;
    let emptied = case.searches().await;
    assert!(
        emptied
            .iter()
            .all(|r| r["traces"].as_array().unwrap().is_empty()),
        "{emptied:?}"
    );
    // Reads: an engineer's role admits every trace, so the read is decided without the index
    // and the store says the trace exists; support's row scope needs the trace's metadata,
    // which the index no longer has. A trace in neither is a 404 for both.
    let acme = &keys.iter().find(|k| k.as_str() == "t00000").cloned().unwrap();
    assert_eq!(case.read(&case.erin, acme).await.0, 200);
    assert_eq!(case.read(&case.sam, acme).await, (404, "not_found".to_owned()));
    assert_eq!(case.read(&case.erin, "t99999").await, (404, "not_found".to_owned()));
    assert_eq!(case.read(&case.sam, "t99999").await, (404, "not_found".to_owned()));

    // A rebuild that fails in its second batch: the first batch stays committed, and so does
    // where it got to.
    keys.sort_by_key(|k| format!("{k}.json"));
    let poison = &keys[700];
    case.sql(&format!(
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           IF NEW.trace_id = '{poison}' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER refuse_one BEFORE INSERT OR UPDATE ON trace_index FOR EACH ROW EXECUTE FUNCTION refuse_one();"
    ))
    .await;
    let (ok, said) = case.rebuild(&[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("indexed 500 traces, through") && !said.contains("indexed 1000"),
        "{said}"
    );
    assert_eq!(case.rows().await, 500);
    case.sql("DROP TRIGGER refuse_one ON trace_index; DROP FUNCTION refuse_one();")
        .await;

    // Run again: it resumes after the last committed key, and ends where a full rebuild would.
    let (ok, said) = case.rebuild(&[]);
    assert!(ok, "{said}");
    let first = said
        .lines()
        .find(|l| l.starts_with("indexed "))
        .unwrap_or("");
    assert!(
        first.starts_with("indexed 1000 traces (resumed), through"),
        "resumed after the first batch: {said}"
    );
    assert!(
        said.contains(&format!(
            "metadata index rebuilt: {} traces (resumed)",
            keys.len()
        )),
        "{said}"
    );
    assert_eq!(case.searches().await, before);
    assert_eq!(case.read(&case.sam, acme).await.0, 200, "indexed again, support reads its tenant's trace");

    // `--fresh` starts over; a row of a trace the store no longer has is removed.
    case.sql(
        "INSERT INTO trace_index (trace_id, tenant, started_ns) VALUES ('gone-trace', 'acme', 1)",
    )
    .await;
    let (ok, said) = case.rebuild(&["--fresh"]);
    assert!(ok, "{said}");
    assert!(
        said.contains("indexed 500 traces, through")
            && said.contains("1 rows of traces no longer in the store removed"),
        "{said}"
    );
    assert_eq!(case.rows().await, keys.len() as i64);
    assert_eq!(case.searches().await, before);

    // Killed (SIGKILL) in the middle of its second batch, then run again: the same index as
    // the uninterrupted `--fresh` rebuild just made. An uncommitted row of the test's holds the
    // second batch at `keys[700]`, so the kill lands while that batch's transaction is open —
    // deterministically, with no timing.
    let uninterrupted = case.dump().await;
    case.sql("DELETE FROM trace_index").await;
    let pool = case.db.raw_pool().await;
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO trace_index (trace_id) VALUES ($1)")
        .bind(poison)
        .execute(&mut *hold)
        .await
        .unwrap();
    let mut child = case.spawn_rebuild(&["--fresh"]);
    let stderr = child.stderr.take().unwrap();
    let said = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut said = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            said.push_str(&line);
            said.push('\n');
            if line.starts_with("indexed 500 traces") {
                return said;
            }
        }
        panic!("the rebuild ended before its first batch: {said}");
    })
    .await
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    hold.rollback().await.unwrap();
    pool.close().await;
    assert!(!said.contains("indexed 1000"), "{said}");
    assert_eq!(case.rows().await, 500, "only the first batch was committed");
    let (ok, said) = case.rebuild(&[]);
    assert!(ok, "{said}");
    assert!(
        said.lines()
            .find(|l| l.starts_with("indexed "))
            .is_some_and(|l| l.starts_with("indexed 1000 traces (resumed)")),
        "resumed after the killed run's first batch: {said}"
    );
    assert_eq!(case.dump().await, uninterrupted, "the resumed index differs from an uninterrupted one");
    assert_eq!(case.searches().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_a_directory_store_equals_the_index_it_replaces_and_resumes() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let case = start(db, None, Vec::new(), dir.path()).await;
    let mut keys: Vec<String> = tracegate::samples::TRACES
        .iter()
        .map(|(id, _)| (*id).to_owned())
        .collect();
    for i in 0..TRACES {
        let (id, bytes) = trace(i);
        std::fs::write(dir.path().join("traces").join(format!("{id}.json")), bytes).unwrap();
        keys.push(id);
    }
    rebuild_story(&case, keys).await;

    // The same traces in the embedded in-memory index answer every search identically: the
    // SQL path, including searches whose filters match masked values (the engineer's role
    // masks, so its filters are matched by reading the scope in rounds of growing prefixes).
    let text = std::fs::read_to_string(dir.path().join("tracegate.toml")).unwrap();
    let memory = dir.path().join("memory.toml");
    std::fs::write(&memory, text.split("\n[state]").next().unwrap()).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let embedded = serve(&memory, &[], logs.path()).await;
    let sql = case.searches().await;
    let in_memory = search_all(&case.http, &embedded.url, &case.erin).await;
    assert_eq!(sql, in_memory, "PostgreSQL and in-memory searches differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_a_bucket_streams_the_listing_and_resumes() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let Some(moto) = Moto::start(BUCKET).await else {
        return;
    };
    let endpoint = format!("http://{}", moto.addr);
    // Straight into the bucket (moto takes unsigned requests), with a version kept under
    // `versions/` as the gateway keeps them: the listing must skip that folder.
    let http = reqwest::Client::new();
    let mut keys = Vec::new();
    for i in 0..TRACES {
        let (id, bytes) = trace(i);
        let r = http
            .put(format!("{endpoint}/{BUCKET}/run/{id}.json"))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        keys.push(id);
    }
    for v in 0..3 {
        let r = http
            .put(format!(
                "{endpoint}/{BUCKET}/run/versions/t0000{v}/{}.json",
                "0".repeat(64)
            ))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // Keys after the `versions/` folder in the listing are still found.
    for id in ["x-after-versions-1", "x-after-versions-2"] {
        let (_, bytes) = trace(keys.len());
        let r = http
            .put(format!("{endpoint}/{BUCKET}/run/{id}.json"))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        keys.push(id.to_owned());
    }
    let dir = tempfile::tempdir().unwrap();
    let env = s3_env(&endpoint, "rebuild-key", "rebuild-secret");
    let case = start(db, Some(&format!("s3://{BUCKET}/run")), env, dir.path()).await;
    rebuild_story(&case, keys).await;
}
