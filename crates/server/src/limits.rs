//! Abuse bounds per principal: how fast one identity may send requests, how fast it may open
//! access requests (each pages a human), and how many of its access requests may wait at once.
//!
//! Rates are GCRA token buckets from `governor`, keyed by the principal's issuer and subject, so
//! one noisy caller cannot starve the others and a second token for the same person shares the
//! same budget. Refusals are `429 rate_limited` with `Retry-After`, recorded like any other
//! answer. The cap on pending requests is enforced by the approvals store under its lock (see
//! `tracegate_approvals::ApprovalStore::open_request`); this module only carries its number.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tracegate_core::Principal;

use crate::config::{ConfigError, LimitsSection};
use crate::error::ApiError;

/// Who a budget belongs to: subject within issuer.
type Key = (String, String);

pub struct Limits {
    requests: DefaultKeyedRateLimiter<Key>,
    opens: DefaultKeyedRateLimiter<Key>,
    /// Pending access requests one requester may have at once.
    pub max_pending: usize,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("max_pending", &self.max_pending).finish_non_exhaustive()
    }
}

impl Limits {
    /// Builds the limiters from `[limits]`; zero anywhere is a configuration error (a limit of
    /// nothing would refuse everyone — say a large number to mean "practically unlimited").
    pub fn new(cfg: &LimitsSection) -> Result<Limits, ConfigError> {
        let nz = |v: u32, what: &str| {
            NonZeroU32::new(v).ok_or_else(|| ConfigError::Invalid(format!("`limits.{what}` must be at least 1")))
        };
        let requests = Quota::per_minute(nz(cfg.requests_per_minute, "requests_per_minute")?)
            .allow_burst(nz(cfg.request_burst, "request_burst")?);
        let opens = Quota::per_hour(nz(cfg.access_requests_per_hour, "access_requests_per_hour")?)
            .allow_burst(nz(cfg.access_request_burst, "access_request_burst")?);
        let max_pending = nz(cfg.max_pending_access_requests, "max_pending_access_requests")?.get() as usize;
        Ok(Limits { requests: governor::RateLimiter::keyed(requests), opens: governor::RateLimiter::keyed(opens), max_pending })
    }

    /// Spends one request from `who`'s budget, or says how long to wait.
    pub async fn check_request(&self, who: &Principal) -> Result<(), ApiError> {
        check(&self.requests, who, "requests")
    }

    /// Spends one new access request from `who`'s budget (joining a pending one is free).
    pub async fn check_open(&self, who: &Principal) -> Result<(), ApiError> {
        check(&self.opens, who, "new access requests")
    }

    /// Forgets principals whose buckets are full again, so the maps hold only recent callers.
    pub fn forget_idle(&self) {
        self.requests.retain_recent();
        self.opens.retain_recent();
    }
}

fn check(limiter: &DefaultKeyedRateLimiter<Key>, who: &Principal, what: &str) -> Result<(), ApiError> {
    let key = (who.issuer.clone(), who.subject.clone());
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::too_many(format!("too many {what} from `{}`; retry later", who.subject), wait)
    })
}

/// `Retry-After` in whole seconds, rounded up, at least 1 (0 would invite an immediate retry).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1200)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[tokio::test]
    async fn a_burst_is_served_then_refused_per_principal() {
        let cfg = LimitsSection { requests_per_minute: 1, request_burst: 2, ..LimitsSection::default() };
        let limits = Limits::new(&cfg).unwrap_or_else(|e| unreachable!("{e}"));
        let who = |sub: &str, iss: &str| Principal {
            subject: sub.into(),
            issuer: iss.into(),
            groups: Vec::new(),
            claims: Default::default(),
            auth_method: tracegate_core::AuthMethod::Dev,
            person: None,
            credential: Default::default(),
        };
        assert!(limits.check_request(&who("a", "i")).await.is_ok());
        assert!(limits.check_request(&who("a", "i")).await.is_ok());
        let refused = limits.check_request(&who("a", "i")).await.err().unwrap_or_else(|| unreachable!("a third request in a minute"));
        assert_eq!((refused.status.as_u16(), refused.code), (429, "rate_limited"));
        assert!(refused.retry_after.is_some_and(|s| (1..=60).contains(&s)));
        // Same subject from another issuer is another person.
        assert!(limits.check_request(&who("a", "other")).await.is_ok());
    }

    #[test]
    fn zero_is_refused() {
        for cfg in [
            LimitsSection { request_burst: 0, ..LimitsSection::default() },
            LimitsSection { max_pending_access_requests: 0, ..LimitsSection::default() },
        ] {
            assert!(Limits::new(&cfg).is_err());
        }
    }
}
