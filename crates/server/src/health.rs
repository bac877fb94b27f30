//! What `GET /healthz` and `GET /readyz` report: the audit trail, the shared database and the
//! trace store, each probed by one cheap request.
//!
//! Both endpoints need no authentication, so they must not let a caller turn them into a flood
//! of bucket and database requests: the probes run at most once per [`FRESH_FOR`], callers in
//! between (and callers arriving while a probe runs) share its report — except that a failure
//! the audit trail already knows of (a write that just failed) is reported at once, since it
//! costs nothing to see and a load balancer must stop sending traffic. Each probe is bounded by
//! [`PROBE_TIMEOUT`], so a load balancer's check never hangs on a dead peer. The database and
//! the store are described by fixed words only, never by the backend's error text, which could
//! carry an endpoint or part of a credential; the reason is logged instead.
//!
//! - `/healthz` (liveness, and the check the deploy guide has always named) is `503` only while
//!   the audit trail cannot be written: then every request would be refused anyway.
//! - `/readyz` (readiness, for nginx Plus, HAProxy or Kubernetes) is `503` unless every peer the
//!   replica serves from answers — the audit trail, PostgreSQL (with `[state]`) and the bucket —
//!   so a replica that cannot reach PostgreSQL or S3 is taken out of rotation. It is fail-closed:
//!   a probe that errs or times out counts as not ready.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::state::AppState;

/// How long one set of probes answers for.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// The longest one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of one peer, as `/healthz` and `/readyz` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    Ok,
    /// It answered with an error (refused the credential, or failed).
    Failing,
    /// It did not answer within [`PROBE_TIMEOUT`].
    TimedOut,
    /// Not part of this deployment (no `[state]`: the embedded default).
    NotConfigured,
}

impl Peer {
    fn usable(self) -> bool {
        matches!(self, Peer::Ok | Peer::NotConfigured)
    }
}

/// One set of probes.
#[derive(Debug, Clone)]
pub struct Report {
    /// `Err(why)` while the audit trail cannot be written.
    pub audit: Result<(), String>,
    pub database: Peer,
    pub store: Peer,
}

impl Report {
    /// Every request could be recorded.
    pub fn live(&self) -> bool {
        self.audit.is_ok()
    }

    /// Every peer answers: the replica can serve reads, writes and searches.
    pub fn ready(&self) -> bool {
        self.live() && self.database.usable() && self.store.usable()
    }
}

/// The last report and when it was made; the lock also makes concurrent callers share a probe.
#[derive(Default)]
pub struct Health {
    last: Mutex<Option<(Instant, Report)>>,
}

impl Health {
    /// The current report: the last one if it is fresh, otherwise a new one. A failure the
    /// audit trail already knows of (a write that just failed) is reported at once, cached
    /// report or not: the probes are rate-limited, a known failure is free to see.
    pub async fn report(&self, state: &AppState) -> Report {
        let mut report = {
            let mut last = self.last.lock().await;
            match last.as_ref() {
                Some((at, report)) if at.elapsed() < FRESH_FOR => report.clone(),
                _ => {
                    let report = probe(state).await;
                    *last = Some((Instant::now(), report.clone()));
                    report
                }
            }
        };
        if let Some(why) = state.audit.known_failure() {
            report.audit = Err(why);
        }
        report
    }
}

async fn probe(state: &AppState) -> Report {
    let audit = async {
        tokio::time::timeout(PROBE_TIMEOUT, state.audit.health())
            .await
            .unwrap_or_else(|_| Err("the audit trail did not answer in time".to_owned()))
    };
    let database = async {
        let Some(pool) = &state.db else { return Peer::NotConfigured };
        let ping = tracegate_state::sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool);
        match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
            Ok(Ok(_)) => Peer::Ok,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the database probe failed");
                Peer::Failing
            }
            Err(_) => Peer::TimedOut,
        }
    };
    let store = async {
        match tokio::time::timeout(PROBE_TIMEOUT, state.store.probe()).await {
            Ok(Ok(())) => Peer::Ok,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, store = %state.store.describe(), "readiness: the trace store probe failed");
                Peer::Failing
            }
            Err(_) => Peer::TimedOut,
        }
    };
    let (audit, database, store) = tokio::join!(audit, database, store);
    Report { audit, database, store }
}
