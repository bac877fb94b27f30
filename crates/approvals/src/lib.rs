//! Access requests at rest and in motion: the durable store behind just-in-time approval, and
//! the webhook notifier that tells approvers.
//!
//! The rules (who may approve, what a grant covers, when things expire) live in
//! [`tracegate_core::approval`]; this crate only makes their events durable, serialises them,
//! and announces them.
//!
//! - [`store`] — [`ApprovalStore`]: prepare → record → commit over a pluggable [`Backend`].
//! - [`file`] — [`FileBackend`]: the embedded default, an fsync'd append-only JSON Lines log
//!   replayed at open. The PostgreSQL backend is in `tracegate-state`.
//! - [`notify`] — [`Notifier`]: signed webhook POSTs (JSON or Slack format), retried with
//!   backoff off the request path, with delivery [`Counters`] for metrics.
//! - [`conformance`] (feature `conformance`) — the one storage test suite every backend passes.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod file;
pub mod notify;
pub mod store;

pub use file::FileBackend;
pub use notify::{Counters, Format, Notifier, NotifyError, WebhookConfig};
pub use store::{ApprovalStore, Backend, Committed, Listener, Opened, Record, Recorder, Scope, StoreError, Txn};
