//! The tamper-evident, replayable audit trail of tracegate, failing closed.
//!
//! **Architecture Invariant:** a request's response is released only after its record is durable
//! ([`AuditLog::append`] returns after `fdatasync`, [`PgAuditLog::append`] after `COMMIT`); any
//! audit error fails the request with 503.
//! No HTTP here: the server calls this crate, and so do the CLI's `audit` commands.
//!
//! - [`record`] — the record: every field named once and documented (also `docs/audit.md`);
//! - [`canonical`] and [`chain`] — the canonical form and the hash chain over it;
//! - [`log`] — the embedded append-only log with group commit, recovery and prune;
//! - `reserve` — disk space reserved ahead of the log's end, so flushes write no allocation metadata;
//! - [`checkpoint`] — Ed25519-signed checkpoints of the chain head and prune anchors;
//! - [`verify`] — checks the chain and every signature, locating the first break;
//! - [`pg`] — the same trail in PostgreSQL: one chain for every replica, group-committed;
//! - [`trail`] — [`AuditTrail`] and [`AuditSource`]: the one handle the server and CLI use, either backend;
//! - [`policies`] — the content-addressed archive of every policy version served;
//! - [`query`] — `GET /v1/audit` filtering and JSON Lines export.

pub mod canonical;
mod chain;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod log;
pub mod pg;
pub mod policies;
pub mod query;
pub mod record;
mod journal;
mod reserve;
mod sched;
pub mod trail;
pub mod verify;

pub use checkpoint::{public_key_path, AnchorInfo, Checkpoint, CheckpointKind, PublicKey, SigningKey};
pub use config::AuditConfig;
pub use error::AuditError;
pub use journal::JOURNAL_FILE;
pub use log::{AuditLog, Head, LogOptions, PruneReport, Recovery};
pub use pg::{AppendPaths, PgAuditLog, PgOptions};
pub use policies::PolicyArchive;
pub use query::{export, query, AuditQuery};
pub use record::{
    BodyDigest, Decision, Entry, Kind, MaskApplied, PrincipalRecord, Record, RequestRecord, Sealed, Slice, Timestamp,
    GENESIS_HASH, SCHEMA,
};
pub use trail::{AuditSource, AuditTrail};
pub use verify::{verify, Problem, ProblemKind, VerifyReport};
