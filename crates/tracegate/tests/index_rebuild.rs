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

use common::peers::{bucket_and_state_config, cli, s3_env, Moto, Served};
use serde_json::{json, Value};
use tracegate_identity::dev::DevIssuer;
use tracegate_server::GatewayConfig;
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

    async fn sql(&self, statement: &str) {
        let pool = self.db.raw_pool().await;
        sqlx::raw_sql(statement).execute(&pool).await.unwrap();
        pool.close().await;
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
    tracegate::commands::quickstart::lay_out(dir).unwrap();
    let cfg_path = dir.join("tracegate.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    let text = match store_url {
        Some(url) => bucket_and_state_config(&text, url, &db.url, ""),
        None => format!("{text}\n[state]\nurl = {:?}\n", db.url),
    };
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = GatewayConfig::load(&cfg_path).unwrap();
    let issuer = DevIssuer::load(cfg.identity.dev.as_ref().unwrap(), &cfg.base_dir).unwrap();
    let erin = issuer
        .mint(
            "erin",
            &["eng".to_owned()],
            Default::default(),
            Duration::from_secs(600),
        )
        .unwrap();
    let (p, e, logs) = (cfg_path.clone(), env.clone(), dir.to_owned());
    let gw = tokio::task::spawn_blocking(move || Served::start(&p, &e, &logs))
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    Case {
        db,
        gw,
        config: cfg_path.to_str().unwrap().to_owned(),
        env,
        erin,
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
    let lp = logs.path().to_owned();
    let embedded = tokio::task::spawn_blocking(move || Served::start(&memory, &[], &lp)).await.unwrap();
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
