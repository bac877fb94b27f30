//! The one error type of the audit crate. Every variant on the append path means the same thing
//! to the HTTP edge: the record is not on disk, so the request fails with 503 (fail closed).

use std::io;
use std::path::{Path, PathBuf};

/// Why an audit operation failed. Messages are lowercase and name the file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing a file of the audit directory failed.
    #[error("audit i/o on `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A write or `fsync` failed earlier; the log acknowledges nothing more until it is reopened,
    /// because after a failed `fsync` the kernel's view of the file can no longer be trusted.
    #[error("audit log has failed and refuses records until it is reopened: {0}")]
    Failed(String),
    /// The writer has shut down (gateway stopping).
    #[error("audit log is closed")]
    Closed,
    /// Another process holds the audit directory's lock; two writers would fork the chain.
    #[error("audit directory `{0}` is in use by another process")]
    Locked(PathBuf),
    /// A record could not be put in canonical form (e.g. a floating-point number in `event`).
    #[error("audit record cannot be serialised: {0}")]
    Serialize(String),
    /// The log is damaged in a way recovery must not paper over; run `tracegate audit verify`.
    #[error("audit log `{path}` is damaged: {what}; run `tracegate audit verify`")]
    Corrupt { path: PathBuf, what: String },
    /// The checkpoint signing key could not be read, created or used.
    #[error("audit signing key `{path}`: {what}")]
    Key { path: PathBuf, what: String },
    /// A public key in text form did not parse.
    #[error("invalid audit public key: {0}")]
    PublicKey(String),
    /// A policy version asked for is not in the archive.
    #[error("policy version `{0}` is not in the audit policy archive")]
    PolicyNotFound(String),
    /// An archived policy no longer hashes to its name: the archive was edited.
    #[error("archived policy `{0}` does not match its content hash (edited after it was stored)")]
    PolicyTampered(String),
    /// The PostgreSQL trail could not be read or written (unreachable, connections dropped, a
    /// statement failed). On the append path the record is not committed: 503, like any other.
    #[error("audit trail database: {0}")]
    Database(String),
    /// An argument was not acceptable (bad version string, export file exists, ...).
    #[error("{0}")]
    Invalid(String),
}

impl AuditError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> AuditError + '_ {
        move |source| AuditError::Io { path: path.to_owned(), source }
    }
}
