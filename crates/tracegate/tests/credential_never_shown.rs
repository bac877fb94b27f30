//! The store's credential and the database password never appear in anything a run puts out.
//!
//! One `tracegate serve` (debug logging) over a real `moto` bucket and a real PostgreSQL
//! database, given a distinctive `AWS_SECRET_ACCESS_KEY` and a state URL with a distinctive
//! password, is driven through success and failure paths: reads, writes, searches, refusals,
//! bad tokens, unknown routes, the bucket cut, the database refusing connections, and CLI
//! commands failing against both. Then every response (status, headers, body), the gateway's
//! stdout and stderr, every audit row and checkpoint, `/metrics`, and every CLI output are
//! searched for both secrets: zero hits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::peers::{cli, http, lay_out_scaled, s3_env, serve, Moto, Relay};
use serde_json::json;
use tracegate_state::testing::TestDb;

const BUCKET: &str = "tracegate-secret";

/// Everything the run put out, appended as it happens.
#[derive(Default)]
struct Transcript(String);

impl Transcript {
    async fn call(
        &mut self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> u16 {
        let mut req = http.request(method.clone(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let _ = writeln!(self.0, "{method} {url} -> {status}");
        for (k, v) in r.headers() {
            let _ = writeln!(self.0, "{k}: {}", String::from_utf8_lossy(v.as_bytes()));
        }
        let bytes = r.bytes().await.unwrap();
        let _ = writeln!(self.0, "{}\n", String::from_utf8_lossy(&bytes));
        status
    }

    fn add(&mut self, what: &str, text: &str) {
        let _ = writeln!(self.0, "--- {what}\n{text}");
    }
}

fn distinctive(label: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    format!("{label}{}", hex::encode(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_database_credentials_never_appear_in_any_output() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let Some(moto) = Moto::start(BUCKET).await else {
        return;
    };
    let relay = Relay::start(moto.addr).await;
    let secret = distinctive("TgS3cret");
    let pg_password = distinctive("TgPgPass");
    // The machine's PostgreSQL trusts loopback, so the password is not checked, but it is in the
    // URL the gateway parses, logs about and reports errors on.
    let (scheme_user, rest) = db.url.split_once('@').unwrap();
    let state_url = format!("{scheme_user}:{pg_password}@{rest}");

    let dir = tempfile::tempdir().unwrap();
    let (cfg_path, issuer) =
        lay_out_scaled(dir.path(), Some(&format!("s3://{BUCKET}/run")), &state_url);
    assert!(
        std::fs::read_to_string(&cfg_path)
            .unwrap()
            .contains(&pg_password),
        "the gateway is given the password"
    );
    let config = cfg_path.to_str().unwrap().to_owned();
    let token = |sub: &str, groups: &[&str], claims: &[(&str, &str)]| {
        common::mint(&issuer, sub, groups, claims, Duration::from_secs(600))
    };
    let mut env = s3_env(&relay.endpoint(), "AKIDTRACEGATETEST", &secret);
    env.push(("RUST_LOG", "debug".to_owned()));
    let gw = serve(&cfg_path, &env, dir.path()).await;
    let http = http();
    let mut out = Transcript::default();
    let u = |p: &str| format!("{}{p}", gw.url);
    let (writer, erin, sam, audrey) = (
        token("refund-agent", &["agents"], &[("tenant", "acme")]),
        token("erin", &["eng"], &[]),
        token("sam", &["support"], &[("tenant", "globex")]),
        token("audrey", &["audit"], &[]),
    );
    use reqwest::Method as M;
    let doc = serde_json::to_vec(&json!({"metadata": {"tenant": "acme", "agent": "leak-agent"}, "final_output": "visible-answer"})).unwrap();

    // Success paths, and the ordinary refusals.
    assert_eq!(
        out.call(
            &http,
            M::PUT,
            &u("/v1/traces/leak-1"),
            Some(&writer),
            Some(doc.clone())
        )
        .await,
        201
    );
    assert_eq!(
        out.call(&http, M::GET, &u("/v1/traces/leak-1"), Some(&erin), None)
            .await,
        200
    );
    out.call(
        &http,
        M::GET,
        &u("/v1/traces/leak-1?fields=$.final_output"),
        Some(&erin),
        None,
    )
    .await;
    assert_eq!(
        out.call(
            &http,
            M::GET,
            &u("/v1/traces?agent=leak-agent"),
            Some(&erin),
            None
        )
        .await,
        200
    );
    out.call(&http, M::GET, &u("/v1/traces/leak-1"), Some(&sam), None)
        .await;
    out.call(
        &http,
        M::GET,
        &u("/v1/traces/no-such-trace"),
        Some(&erin),
        None,
    )
    .await;
    out.call(
        &http,
        M::GET,
        &u("/v1/traces/leak-1"),
        Some("not-a-token"),
        None,
    )
    .await;
    out.call(&http, M::GET, &u("/v1/traces/leak-1"), None, None)
        .await;
    out.call(&http, M::GET, &u("/v1/nowhere"), Some(&erin), None)
        .await;
    out.call(
        &http,
        M::PUT,
        &u("/v1/traces/leak-2"),
        Some(&writer),
        Some(b"{not json".to_vec()),
    )
    .await;
    out.call(&http, M::GET, &u("/v1/whoami"), Some(&erin), None)
        .await;
    assert_eq!(
        out.call(
            &http,
            M::GET,
            &u("/v1/audit?limit=100"),
            Some(&audrey),
            None
        )
        .await,
        200
    );
    out.call(&http, M::GET, &u("/healthz"), None, None).await;

    // The bucket cut: reads and writes fail.
    relay.set_up(false);
    assert_eq!(
        out.call(&http, M::GET, &u("/v1/traces/leak-1"), Some(&erin), None)
            .await,
        503
    );
    assert_eq!(
        out.call(
            &http,
            M::PUT,
            &u("/v1/traces/leak-3"),
            Some(&writer),
            Some(doc.clone())
        )
        .await,
        503
    );
    out.call(&http, M::GET, &u("/healthz"), None, None).await;
    // The CLI against the cut bucket.
    let (ok, said) = cli(&["index", "rebuild", "--config", &config], &env);
    out.add("index rebuild, bucket cut", &said);
    assert!(!ok, "{said}");
    relay.set_up(true);

    // The database refusing connections: everything fails, and so do the CLI commands.
    db.allow_connections(false).await;
    db.terminate_connections().await;
    assert_eq!(
        out.call(&http, M::GET, &u("/v1/traces/leak-1"), Some(&erin), None)
            .await,
        503
    );
    assert_eq!(
        out.call(
            &http,
            M::PUT,
            &u("/v1/traces/leak-4"),
            Some(&writer),
            Some(doc.clone())
        )
        .await,
        503
    );
    out.call(
        &http,
        M::GET,
        &u("/v1/traces?agent=leak-agent"),
        Some(&erin),
        None,
    )
    .await;
    out.call(&http, M::GET, &u("/v1/audit?limit=10"), Some(&audrey), None)
        .await;
    assert_eq!(
        out.call(&http, M::GET, &u("/healthz"), None, None).await,
        503
    );
    for args in [
        vec!["audit", "verify", "--config", &config],
        vec!["index", "rebuild", "--config", &config],
        vec!["migrate", "--config", &config],
        vec!["migrate", "--check", "--config", &config],
    ] {
        let (ok, said) = cli(&args, &env);
        out.add(&format!("{args:?}, database refusing"), &said);
        assert!(
            !ok,
            "{args:?} succeeded with the database refusing connections: {said}"
        );
    }
    // A second gateway that cannot start because the database refuses it.
    let (ok, said) = cli(
        &["serve", "--config", &config, "--listen", "127.0.0.1:0"],
        &env,
    );
    out.add("serve, database refusing", &said);
    assert!(!ok, "{said}");
    // And the URL given on the command line, to a port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("postgres://tracegate:{pg_password}@127.0.0.1:{closed}/tracegate");
    let (ok, said) = cli(&["migrate", "--url", &nowhere], &env);
    out.add("migrate --url, nothing listening", &said);
    assert!(!ok, "{said}");
    db.allow_connections(true).await;

    // Recovered; the last outputs: metrics, the trail through the API and the CLI, the rows.
    for _ in 0..100 {
        if http
            .get(u("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        out.call(&http, M::GET, &u("/v1/traces/leak-1"), Some(&erin), None)
            .await,
        200
    );
    assert_eq!(
        out.call(&http, M::GET, &u("/metrics"), None, None).await,
        200
    );
    assert_eq!(
        out.call(
            &http,
            M::GET,
            &u("/v1/audit?limit=1000"),
            Some(&audrey),
            None
        )
        .await,
        200
    );
    for args in [
        vec!["audit", "verify", "--config", &config],
        vec!["audit", "export", "--config", &config],
        vec!["index", "rebuild", "--config", &config],
    ] {
        let (ok, said) = cli(&args, &env);
        out.add(&format!("{args:?}"), &said);
        assert!(ok, "{args:?}: {said}");
    }
    let pool = db.raw_pool().await;
    let rows: Vec<String> = tracegate_state::sqlx::query_scalar(
        "SELECT row_to_json(r)::text FROM audit_records r UNION ALL SELECT row_to_json(c)::text FROM audit_checkpoints c",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        rows.len() > 10,
        "the trail holds the run: {} rows",
        rows.len()
    );
    out.add("audit rows", &rows.join("\n"));
    pool.close().await;
    drop(gw);
    let logs = std::fs::read_to_string(dir.path().join("serve.out")).unwrap()
        + &std::fs::read_to_string(dir.path().join("serve.err")).unwrap();
    assert!(logs.contains("DEBUG"), "the gateway logged at debug level");
    out.add("gateway stdout and stderr", &logs);

    // The search covers real output: the trace, both failure codes, the CLI errors.
    let all = out.0;
    for expected in [
        "visible-answer",
        "store_unavailable",
        "audit_unavailable",
        "leak-1",
        "tracegate_http_requests_total",
    ] {
        assert!(all.contains(expected), "the transcript lacks `{expected}`");
    }
    for (name, s) in [
        ("AWS_SECRET_ACCESS_KEY", &secret),
        ("the database password", &pg_password),
    ] {
        let hits: Vec<&str> = all
            .lines()
            .filter(|l| l.contains(s.as_str()))
            .take(5)
            .collect();
        assert!(
            hits.is_empty(),
            "{name} appeared {} time(s), e.g.:\n{}",
            all.matches(s.as_str()).count(),
            hits.join("\n")
        );
    }
}
