//! The policy archive: every policy version the gateway has served, content-addressed, so that
//! replay can re-apply exactly the policy a record names months later.
//!
//! Layout: `<audit dir>/policies/sha256-<hex>.toml`, the file's bytes verbatim. The name is the
//! record's `policy_version` with `:` replaced by `-` (portable file names). Reading re-hashes the
//! file, so an archived policy edited after the fact is reported, never silently used.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracegate_core::PolicyVersion;

use crate::error::AuditError;

/// Sub-directory of the audit directory holding archived policies.
pub const POLICY_DIR: &str = "policies";

/// Content-addressed store of policy files.
#[derive(Debug, Clone)]
pub struct PolicyArchive {
    dir: PathBuf,
}

impl PolicyArchive {
    /// The archive under `audit_dir` (created on first `put`).
    pub fn new(audit_dir: &Path) -> Self {
        PolicyArchive { dir: audit_dir.join(POLICY_DIR) }
    }

    /// Stores `text` (idempotent) and returns its version. Call before serving under a policy,
    /// at startup and on every reload, so no record can name a version the archive lacks.
    pub fn put(&self, text: &str) -> Result<PolicyVersion, AuditError> {
        let version = PolicyVersion::of(text.as_bytes());
        let path = self.path_of(&version)?;
        if path.exists() {
            // Idempotent, but not blindly: an existing file must still be what its name says.
            self.get(&version)?;
            return Ok(version);
        }
        fs::create_dir_all(&self.dir).map_err(AuditError::io(&self.dir))?;
        let tmp = path.with_extension("toml.tmp");
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(AuditError::io(&tmp))?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(AuditError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(AuditError::io(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(AuditError::io(&self.dir))?;
        Ok(version)
    }

    /// The text of an archived version, checked against its hash.
    pub fn get(&self, version: &PolicyVersion) -> Result<String, AuditError> {
        let path = self.path_of(version)?;
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(AuditError::PolicyNotFound(version.0.clone())),
            Err(e) => return Err(AuditError::Io { path, source: e }),
        };
        if PolicyVersion::of(text.as_bytes()) != *version {
            return Err(AuditError::PolicyTampered(version.0.clone()));
        }
        Ok(text)
    }

    /// Every archived version, sorted.
    pub fn list(&self) -> Result<Vec<PolicyVersion>, AuditError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(AuditError::Io { path: self.dir.clone(), source: e }),
        };
        let mut out = Vec::new();
        for e in entries {
            let name = e.map_err(AuditError::io(&self.dir))?.file_name();
            let name = name.to_string_lossy();
            if let Some(hex) = name.strip_prefix("sha256-").and_then(|n| n.strip_suffix(".toml")) {
                out.push(PolicyVersion(format!("sha256:{hex}")));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn path_of(&self, version: &PolicyVersion) -> Result<PathBuf, AuditError> {
        let hex = version
            .0
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .ok_or_else(|| AuditError::Invalid(format!("`{}` is not a policy version (`sha256:` and 64 lowercase hex digits)", version.0)))?;
        Ok(self.dir.join(format!("sha256-{hex}.toml")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn put_is_idempotent_and_get_detects_edits() {
        let dir = tempfile::tempdir().unwrap();
        let a = PolicyArchive::new(dir.path());
        let v = a.put("x = 1\n").unwrap();
        assert_eq!(a.put("x = 1\n").unwrap(), v);
        assert_eq!(a.get(&v).unwrap(), "x = 1\n");
        assert_eq!(a.list().unwrap(), vec![v.clone()]);
        fs::write(a.path_of(&v).unwrap(), "x = 2\n").unwrap();
        assert!(matches!(a.get(&v), Err(AuditError::PolicyTampered(_))));
        assert!(matches!(a.get(&PolicyVersion::of(b"nope")), Err(AuditError::PolicyNotFound(_))));
        assert!(matches!(a.get(&PolicyVersion("sha256:../x".into())), Err(AuditError::Invalid(_))));
    }
}
