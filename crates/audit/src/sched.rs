//! How the log's own threads (the writer and the flushers) are scheduled.
//!
//! They sleep most of the time and wake for a moment at every batch: a flush delay ends, a
//! flush returns. Under the normal policy each wake-up of a thread that slept preempts
//! whatever runs on that core, which under load is a request worker in the middle of a
//! request: on the 2-core bench machine the workers were preempted ~0.9 times per request,
//! and the gateway switched context ~1.7 times per request. `SCHED_BATCH` is the policy the
//! kernel offers for exactly this: the thread gets its fair share as before, but its wake-ups
//! do not preempt; it runs when the worker yields (which it does between requests, at every
//! await with nothing ready). With it the gateway's context switches per request halved
//! (2.0 → 1.0) and its CPU time per request fell by ~15% (`docs/benchmarks.md`, session 14).
//!
//! Nothing about durability changes: a record is still released only after its flush
//! returned. What can change is latency under saturation: a flush may start up to one
//! scheduler slice later when every core is busy. The thread's nice value is kept.

/// Puts the calling thread under `SCHED_BATCH`, keeping its nice value. Best effort: a
/// platform or sandbox that refuses leaves the thread as it was, which is only slower.
pub(crate) fn batch() {
    #[cfg(target_os = "linux")]
    if let Err(e) = linux_batch() {
        tracing::debug!(error = %e, "audit thread stays under the normal scheduling policy");
    }
}

#[cfg(target_os = "linux")]
fn linux_batch() -> Result<(), String> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue,
        ThreadSchedulePolicy,
    };
    // On Linux the nice value is per thread, and `who = 0` is the calling thread.
    let nice = rustix::process::getpriority_process(None).map_err(|e| e.to_string())?;
    // The crate always sets a nice value with a normal policy (mapped from 0..=99); any value
    // does, since the one read above is put back.
    let any = ThreadPriorityValue::try_from(50u8).map_err(|e| e.to_string())?;
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Crossplatform(any), policy).map_err(|e| format!("{e:?}"))?;
    rustix::process::setpriority_process(None, nice).map_err(|e| e.to_string())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use thread_priority::{thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy};

    #[test]
    fn a_log_thread_runs_under_batch_with_its_nice_value_kept() {
        std::thread::spawn(|| {
            let before = rustix::process::getpriority_process(None).unwrap();
            let normal = thread_schedule_policy().unwrap();
            assert_eq!(normal, ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other));
            super::batch();
            assert_eq!(thread_schedule_policy().unwrap(), ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch));
            assert_eq!(rustix::process::getpriority_process(None).unwrap(), before, "the nice value is kept");
        })
        .join()
        .unwrap();
        // Only the calling thread changed.
        assert_eq!(thread_schedule_policy().unwrap(), ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other));
    }
}
