//! One storage test suite, run against every backend: a local directory, and S3-compatible
//! buckets — a real `moto` server, and `s3s-fs`, which checks SigV4 signatures, so the signing
//! path is exercised and a wrong secret must be refused. Buckets are also tested with two store
//! instances over one bucket — two gateway replicas — racing conditional writes.
//!
//! Without `moto_server` or `s3s-fs` on the PATH that half is skipped, unless
//! `TRACEGATE_REQUIRE_PEERS` is set (as the test suite sets it), when a missing peer fails the
//! run. `scripts/test.sh` installs both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracegate_core::TraceId;
use tracegate_store::{ObjectTraceStore, StoreError, TraceStore, WriteCondition};

fn id(s: &str) -> TraceId {
    TraceId::parse(s).unwrap()
}

/// Whether the server under test makes conditional puts atomic. Real S3, moto and our local
/// lock do; `s3s-fs` 0.14 checks `If-Match`/`If-None-Match` and then writes, with no lock in
/// between (`put_object` in its `s3.rs`), so two racing writers can both win there. Every other
/// assertion holds on it.
#[derive(PartialEq)]
enum Conditional {
    Atomic,
    CheckThenWrite,
}

/// The assertions every backend must pass. `twin` is a second handle on the same storage when
/// the backend supports several writers (buckets).
async fn suite(store: &dyn TraceStore, twin: Option<&dyn TraceStore>, conditional: Conditional) {
    // Readiness: the probe answers on an empty store (the key it asks about is never written).
    store.probe().await.unwrap();
    let a = id("suite-a");
    assert!(matches!(store.get(&a).await, Err(StoreError::NotFound(_))));
    let v1 = store.put(&a, Bytes::from_static(b"{\"n\":1}"), &WriteCondition::Absent).await.unwrap();
    assert!(v1.starts_with("sha256:"));
    let got = store.get(&a).await.unwrap();
    assert_eq!((got.bytes.as_ref(), got.version.as_str()), (&b"{\"n\":1}"[..], v1.as_str()));
    assert!(matches!(store.put(&a, Bytes::from_static(b"{}"), &WriteCondition::Absent).await, Err(StoreError::Precondition { .. })));
    let stale = WriteCondition::Version(format!("sha256:{}", "0".repeat(64)));
    assert!(matches!(store.put(&a, Bytes::from_static(b"{}"), &stale).await, Err(StoreError::Precondition { .. })));
    let v2 = store.put(&a, Bytes::from_static(b"{\"n\":2}"), &WriteCondition::Version(v1.clone())).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap().version, v2);
    // Old versions stay readable for replay; ids never become paths.
    assert_eq!(store.get_version(&a, &v1).await.unwrap().bytes.as_ref(), b"{\"n\":1}");
    assert!(matches!(store.get_version(&a, "sha256:../../x").await, Err(StoreError::NotFound(_))));
    store.put(&id("suite-b"), Bytes::from_static(b"[]"), &WriteCondition::Any).await.unwrap();
    let listed = store.list().await.unwrap();
    assert!(listed.contains(&a) && listed.contains(&id("suite-b")), "{listed:?}");
    assert_eq!(listed.iter().filter(|i| i.as_str().starts_with("suite-")).count(), 2, "versions are not listed as traces");

    if conditional == Conditional::CheckThenWrite {
        return;
    }
    // Racing conditional writers on one version: exactly one wins, across handles too.
    let r = id("suite-race");
    let v0 = store.put(&r, Bytes::from_static(b"{}"), &WriteCondition::Any).await.unwrap();
    let cond = WriteCondition::Version(v0);
    let mut wins = 0;
    let writes: Vec<_> = (0..8)
        .map(|n| {
            let s: &dyn TraceStore = if n % 2 == 1 { twin.unwrap_or(store) } else { store };
            let cond = cond.clone();
            let r = r.clone();
            async move { s.put(&r, Bytes::from(format!("{{\"w\":{n}}}")), &cond).await.is_ok() }
        })
        .collect();
    for ok in futures::future::join_all(writes).await {
        wins += usize::from(ok);
    }
    assert_eq!(wins, 1);
}

/// `bounded` is a handle on the same storage as `store` with a read limit of 16 bytes: it loads
/// objects up to the limit and refuses larger ones with a typed error (never a truncated body),
/// for reads of the current version, of an old version, and the read a write makes of the
/// version it replaces — which then changes nothing.
async fn read_limit(store: &dyn TraceStore, bounded: &dyn TraceStore) {
    let (fits, over) = (id("limit-fits"), id("limit-over"));
    let sixteen = Bytes::from_static(b"{\"n\":\"01234567\"}");
    assert_eq!(sixteen.len(), 16);
    store.put(&fits, sixteen.clone(), &WriteCondition::Any).await.unwrap();
    assert_eq!(bounded.get(&fits).await.unwrap().bytes, sixteen);
    let big = Bytes::from_static(b"{\"n\":\"012345678\"}");
    let v = store.put(&over, big.clone(), &WriteCondition::Any).await.unwrap();
    for got in [bounded.get(&over).await, bounded.get_version(&over, &v).await] {
        match got {
            Err(StoreError::TooLarge { id, size: 17, limit: 16 }) => assert_eq!(id, over),
            other => panic!("a 17-byte object was not refused by a 16-byte limit: {other:?}"),
        }
    }
    let put = bounded.put(&over, Bytes::from_static(b"{}"), &WriteCondition::Any).await;
    assert!(matches!(put, Err(StoreError::TooLarge { .. })), "{put:?}");
    assert_eq!(store.get(&over).await.unwrap().bytes, big, "a refused write changed nothing");
}

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectTraceStore::local(dir.path()).unwrap();
    suite(&s, None, Conditional::Atomic).await;
    read_limit(&s, &ObjectTraceStore::local(dir.path()).unwrap().with_read_limit(16)).await;
}

/// A server process started by a test, killed when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Spawns `program`, or `None` when it is not installed and peers are not required.
fn spawn_peer(program: &str, args: &[&str]) -> Option<Peer> {
    match Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
        Ok(c) => Some(Peer(c)),
        Err(e) if std::env::var_os("TRACEGATE_REQUIRE_PEERS").is_some() => panic!("{program} is required: {e}"),
        Err(e) => {
            eprintln!("skipping: {program}: {e}");
            None
        }
    }
}

async fn start_moto() -> Option<(Peer, String)> {
    let port = free_port();
    let moto = spawn_peer("moto_server", &["-H", "127.0.0.1", "-p", &port.to_string()])?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Create the bucket (moto accepts unsigned requests); retry until the server is up.
    loop {
        if let Ok(r) = client.put(format!("{endpoint}/tracegate-test")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "moto_server did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some((moto, endpoint))
}

fn s3(endpoint: &str) -> ObjectTraceStore {
    s3_as(endpoint, "test-key-id", "test-secret-never-shown")
}

fn s3_as(endpoint: &str, key: &str, secret: &str) -> ObjectTraceStore {
    ObjectTraceStore::open_with(
        "s3://tracegate-test/run",
        &[
            ("aws_endpoint", endpoint),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", key),
            ("aws_secret_access_key", secret),
            ("aws_region", "us-east-1"),
        ],
    )
    .unwrap()
}

/// `s3s-fs` over a fresh directory holding the bucket, with one access key; waits until it
/// answers (any HTTP status: unsigned requests are refused, which is the point).
async fn start_s3s_fs(key: &str, secret: &str) -> Option<(Peer, String, tempfile::TempDir)> {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("tracegate-test")).unwrap();
    let port = free_port();
    let dir = root.path().to_str().unwrap().to_owned();
    let peer = spawn_peer(
        "s3s-fs",
        &["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", key, "--secret-key", secret, &dir],
    )?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(&endpoint).send().await.is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((peer, endpoint, root))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_signed_requests_and_two_replicas() {
    let secret = "s3s-secret-never-shown";
    let Some((_peer, endpoint, _root)) = start_s3s_fs("s3s-key-id", secret).await else { return };
    let (a, b) = (s3_as(&endpoint, "s3s-key-id", secret), s3_as(&endpoint, "s3s-key-id", secret));
    suite(&a, Some(&b), Conditional::CheckThenWrite).await;
    let t = id("suite-shared");
    let v = a.put(&t, Bytes::from_static(b"{\"x\":1}"), &WriteCondition::Any).await.unwrap();
    assert_eq!(b.get(&t).await.unwrap().version, v);

    // The server checks every signature: a wrong secret or an unknown key reads and writes
    // nothing, and is an error (never a 404 that would look like a missing trace).
    for (key, wrong) in [("s3s-key-id", "not-the-secret"), ("someone-else", secret)] {
        let bad = s3_as(&endpoint, key, wrong);
        match bad.get(&t).await {
            Err(StoreError::Backend(m)) => assert!(!m.contains(secret) && !m.contains(wrong), "{m}"),
            other => panic!("a request signed with a wrong credential was not refused: {other:?}"),
        }
        let put = bad.put(&id("suite-forged"), Bytes::from_static(b"{}"), &WriteCondition::Any).await;
        assert!(matches!(put, Err(StoreError::Backend(_))), "{put:?}");
        // Not ready either: the probe is signed like every other request.
        assert!(matches!(bad.probe().await, Err(StoreError::Backend(_))));
    }
    assert!(matches!(a.get(&id("suite-forged")).await, Err(StoreError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_and_two_replicas() {
    let Some((_moto, endpoint)) = start_moto().await else { return };
    let (a, b) = (s3(&endpoint), s3(&endpoint));
    assert!(!a.describe().contains("test-secret"), "{}", a.describe());
    suite(&a, Some(&b), Conditional::Atomic).await;
    read_limit(&a, &s3(&endpoint).with_read_limit(16)).await;
    // The bucket is the shared truth: written through one handle, read through the other.
    let t = id("suite-shared");
    let v = a.put(&t, Bytes::from_static(b"{\"x\":1}"), &WriteCondition::Any).await.unwrap();
    assert_eq!(b.get(&t).await.unwrap().version, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bucket_is_an_error_not_a_404() {
    let s = s3(&format!("http://127.0.0.1:{}", free_port()));
    match s.get(&id("x")).await {
        Err(StoreError::Backend(m)) => assert!(!m.contains("test-secret"), "{m}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}
