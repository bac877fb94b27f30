//! Service accounts: API keys for non-human callers (CI jobs, exporters, agents), created,
//! rotated and revoked by operators.
//!
//! A key is `tgsa_<id>_<secret>`: the prefix lets secret scanners and our own masker recognise
//! it, `<id>` (16 hex digits) names the key without being secret, `<secret>` is 64 hex digits
//! (256 bits) from the system's random source. The key is shown once, when it is issued; the
//! store keeps only the SHA-256 of the whole key (a 256-bit random secret needs no slow hash),
//! compared in constant time. Each key has an expiry; an account holds at most
//! [`MAX_LIVE_KEYS`] live keys, so a rotation can overlap an old and a new key.
//!
//! Accounts live behind [`ServiceAccountStore`]. The embedded [`FileStore`] is an append-only
//! JSON Lines log that every gateway sharing its directory reads on each request (one `stat`,
//! then only what was appended), so a revocation made through one replica is refused by every
//! replica on its next request. Writers take an exclusive file lock for each change and decide
//! it against the log as it stands under that lock. Principals of service accounts are never
//! cached.
//!
//! The approvals store has a log of the same shape, but it is built for one process per
//! directory (it takes the lock for its lifetime and never re-reads); this one must see other
//! writers' changes on every request. The two share the format (fsync'd JSON Lines, torn tail
//! dropped) but not code: they sit in crates that do not know each other. With `[state]`, the
//! PostgreSQL store of `tracegate-state` (an event table read on every request) is injected
//! instead ([`ServiceAccounts::with_store`]); this crate does not know SQL.
//!
//! The store is async: the file store does its file work (including waiting for another
//! writer's lock) on a blocking thread, never on an async worker.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracegate_core::{AuthMethod, Principal};

use crate::config::ServiceAccountsConfig;
use crate::error::{AuthError, IdentityError};

/// Every service-account key starts with this.
pub const KEY_PREFIX: &str = "tgsa_";
/// The `issuer` of service-account principals (not a URL: no token names it).
pub const ISSUER: &str = "tracegate:service-accounts";
/// Live (unexpired, unrevoked) keys an account may hold at once: the old and the new one of a
/// rotation.
pub const MAX_LIVE_KEYS: usize = 2;
/// The log file inside the store directory.
pub const LOG_FILE: &str = "service-accounts.jsonl";
/// Hex digits of a key id and of a key secret.
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;
/// A key's last use is written at most this often (per key and process); the log is not a
/// request log.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A time, as RFC 3339 in the log and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(#[serde(with = "tracegate_core::approval::rfc3339")] pub SystemTime);

/// One account, as it stands. Holds no secret: key hashes are kept out of its serialized form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub name: String,
    /// The policy roles this account is scoped to.
    pub roles: Vec<String>,
    /// String claims its principal carries (e.g. `tenant`, for row scope).
    pub claims: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: Time,
    pub created_by: String,
    /// Set once the whole account is revoked: every key is then refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
    pub keys: Vec<KeyRecord>,
}

/// One key of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    pub id: String,
    #[serde(skip)]
    hash: [u8; 32],
    pub created_at: Time,
    pub created_by: String,
    pub expires_at: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Time>,
}

impl KeyRecord {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at.0
    }
}

impl Account {
    pub fn live_keys(&self, now: SystemTime) -> usize {
        if self.revoked_at.is_some() {
            return 0;
        }
        self.keys.iter().filter(|k| k.is_live(now)).count()
    }
}

/// Every account, with an index from key id to account.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    by_name: BTreeMap<String, Account>,
    by_key: HashMap<String, String>,
}

impl Accounts {
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.by_name.values()
    }

    fn key(&self, id: &str) -> Option<(&Account, &KeyRecord)> {
        let account = self.by_name.get(self.by_key.get(id)?)?;
        Some((account, account.keys.iter().find(|k| k.id == id)?))
    }

    /// Applies one recorded change. Events were checked when made; one that no longer fits
    /// (an unknown account) is ignored, as a replay must never fail half way. Public for stores
    /// in other crates, which replay the same events.
    pub fn apply(&mut self, e: &Event) {
        let at = e.at;
        match &e.change {
            Change::Created { account, roles, claims, description, by } => {
                self.by_name.entry(account.clone()).or_insert_with(|| Account {
                    name: account.clone(),
                    roles: roles.clone(),
                    claims: claims.clone(),
                    description: description.clone(),
                    created_at: at,
                    created_by: by.clone(),
                    revoked_at: None,
                    keys: Vec::new(),
                });
            }
            Change::KeyIssued { account, key_id, hash, expires_at, by } => {
                let Some(a) = self.by_name.get_mut(account) else { return };
                let Some(hash) = decode_hash(hash) else { return };
                a.keys.push(KeyRecord {
                    id: key_id.clone(),
                    hash,
                    created_at: at,
                    created_by: by.clone(),
                    expires_at: *expires_at,
                    revoked_at: None,
                    last_used_at: None,
                });
                self.by_key.insert(key_id.clone(), account.clone());
            }
            Change::KeyRevoked { account, key_id, .. } => {
                if let Some(k) = self.by_name.get_mut(account).and_then(|a| a.keys.iter_mut().find(|k| k.id == *key_id)) {
                    k.revoked_at.get_or_insert(at);
                }
            }
            Change::AccountRevoked { account, .. } => {
                if let Some(a) = self.by_name.get_mut(account) {
                    a.revoked_at.get_or_insert(at);
                    for k in &mut a.keys {
                        k.revoked_at.get_or_insert(at);
                    }
                }
            }
            Change::Used { key_id } => {
                let Some(name) = self.by_key.get(key_id) else { return };
                if let Some(k) = self.by_name.get_mut(name).and_then(|a| a.keys.iter_mut().find(|k| k.id == *key_id)) {
                    if k.last_used_at.is_none_or(|t| t < at) {
                        k.last_used_at = Some(at);
                    }
                }
            }
        }
    }
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Time,
    #[serde(flatten)]
    pub change: Change,
}

/// What changed. `by` is the subject of the operator who made the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Created {
        account: String,
        roles: Vec<String>,
        #[serde(default)]
        claims: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        by: String,
    },
    /// A key was issued; `hash` is the hex SHA-256 of the whole key.
    KeyIssued { account: String, key_id: String, hash: String, expires_at: Time, by: String },
    KeyRevoked { account: String, key_id: String, by: String },
    AccountRevoked { account: String, by: String },
    /// A key was used (written at most once a minute per key and gateway; best effort).
    Used { key_id: String },
}

/// Why a service-account operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceAccountError {
    #[error("service account `{0}` not found")]
    NotFound(String),
    #[error("service account `{0}` already exists")]
    Exists(String),
    #[error("service account `{account}` has no key `{key_id}`")]
    NoSuchKey { account: String, key_id: String },
    #[error("service account `{0}` is revoked")]
    Revoked(String),
    #[error("service account `{0}` already has {MAX_LIVE_KEYS} live keys: revoke one before rotating again")]
    TooManyKeys(String),
    /// The request itself is wrong (a name, a role, a lifetime).
    #[error("{0}")]
    Invalid(String),
    #[error("service-account log `{path}`: {reason}")]
    Store { path: PathBuf, reason: String },
}

impl ServiceAccountError {
    /// A stable code for API bodies and audit.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceAccountError::NotFound(_) | ServiceAccountError::NoSuchKey { .. } => "not_found",
            ServiceAccountError::Exists(_) => "service_account_exists",
            ServiceAccountError::Revoked(_) => "service_account_revoked",
            ServiceAccountError::TooManyKeys(_) => "too_many_keys",
            ServiceAccountError::Invalid(_) => "invalid_request",
            ServiceAccountError::Store { .. } => "service_accounts_unavailable",
        }
    }

    /// The HTTP status this becomes.
    pub fn status(&self) -> u16 {
        match self {
            ServiceAccountError::NotFound(_) | ServiceAccountError::NoSuchKey { .. } => 404,
            ServiceAccountError::Exists(_) | ServiceAccountError::Revoked(_) | ServiceAccountError::TooManyKeys(_) => 409,
            ServiceAccountError::Invalid(_) => 400,
            ServiceAccountError::Store { .. } => 503,
        }
    }
}

/// Decides a change against the accounts as they stand under the store's write lock: the
/// events to record, or a refusal.
pub type Decide = Box<dyn FnMut(&Accounts) -> Result<Vec<Event>, ServiceAccountError> + Send>;

/// Where service accounts are kept. Implementations must make a committed change visible to
/// every gateway sharing the store on its next [`ServiceAccountStore::snapshot`].
#[async_trait::async_trait]
pub trait ServiceAccountStore: Send + Sync {
    /// The accounts as they stand now, changes by other gateways included.
    async fn snapshot(&self) -> Result<Arc<Accounts>, ServiceAccountError>;

    /// Decides a change against the latest state and records it durably, atomically with
    /// respect to every other writer; returns the state after it. `decide` may refuse.
    async fn commit(&self, decide: Decide) -> Result<Arc<Accounts>, ServiceAccountError>;

    /// Records a key's use, best effort (not synced; skipped if the store is busy).
    async fn touch(&self, key_id: &str, at: SystemTime);
}

// ---- the embedded file-backed store ----------------------------------------------------------

/// The embedded store: `service-accounts.jsonl` in a directory gateways may share. Cheap to
/// clone (one shared log handle).
#[derive(Clone)]
pub struct FileStore(Arc<FileLog>);

/// The log itself; every method is synchronous and runs on a blocking thread.
struct FileLog {
    path: PathBuf,
    inner: Mutex<FileInner>,
}

struct FileInner {
    /// Bytes of the log consumed: whole lines only.
    offset: u64,
    state: Arc<Accounts>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore").field("path", &self.0.path).finish_non_exhaustive()
    }
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir` and reads its log.
    pub fn open(dir: &Path) -> Result<FileStore, ServiceAccountError> {
        let path = dir.join(LOG_FILE);
        let store = FileLog { path, inner: Mutex::new(FileInner { offset: 0, state: Arc::default() }) };
        std::fs::create_dir_all(dir).map_err(|e| store.err(e))?;
        OpenOptions::new().create(true).append(true).open(&store.path).map_err(|e| store.err(e))?;
        store.catch_up(&mut store.lock())?;
        Ok(FileStore(Arc::new(store)))
    }

    /// Runs `f` on the log on a blocking thread.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&FileLog) -> Result<T, ServiceAccountError> + Send + 'static) -> Result<T, ServiceAccountError> {
        let log = self.0.clone();
        let path = log.path.clone();
        tokio::task::spawn_blocking(move || f(&log))
            .await
            .unwrap_or_else(|e| Err(ServiceAccountError::Store { path, reason: format!("the service-account task failed: {e}") }))
    }
}

impl FileLog {
    fn err(&self, e: impl std::fmt::Display) -> ServiceAccountError {
        ServiceAccountError::Store { path: self.path.clone(), reason: e.to_string() }
    }

    fn lock(&self) -> MutexGuard<'_, FileInner> {
        // State is replaced whole (an `Arc`) only after a successful read: never half applied.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads whatever whole lines were appended since the last look. A line cut short (a
    /// writer mid-write, or one that crashed) is left for later; a whole line that does not
    /// parse makes the store unusable (fail closed) until it is repaired.
    fn catch_up(&self, inner: &mut FileInner) -> Result<(), ServiceAccountError> {
        let len = std::fs::metadata(&self.path).map_err(|e| self.err(e))?.len();
        if len == inner.offset {
            return Ok(());
        }
        let mut state = if len < inner.offset {
            // Shorter than what was read: not an append-only history any more. Start over.
            inner.offset = 0;
            Accounts::default()
        } else {
            (*inner.state).clone()
        };
        let mut file = File::open(&self.path).map_err(|e| self.err(e))?;
        file.seek(SeekFrom::Start(inner.offset)).map_err(|e| self.err(e))?;
        let mut buf = Vec::new();
        file.take(len - inner.offset).read_to_end(&mut buf).map_err(|e| self.err(e))?;
        let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for (n, line) in buf[..whole].split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: Event = serde_json::from_slice(line)
                .map_err(|e| self.err(format!("an event after byte {} (line {} of the new part) is invalid: {e}", inner.offset, n + 1)))?;
            state.apply(&event);
        }
        inner.offset += whole as u64;
        inner.state = Arc::new(state);
        Ok(())
    }

    /// Opens the log for appending and takes the exclusive lock every writer takes.
    fn writer(&self, wait: bool) -> Result<Option<File>, ServiceAccountError> {
        let file = OpenOptions::new().read(true).append(true).open(&self.path).map_err(|e| self.err(e))?;
        if wait {
            file.lock().map_err(|e| self.err(e))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(self.err(e)),
            }
        }
        // Under the lock no one else is writing: a last line without its newline is the torn
        // write of a writer that died. It was never acknowledged; drop it.
        let len = file.metadata().map_err(|e| self.err(e))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            let mut f = &file;
            f.seek(SeekFrom::Start(len - 1)).map_err(|e| self.err(e))?;
            f.read_exact(&mut last).map_err(|e| self.err(e))?;
            if last[0] != b'\n' {
                let mut all = Vec::new();
                f.seek(SeekFrom::Start(0)).map_err(|e| self.err(e))?;
                f.read_to_end(&mut all).map_err(|e| self.err(e))?;
                let keep = all.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                tracing::warn!(path = %self.path.display(), dropped = all.len() - keep, "dropping a torn last line of the service-account log");
                file.set_len(keep as u64).and_then(|()| file.sync_data()).map_err(|e| self.err(e))?;
            }
        }
        Ok(Some(file))
    }

    fn append(&self, mut file: &File, events: &[Event], sync: bool) -> Result<(), ServiceAccountError> {
        let mut bytes = Vec::new();
        for e in events {
            serde_json::to_writer(&mut bytes, e).map_err(|e| self.err(e))?;
            bytes.push(b'\n');
        }
        file.write_all(&bytes).map_err(|e| self.err(e))?;
        if sync {
            file.sync_data().map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ServiceAccountStore for FileStore {
    async fn snapshot(&self) -> Result<Arc<Accounts>, ServiceAccountError> {
        // The usual case, nothing appended since the last read, is one `stat` answered on this
        // thread: handing it to a blocking thread cost several times the `stat` itself (5 µs
        // on a quiet machine, 27 µs on a busy one, against about 1 µs). The log is local or on
        // a share mounted beside the config; a growing log is read on a blocking thread.
        {
            let len = std::fs::metadata(&self.0.path).map_err(|e| self.0.err(e))?.len();
            let inner = self.0.lock();
            if len == inner.offset {
                return Ok(inner.state.clone());
            }
        }
        self.run(|log| {
            let mut inner = log.lock();
            log.catch_up(&mut inner)?;
            Ok(inner.state.clone())
        })
        .await
    }

    async fn commit(&self, decide: Decide) -> Result<Arc<Accounts>, ServiceAccountError> {
        self.run(move |log| log.commit(decide)).await
    }

    async fn touch(&self, key_id: &str, at: SystemTime) {
        let key_id = key_id.to_owned();
        let _ = self
            .run(move |log| {
                log.touch(&key_id, at);
                Ok(())
            })
            .await;
    }
}

impl FileLog {
    fn commit(&self, mut decide: Decide) -> Result<Arc<Accounts>, ServiceAccountError> {
        let mut inner = self.lock();
        let Some(file) = self.writer(true)? else {
            return Err(self.err("the log is locked"));
        };
        // Decide against the log as it stands under the lock: another gateway may have written.
        self.catch_up(&mut inner)?;
        let events = decide(&inner.state)?;
        self.append(&file, &events, true)?;
        // The lock is released when `file` is dropped, after the catch-up below has read what
        // was just written.
        self.catch_up(&mut inner)?;
        drop(file);
        Ok(inner.state.clone())
    }

    fn touch(&self, key_id: &str, at: SystemTime) {
        let event = Event { at: Time(at), change: Change::Used { key_id: key_id.to_owned() } };
        match self.writer(false) {
            Ok(Some(file)) => {
                if let Err(e) = self.append(&file, &[event], false) {
                    tracing::debug!(error = %e, "recording a service-account key's use failed");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "recording a service-account key's use failed"),
        }
    }
}

// ---- keys, checks and the operator's operations -----------------------------------------------

/// A newly issued key. The only place the key ever appears; not `Debug` on purpose.
pub struct Issued {
    pub account: Account,
    pub key_id: String,
    /// `tgsa_<id>_<secret>`: show it once, store it nowhere.
    pub key: String,
    pub expires_at: Time,
}

/// What an operator asks for when creating an account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub name: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Lifetime of the first key (e.g. `"30d"`); the configured default when absent.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// Service accounts: the store, the checks made on every key, and the operations on accounts.
pub struct ServiceAccounts {
    store: Box<dyn ServiceAccountStore>,
    cfg: ServiceAccountsConfig,
    /// When each key's use was last written, per this process.
    touched: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for ServiceAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccounts").field("admin_groups", &self.cfg.admin_groups).finish_non_exhaustive()
    }
}

impl ServiceAccounts {
    /// The embedded file store named by `cfg.path`, relative to `base_dir`.
    pub fn open(cfg: &ServiceAccountsConfig, base_dir: &Path) -> Result<ServiceAccounts, IdentityError> {
        let dir = base_dir.join(&cfg.path);
        let store = FileStore::open(&dir).map_err(|e| IdentityError::Config {
            field: "identity.service_accounts.path".into(),
            reason: e.to_string(),
        })?;
        Ok(ServiceAccounts::with_store(cfg.clone(), Box::new(store)))
    }

    /// Over any store (another backend, or a second handle on the same directory in tests).
    pub fn with_store(cfg: ServiceAccountsConfig, store: Box<dyn ServiceAccountStore>) -> ServiceAccounts {
        ServiceAccounts { store, cfg, touched: Mutex::new(HashMap::new()) }
    }

    /// May `p` manage service accounts? Members of `admin_groups` only, and never a service
    /// account (a key must not be able to mint keys).
    pub fn is_admin(&self, p: &Principal) -> bool {
        p.auth_method != AuthMethod::ServiceAccount && p.groups.iter().any(|g| self.cfg.admin_groups.contains(g))
    }

    /// Checks a `tgsa_` key and returns its principal: subject = account name, issuer =
    /// [`ISSUER`], groups = the account's role names (the server resolves them against the
    /// policy), claims = the account's claims plus `service_account_key` (the key id).
    pub async fn authenticate(&self, key: &str) -> Result<Principal, AuthError> {
        let key_id = parse_key(key).ok_or(AuthError::ServiceAccountKey)?;
        let state = self.store.snapshot().await.map_err(|e| {
            tracing::error!(error = %e, "service-account store unreadable; refusing service-account keys");
            AuthError::ServiceAccountsUnavailable
        })?;
        let (account, record) = state.key(key_id).ok_or(AuthError::ServiceAccountKey)?;
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        aws_lc_rs::constant_time::verify_slices_are_equal(&presented, &record.hash)
            .map_err(|_| AuthError::ServiceAccountKey)?;
        // Only a holder of the secret learns the key's state.
        if record.revoked_at.is_some() || account.revoked_at.is_some() {
            return Err(AuthError::ServiceAccountKeyRevoked);
        }
        let now = SystemTime::now();
        if now >= record.expires_at.0 {
            return Err(AuthError::ServiceAccountKeyExpired);
        }
        self.touch(key_id, now).await;
        let mut claims = account.claims.clone();
        claims.insert("service_account_key".into(), key_id.to_owned());
        Ok(Principal {
            subject: account.name.clone(),
            issuer: ISSUER.to_owned(),
            groups: account.roles.clone(),
            claims,
            auth_method: AuthMethod::ServiceAccount,
            person: None,
            credential: Default::default(),
        })
    }

    async fn touch(&self, key_id: &str, now: SystemTime) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
            if touched.get(key_id).is_some_and(|t| t.elapsed() < TOUCH_EVERY) {
                return;
            }
            touched.insert(key_id.to_owned(), Instant::now());
        }
        self.store.touch(key_id, now).await;
    }

    /// Every account, by name.
    pub async fn list(&self) -> Result<Vec<Account>, ServiceAccountError> {
        Ok(self.store.snapshot().await?.iter().cloned().collect())
    }

    /// Creates an account and its first key. `known_role` says whether a role name exists in
    /// the policy being served.
    pub async fn create(
        &self,
        req: &NewAccount,
        by: &str,
        known_role: &(dyn Fn(&str) -> Result<(), String> + Sync),
        now: SystemTime,
    ) -> Result<Issued, ServiceAccountError> {
        check_name(&req.name)?;
        if req.roles.is_empty() {
            return Err(ServiceAccountError::Invalid("a service account needs at least one role".into()));
        }
        for r in &req.roles {
            known_role(r).map_err(ServiceAccountError::Invalid)?;
        }
        if let Some(d) = &req.description {
            if d.len() > 500 {
                return Err(ServiceAccountError::Invalid("the description is longer than 500 bytes".into()));
            }
        }
        if req.claims.keys().any(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
            return Err(ServiceAccountError::Invalid(format!("claims may not be named {}", RESERVED_CLAIMS.join(", "))));
        }
        let ttl = self.ttl(req.ttl.as_deref())?;
        let (key_id, key) = generate()?;
        let expires_at = Time(now + ttl);
        let name = req.name.clone();
        let events = vec![
            Event {
                at: Time(now),
                change: Change::Created {
                    account: name.clone(),
                    roles: req.roles.clone(),
                    claims: req.claims.clone(),
                    description: req.description.clone(),
                    by: by.to_owned(),
                },
            },
            issue_event(&name, &key_id, &key, expires_at, by, now),
        ];
        let decide = move |s: &Accounts| {
            if s.get(&name).is_some() {
                return Err(ServiceAccountError::Exists(name.clone()));
            }
            Ok(events.clone())
        };
        let state = self.store.commit(Box::new(decide)).await?;
        let account = state.get(&req.name).cloned().ok_or_else(|| ServiceAccountError::NotFound(req.name.clone()))?;
        Ok(Issued { account, key_id, key, expires_at })
    }

    /// Issues a new key for `name`, leaving its other live key working (revoke it once every
    /// caller has the new one). Refused while the account already has [`MAX_LIVE_KEYS`].
    pub async fn rotate(&self, name: &str, ttl: Option<&str>, by: &str, now: SystemTime) -> Result<Issued, ServiceAccountError> {
        let ttl = self.ttl(ttl)?;
        let (key_id, key) = generate()?;
        let expires_at = Time(now + ttl);
        let event = issue_event(name, &key_id, &key, expires_at, by, now);
        let owned = name.to_owned();
        let decide = move |s: &Accounts| {
            let a = s.get(&owned).ok_or_else(|| ServiceAccountError::NotFound(owned.clone()))?;
            if a.revoked_at.is_some() {
                return Err(ServiceAccountError::Revoked(owned.clone()));
            }
            if a.live_keys(now) >= MAX_LIVE_KEYS {
                return Err(ServiceAccountError::TooManyKeys(owned.clone()));
            }
            Ok(vec![event.clone()])
        };
        let state = self.store.commit(Box::new(decide)).await?;
        let account = state.get(name).cloned().ok_or_else(|| ServiceAccountError::NotFound(name.to_owned()))?;
        Ok(Issued { account, key_id, key, expires_at })
    }

    /// Revokes one key (`key_id`) or, without one, the whole account. Takes effect on every
    /// gateway sharing the store at its next request.
    pub async fn revoke(&self, name: &str, key_id: Option<&str>, by: &str, now: SystemTime) -> Result<Account, ServiceAccountError> {
        let (name_owned, key_id, by) = (name.to_owned(), key_id.map(str::to_owned), by.to_owned());
        let decide = move |s: &Accounts| {
            let (name, by) = (name_owned.as_str(), by.as_str());
            let a = s.get(name).ok_or_else(|| ServiceAccountError::NotFound(name.to_owned()))?;
            let change = match key_id.as_deref() {
                Some(id) => {
                    let k = a.keys.iter().find(|k| k.id == id).ok_or_else(|| ServiceAccountError::NoSuchKey {
                        account: name.to_owned(),
                        key_id: id.to_owned(),
                    })?;
                    if k.revoked_at.is_some() {
                        return Ok(Vec::new());
                    }
                    Change::KeyRevoked { account: name.to_owned(), key_id: id.to_owned(), by: by.to_owned() }
                }
                None if a.revoked_at.is_some() => return Ok(Vec::new()),
                None => Change::AccountRevoked { account: name.to_owned(), by: by.to_owned() },
            };
            Ok(vec![Event { at: Time(now), change }])
        };
        let state = self.store.commit(Box::new(decide)).await?;
        state.get(name).cloned().ok_or_else(|| ServiceAccountError::NotFound(name.to_owned()))
    }

    fn ttl(&self, text: Option<&str>) -> Result<Duration, ServiceAccountError> {
        let ttl = match text {
            None => self.cfg.default_key_ttl,
            Some(t) => humantime::parse_duration(t)
                .map_err(|e| ServiceAccountError::Invalid(format!("`{t}` is not a duration such as \"30d\": {e}")))?,
        };
        if ttl.is_zero() || ttl > self.cfg.max_key_ttl {
            return Err(ServiceAccountError::Invalid(format!(
                "a key's lifetime must be positive and at most {}",
                humantime::format_duration(self.cfg.max_key_ttl)
            )));
        }
        Ok(ttl)
    }
}

/// Claims a service account may not set: they name it, and are set by the gateway.
const RESERVED_CLAIMS: [&str; 5] = ["sub", "iss", "aud", "groups", "service_account_key"];

fn issue_event(account: &str, key_id: &str, key: &str, expires_at: Time, by: &str, now: SystemTime) -> Event {
    Event {
        at: Time(now),
        change: Change::KeyIssued {
            account: account.to_owned(),
            key_id: key_id.to_owned(),
            hash: hex::encode(Sha256::digest(key.as_bytes())),
            expires_at,
            by: by.to_owned(),
        },
    }
}

/// Account names: lowercase letters, digits and `-`, 1 to 63, starting with a letter or digit.
fn check_name(name: &str) -> Result<(), ServiceAccountError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ServiceAccountError::Invalid(format!(
            "`{name}` is not a service-account name: 1 to 63 of a-z, 0-9 and `-`, not starting with `-`"
        )))
    }
}

/// A fresh key id and key.
fn generate() -> Result<(String, String), ServiceAccountError> {
    let mut bytes = [0u8; ID_HEX / 2 + SECRET_HEX / 2];
    SystemRandom::new().fill(&mut bytes).map_err(|_| ServiceAccountError::Store {
        path: PathBuf::new(),
        reason: "the system's random source failed".into(),
    })?;
    let (id, secret) = bytes.split_at(ID_HEX / 2);
    let id = hex::encode(id);
    let key = format!("{KEY_PREFIX}{id}_{}", hex::encode(secret));
    Ok((id, key))
}

/// The key id of a well-formed key, or `None`. Only lowercase hex of the exact lengths: a key
/// has exactly one spelling, so its hash has exactly one value.
pub fn parse_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then_some(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn dir(label: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tg-sa-{label}-{}-{}",
            std::process::id(),
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn accounts(d: &Path) -> ServiceAccounts {
        let cfg = ServiceAccountsConfig { admin_groups: vec!["admins".into()], ..ServiceAccountsConfig::default() };
        ServiceAccounts::with_store(cfg, Box::new(FileStore::open(d).unwrap()))
    }

    fn any_role(_: &str) -> Result<(), String> {
        Ok(())
    }

    fn new(name: &str) -> NewAccount {
        NewAccount { name: name.into(), roles: vec!["engineer".into()], ..NewAccount::default() }
    }

    #[test]
    fn keys_have_one_spelling() {
        let (id, key) = generate().unwrap();
        assert_eq!(parse_key(&key), Some(id.as_str()));
        assert_eq!(key.len(), KEY_PREFIX.len() + ID_HEX + 1 + SECRET_HEX);
        assert!(parse_key(&key.to_uppercase()).is_none());
        assert!(parse_key(&key[..key.len() - 1]).is_none());
        assert!(parse_key(&format!("{key}0")).is_none());
        assert!(parse_key(&key.replacen('_', "-", 2)).is_none());
        assert!(parse_key("tgsa_").is_none());
        assert_ne!(generate().unwrap().1, key);
    }

    #[tokio::test]
    async fn a_key_works_until_revoked_and_the_log_holds_no_secret() {
        let d = dir("life");
        let sa = accounts(&d);
        let now = SystemTime::now();
        let issued = sa.create(&new("ci-exporter"), "ops", &any_role, now).await.unwrap();
        let p = sa.authenticate(&issued.key).await.unwrap();
        assert_eq!((p.subject.as_str(), p.issuer.as_str(), p.auth_method), ("ci-exporter", ISSUER, AuthMethod::ServiceAccount));
        assert_eq!(p.groups, ["engineer"]);
        assert_eq!(p.claim("service_account_key"), Some(issued.key_id.as_str()));
        // One flipped secret digit, with the right id: refused, with the same answer as nonsense.
        let mut wrong = issued.key.clone().into_bytes();
        let last = wrong.len() - 1;
        wrong[last] = if wrong[last] == b'0' { b'1' } else { b'0' };
        let wrong = String::from_utf8(wrong).unwrap();
        assert_eq!(sa.authenticate(&wrong).await.unwrap_err(), AuthError::ServiceAccountKey);
        assert_eq!(sa.authenticate("tgsa_nonsense").await.unwrap_err(), AuthError::ServiceAccountKey);
        let log = std::fs::read_to_string(d.join(LOG_FILE)).unwrap();
        assert!(!log.contains(&issued.key[issued.key.len() - SECRET_HEX..]), "the secret reached the log");
        assert!(log.contains(&hex::encode(Sha256::digest(issued.key.as_bytes()))));
        sa.revoke("ci-exporter", Some(&issued.key_id), "ops", now).await.unwrap();
        assert_eq!(sa.authenticate(&issued.key).await.unwrap_err(), AuthError::ServiceAccountKeyRevoked);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn rotation_overlaps_two_keys_and_no_more() {
        let d = dir("rotate");
        let sa = accounts(&d);
        let now = SystemTime::now();
        let first = sa.create(&new("agent"), "ops", &any_role, now).await.unwrap();
        let second = sa.rotate("agent", Some("1d"), "ops", now).await.unwrap();
        sa.authenticate(&first.key).await.unwrap();
        sa.authenticate(&second.key).await.unwrap();
        assert!(matches!(sa.rotate("agent", None, "ops", now).await, Err(ServiceAccountError::TooManyKeys(_))));
        sa.revoke("agent", Some(&first.key_id), "ops", now).await.unwrap();
        let third = sa.rotate("agent", None, "ops", now).await.unwrap();
        sa.authenticate(&third.key).await.unwrap();
        // Revoking the account ends every key.
        sa.revoke("agent", None, "ops", now).await.unwrap();
        for k in [&second.key, &third.key] {
            assert_eq!(sa.authenticate(k).await.unwrap_err(), AuthError::ServiceAccountKeyRevoked);
        }
        assert!(matches!(sa.rotate("agent", None, "ops", now).await, Err(ServiceAccountError::Revoked(_))));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn expired_keys_and_bad_requests_are_refused() {
        let d = dir("expiry");
        let sa = accounts(&d);
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        let old = sa.create(&NewAccount { ttl: Some("1m".into()), ..new("old") }, "ops", &any_role, long_ago).await.unwrap();
        assert_eq!(sa.authenticate(&old.key).await.unwrap_err(), AuthError::ServiceAccountKeyExpired);
        let now = SystemTime::now();
        for bad in ["", "UPPER", "-x", "a b", &"x".repeat(64)] {
            assert!(matches!(sa.create(&new(bad), "ops", &any_role, now).await, Err(ServiceAccountError::Invalid(_))), "{bad}");
        }
        assert!(matches!(sa.create(&new("old"), "ops", &any_role, now).await, Err(ServiceAccountError::Exists(_))));
        let too_long = NewAccount { ttl: Some("400d".into()), ..new("x") };
        assert!(matches!(sa.create(&too_long, "ops", &any_role, now).await, Err(ServiceAccountError::Invalid(_))));
        let no_role = |r: &str| Err(format!("no role `{r}`"));
        assert!(matches!(sa.create(&new("y"), "ops", &no_role, now).await, Err(ServiceAccountError::Invalid(m)) if m.contains("no role")));
        let mut reserved = new("z");
        reserved.claims.insert("groups".into(), "sre".into());
        assert!(matches!(sa.create(&reserved, "ops", &any_role, now).await, Err(ServiceAccountError::Invalid(_))));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn two_handles_on_one_directory_see_each_other_and_torn_tails_are_dropped() {
        let d = dir("shared");
        let a = accounts(&d);
        let b = accounts(&d);
        let now = SystemTime::now();
        let issued = a.create(&new("shared"), "ops", &any_role, now).await.unwrap();
        // Created through `a`, accepted by `b`; revoked through `b`, refused by `a` at once.
        b.authenticate(&issued.key).await.unwrap();
        b.revoke("shared", None, "ops", now).await.unwrap();
        assert_eq!(a.authenticate(&issued.key).await.unwrap_err(), AuthError::ServiceAccountKeyRevoked);
        // Both writers decide against the log as it stands: a name taken by `b` is taken for `a`.
        b.create(&new("second"), "ops", &any_role, now).await.unwrap();
        assert!(matches!(a.create(&new("second"), "ops", &any_role, now).await, Err(ServiceAccountError::Exists(_))));
        // A torn write: readers ignore it, the next writer drops it.
        let mut f = OpenOptions::new().append(true).open(d.join(LOG_FILE)).unwrap();
        f.write_all(br#"{"at":"2026-01-01T00:00:00Z","change":"account_rev"#).unwrap();
        assert_eq!(a.list().await.unwrap().len(), 2);
        a.create(&new("third"), "ops", &any_role, now).await.unwrap();
        let reopened = accounts(&d);
        assert_eq!(reopened.list().await.unwrap().len(), 3);
        // A whole line that is not an event: fail closed, 503.
        f.write_all(b"\nnot an event\n").unwrap();
        let third = b.list().await;
        assert!(matches!(third, Err(ServiceAccountError::Store { .. })));
        assert_eq!(b.authenticate(&issued.key).await.unwrap_err(), AuthError::ServiceAccountsUnavailable);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn admins_are_named_groups_and_never_service_accounts() {
        let d = dir("admin");
        let sa = accounts(&d);
        let mut p = Principal {
            subject: "ops".into(),
            issuer: "i".into(),
            groups: vec!["admins".into()],
            claims: BTreeMap::new(),
            auth_method: AuthMethod::Oidc,
            person: None,
            credential: Default::default(),
        };
        assert!(sa.is_admin(&p));
        p.auth_method = AuthMethod::ServiceAccount;
        assert!(!sa.is_admin(&p));
        p.auth_method = AuthMethod::Dev;
        p.groups = vec!["eng".into()];
        assert!(!sa.is_admin(&p));
        std::fs::remove_dir_all(d).unwrap();
    }
}
