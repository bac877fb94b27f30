//! Shared state of a running gateway, built once from the config at start-up.

use std::sync::Arc;

use tracegate_audit::{AuditLog, AuditTrail, PgAuditLog};
use tracegate_core::mask::MaskKey;
use tracegate_core::Policy;
use tracegate_identity::Authenticator;
use tracegate_store::{MetaIndex, PgTraceIndex, TraceIndex, TraceStore};

use crate::config::{ConfigError, GatewayConfig};
use crate::metrics::Metrics;

pub struct AppState {
    pub policy: Arc<Policy>,
    pub auth: Authenticator,
    pub store: Arc<dyn TraceStore>,
    /// The metadata index: in memory (rebuilt at start-up), or the shared PostgreSQL table.
    pub index: MetaIndex,
    pub mask_key: MaskKey,
    pub metrics: Metrics,
    pub max_trace_bytes: usize,
    /// Reads of larger stored traces fail closed.
    pub max_read_bytes: usize,
    /// Stored bytes being projected and masked at once ([`crate::budget`]).
    pub read_budget: crate::budget::ReadBudget,
    /// 403 instead of 404 for traces outside the caller's row scope.
    pub explicit_row_scope_denials: bool,
    /// The audit trail: the embedded file log, or PostgreSQL with `[state]`.
    pub audit: AuditTrail,
    /// The audit directory (prune exports; the file log and its policy archive live here).
    pub audit_dir: std::path::PathBuf,
    /// Records older than this are exported and pruned while the gateway runs.
    pub audit_retention: Option<std::time::Duration>,
    /// Just-in-time approval: the access-request store and its notifier.
    pub approvals: crate::routes::approvals::Approvals,
    /// Per-principal request and access-request limits (`[limits]`).
    pub limits: crate::limits::Limits,
    /// Browser sign-in and sessions (`[identity.browser]`, or the console's development
    /// sign-in), if configured.
    pub browser: Option<crate::routes::browser::Browser>,
    /// The PostgreSQL pool of `[state]`, migrated; `None` in the embedded default.
    pub db: Option<tracegate_state::PgPool>,
    /// The last `/healthz`/`/readyz` probes, shared so they run at most once a second.
    pub health: crate::health::Health,
}

/// Why the gateway could not start. It never starts half-configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Policy(#[from] tracegate_core::PolicyError),
    #[error("identity: {0}")]
    Identity(String),
    #[error("audit: {0}")]
    Audit(#[from] tracegate_audit::AuditError),
    #[error("store: {0}")]
    Store(#[from] tracegate_store::StoreError),
    #[error("approvals: {0}")]
    Approvals(String),
    #[error("state: {0}")]
    State(#[from] tracegate_state::StateError),
}

impl AppState {
    pub async fn from_config(cfg: &GatewayConfig) -> Result<AppState, StartError> {
        let policy_path = cfg.policy_path();
        let text = std::fs::read_to_string(&policy_path)
            .map_err(|source| ConfigError::Read { path: policy_path.clone(), source })?;
        let policy = Policy::parse(&policy_path.display().to_string(), &text)?;
        let limits = crate::limits::Limits::new(&cfg.limits)?;
        // Shared state first: a replica that cannot reach it, or finds a schema newer than
        // itself, must not start and serve from a divergent local copy.
        let db = match cfg.has_state() {
            true => Some(tracegate_state::open(&cfg.state).await?),
            false => None,
        };
        // With shared state every replica spends from one budget per principal.
        let limits = match &db {
            Some(pool) => limits.shared(pool.clone()),
            None => limits,
        };
        let auth = Authenticator::with_backends(&cfg.identity, &cfg.base_dir, identity_backends(db.as_ref()))
            .map_err(|e| StartError::Identity(e.to_string()))?;
        let dev_sign_in = crate::routes::dev_login::DevSignIn::from_config(cfg).map_err(StartError::Identity)?;
        let browser = crate::routes::browser::Browser::from_config(&cfg.identity, &auth, &cfg.base_dir, db.as_ref(), dev_sign_in)
            .map_err(StartError::Identity)?;
        let store: Arc<dyn TraceStore> = Arc::new(cfg.open_store()?);
        let index = match &db {
            // Shared: kept on every write by every replica; `tracegate index rebuild` fills it.
            Some(pool) => MetaIndex::Postgres(PgTraceIndex::new(pool.clone())),
            None => MetaIndex::Memory(TraceIndex::rebuild(store.as_ref()).await?),
        };
        let mask_key = MaskKey(cfg.mask_key()?.unwrap_or_default());
        // A role that pseudonymises without a key would silently redact instead: refuse to start
        // rather than serve something other than what the operator configured.
        if let Some(role) = policy.roles.iter().find(|r| r.masking.uses_hash()) {
            if mask_key.0.len() < tracegate_core::mask::MIN_KEY_LEN {
                return Err(StartError::Config(ConfigError::Invalid(format!(
                    "role `{}` pseudonymises with `hash`, which needs a masking key: set [masking] key_file or key_env",
                    role.name
                ))));
            }
        }
        // The audit trail opens last and must open: no request is served unrecorded. Every
        // policy version served is archived (in the trail's own backend) so replay can re-apply it.
        let audit_cfg = cfg.audit.resolve(&cfg.base_dir);
        let key = audit_cfg.load_signing_key()?;
        let audit = match &db {
            Some(pool) => AuditTrail::Postgres(PgAuditLog::open(pool.clone(), audit_cfg.pg_options(), key).await?),
            None => AuditTrail::File(AuditLog::open(audit_cfg.log_options(), key)?),
        };
        audit.source().put_policy(&text).await?;
        if let Some(r) = audit.recovery() {
            tracing::warn!(recovery = ?r, "audit log recovered after an unclean stop");
        }
        let approvals = match &db {
            // Shared: a grant approved through one replica is honoured by every other, and a
            // one-time grant is used once across all of them (row locks in one transaction).
            Some(pool) => crate::routes::approvals::Approvals::with_store(
                cfg,
                tracegate_approvals::ApprovalStore::new(Box::new(tracegate_state::approvals::PgApprovals::new(pool.clone()))),
            ),
            None => crate::routes::approvals::Approvals::open(cfg),
        }
        .map_err(StartError::Approvals)?;
        let mut metrics = Metrics::default();
        if let Some(n) = &approvals.notifier {
            metrics.register_webhook(n.counters());
        }
        tracing::info!(policy = %policy.version, store = %store.describe(), traces = ?index.len_hint(), "gateway state ready");
        Ok(AppState {
            policy: Arc::new(policy),
            auth,
            store,
            index,
            mask_key,
            metrics,
            max_trace_bytes: cfg.server.max_trace_bytes,
            max_read_bytes: cfg.server.max_read_bytes,
            read_budget: crate::budget::ReadBudget::new(cfg.server.read_budget_bytes),
            explicit_row_scope_denials: cfg.server.explicit_row_scope_denials,
            audit,
            audit_retention: audit_cfg.retention,
            audit_dir: audit_cfg.dir,
            approvals,
            limits,
            browser,
            db,
            health: crate::health::Health::default(),
        })
    }
}

/// The identity stores: with `[state]`, every one in the shared database, so what one replica
/// redeems, revokes or starts holds on every replica's next request (service-account keys
/// created, rotated or revoked; SAML assertions and AuthnRequests used once across all
/// replicas). Without it, the embedded defaults.
fn identity_backends(db: Option<&tracegate_state::PgPool>) -> tracegate_identity::Backends {
    let Some(pool) = db else { return tracegate_identity::Backends::default() };
    tracegate_identity::Backends {
        service_accounts: Some(Box::new(tracegate_state::service_accounts::PgServiceAccounts::new(pool.clone()))),
        #[cfg(feature = "saml")]
        saml_replay: Some(Arc::new(tracegate_state::saml::PgReplayCache::new(pool.clone()))),
        #[cfg(feature = "saml")]
        saml_requests: Some(Arc::new(tracegate_state::saml::PgRequests::new(pool.clone()))),
    }
}
