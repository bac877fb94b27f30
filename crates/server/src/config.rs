//! The gateway configuration file (`tracegate.toml`). What describes the deployment lives here;
//! runtime knobs are CLI flags. Unknown keys are errors. Relative paths are resolved against
//! the directory holding the config file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Largest trace accepted on write when the config names no limit: 16 MiB.
pub const DEFAULT_MAX_TRACE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default)]
    pub server: ServerSection,
    pub store: StoreSection,
    pub policy: PolicySection,
    pub identity: tracegate_identity::IdentityConfig,
    #[serde(default)]
    pub masking: MaskingSection,
    /// The audit trail. Defaults keep it in `audit/` beside this file, signed with
    /// `audit-signing.key` (created on first start).
    #[serde(default)]
    pub audit: tracegate_audit::AuditConfig,
    /// Just-in-time approval: where access requests are kept, and the webhook told of changes.
    #[serde(default)]
    pub approvals: ApprovalsSection,
    /// Abuse bounds per principal (request rate, access-request rate, pending access requests).
    /// On by default with the values below; every refusal is `429` with `Retry-After`, audited.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Shared state of scaled-out replicas (PostgreSQL): `[state] url = "postgres://…"`, or the
    /// `TRACEGATE_STATE_URL` environment variable. Absent: everything stays in local files.
    #[serde(default)]
    pub state: tracegate_state::StateConfig,
    /// The web console at `/console/` (always served; it signs in like any browser).
    #[serde(default)]
    pub console: ConsoleSection,
    /// The directory holding the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[console]`: the web console's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// Sample identities offered by the development sign-in at `/console/dev-login`
    /// (`[[console.dev_identities]]`). Needs `[identity.dev]` without `allow_non_loopback`;
    /// the gateway refuses to start otherwise. Empty (the default): no development sign-in.
    #[serde(default)]
    pub dev_identities: Vec<crate::routes::dev_login::DevIdentity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest trace body accepted by `PUT /v1/traces/{id}`, in bytes; larger bodies get 413.
    #[serde(default = "default_max_trace_bytes")]
    pub max_trace_bytes: usize,
    /// Largest stored trace a read will open, in bytes (default 64 MiB); larger ones fail with
    /// `500 trace_too_large` rather than risk the gateway's memory.
    #[serde(default = "default_max_read_bytes")]
    pub max_read_bytes: usize,
    /// Bytes of stored traces being fetched, projected and masked at once, every read path
    /// (reads, replays) counted (default 64 MiB: a read peaks at ~15x its stored size, so about
    /// 1 GiB of working memory). A read takes its share from the object's size before the body
    /// is fetched; reads beyond the budget wait their turn, so many concurrent reads of large
    /// traces cannot exhaust memory.
    #[serde(default = "default_read_budget_bytes")]
    pub read_budget_bytes: usize,
    /// Answer a trace outside the caller's row scope with `403 outside_row_scope` instead of
    /// the default `404`, which is what a trace that does not exist gets (so callers cannot
    /// learn which ids exist in other tenants). The audit record has the true reason either way.
    #[serde(default)]
    pub explicit_row_scope_denials: bool,
    /// Acceptor threads, each with its own listening socket on the port and its own
    /// single-threaded runtime, as nginx runs worker processes (see the `acceptors` module for
    /// why and what it costs); `0` serves every connection on one shared work-stealing runtime.
    /// Absent: one per core on the embedded default (a local store and no `[state]`), `0`
    /// otherwise. At most 256.
    #[serde(default)]
    pub acceptors: Option<usize>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            max_trace_bytes: default_max_trace_bytes(),
            max_read_bytes: default_max_read_bytes(),
            read_budget_bytes: default_read_budget_bytes(),
            explicit_row_scope_denials: false,
            acceptors: None,
        }
    }
}

fn default_max_read_bytes() -> usize {
    64 * 1024 * 1024
}

fn default_read_budget_bytes() -> usize {
    64 * 1024 * 1024
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_max_trace_bytes() -> usize {
    DEFAULT_MAX_TRACE_BYTES
}

/// Where traces live. Only the gateway holds this; callers never do. Either `url` or the
/// embedded default's `kind = "local"` with `path`:
///
/// ```toml
/// [store]
/// url = "s3://traces-bucket/prod"   # or gs://…, az://…, file:///var/lib/tracegate/traces
/// ```
///
/// Bucket credentials and endpoint come from the standard environment and profile chain
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ALLOW_HTTP`, web-identity tokens), never from this file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `s3://BUCKET/PREFIX`, `gs://…`, `az://…`, `file:///dir`, or a plain directory path.
    pub url: Option<String>,
    /// `local` (the embedded default; with `path`).
    pub kind: Option<String>,
    /// A local directory, one `<trace id>.json` per trace (relative to this file).
    pub path: Option<PathBuf>,
}

impl GatewayConfig {
    /// True when shared state is configured (in the file or through `TRACEGATE_STATE_URL`).
    pub fn has_state(&self) -> bool {
        self.state.effective_url().is_some()
    }

    /// How many acceptor threads serve (`server.acceptors`, or its default for this deployment);
    /// `0`: the shared runtime serves.
    pub fn acceptors(&self) -> usize {
        match self.server.acceptors {
            Some(n) => n,
            None if !self.store.is_bucket() && !self.has_state() => {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(crate::acceptors::MAX_ACCEPTORS))
            }
            None => 0,
        }
    }

    /// Opens the configured trace store, its reads bounded by `server.max_read_bytes` each and
    /// by `server.read_budget_bytes` together.
    pub fn open_store(&self) -> Result<tracegate_store::ObjectTraceStore, ConfigError> {
        let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let store = self.open_unbounded_store()?;
        Ok(store.with_read_limit(bytes(self.server.max_read_bytes)).with_read_budget(bytes(self.server.read_budget_bytes)))
    }

    fn open_unbounded_store(&self) -> Result<tracegate_store::ObjectTraceStore, ConfigError> {
        let bad = |m: &str| ConfigError::Invalid(format!("[store]: {m}"));
        let s = &self.store;
        match (&s.url, &s.kind, &s.path) {
            (Some(url), None, None) if is_bucket_url(url) => {
                tracegate_store::ObjectTraceStore::open(url).map_err(|e| bad(&e.to_string()))
            }
            (Some(url), None, None) => {
                let p = Path::new(url.strip_prefix("file://").unwrap_or(url));
                tracegate_store::ObjectTraceStore::local(&self.resolve(p)).map_err(|e| bad(&e.to_string()))
            }
            (None, Some(k), Some(p)) if k == "local" => {
                tracegate_store::ObjectTraceStore::local(&self.resolve(p)).map_err(|e| bad(&e.to_string()))
            }
            (None, Some(k), _) if k != "local" => Err(bad(&format!("unknown `kind` `{k}`; use `url` for buckets"))),
            _ => Err(bad("give either `url`, or `kind = \"local\"` with `path`")),
        }
    }
}

impl StoreSection {
    /// True when traces live in a bucket (S3, GCS, Azure), not in a local directory.
    pub fn is_bucket(&self) -> bool {
        self.url.as_deref().is_some_and(is_bucket_url)
    }
}

fn is_bucket_url(url: &str) -> bool {
    url.contains("://") && !url.starts_with("file://")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// The policy file (TOML). See `examples/policy.toml`.
    pub path: PathBuf,
}

/// Where the key behind keyed (HMAC) pseudonyms comes from. Keep it secret: with it, anyone can
/// test guesses against pseudonyms.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingSection {
    /// A file holding the key (at least 32 bytes; hex text is fine).
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key; takes precedence over `key_file`.
    pub key_env: Option<String>,
}

/// `[approvals]`: the access-request store and notifications. All optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsSection {
    /// Directory of the access-request log (default `approvals`, beside this file). State
    /// survives restarts; one gateway process per directory.
    pub path: Option<PathBuf>,
    /// The gateway's base URL as clients reach it (e.g. `https://tracegate.example.com`), for
    /// links in `202` answers, notifications and the CLI. Relative links when unset.
    pub public_url: Option<String>,
    /// How often expiries are recorded (and notified, and audited), e.g. `15s` (the default).
    /// Expiry itself is exact: a request is judged at the time it is used.
    pub sweep_interval: Option<String>,
    /// POST every state change to a webhook.
    pub webhook: Option<WebhookSection>,
}

/// `[approvals.webhook]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// Where each notification is POSTed.
    pub url: String,
    /// `json` (default): a JSON event; `slack`: a Slack-compatible `{"text": ...}` message.
    pub format: Option<tracegate_approvals::Format>,
    /// An environment variable holding the HMAC signing secret (at least 32 bytes); takes
    /// precedence over `secret_file`. One of the two is required: notifications are always signed.
    pub secret_env: Option<String>,
    /// A file holding the signing secret.
    pub secret_file: Option<PathBuf>,
    /// Attempts per notification, the first included (default 6).
    pub max_attempts: Option<u32>,
    /// Wait before the first retry, doubled after each (default `1s`, at most 5 min).
    pub backoff: Option<String>,
}

/// `[limits]`: per-principal bounds, keyed by issuer and subject. Each value must be at least 1;
/// to make one practically unlimited, give a large number. Defaults:
///
/// ```toml
/// [limits]
/// requests_per_minute = 3000          # sustained rate of requests (50/s)
/// request_burst = 500                 # requests allowed at once above that rate
/// access_requests_per_hour = 30       # new access requests (each pages an approver)
/// access_request_burst = 10
/// max_pending_access_requests = 10    # access requests one requester may have waiting
/// ```
///
/// Unauthenticated requests are not counted (they have no principal): each is a cheap `401`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Requests per principal per minute, sustained (default 3000).
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_minute: u32,
    /// Requests a principal may send at once on top of the sustained rate (default 500).
    #[serde(default = "default_request_burst")]
    pub request_burst: u32,
    /// New access requests per principal per hour, sustained (default 30). Asking again for a
    /// request already pending joins it and costs nothing.
    #[serde(default = "default_access_requests_per_hour")]
    pub access_requests_per_hour: u32,
    /// New access requests a principal may open at once (default 10).
    #[serde(default = "default_access_request_burst")]
    pub access_request_burst: u32,
    /// Access requests one requester may have pending at once (default 10); `Retry-After` says
    /// when the oldest expires.
    #[serde(default = "default_max_pending")]
    pub max_pending_access_requests: u32,
    /// Openings of access requests one requester may have in flight on one replica (default 8):
    /// one runs, the rest wait in memory holding no database connection, and past this they are
    /// refused with `429`, so one caller cannot tie up a replica's connection pool.
    #[serde(default = "default_queued_openings")]
    pub queued_openings: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            requests_per_minute: default_requests_per_minute(),
            request_burst: default_request_burst(),
            access_requests_per_hour: default_access_requests_per_hour(),
            access_request_burst: default_access_request_burst(),
            max_pending_access_requests: default_max_pending(),
            queued_openings: default_queued_openings(),
        }
    }
}

fn default_requests_per_minute() -> u32 {
    3000
}

fn default_request_burst() -> u32 {
    500
}

fn default_access_requests_per_hour() -> u32 {
    30
}

fn default_access_request_burst() -> u32 {
    10
}

fn default_max_pending() -> u32 {
    10
}

fn default_queued_openings() -> u32 {
    8
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl GatewayConfig {
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<GatewayConfig, ConfigError> {
        let mut cfg: GatewayConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| tracegate_core::policy::LineIndex::new(text).position(s.start));
            ConfigError::Parse { path: path.to_owned(), line, column, message: e.message().to_owned() }
        })?;
        cfg.base_dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if cfg.base_dir.as_os_str().is_empty() {
            cfg.base_dir = PathBuf::from(".");
        }
        if cfg.server.acceptors.is_some_and(|n| n > crate::acceptors::MAX_ACCEPTORS) {
            return Err(ConfigError::Invalid(format!(
                "[server] acceptors: at most {}",
                crate::acceptors::MAX_ACCEPTORS
            )));
        }
        Ok(cfg)
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn policy_path(&self) -> PathBuf {
        self.resolve(&self.policy.path)
    }

    /// The masking key, from the environment variable or file the config names. `None` when
    /// neither is configured; an error when one is configured but unusable.
    pub fn mask_key(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if let Some(var) = &self.masking.key_env {
            if let Ok(v) = std::env::var(var) {
                return check_key(v.trim().as_bytes().to_vec(), &format!("environment variable `{var}`")).map(Some);
            }
        }
        match &self.masking.key_file {
            None => Ok(None),
            Some(f) => {
                let p = self.resolve(f);
                let text = std::fs::read(&p).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                let trimmed = String::from_utf8_lossy(&text).trim().as_bytes().to_vec();
                check_key(trimmed, &format!("`{}`", p.display())).map(Some)
            }
        }
    }
}

impl GatewayConfig {
    /// The webhook signing secret from `approvals.webhook.secret_env` or `secret_file`.
    pub fn webhook_secret(&self) -> Result<Vec<u8>, ConfigError> {
        let Some(w) = &self.approvals.webhook else {
            return Err(ConfigError::Invalid("no `[approvals.webhook]` is configured".into()));
        };
        let (secret, from) = match (&w.secret_env, &w.secret_file) {
            (Some(var), _) if std::env::var(var).is_ok() => {
                (std::env::var(var).unwrap_or_default().trim().as_bytes().to_vec(), format!("environment variable `{var}`"))
            }
            (_, Some(f)) => {
                let p = self.resolve(f);
                let text = std::fs::read(&p).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                (String::from_utf8_lossy(&text).trim().as_bytes().to_vec(), format!("`{}`", p.display()))
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "`[approvals.webhook]` needs `secret_env` (set) or `secret_file`: notifications are always signed".into(),
                ))
            }
        };
        if secret.len() < tracegate_approvals::notify::MIN_SECRET_LEN {
            return Err(ConfigError::Invalid(format!(
                "the webhook secret in {from} is shorter than {} bytes",
                tracegate_approvals::notify::MIN_SECRET_LEN
            )));
        }
        Ok(secret)
    }
}

fn check_key(key: Vec<u8>, from: &str) -> Result<Vec<u8>, ConfigError> {
    if key.len() < 32 {
        return Err(ConfigError::Invalid(format!("the masking key in {from} is shorter than 32 bytes")));
    }
    Ok(key)
}
