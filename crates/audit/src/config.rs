//! The `[audit]` table of `tracegate.toml`. Each field's doc comment is its user documentation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::checkpoint::SigningKey;
use crate::error::AuditError;
use crate::log::LogOptions;

/// Where and how the audit trail is kept. Unknown keys are errors: a typo here must not
/// silently weaken the trail.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Directory of the log, its checkpoints and the policy archive; relative paths are resolved
    /// against the data directory. Default `audit`.
    pub dir: PathBuf,
    /// Ed25519 signing key for checkpoints (PKCS#8 PEM, e.g. from
    /// `openssl genpkey -algorithm ed25519`). Must be outside `dir`; put it on another volume or
    /// mount it from a secret store so whoever can rewrite the log cannot re-sign it.
    /// Default `audit-signing.key` in the data directory.
    pub signing_key: PathBuf,
    /// Create `signing_key` (and `<signing_key>.pub`) on first start when it does not exist.
    /// Set to `false` in production so a missing key mount stops the gateway instead.
    pub generate_key: bool,
    /// Sign a checkpoint after this many records. Default 1000.
    pub checkpoint_every_records: u64,
    /// ...or after this long with unsigned records (humantime, e.g. `30s`). Default `60s`.
    #[serde(deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// Records older than this are exported and pruned by `tracegate audit prune` (humantime,
    /// e.g. `400d`). Absent: keep everything.
    #[serde(deserialize_with = "opt_duration")]
    pub retention: Option<Duration>,
    /// Most records written by one `fsync`. Default 4096.
    pub max_batch: usize,
    /// Flushes (`fdatasync`) that may be in flight at once; each covers every batch written
    /// before it. 1 is classic group commit; more cuts latency on devices where a lone flush is
    /// slow (virtual disks). Default 4.
    pub sync_threads: usize,
    /// Under load, how long a batch waits for more records before it is flushed (humantime,
    /// e.g. `300us`; `0s` turns it off; at most `100ms`). Only when a batch went out within the
    /// last ten of these and records overlap (the last batch held several, or one is being
    /// flushed), so a lone caller appending one record at a time never waits: then each flush
    /// covers more records, which on a virtual disk frees more CPU than the wait costs in
    /// latency. Records are still acknowledged only once flushed. Default `300us`.
    #[serde(deserialize_with = "duration")]
    pub flush_delay: Duration,
    /// Make each batch durable by flushing a small ring of pre-written blocks beside the log
    /// (`audit.journal`, 4 MiB) instead of the growing `audit.jsonl`: an overwrite in place
    /// flushes faster than an append, which must also write the file's new size. The log is
    /// still flushed before every checkpoint and before the ring comes round, and after an
    /// unclean stop the records it lost are appended back from the journal. `false` flushes
    /// the log itself each time. Default `true`.
    pub flush_journal: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            dir: PathBuf::from("audit"),
            signing_key: PathBuf::from("audit-signing.key"),
            generate_key: true,
            checkpoint_every_records: 1000,
            checkpoint_interval: Duration::from_secs(60),
            retention: None,
            max_batch: 4096,
            sync_threads: 4,
            flush_delay: Duration::from_micros(300),
            flush_journal: true,
        }
    }
}

/// Longest `flush_delay` honoured: past this the wait is latency with nothing left to gain.
const MAX_FLUSH_DELAY: Duration = Duration::from_millis(100);

impl AuditConfig {
    /// The same config with relative paths resolved against `data_dir`.
    pub fn resolve(&self, data_dir: &Path) -> AuditConfig {
        AuditConfig { dir: data_dir.join(&self.dir), signing_key: data_dir.join(&self.signing_key), ..self.clone() }
    }

    pub fn log_options(&self) -> LogOptions {
        LogOptions {
            dir: self.dir.clone(),
            checkpoint_every_records: self.checkpoint_every_records.max(1),
            checkpoint_interval: self.checkpoint_interval,
            max_batch: self.max_batch.max(1),
            sync_threads: self.sync_threads.clamp(1, 64),
            flush_delay: self.flush_delay.min(MAX_FLUSH_DELAY),
            journal: self.flush_journal,
        }
    }

    /// The knobs of the PostgreSQL trail (used when `[state]` is configured).
    pub fn pg_options(&self) -> crate::pg::PgOptions {
        crate::pg::PgOptions {
            checkpoint_every_records: self.checkpoint_every_records.max(1),
            checkpoint_interval: self.checkpoint_interval,
            max_batch: self.max_batch.max(1),
        }
    }

    /// Loads the signing key, creating it first when `generate_key` allows.
    pub fn load_signing_key(&self) -> Result<SigningKey, AuditError> {
        if self.generate_key {
            SigningKey::load_or_generate(&self.signing_key)
        } else {
            SigningKey::load(&self.signing_key)
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration: {e}")))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c: AuditConfig = toml::from_str("dir = \"a\"\ncheckpoint_interval = \"5s\"\nretention = \"30d\"").unwrap();
        assert_eq!(c.checkpoint_interval, Duration::from_secs(5));
        assert_eq!(c.retention, Some(Duration::from_secs(30 * 86400)));
        assert!(toml::from_str::<AuditConfig>("dri = \"a\"").is_err());
    }

    #[test]
    fn flush_delay_defaults_parses_and_is_capped() {
        assert_eq!(AuditConfig::default().log_options().flush_delay, Duration::from_micros(300));
        let c: AuditConfig = toml::from_str("flush_delay = \"750us\"").unwrap();
        assert_eq!(c.log_options().flush_delay, Duration::from_micros(750));
        let off: AuditConfig = toml::from_str("flush_delay = \"0s\"").unwrap();
        assert!(off.log_options().flush_delay.is_zero());
        let long: AuditConfig = toml::from_str("flush_delay = \"5s\"").unwrap();
        assert_eq!(long.log_options().flush_delay, MAX_FLUSH_DELAY);
        assert!(toml::from_str::<AuditConfig>("flush_delay = \"soon\"").is_err());
    }
}
