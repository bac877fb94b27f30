//! The one audit trail the server and the CLI use, whichever backend keeps it: the embedded file
//! log ([`AuditLog`]) or PostgreSQL ([`PgAuditLog`]), chosen by whether `[state]` is configured.
//!
//! An enum rather than a trait: there are exactly two backends, both in this crate; their async
//! methods dispatch with one `match` and no boxing; and callers sometimes need what only one has
//! (the file log's recovery report and prune). Both produce the same records, chain and
//! checkpoints, and both are verified by [`crate::verify::Verifier`].
//!
//! [`AuditTrail`] is the writing handle of a running gateway; [`AuditSource`] reads a trail
//! (query, export, verify, policy archive) without writing it — what `GET /v1/audit` and the
//! auditor's commands need, also against a copied directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tracegate_core::PolicyVersion;
use tracegate_state::PgPool;

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::error::AuditError;
use crate::log::{AuditLog, Head, PruneReport, Recovery};
use crate::pg::{self, PgAuditLog};
use crate::policies::PolicyArchive;
use crate::query::AuditQuery;
use crate::record::{Entry, Record, Sealed};
use crate::verify::VerifyReport;

/// The running gateway's audit trail.
#[derive(Debug)]
pub enum AuditTrail {
    /// The embedded default: `audit.jsonl` in the audit directory.
    File(AuditLog),
    /// One chain for every replica, in PostgreSQL.
    Postgres(PgAuditLog),
}

/// What a failed file log says: it refuses records until the gateway restarts.
const FILE_LOG_FAILED: &str = "the audit log failed a write and refuses records until the gateway restarts";

impl AuditTrail {
    /// Appends one record; returns once it is durable. Any error: fail the request with 503.
    pub async fn append(&self, entry: &Entry) -> Result<Sealed, AuditError> {
        match self {
            AuditTrail::File(l) => l.append(entry).await,
            AuditTrail::Postgres(l) => l.append(entry).await,
        }
    }

    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        match self {
            AuditTrail::File(l) => l.checkpoint().await,
            AuditTrail::Postgres(l) => l.checkpoint().await,
        }
    }

    /// Signs a final checkpoint and stops writing.
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        match self {
            AuditTrail::File(l) => l.shutdown().await,
            AuditTrail::Postgres(l) => l.shutdown().await,
        }
    }

    /// Exports and removes old records (file log only, for now).
    pub async fn prune(&self, before: SystemTime, export: PathBuf) -> Result<PruneReport, AuditError> {
        match self {
            AuditTrail::File(l) => l.prune(before, export).await,
            AuditTrail::Postgres(l) => l.prune(before, export).await,
        }
    }

    pub fn head(&self) -> Head {
        match self {
            AuditTrail::File(l) => l.head(),
            AuditTrail::Postgres(l) => l.head(),
        }
    }

    /// A failure the trail already knows of, without asking anything (a write that failed and
    /// has not been followed by a good probe): what `/healthz` reports at once even between
    /// its rate-limited probes.
    pub fn known_failure(&self) -> Option<String> {
        match self {
            AuditTrail::File(l) if l.is_failed() => Some(FILE_LOG_FAILED.into()),
            AuditTrail::File(_) => None,
            AuditTrail::Postgres(l) => l.failure(),
        }
    }

    /// Why records cannot be written now, if they cannot: the file log after a failed write
    /// (until reopened), PostgreSQL when a probe of it fails. `/healthz` reports this.
    pub async fn health(&self) -> Result<(), String> {
        match self {
            AuditTrail::File(l) if l.is_failed() => Err(FILE_LOG_FAILED.into()),
            AuditTrail::File(_) => Ok(()),
            AuditTrail::Postgres(l) => l.probe().await,
        }
    }

    /// What recovery did when the file log was opened after an unclean stop.
    pub fn recovery(&self) -> Option<&Recovery> {
        match self {
            AuditTrail::File(l) => l.recovery(),
            AuditTrail::Postgres(_) => None,
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        match self {
            AuditTrail::File(l) => l.public_key(),
            AuditTrail::Postgres(l) => l.public_key(),
        }
    }

    /// A reader of this trail.
    pub fn source(&self) -> AuditSource {
        match self {
            AuditTrail::File(l) => AuditSource::Dir(l.dir().to_owned()),
            AuditTrail::Postgres(l) => AuditSource::Postgres(l.pool().clone()),
        }
    }
}

/// The last complete line of a checkpoint file that parses as a checkpoint.
fn last_checkpoint(bytes: &[u8]) -> Option<Checkpoint> {
    // Only newline-terminated lines were acknowledged; a final piece without one is a torn write.
    let complete = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => bytes.get(..end)?,
        None => return None,
    };
    complete.split(|b| *b == b'\n').rev().find_map(|line| serde_json::from_slice::<Checkpoint>(line).ok())
}

/// Where a trail is read from.
#[derive(Debug, Clone)]
pub enum AuditSource {
    /// An audit directory (the live one, or a copy).
    Dir(PathBuf),
    /// The shared-state database.
    Postgres(PgPool),
}

impl AuditSource {
    /// The newest records matching `q`, newest first.
    pub async fn query(&self, q: &AuditQuery) -> Result<Vec<Record>, AuditError> {
        match self {
            AuditSource::Dir(d) => {
                let (d, q) = (d.clone(), q.clone());
                tokio::task::spawn_blocking(move || crate::query::query(&d, &q)).await.map_err(|_| AuditError::Closed)?
            }
            AuditSource::Postgres(p) => pg::query(p, q).await,
        }
    }

    /// Every matching record, oldest first, verbatim. Blocks on file i/o for a directory: meant
    /// for the CLI.
    pub async fn export(&self, q: &AuditQuery, out: &mut (dyn Write + Send)) -> Result<u64, AuditError> {
        match self {
            AuditSource::Dir(d) => crate::query::export(d, q, out),
            AuditSource::Postgres(p) => pg::export(p, q, out).await,
        }
    }

    /// Checks the whole chain and every checkpoint signature against `keys`.
    pub async fn verify(&self, keys: &[PublicKey]) -> Result<VerifyReport, AuditError> {
        match self {
            AuditSource::Dir(d) => crate::verify::verify(d, keys),
            AuditSource::Postgres(p) => pg::verify(p, keys).await,
        }
    }

    /// The newest signed checkpoint (or prune anchor) the trail holds, as stored: its signature
    /// is not checked here (verification is [`AuditSource::verify`]'s, or the caller's with
    /// [`Checkpoint::verify`]). A torn or unreadable final line is skipped, as open does.
    pub async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        match self {
            AuditSource::Dir(d) => {
                let path = d.join(crate::log::CHECKPOINT_FILE);
                tokio::task::spawn_blocking(move || match std::fs::read(&path) {
                    Ok(bytes) => Ok(last_checkpoint(&bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(AuditError::Io { path, source: e }),
                })
                .await
                .map_err(|_| AuditError::Closed)?
            }
            AuditSource::Postgres(p) => pg::latest_checkpoint(p).await,
        }
    }

    /// Archives a policy version served (idempotent).
    pub async fn put_policy(&self, text: &str) -> Result<PolicyVersion, AuditError> {
        match self {
            AuditSource::Dir(d) => PolicyArchive::new(d).put(text),
            AuditSource::Postgres(p) => pg::put_policy(p, text).await,
        }
    }

    /// The text of an archived policy version, checked against its hash.
    pub async fn policy(&self, version: &PolicyVersion) -> Result<String, AuditError> {
        match self {
            AuditSource::Dir(d) => PolicyArchive::new(d).get(version),
            AuditSource::Postgres(p) => pg::get_policy(p, version).await,
        }
    }

    /// For messages: the directory, or `postgresql`.
    pub fn describe(&self) -> String {
        match self {
            AuditSource::Dir(d) => d.display().to_string(),
            AuditSource::Postgres(_) => "postgresql".into(),
        }
    }

    /// The directory, when the trail is one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            AuditSource::Dir(d) => Some(d),
            AuditSource::Postgres(_) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::checkpoint::SigningKey;
    use crate::record::Timestamp;

    #[tokio::test]
    async fn the_latest_checkpoint_is_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&dir.path().join("k.pem")).unwrap();
        let audit = dir.path().join("audit");
        std::fs::create_dir_all(&audit).unwrap();
        let source = AuditSource::Dir(audit.clone());
        assert_eq!(source.latest_checkpoint().await.unwrap(), None, "no file yet");
        let a = key.sign(3, &"a".repeat(64), Timestamp::now(), None).unwrap();
        let b = key.sign(7, &"b".repeat(64), Timestamp::now(), None).unwrap();
        let mut text = a.line().unwrap();
        text.extend(b.line().unwrap());
        // A torn final write (no newline) is not a checkpoint, even when it parses.
        let torn = key.sign(9, &"c".repeat(64), Timestamp::now(), None).unwrap().line().unwrap();
        text.extend(&torn[..torn.len() - 1]);
        std::fs::write(audit.join(crate::log::CHECKPOINT_FILE), &text).unwrap();
        let got = source.latest_checkpoint().await.unwrap().unwrap();
        assert_eq!(got, b);
        assert!(got.verify(key.public_key()));
    }
}
