//! Webhook notifications of access-request changes: signed, retried, never in the way.
//!
//! Every durable event becomes one POST to the configured URL, as a JSON event or as a
//! Slack-compatible `{"text": ...}` message. [`Notifier::notify`] only queues; a background task
//! delivers, retrying network errors, `429` and `5xx` with exponential backoff. A notification
//! that is finally given up on (or dropped because the queue is full) is logged and counted in
//! [`Counters`], which the server's metrics export.
//!
//! ## Verifying a delivery
//! Each POST carries
//! - `x-tracegate-timestamp`: Unix seconds when this attempt was signed;
//! - `x-tracegate-signature`: `sha256=<hex>`, the HMAC-SHA256 under the shared secret of
//!   `<timestamp>.<body>` (the timestamp, a `.`, then the raw body bytes);
//! - `x-tracegate-delivery`: an id that stays the same across retries, to drop duplicates;
//! - `x-tracegate-event`: the event type, e.g. `access_request.approved`.
//!
//! Receivers recompute the HMAC over the raw body, compare in constant time ([`verify`] does
//! this), and reject timestamps more than a few minutes old so a captured delivery cannot be
//! replayed later.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use sha2::Sha256;
use tracegate_core::approval::{AccessRequest, Change, Event};

/// Header names, fixed here once.
pub const SIGNATURE_HEADER: &str = "x-tracegate-signature";
pub const TIMESTAMP_HEADER: &str = "x-tracegate-timestamp";
pub const DELIVERY_HEADER: &str = "x-tracegate-delivery";
pub const EVENT_HEADER: &str = "x-tracegate-event";

/// Shortest accepted webhook secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// What a webhook body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `{"type": "access_request.<change>", "request": {...}, ...}`.
    #[default]
    Json,
    /// `{"text": "..."}`, which Slack incoming webhooks (and Mattermost, Teams connectors) accept.
    Slack,
}

/// Where and how to deliver.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: Vec<u8>,
    pub format: Format,
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Notifications waiting for delivery before new ones are dropped (and counted).
    pub queue: usize,
    /// The gateway's public base URL, to link to the request (`<base>/v1/access-requests/<id>`).
    pub public_url: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's path may itself be a credential (Slack webhook URLs are): show the host only.
        let host = self.url.split('/').take(3).collect::<Vec<_>>().join("/");
        f.debug_struct("WebhookConfig").field("host", &host).field("format", &self.format).finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Defaults: 6 attempts, 1 s backoff doubling to at most 5 min, 10 s timeout, 1024 queued.
    pub fn new(url: impl Into<String>, secret: Vec<u8>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret,
            format: Format::Json,
            max_attempts: 6,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            queue: 1024,
            public_url: None,
        }
    }
}

/// Why a notifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("the webhook secret is shorter than {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    #[error("the webhook url `{0}` is not an http(s) url")]
    BadUrl(String),
    #[error("building the webhook client: {0}")]
    Client(String),
}

/// Delivery counters, for metrics: Prometheus counters the server registers as
/// `tracegate_webhook_{delivered,failed,retried,dropped}_total`. Monotonic.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Notifications delivered (2xx).
    pub delivered: Counter,
    /// Notifications given up on after their last attempt, or refused with a 4xx.
    pub failed: Counter,
    /// Attempts that failed and were retried.
    pub retried: Counter,
    /// Notifications dropped because the queue was full.
    pub dropped: Counter,
}

impl Counters {
    pub fn delivered(&self) -> u64 {
        self.delivered.get()
    }
    pub fn failed(&self) -> u64 {
        self.failed.get()
    }
    pub fn retried(&self) -> u64 {
        self.retried.get()
    }
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

struct Job {
    delivery: String,
    kind: String,
    body: Vec<u8>,
}

/// Queues notifications for a background delivery task. Cloning shares the queue.
#[derive(Clone)]
pub struct Notifier {
    tx: tokio::sync::mpsc::Sender<Job>,
    counters: Arc<Counters>,
    format: Format,
    public_url: Option<String>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("format", &self.format).finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts the delivery task on the current Tokio runtime.
    pub fn spawn(cfg: WebhookConfig) -> Result<Notifier, NotifyError> {
        if cfg.secret.len() < MIN_SECRET_LEN {
            return Err(NotifyError::WeakSecret);
        }
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(NotifyError::BadUrl(cfg.url.clone()));
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Client(e.to_string()))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(cfg.queue.max(1));
        let counters = Arc::new(Counters::default());
        let notifier = Notifier { tx, counters: counters.clone(), format: cfg.format, public_url: cfg.public_url.clone() };
        let cfg = Arc::new(cfg);
        tokio::spawn(async move {
            // Each notification retries on its own schedule; one slow receiver response does
            // not hold the others back.
            while let Some(job) = rx.recv().await {
                tokio::spawn(deliver(client.clone(), cfg.clone(), counters.clone(), job));
            }
        });
        Ok(notifier)
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Queues a notification of `event`; never blocks. A full queue drops it, logged and counted.
    pub fn notify(&self, event: &Event, request: &AccessRequest) {
        let kind = format!("access_request.{}", event.change.name());
        let payload = match self.format {
            Format::Json => json_payload(&kind, event, request, self.public_url.as_deref()),
            Format::Slack => serde_json::json!({ "text": slack_text(event, request, self.public_url.as_deref()) }),
        };
        let body = match serde_json::to_vec(&payload) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "encoding a webhook notification failed");
                self.counters.failed.inc();
                return;
            }
        };
        let job = Job { delivery: uuid::Uuid::new_v4().to_string(), kind, body };
        if let Err(e) = self.tx.try_send(job) {
            self.counters.dropped.inc();
            tracing::warn!(request = %request.id, reason = %e, "webhook queue full or closed; notification dropped");
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, `<timestamp>.<body>`).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header in constant time.
pub fn verify(secret: &[u8], timestamp: u64, body: &[u8], header: &str) -> bool {
    let Some(sig) = header.strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // Invariant: HMAC accepts keys of any length, so this constructor cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("hmac accepts any key length"),
    }
}

async fn deliver(client: reqwest::Client, cfg: Arc<WebhookConfig>, counters: Arc<Counters>, job: Job) {
    let mut wait = cfg.backoff;
    for attempt in 1..=cfg.max_attempts.max(1) {
        let ts = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let sent = client
            .post(&cfg.url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(&cfg.secret, ts, &job.body))
            .header(DELIVERY_HEADER, &job.delivery)
            .header(EVENT_HEADER, &job.kind)
            .body(job.body.clone())
            .send()
            .await;
        let retry_reason = match sent {
            Ok(r) if r.status().is_success() => {
                counters.delivered.inc();
                return;
            }
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => format!("status {}", r.status().as_u16()),
            Ok(r) => {
                counters.failed.inc();
                tracing::error!(delivery = %job.delivery, event = %job.kind, status = r.status().as_u16(), "webhook refused the notification; not retrying");
                return;
            }
            Err(e) => e.to_string(),
        };
        if attempt == cfg.max_attempts.max(1) {
            counters.failed.inc();
            tracing::error!(delivery = %job.delivery, event = %job.kind, attempts = attempt, reason = %retry_reason, "webhook notification failed; giving up");
            return;
        }
        counters.retried.inc();
        tracing::warn!(delivery = %job.delivery, event = %job.kind, attempt, reason = %retry_reason, retry_in = ?wait, "webhook notification failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(cfg.max_backoff);
    }
}

fn link(public_url: Option<&str>, id: &str) -> Option<String> {
    public_url.map(|u| format!("{}/v1/access-requests/{id}", u.trim_end_matches('/')))
}

fn json_payload(kind: &str, event: &Event, request: &AccessRequest, public_url: Option<&str>) -> serde_json::Value {
    let (by, comment) = actor_of(&event.change);
    serde_json::json!({
        "type": kind,
        "at": humantime::format_rfc3339_millis(event.at).to_string(),
        "request_id": request.id,
        "status": request.status,
        "by": by,
        "comment": comment,
        "url": link(public_url, &request.id),
        "request": request,
    })
}

fn actor_of(change: &Change) -> (Option<&str>, Option<&str>) {
    match change {
        Change::Approved { by, comment } | Change::Denied { by, comment } | Change::Revoked { by, comment } => {
            (Some(by.subject.as_str()), comment.as_deref())
        }
        _ => (None, None),
    }
}

fn slack_text(event: &Event, r: &AccessRequest, public_url: Option<&str>) -> String {
    let s = &r.shape;
    let traces: Vec<String> = s.traces.iter().map(|t| slack_escape(t.as_str())).collect();
    let what = format!(
        "{} asks to {} {} as role {}{}",
        slack_code(&s.requester.subject),
        s.action.as_str(),
        traces.join(", "),
        slack_code(&s.role),
        s.purpose.as_deref().map(|p| format!(" (purpose: {})", slack_escape(p))).unwrap_or_default()
    );
    let (by, comment) = actor_of(&event.change);
    let mut text = match &event.change {
        Change::Created { .. } => format!(
            ":lock: access request {}: {what}; needs {} approval(s) from {}",
            slack_code(&r.id),
            r.terms.approvals,
            r.terms.approvers.iter().map(|a| slack_escape(a)).collect::<Vec<_>>().join(", ")
        ),
        other => format!(
            "access request {} {}{}: {what} (now {})",
            slack_code(&r.id),
            other.name(),
            by.map(|b| format!(" by {}", slack_code(b))).unwrap_or_default(),
            r.status
        ),
    };
    if let Some(c) = comment {
        text.push_str(&format!(" — “{}”", slack_escape(c)));
    }
    // The link is the operator's own configuration, the only markup in the message.
    if let Some(l) = link(public_url, &r.id) {
        text.push_str(&format!(" <{}>", slack_escape(&l)));
    }
    text
}

/// Text from requesters (purposes, subjects) and approvers (comments) as inert Slack text.
///
/// Slack reads `<...>` as control sequences — `<!channel>` pages everyone, `<@U123>` mentions,
/// `<https://evil|your approval link>` disguises a link — so `&`, `<` and `>` become the entities
/// Slack documents (`&amp;`, `&lt;`, `&gt;`), after which none of these can form. Line breaks and
/// other control characters become spaces, so a purpose cannot start a line that looks like a
/// message of the gateway's own, and bidirectional overrides and zero-width characters (which
/// can make text read differently from what it is) are removed.
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c if is_invisible(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// `s` as a Slack inline code span: escaped, and with backticks replaced so the span cannot be
/// closed early.
fn slack_code(s: &str) -> String {
    format!("`{}`", slack_escape(s).replace('`', "'"))
}

/// Characters that change how text reads without showing: bidirectional embeddings, overrides
/// and isolates, and zero-width spaces and joiners.
pub fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_control_sequences_cannot_form() {
        for hostile in ["<!channel>", "<!here|here>", "<@U024BE7LH>", "<#C024BE7LR>", "<https://evil.example|approve here>", "a & b", "x<y>z"] {
            let e = slack_escape(hostile);
            assert!(!e.contains('<') && !e.contains('>'), "{hostile} -> {e}");
            assert_eq!(e.matches('&').count(), e.matches("&amp;").count() + e.matches("&lt;").count() + e.matches("&gt;").count());
        }
        assert_eq!(slack_escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
        assert_eq!(slack_escape("line\n:white_check_mark: approved\r\t"), "line :white_check_mark: approved  ");
        assert_eq!(slack_escape("evil\u{202E}gnp.exe\u{200B}"), "evilgnp.exe");
        assert_eq!(slack_code("sid` *bold* `x"), "`sid' *bold* 'x`");
    }
}
