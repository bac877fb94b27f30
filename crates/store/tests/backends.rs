//! One storage test suite, run against every backend: a local directory, and an S3-compatible
//! bucket (a real `moto` server started here). Buckets are also tested with two store
//! instances over one bucket — two gateway replicas — racing conditional writes.
//!
//! Without `moto_server` on the PATH the S3 half is skipped, unless `TRACEGATE_REQUIRE_PEERS`
//! is set (as the test suite sets it), when a missing peer fails the run.

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

/// The assertions every backend must pass. `twin` is a second handle on the same storage when
/// the backend supports several writers (buckets).
async fn suite(store: &dyn TraceStore, twin: Option<&dyn TraceStore>) {
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

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectTraceStore::local(dir.path()).unwrap();
    suite(&s, None).await;
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_moto() -> Option<(Moto, String)> {
    let port = free_port();
    let child = match Command::new("moto_server").args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
        Ok(c) => c,
        Err(e) if std::env::var_os("TRACEGATE_REQUIRE_PEERS").is_some() => panic!("moto_server is required: {e}"),
        Err(_) => return None,
    };
    let moto = Moto(child);
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
    ObjectTraceStore::open_with(
        "s3://tracegate-test/run",
        &[
            ("aws_endpoint", endpoint),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "test-key-id"),
            ("aws_secret_access_key", "test-secret-never-shown"),
            ("aws_region", "us-east-1"),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_and_two_replicas() {
    let Some((_moto, endpoint)) = start_moto().await else { return };
    let (a, b) = (s3(&endpoint), s3(&endpoint));
    assert!(!a.describe().contains("test-secret"), "{}", a.describe());
    suite(&a, Some(&b)).await;
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
