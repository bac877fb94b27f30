//! The read budget: how many stored bytes are being projected and masked at once, and where that
//! work runs. Every path that renders a stored trace for a response — reads, replays and the
//! replay route's own-view check — takes its share here first, so concurrent renders of large
//! traces cannot exhaust memory, and large renders run on the blocking pool so they cannot stall
//! the async workers.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Traces at least this large are projected and masked off the async workers (a hand-off to the
/// blocking pool costs more than rendering most traces).
pub const BLOCKING_THRESHOLD: usize = 256 * 1024;

/// Stored bytes being rendered at once, in KiB permits.
#[derive(Debug)]
pub struct ReadBudget {
    permits: Semaphore,
    kib: u32,
}

/// The budget is closed: the gateway is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the gateway is shutting down")]
pub struct Closed;

impl ReadBudget {
    pub fn new(bytes: usize) -> ReadBudget {
        let kib = u32::try_from((bytes / 1024).max(1)).unwrap_or(u32::MAX);
        ReadBudget { permits: Semaphore::new(kib as usize), kib }
    }

    /// Waits for the share of a render of `len` stored bytes (at least 1 KiB, at most the whole
    /// budget, so one trace larger than the budget still runs, alone).
    pub async fn admit(&self, len: usize) -> Result<SemaphorePermit<'_>, Closed> {
        let kib = u32::try_from(len / 1024).unwrap_or(u32::MAX).clamp(1, self.kib);
        self.permits.acquire_many(kib).await.map_err(|_| Closed)
    }
}

/// Whether a render of `len` stored bytes goes to the blocking pool.
pub fn offloads(len: usize) -> bool {
    len >= BLOCKING_THRESHOLD
}

/// Runs `work` for a render of `len` stored bytes where [`offloads`] says: on this task, or on
/// the blocking pool. `None` when the blocking task failed (panicked or was cancelled).
pub async fn run<T: Send + 'static>(len: usize, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    if offloads(len) {
        tokio::task::spawn_blocking(work).await.ok()
    } else {
        Some(work())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_render_waits_for_its_share_and_a_huge_one_runs_alone() {
        let b = ReadBudget::new(8 * 1024);
        let big = b.admit(100 * 1024 * 1024).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(b.permits.available_permits(), 0, "a trace over the budget takes all of it");
        assert!(b.permits.try_acquire_many(1).is_err(), "and nothing else runs beside it");
        drop(big);
        let small = b.admit(10).await.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(b.permits.available_permits(), 8 - 1, "a tiny trace still takes 1 KiB");
        drop(small);
        assert!(offloads(BLOCKING_THRESHOLD) && !offloads(BLOCKING_THRESHOLD - 1));
    }
}
