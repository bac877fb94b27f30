//! Abuse bounds per principal: how fast one identity may send requests, how fast it may open
//! access requests (each pages a human), and how many of its access requests may wait at once.
//!
//! Rates are GCRA token buckets keyed by the principal's issuer and subject, so one noisy caller
//! cannot starve the others and a second token for the same person shares the same budget.
//! Refusals are `429 rate_limited` with `Retry-After`, recorded like any other answer. The cap on
//! pending requests is enforced by the approvals store under its lock (see
//! `tracegate_approvals::ApprovalStore::open_request`); this module only carries its number.
//!
//! Where the buckets live:
//! - embedded (no `[state]`): in memory, `governor`, per process;
//! - with `[state]`: in PostgreSQL (`rate_limits`, migration 0203), so every replica spends from
//!   one budget and a caller gains nothing by spreading requests over replicas. A check is one
//!   statement — an `INSERT … ON CONFLICT DO UPDATE … RETURNING` that applies the GCRA step
//!   under the row's lock, on the database's clock (replicas' clocks may disagree), and returns
//!   the verdict and, when refused, what `Retry-After` needs. A principal whose requests come
//!   fast is served from *leases* ([`Lease`]): one step takes several requests' worth of budget
//!   from the shared cell, and this replica spends them locally for at most [`LEASE_TTL`], so a
//!   busy caller costs one statement per lease instead of one per request. Leases are real spends
//!   from the one budget, so across replicas no more than the budget is ever allowed; what a
//!   replica leased and did not use before its lease ran out is lost (the caller's budget is that
//!   much smaller, at most [`max_lease`] − 1 requests, a 16th of the burst, each time its traffic
//!   stops). Bursts under 32 never lease more than one request: small budgets stay exact.
//!   When PostgreSQL cannot answer, the check fails closed (`503 rate_limit_unavailable`): a
//!   limiter that cannot count does not allow. (The audit record of such a request cannot be
//!   written either, so in practice the caller sees `503 audit_unavailable`.)
//!
//! Openings of access requests are also queued per requester in each process ([`Limits::opening`]):
//! the store serialises one requester's openings under a lock that, on PostgreSQL, holds a pool
//! connection while it waits, so without the queue one caller's burst of openings would drain
//! the replica's pool and every other caller there would fail. One opening per requester runs at
//! a time per replica; at most `limits.queued_openings` wait (holding no connection); more are `429`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tracegate_core::Principal;
use tracegate_state::{sqlx, PgPool};

use crate::config::{ConfigError, LimitsSection};
use crate::error::ApiError;

/// Who a budget belongs to: subject within issuer.
type Key = (String, String);

/// One limit: its in-process bucket and its GCRA parameters for the shared one.
struct Rate {
    /// The `name` column of its shared cells.
    name: &'static str,
    /// What the 429 says is too many.
    what: &'static str,
    local: DefaultKeyedRateLimiter<Key>,
    /// Microseconds between two requests at the sustained rate (GCRA's emission interval).
    interval_us: i64,
    /// `burst × interval`: how far ahead of now a cell's arrival time may run.
    tolerance_us: i64,
    /// The largest lease ([`max_lease`]).
    max_lease: u32,
    /// This replica's leases of shared budget, per principal.
    leases: Mutex<HashMap<Key, Lease>>,
    /// Leased requests dropped unspent (the lease expired, or was given up for a step of
    /// one): budget spent from the shared cell that no request used ([`Limits::leased_unspent`]).
    dropped: std::sync::atomic::AtomicU64,
}

/// How long a lease of shared budget may be spent after it was taken.
pub const LEASE_TTL: Duration = Duration::from_millis(250);

/// The most requests one lease takes: a 16th of the burst, at most 64 (at least 1).
pub fn max_lease(burst: u32) -> u32 {
    (burst / 16).clamp(1, 64)
}

/// Budget this replica took from a shared cell and has not spent yet.
#[derive(Debug)]
struct Lease {
    left: u32,
    /// How many requests the last lease took: the next doubles it while leases are used up
    /// within [`LEASE_TTL`], and starts at one again after a pause.
    size: u32,
    taken: std::time::Instant,
}

impl Rate {
    fn drop_unspent(&self, left: u32) {
        self.dropped.fetch_add(u64::from(left), std::sync::atomic::Ordering::Relaxed);
    }

    /// Gives up `key`'s lease, counting what it had left.
    fn forget_lease(&self, key: &Key) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = leases.remove(key) {
            self.drop_unspent(l.left);
        }
    }

    /// Spends one leased request of `key`, if a live lease has one left.
    fn spend_leased(&self, key: &Key) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get_mut(key) {
            Some(l) if l.left > 0 && l.taken.elapsed() < LEASE_TTL => {
                l.left -= 1;
                true
            }
            _ => false,
        }
    }

    /// The size of the next lease for `key`: double the last while the last was used up in
    /// time, else one.
    fn next_lease(&self, key: &Key) -> u32 {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get(key) {
            Some(l) if l.taken.elapsed() < LEASE_TTL => l.size.saturating_mul(2).min(self.max_lease),
            _ => 1,
        }
    }

    /// Keeps the `size - 1` requests a granted step of weight `size` leased beyond this one.
    fn keep_lease(&self, key: Key, size: u32) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let l = leases.entry(key).or_insert(Lease { left: 0, size, taken: now });
        if l.taken.elapsed() >= LEASE_TTL {
            self.drop_unspent(l.left);
            l.left = 0;
        }
        l.left = l.left.saturating_add(size - 1);
        l.size = size;
        l.taken = now;
    }
}

impl Rate {
    /// `count` per `per` sustained (`quota` is the same for `governor`), `burst` at once.
    fn new(
        name: &'static str,
        what: &'static str,
        quota: Quota,
        per: Duration,
        count: NonZeroU32,
        burst: NonZeroU32,
    ) -> Rate {
        let quota = quota.allow_burst(burst);
        let interval_us = i64::try_from(per.as_micros() / u128::from(count.get()))
            .unwrap_or(i64::MAX)
            .max(1);
        Rate {
            name,
            what,
            local: governor::RateLimiter::keyed(quota),
            interval_us,
            tolerance_us: interval_us.saturating_mul(i64::from(burst.get())),
            max_lease: max_lease(burst.get()),
            leases: Mutex::new(HashMap::new()),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

pub struct Limits {
    requests: Rate,
    opens: Rate,
    /// The `[state]` pool when the buckets are shared.
    shared: Option<PgPool>,
    /// Steps sent to the shared cells ([`Limits::shared_steps`]).
    steps: std::sync::atomic::AtomicU64,
    /// Pending access requests one requester may have at once.
    pub max_pending: usize,
    /// Each requester's opening queue in this process, while it has openings in flight.
    openings: Mutex<HashMap<(String, String), Arc<OpenSlot>>>,
    /// Openings of access requests one requester may have in flight in this process (one
    /// runs, the rest wait in memory, holding no pool connection); past it, `429` at once.
    open_queue: usize,
}


/// One requester's queue: the turn, and how many openings hold or wait for it.
struct OpenSlot {
    turn: Arc<tokio::sync::Semaphore>,
    /// Guarded by the map's lock, so the slot leaves the map exactly when the last one leaves.
    in_flight: std::sync::atomic::AtomicUsize,
}

/// The requester's turn to open an access request in this process; the next waiter's on drop.
pub struct OpeningTurn<'a> {
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
    ticket: Ticket<'a>,
}

impl OpeningTurn<'_> {
    /// Openings of this requester held or waiting in this process, this one included.
    pub fn in_flight(&self) -> usize {
        self.ticket.slot.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A place in a requester's queue; leaving it (even cancelled while waiting) frees the place.
struct Ticket<'a> {
    limits: &'a Limits,
    key: (String, String),
    slot: Arc<OpenSlot>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        let mut map = self.limits.openings.lock().unwrap_or_else(|p| p.into_inner());
        if self.slot.in_flight.fetch_sub(1, SeqCst) == 1 {
            map.remove(&self.key);
        }
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("max_pending", &self.max_pending)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// The GCRA step on one shared cell. `$4` is the step's increment — the emission interval
/// times the requests it spends (one, or a lease's size) — and `$5` the tolerance; the
/// clock is the database's. A new cell starts at `now + increment` (allowed: a lease is at most
/// a 16th of the burst, so within the tolerance). An existing one moves to `max(tat, now) + increment` if that is within
/// the tolerance of now, and otherwise stays, refused; `SET` expressions all read the old row.
/// The time returned for a refusal's wait is read again once the row is locked: the statement's
/// own clock was read before it queued for the lock, and behind concurrent steps that stale
/// time made the wait longer than one interval (a `Retry-After` of 3601 on an hourly limit).
///
/// Committed without waiting for the WAL flush (`synchronous_commit` off for this statement's
/// own transaction only, `set_config(…, true)`): the step holds its cell's row lock until it
/// commits, so with the flush awaited one principal's requests queued one flush apart, whatever
/// the limit (pgbench, 32 clients on one cell: ~1,900 steps a second, ~10,000 without the wait). A
/// step committed this way is visible to every replica at once, exactly as before; only a crash
/// of PostgreSQL itself can lose the last few hundred milliseconds of steps, which gives their
/// callers that much budget back — a limiter's error, never a lost or altered record (the audit
/// trail's commits still wait for the flush).
const GCRA_STEP: &str =
    "WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)),
clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us FROM unflushed)
INSERT INTO rate_limits AS r (name, issuer, subject, tat_us, allowed, seen_us)
SELECT $1, $2, $3, now_us + $4, true, now_us FROM clock
ON CONFLICT (name, issuer, subject) DO UPDATE SET
    allowed = GREATEST(r.tat_us, EXCLUDED.seen_us) + $4 - EXCLUDED.seen_us <= $5,
    tat_us = CASE WHEN GREATEST(r.tat_us, EXCLUDED.seen_us) + $4 - EXCLUDED.seen_us <= $5
                  THEN GREATEST(r.tat_us, EXCLUDED.seen_us) + $4 ELSE r.tat_us END,
    seen_us = EXCLUDED.seen_us
RETURNING allowed, tat_us, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

impl Limits {
    /// Builds the limiters from `[limits]`; zero anywhere is a configuration error (a limit of
    /// nothing would refuse everyone — say a large number to mean "practically unlimited").
    pub fn new(cfg: &LimitsSection) -> Result<Limits, ConfigError> {
        let nz = |v: u32, what: &str| {
            NonZeroU32::new(v)
                .ok_or_else(|| ConfigError::Invalid(format!("`limits.{what}` must be at least 1")))
        };
        let per_minute = nz(cfg.requests_per_minute, "requests_per_minute")?;
        let requests = Rate::new(
            "requests",
            "requests",
            Quota::per_minute(per_minute),
            Duration::from_secs(60),
            per_minute,
            nz(cfg.request_burst, "request_burst")?,
        );
        let per_hour = nz(cfg.access_requests_per_hour, "access_requests_per_hour")?;
        let opens = Rate::new(
            "access_requests",
            "new access requests",
            Quota::per_hour(per_hour),
            Duration::from_secs(3600),
            per_hour,
            nz(cfg.access_request_burst, "access_request_burst")?,
        );
        let max_pending = nz(
            cfg.max_pending_access_requests,
            "max_pending_access_requests",
        )?
        .get() as usize;
        let open_queue = nz(cfg.queued_openings, "queued_openings")?.get() as usize;
        Ok(Limits {
            requests,
            opens,
            shared: None,
            steps: std::sync::atomic::AtomicU64::new(0),
            max_pending,
            openings: Mutex::new(HashMap::new()),
            open_queue,
        })
    }

    /// The same limits, counted in the shared database (every replica spends from one budget).
    pub fn shared(mut self, pool: PgPool) -> Limits {
        self.shared = Some(pool);
        self
    }

    /// Spends one request from `who`'s budget, or says how long to wait.
    pub async fn check_request(&self, who: &Principal) -> Result<(), ApiError> {
        self.check(&self.requests, who).await
    }

    /// Spends one new access request from `who`'s budget (joining a pending one is free).
    pub async fn check_open(&self, who: &Principal) -> Result<(), ApiError> {
        self.check(&self.opens, who).await
    }

    /// Waits for `who`'s turn to open an access request in this process, holding nothing the
    /// others need meanwhile; `429` at once when `limits.queued_openings` openings of `who` are already in
    /// flight here. Openings of different requesters never wait for each other.
    pub async fn opening(&self, who: &Principal) -> Result<OpeningTurn<'_>, ApiError> {
        use std::sync::atomic::Ordering::SeqCst;
        let key = (who.issuer.clone(), who.subject.clone());
        let ticket = {
            let mut map = self.openings.lock().unwrap_or_else(|p| p.into_inner());
            let slot = map
                .entry(key.clone())
                .or_insert_with(|| Arc::new(OpenSlot { turn: Arc::new(tokio::sync::Semaphore::new(1)), in_flight: 0.into() }))
                .clone();
            if slot.in_flight.load(SeqCst) >= self.open_queue {
                return Err(ApiError::too_many(
                    format!("too many access-request openings from `{}` in flight; retry later", who.subject),
                    Duration::from_secs(1),
                ));
            }
            slot.in_flight.fetch_add(1, SeqCst);
            Ticket { limits: self, key, slot }
        };
        // The semaphore is never closed; a closed one would only mean no turn (refuse).
        let turn = ticket.slot.turn.clone().acquire_owned().await.map_err(|_| {
            ApiError::too_many("access-request openings are not being taken; retry later", Duration::from_secs(1))
        })?;
        Ok(OpeningTurn { _turn: Some(turn), ticket })
    }

    async fn check(&self, rate: &Rate, who: &Principal) -> Result<(), ApiError> {
        let refused = |wait: Duration| {
            ApiError::too_many(
                format!("too many {} from `{}`; retry later", rate.what, who.subject),
                wait,
            )
        };
        let Some(pool) = &self.shared else {
            let key = (who.issuer.clone(), who.subject.clone());
            return rate.local.check_key(&key).map_err(|not_until| {
                refused(not_until.wait_time_from(DefaultClock::default().now()))
            });
        };
        let key = (who.issuer.clone(), who.subject.clone());
        if rate.spend_leased(&key) {
            return Ok(());
        }
        let size = rate.next_lease(&key);
        let mut row = self.step(pool, rate, who, size).await?;
        if !row.0 && size > 1 {
            // Too little left for a lease: this one request may still fit. Leasing starts
            // again from one, so a caller at its limit costs one statement per request.
            rate.forget_lease(&key);
            row = self.step(pool, rate, who, 1).await?;
        } else if row.0 && size > 1 {
            rate.keep_lease(key, size);
        } else if row.0 {
            // A lease of one: nothing to keep, but the next may double it.
            rate.keep_lease(key, 1);
        }
        match row {
            (true, _, _) => Ok(()),
            (false, tat_us, now_us) => {
                let wait = tat_us
                    .saturating_add(rate.interval_us)
                    .saturating_sub(rate.tolerance_us)
                    .saturating_sub(now_us);
                Err(refused(Duration::from_micros(
                    u64::try_from(wait).unwrap_or(0),
                )))
            }
        }
    }

    /// One GCRA step of `weight` requests on `who`'s shared cell: all of them or none.
    async fn step(&self, pool: &PgPool, rate: &Rate, who: &Principal, weight: u32) -> Result<(bool, i64, i64), ApiError> {
        self.steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sqlx::query_as(GCRA_STEP)
            .bind(rate.name)
            .bind(&who.issuer)
            .bind(&who.subject)
            .bind(rate.interval_us.saturating_mul(i64::from(weight)))
            .bind(rate.tolerance_us)
            .fetch_one(pool)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, limit = rate.name, "shared rate limit could not be checked; refusing the request");
                ApiError::unavailable("rate_limit_unavailable", "the rate limit could not be checked, so the request was refused")
            })
    }

    /// Statements this process has sent to the shared cells (one per lease, not per request).
    pub fn shared_steps(&self) -> u64 {
        self.steps.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Leased requests of the request budget this process dropped unspent, and those it holds
    /// now (in live or expired leases): with the requests it allowed from leases and steps,
    /// they add up to what it took from the shared cells.
    pub fn leased_unspent(&self) -> (u64, u64) {
        let held = self.requests.leases.lock().unwrap_or_else(|p| p.into_inner()).values().map(|l| u64::from(l.left)).sum();
        (self.requests.dropped.load(std::sync::atomic::Ordering::Relaxed), held)
    }

    /// Forgets principals whose buckets are full again, so memory (or the shared table) holds
    /// only recent callers. A failure is logged: it only delays the cleanup.
    pub async fn forget_idle(&self) {
        self.requests.local.retain_recent();
        self.opens.local.retain_recent();
        for rate in [&self.requests, &self.opens] {
            rate.leases.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, l| {
                let live = l.taken.elapsed() < LEASE_TTL;
                if !live {
                    rate.drop_unspent(l.left);
                }
                live
            });
        }
        if let Some(pool) = &self.shared {
            let idle = "DELETE FROM rate_limits WHERE tat_us < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";
            if let Err(e) = sqlx::query(idle).execute(pool).await {
                tracing::warn!(error = %e, "forgetting idle rate-limit cells failed");
            }
        }
    }
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
        let cfg = LimitsSection {
            requests_per_minute: 1,
            request_burst: 2,
            ..LimitsSection::default()
        };
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
        let refused = limits
            .check_request(&who("a", "i"))
            .await
            .err()
            .unwrap_or_else(|| unreachable!("a third request in a minute"));
        assert_eq!(
            (refused.status.as_u16(), refused.code),
            (429, "rate_limited")
        );
        assert!(refused.retry_after.is_some_and(|s| (1..=60).contains(&s)));
        // Same subject from another issuer is another person.
        assert!(limits.check_request(&who("a", "other")).await.is_ok());
    }

    /// Polls once: is `f` still waiting?
    fn waits<F: std::future::Future + Unpin>(f: &mut F) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::Pin::new(f).poll(&mut cx).is_pending()
    }

    fn person(sub: &str) -> Principal {
        Principal {
            subject: sub.into(),
            issuer: "i".into(),
            groups: Vec::new(),
            claims: Default::default(),
            auth_method: tracegate_core::AuthMethod::Dev,
            person: None,
            credential: Default::default(),
        }
    }

    /// One requester's openings take turns and queue at most `queued_openings` deep (the rest
    /// are `429` at once); another requester's opening is never behind them; a cancelled waiter
    /// frees its place, and a requester with nothing in flight leaves no entry behind.
    #[tokio::test]
    async fn openings_queue_per_requester_and_the_queue_is_bounded() {
        const OPEN_QUEUE: usize = 3;
        let cfg = LimitsSection { queued_openings: OPEN_QUEUE as u32, ..LimitsSection::default() };
        let limits = Limits::new(&cfg).unwrap_or_else(|e| unreachable!("{e}"));
        let (rita, sam) = (person("rita"), person("sam"));
        let first = limits.opening(&rita).await.unwrap_or_else(|e| unreachable!("{}", e.message));
        assert_eq!(first.in_flight(), 1);
        // The waiters hold their places while `first` has the turn.
        let mut waiting: Vec<_> = (1..OPEN_QUEUE).map(|_| Box::pin(limits.opening(&rita))).collect();
        for w in &mut waiting {
            assert!(waits(w), "only one opening per requester runs at a time");
        }
        assert_eq!(first.in_flight(), OPEN_QUEUE);
        let refused = limits.opening(&rita).await.err().unwrap_or_else(|| unreachable!("the queue is full"));
        assert_eq!((refused.status.as_u16(), refused.code, refused.retry_after), (429, "rate_limited", Some(1)));
        // Another requester is not queued behind rita.
        let other = limits.opening(&sam).await.unwrap_or_else(|e| unreachable!("{}", e.message));
        assert_eq!(other.in_flight(), 1);
        drop(other);
        // A waiter that gives up frees its place.
        drop(waiting.pop());
        let again = Box::pin(limits.opening(&rita));
        waiting.push(again);
        assert!(waits(waiting.last_mut().unwrap_or_else(|| unreachable!())));
        // Releasing the turn hands it to a waiter.
        drop(first);
        let next = waiting.remove(0).await.unwrap_or_else(|e| unreachable!("{}", e.message));
        drop(next);
        drop(waiting);
        assert!(limits.openings.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "nothing kept for idle requesters");
    }

    /// The step runs with `synchronous_commit` off in its own transaction, and only there: the
    /// audit trail's commits on the same pool's connections must still wait for the flush.
    #[tokio::test]
    async fn the_step_skips_the_flush_wait_in_its_own_transaction_only() {
        let Some(db) = tracegate_state::testing::TestDb::create().await else { return };
        let pool = db.pool().await;
        let mut conn = pool.acquire().await.unwrap_or_else(|e| unreachable!("{e}"));
        let show = "SELECT current_setting('synchronous_commit')";
        let before: String = sqlx::query_scalar(show).fetch_one(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(before, "on");
        // One step as `check` sends it: a 1 ms interval, a 10 ms tolerance.
        let step = || sqlx::query_as::<_, (bool, i64, i64)>(GCRA_STEP).bind("requests").bind("i").bind("s").bind(1_000_i64).bind(10_000_i64);
        sqlx::query("BEGIN").execute(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        let row = step().fetch_one(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert!(row.0, "a new cell allows");
        let inside: String = sqlx::query_scalar(show).fetch_one(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(inside, "off", "the step's transaction commits without waiting for the flush");
        sqlx::query("COMMIT").execute(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        let after: String = sqlx::query_scalar(show).fetch_one(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(after, "on", "the setting does not outlive the step's transaction");
        // In its own implicit transaction (as `check` runs it), nothing leaks either.
        step().fetch_one(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        let later: String = sqlx::query_scalar(show).fetch_one(&mut *conn).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(later, "on");
    }

    #[test]
    fn zero_is_refused() {
        for cfg in [
            LimitsSection {
                request_burst: 0,
                ..LimitsSection::default()
            },
            LimitsSection {
                max_pending_access_requests: 0,
                ..LimitsSection::default()
            },
            LimitsSection {
                queued_openings: 0,
                ..LimitsSection::default()
            },
        ] {
            assert!(Limits::new(&cfg).is_err());
        }
    }
}
