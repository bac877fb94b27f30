//! The webhook notifier against a real HTTP receiver on loopback: signatures, retries, formats,
//! and giving up (counted).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::mpsc;
use tracegate_approvals::notify::{self, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use tracegate_approvals::{ApprovalStore, Committed, Format, Notifier, WebhookConfig};
use tracegate_core::approval::{Actor, Party, RequestShape, Terms};
use tracegate_core::{Action, PolicyVersion, TraceId};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-webhook";

/// What the receiver saw of one POST.
#[derive(Debug)]
struct Seen {
    status: u16,
    verified: bool,
    delivery: String,
    event: String,
    body: serde_json::Value,
}

struct Receiver {
    /// Answer 500 to the first `fail_first` POSTs (or to all, with `usize::MAX`).
    fail_first: usize,
    count: AtomicUsize,
    tx: mpsc::UnboundedSender<Seen>,
}

/// A record hook that always succeeds (the gateway's writes the audit record here).
fn ok(_: &Committed) -> Result<(), String> {
    Ok(())
}

async fn receive(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let ts: u64 = h(TIMESTAMP_HEADER).parse().unwrap_or(0);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let verified = now.abs_diff(ts) < 300 && notify::verify(SECRET, ts, &body, &h(SIGNATURE_HEADER));
    let n = rx.count.fetch_add(1, Ordering::SeqCst);
    let status = if n < rx.fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT };
    let _ = rx.tx.send(Seen {
        status: status.as_u16(),
        verified,
        delivery: h(DELIVERY_HEADER),
        event: h(EVENT_HEADER),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    status
}

async fn receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver { fail_first, count: AtomicUsize::new(0), tx });
    let app = Router::new().route("/hook", post(receive)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

fn config(url: &str, format: Format, attempts: u32) -> WebhookConfig {
    let mut c = WebhookConfig::new(url, SECRET.to_vec());
    c.format = format;
    c.max_attempts = attempts;
    c.backoff = Duration::from_millis(20);
    c.public_url = Some("https://gate.example/".into());
    c
}

fn shape() -> RequestShape {
    RequestShape::new(
        Party { subject: "sid".into(), issuer: "iss".into(), person: None },
        Action::Read,
        "sre",
        PolicyVersion("sha256:p".into()),
        [TraceId::parse("demo-agent-1").unwrap()],
        None::<Vec<String>>,
        Some("INC-7"),
    )
}

fn terms() -> Terms {
    Terms {
        rule: "roles.sre.approval".into(),
        approvers: vec!["security".into()],
        approvals: 1,
        pending_ttl: Duration::from_secs(3600),
        grant_ttl: Duration::from_secs(3600),
        one_time: false,
    }
}

/// A store whose every event goes to `n`.
fn store_with(n: &Notifier) -> (tempfile::TempDir, ApprovalStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ApprovalStore::open(dir.path()).unwrap();
    let n = n.clone();
    store.set_listener(Arc::new(move |e, r| n.notify(e, r)));
    (dir, store)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a delivery within 10s").unwrap()
}

/// Waits until `f` holds (the notifier works in the background), failing after 10 s.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_change_is_posted_signed_and_retried_after_a_500() {
    let (url, mut rx) = receiver(1).await;
    let notifier = Notifier::spawn(config(&url, Format::Json, 4)).unwrap();
    let (_dir, store) = store_with(&notifier);
    let now = SystemTime::now();
    let r = store.open_request(shape(), terms(), now, 100, &mut ok).await.unwrap().request().clone();

    // The first attempt gets a 500 and is retried with the same delivery id.
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    assert_eq!((first.status, second.status), (500, 204));
    assert!(first.verified && second.verified);
    assert_eq!(first.delivery, second.delivery);
    assert_eq!(second.event, "access_request.created");
    assert_eq!(second.body["type"], "access_request.created");
    assert_eq!(second.body["request_id"], r.id.as_str());
    assert_eq!(second.body["status"], "pending");
    assert_eq!(second.body["request"]["shape"]["purpose"], "INC-7");
    assert_eq!(second.body["url"], format!("https://gate.example/v1/access-requests/{}", r.id));

    let sam = Actor { party: Party { subject: "sam".into(), issuer: "iss".into(), person: None }, groups: vec!["security".into()] };
    store.approve(&r.id, &sam, Some("go"), now, &mut ok).await.unwrap();
    let approved = next(&mut rx).await;
    assert!(approved.verified);
    assert_eq!((approved.event.as_str(), approved.body["by"].as_str(), approved.body["comment"].as_str()), ("access_request.approved", Some("sam"), Some("go")));
    assert_eq!(approved.body["status"], "approved");
    store.revoke(&r.id, &sam, Some("incident over"), now, &mut ok).await.unwrap();
    assert_eq!(next(&mut rx).await.event, "access_request.revoked");

    let c = notifier.counters().clone();
    eventually("3 deliveries", || c.delivered() == 3).await;
    assert_eq!((c.retried(), c.failed(), c.dropped()), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_body_or_wrong_secret_does_not_verify() {
    let body = br#"{"type":"access_request.created"}"#;
    let sig = notify::sign(SECRET, 1_700_000_000, body);
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
    assert!(notify::verify(SECRET, 1_700_000_000, body, &sig));
    assert!(!notify::verify(SECRET, 1_700_000_001, body, &sig));
    assert!(!notify::verify(SECRET, 1_700_000_000, br#"{"type":"access_request.approved"}"#, &sig));
    assert!(!notify::verify(b"another-secret-another-secret-xx", 1_700_000_000, body, &sig));
    assert!(!notify::verify(SECRET, 1_700_000_000, body, "sha1=00"));
    assert!(Notifier::spawn(WebhookConfig::new("http://127.0.0.1:1/", b"short".to_vec())).is_err());
    assert!(Notifier::spawn(WebhookConfig::new("ftp://x", SECRET.to_vec())).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_format_posts_a_text_message() {
    let (url, mut rx) = receiver(0).await;
    let notifier = Notifier::spawn(config(&url, Format::Slack, 2)).unwrap();
    let (_dir, store) = store_with(&notifier);
    store.open_request(shape(), terms(), SystemTime::now(), 100, &mut ok).await.unwrap();
    let seen = next(&mut rx).await;
    assert!(seen.verified);
    let text = seen.body["text"].as_str().unwrap();
    assert!(text.contains("`sid` asks to read demo-agent-1 as role `sre` (purpose: INC-7)"), "{text}");
    assert!(text.contains("needs 1 approval(s) from security"), "{text}");
    assert!(text.contains("<https://gate.example/v1/access-requests/ar_"), "{text}");
    assert_eq!(seen.body.as_object().map(|o| o.len()), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_failing_is_given_up_on_and_counted() {
    let (url, mut rx) = receiver(usize::MAX).await;
    let notifier = Notifier::spawn(config(&url, Format::Json, 3)).unwrap();
    let (_dir, store) = store_with(&notifier);
    // The request path is not held up by delivery: this returns before any attempt is made.
    let started = std::time::Instant::now();
    store.open_request(shape(), terms(), SystemTime::now(), 100, &mut ok).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    for _ in 0..3 {
        assert_eq!(next(&mut rx).await.status, 500);
    }
    let c = notifier.counters().clone();
    eventually("the failure to be counted", || c.failed() == 1).await;
    assert_eq!((c.delivered(), c.retried()), (0, 2));

    // Nobody listening at all: connection errors are retried and counted the same way.
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let n2 = Notifier::spawn(config(&format!("http://{dead}/hook"), Format::Json, 2)).unwrap();
    let (_dir2, store2) = store_with(&n2);
    store2.open_request(shape(), terms(), SystemTime::now(), 100, &mut ok).await.unwrap();
    let c2 = n2.counters().clone();
    eventually("the connection failure to be counted", || c2.failed() == 1).await;
    assert_eq!(c2.retried(), 1);
}

/// Hostile requester text: in JSON it arrives exactly as written (JSON escapes it); in Slack
/// format it cannot page a channel, mention anyone, disguise a link or forge a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_purposes_and_comments_arrive_as_text() {
    let hostile = "INC-7 <!channel> <!here> <@U024BE7LH> <https://evil.example|approve> & co\n:white_check_mark: approved\u{1b}[0m";
    let mut s = shape();
    s.purpose = Some(hostile.to_owned());
    let sam = Actor { party: Party { subject: "sam".into(), issuer: "iss".into(), person: None }, groups: vec!["security".into()] };
    for format in [Format::Json, Format::Slack] {
        let (url, mut rx) = receiver(0).await;
        let notifier = Notifier::spawn(config(&url, format, 2)).unwrap();
        let (_dir, store) = store_with(&notifier);
        let r = store.open_request(s.clone(), terms(), SystemTime::now(), 100, &mut ok).await.unwrap().request().clone();
        store.deny(&r.id, &sam, Some("<!channel> no\nway"), SystemTime::now(), &mut ok).await.unwrap();
        // Deliveries run concurrently: sort them by event.
        let mut both = [next(&mut rx).await, next(&mut rx).await];
        both.sort_by(|a, b| a.event.cmp(&b.event));
        let [created, denied] = both;
        assert_eq!((created.event.as_str(), denied.event.as_str()), ("access_request.created", "access_request.denied"));
        assert!(created.verified && denied.verified);
        match format {
            Format::Json => {
                assert_eq!(created.body["request"]["shape"]["purpose"], hostile);
                assert_eq!(denied.body["comment"], "<!channel> no\nway");
            }
            Format::Slack => {
                for seen in [&created, &denied] {
                    let text = seen.body["text"].as_str().unwrap();
                    for bad in ["<!channel>", "<!here>", "<@U", "<https://evil", "\n", "\u{1b}"] {
                        assert!(!text.contains(bad), "{bad:?} in {text:?}");
                    }
                    assert!(text.contains("&lt;!channel&gt; &lt;!here&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example|approve&gt; &amp; co"), "{text}");
                    // The gateway's own link is still a link.
                    assert!(text.contains(&format!("<https://gate.example/v1/access-requests/{}>", r.id)), "{text}");
                }
                assert!(denied.body["text"].as_str().unwrap().contains("“&lt;!channel&gt; no way”"));
            }
        }
    }
}
