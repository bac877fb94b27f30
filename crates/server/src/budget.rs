//! Where the render of a stored trace runs. Every path that renders one for a response — reads,
//! replays and the replay route's own-view check — runs it through [`run`]: on the request's task
//! for most traces, on the blocking pool for large ones so they cannot stall the async workers.
//! How many bytes are rendered at once is bounded by the store: each `StoredTrace` holds its
//! share of `server.read_budget_bytes`, taken from the object's size before it was fetched
//! (`tracegate_store::ObjectTraceStore::with_read_budget`), until the render drops it.

/// Traces at least this large are projected and masked off the async workers (a hand-off to the
/// blocking pool costs more than rendering most traces).
pub const BLOCKING_THRESHOLD: usize = 256 * 1024;

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
    async fn large_renders_leave_the_async_workers() {
        assert!(offloads(BLOCKING_THRESHOLD) && !offloads(BLOCKING_THRESHOLD - 1));
        let here = std::thread::current().id();
        assert_eq!(run(10, move || std::thread::current().id()).await, Some(here));
        assert_ne!(run(BLOCKING_THRESHOLD, move || std::thread::current().id()).await, Some(here));
    }
}
