//! The PostgreSQL metadata index against the in-memory one: on generated metadata, callers and
//! queries (several row scopes: tenant, tenant + project, max_age, none; masked and unmasked
//! filters — those SQL can match exactly pushed into it, and pseudonyms and labels, which
//! match stored values other than themselves, left to the core; with and without visible start
//! times), search over the SQL scope's rows must give exactly what search over every trace gives. Also: upsert replaces, rebuild resumes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tracegate_core::mask::MaskKey;
use tracegate_core::pipeline::{search, search_scope, SearchQuery};
use tracegate_core::{AuthMethod, Policy, Principal, TraceId, TraceMeta};
use tracegate_state::testing::TestDb;
use tracegate_store::{ObjectTraceStore, PgTraceIndex, TraceIndex, TraceStore, WriteCondition};

const POLICY: &str = r#"
description = "index differential"

[roles.scoped]
groups = ["scoped"]
actions = ["search"]
[roles.scoped.fields]
allow = ["$"]
[roles.scoped.rows]
match = { tenant = "tenant" }
max_age = "30d"
max_count = 50
[roles.scoped.masking]
secrets = "off"
pii = "off"
keys = "off"

[roles.project]
groups = ["proj"]
actions = ["search"]
[roles.project.fields]
allow = ["$.metadata.tenant", "$.metadata.project", "$.metadata.agent", "$.metadata.user"]
[roles.project.rows]
match = { tenant = "tenant", project = "project" }
max_count = 20
[roles.project.masking]
secrets = "off"
pii = "off"
keys = "off"

[roles.masked]
groups = ["masked"]
actions = ["search"]
[roles.masked.fields]
allow = ["$"]
[roles.masked.rows]
match = { tenant = "tenant" }
max_count = 30
[roles.masked.masking]
pii = "hash"

[roles.all]
groups = ["all"]
actions = ["search"]
[roles.all.fields]
allow = ["$"]
[roles.all.rows]
max_count = 100
[roles.all.masking]
secrets = "off"
pii = "off"
keys = "off"
"#;

/// A small deterministic generator (xorshift): the same data every run, so a failure reproduces.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
}

const TENANTS: &[Option<&str>] = &[Some("acme"), Some("globex"), Some("initech"), None];
const PROJECTS: &[Option<&str>] = &[Some("p1"), Some("p2"), None];
const AGENTS: &[Option<&str>] = &[Some("triage"), Some("coder"), None];
const USERS: &[Option<&str>] = &[Some("u1"), Some("bob@example.com"), Some("carol@example.com"), None];

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn metas(g: &mut Gen, n: usize) -> Vec<TraceMeta> {
    (0..n)
        .map(|i| {
            let mut fields = BTreeMap::new();
            for (k, xs) in [("tenant", TENANTS), ("project", PROJECTS), ("agent", AGENTS), ("user", USERS)] {
                if let Some(v) = g.pick(xs) {
                    fields.insert(k.to_owned(), (*v).to_owned());
                }
            }
            let started_at = match g.next() % 10 {
                0 => None,
                // In the future (clock skew): fresh for max_age.
                1 => Some(now() + Duration::from_secs(g.next() % 3600)),
                // Ties on the same second, and sub-second precision.
                2 => Some(now() - Duration::from_secs(86_400)),
                _ => Some(now() - Duration::from_nanos(g.next() % (60 * 86_400 * 1_000_000_000))),
            };
            TraceMeta { trace_id: TraceId::parse(&format!("trace-{i:05}")).unwrap(), fields, started_at }
        })
        .collect()
}

fn caller(g: &mut Gen) -> Principal {
    let groups = vec![(*g.pick(&["scoped", "proj", "masked", "all"])).to_owned()];
    let mut claims = BTreeMap::new();
    if let Some(t) = g.pick(&[Some("acme"), Some("globex"), None]) {
        claims.insert("tenant".to_owned(), (*t).to_owned());
    }
    if let Some(p) = g.pick(&[Some("p1"), Some("p2"), None]) {
        claims.insert("project".to_owned(), (*p).to_owned());
    }
    Principal { subject: "caller".into(), issuer: "test".into(), groups, claims, auth_method: AuthMethod::Dev, person: None, credential: Default::default() }
}

/// What the `masked` role shows for `user` = `value`: a pseudonym for an email.
fn shown_by_masked(policy: &Policy, value: &str, key: &MaskKey) -> String {
    let mut obj = serde_json::json!({ "user": value });
    policy.role("masked").unwrap().masking.apply(&mut obj, key);
    obj["user"].as_str().unwrap().to_owned()
}

fn query(g: &mut Gen, who: &Principal, policy: &Policy, key: &MaskKey) -> SearchQuery {
    let mut q = SearchQuery::default();
    let opt = |g: &mut Gen, xs: &[Option<&str>]| if g.next().is_multiple_of(3) { g.pick(xs).map(str::to_owned) } else { None };
    q.tenant = if g.next().is_multiple_of(4) { who.claims.get("tenant").cloned() } else { opt(g, TENANTS) };
    q.project = opt(g, PROJECTS);
    q.agent = opt(g, AGENTS);
    q.user = match g.next() % 6 {
        // What the masked role shows for a stored email (its pseudonym), and a redaction label:
        // filters that must match stored values other than themselves, so never go into SQL.
        0 => Some(shown_by_masked(policy, "bob@example.com", key)),
        1 => Some("[REDACTED:EMAIL]".to_owned()),
        _ => opt(g, USERS),
    };
    if g.next().is_multiple_of(3) {
        q.since = Some(now() - Duration::from_secs(g.next() % (40 * 86_400)));
    }
    if g.next().is_multiple_of(4) {
        q.until = Some(now() - Duration::from_secs(g.next() % (20 * 86_400)));
    }
    if g.next().is_multiple_of(2) {
        q.limit = Some(1 + (g.next() % 60) as u32);
    }
    q
}

fn outcome(r: Result<tracegate_core::pipeline::SearchResult, tracegate_core::Denial>) -> String {
    match r {
        Ok(r) => serde_json::to_string(&r).unwrap(),
        Err(d) => format!("deny {} {:?} {}", d.code.as_str(), d.rules, d.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_scoped_search_equals_in_memory_search() {
    let Some(db) = TestDb::create().await else { return };
    let pg = PgTraceIndex::new(db.pool().await);
    let policy = Policy::parse("differential", POLICY).unwrap();
    let key = MaskKey(vec![7; 32]);
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let data = metas(&mut g, 600);
    let mem = TraceIndex::default();
    for chunk in data.chunks(97) {
        pg.upsert_batch(chunk).await.unwrap();
    }
    for m in &data {
        mem.upsert(m.clone());
    }
    assert_eq!(pg.count().await.unwrap(), 600);
    let (mut allowed, mut nonempty, mut masked_filters, mut pushed_under_masking) = (0, 0, 0, 0);
    for case in 0..400 {
        let who = caller(&mut g);
        let q = query(&mut g, &who, &policy, &key);
        let expected = mem.with_all(|all| search(&policy, &who, &q, all, now(), &key));
        let got = match search_scope(&policy, &who, &q, now(), &key) {
            Ok(scope) => {
                if scope.limit.is_none() {
                    masked_filters += 1;
                }
                let filtered = [&q.tenant, &q.project, &q.agent, &q.user].iter().any(|f| f.is_some());
                if scope.limit.is_some() && filtered && who.groups == ["masked"] {
                    pushed_under_masking += 1;
                }
                let rows = pg.candidates(&scope).await.unwrap();
                if let Some(l) = scope.limit {
                    assert!(rows.len() <= l as usize, "the scope's limit bounds what SQL returns");
                }
                search(&policy, &who, &q, rows.iter(), now(), &key)
            }
            Err(d) => Err(d),
        };
        if let Ok(r) = &expected {
            allowed += 1;
            nonempty += usize::from(!r.traces.is_empty());
        }
        assert_eq!(outcome(got), outcome(expected), "case {case}: {who:?} {q:?}");
    }
    // The generator must exercise the interesting paths, or the equality above proves little.
    assert!(
        allowed > 100 && nonempty > 50 && masked_filters > 5 && pushed_under_masking > 5,
        "allowed {allowed}, non-empty {nonempty}, masked {masked_filters}, pushed down under masking {pushed_under_masking}"
    );
}

#[tokio::test]
async fn upsert_replaces_and_rebuild_resumes_after_the_last_committed_key() {
    let Some(db) = TestDb::create().await else { return };
    let pg = PgTraceIndex::new(db.pool().await);
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectTraceStore::local(dir.path()).unwrap();
    for i in 0..1200 {
        let doc = serde_json::json!({"metadata": {"tenant": if i % 2 == 0 { "acme" } else { "globex" }, "started_at": "2026-11-01T10:00:00Z"}});
        let id = TraceId::parse(&format!("t{i:05}")).unwrap();
        store.put(&id, Bytes::from(serde_json::to_vec(&doc).unwrap()), &WriteCondition::Any).await.unwrap();
    }
    // An interrupted run: pretend the first 500 (one batch) were committed.
    let pool = db.raw_pool().await;
    tracegate_state::sqlx::query("INSERT INTO trace_index_rebuild (id, last_key, indexed) VALUES (1, 't00499', 500)")
        .execute(&pool)
        .await
        .unwrap();
    let mut progress = Vec::new();
    let n = pg.rebuild(&store, false, |p| progress.push((p.indexed, p.last.to_string(), p.resumed))).await.unwrap();
    assert_eq!((n.indexed, n.removed, n.resumed), (1200, 0, true));
    let want = vec![(1000, "t00999".to_owned(), true), (1200, "t01199".to_owned(), true)];
    assert_eq!(progress, want, "resumed after t00499 in batches of 500");
    assert_eq!(pg.count().await.unwrap(), 700, "only the keys after the resume point were read");
    let n = pg.rebuild(&store, true, |_| {}).await.unwrap();
    assert_eq!((n.indexed, n.resumed), (1200, false));
    assert_eq!(pg.count().await.unwrap(), 1200);
    let id = TraceId::parse("t00001").unwrap();
    assert_eq!(pg.get(&id).await.unwrap().unwrap().field("tenant"), Some("globex"));
    let mut m = pg.get(&id).await.unwrap().unwrap();
    m.fields.insert("tenant".into(), "acme".into());
    pg.upsert_batch(&[m.clone()]).await.unwrap();
    assert_eq!(pg.get(&id).await.unwrap(), Some(m));
}

/// The lookup every read makes runs on a kept connection; when the database dropped that
/// connection since (a restart), the lookup runs once more on a checked one instead of failing
/// the read, and a database that is really gone still fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_on_a_connection_the_database_dropped_runs_again_on_a_checked_one() {
    let Some(db) = TestDb::create().await else { return };
    let pg = PgTraceIndex::new(db.pool().await);
    let mut g = Gen(7);
    let data = metas(&mut g, 3);
    pg.upsert_batch(&data).await.unwrap();
    let id = data[0].trace_id.clone();
    for _ in 0..3 {
        assert_eq!(pg.get(&id).await.unwrap().map(|m| m.trace_id), Some(id.clone()));
    }
    // Every backend of this database killed: the kept connection is dead.
    db.terminate_connections().await;
    assert_eq!(pg.get(&id).await.unwrap().map(|m| m.trace_id), Some(id.clone()), "answered on a fresh connection");
    assert_eq!(pg.get(&id).await.unwrap().map(|m| m.trace_id), Some(id.clone()));
    // Gone for real: no new connections. The retry cannot reach it either, so the read fails.
    db.allow_connections(false).await;
    db.terminate_connections().await;
    assert!(pg.get(&id).await.is_err(), "fails closed");
    db.allow_connections(true).await;
    assert_eq!(pg.get(&id).await.unwrap().map(|m| m.trace_id), Some(id));
}
