//! Signed checkpoints of the chain head, in `checkpoints.jsonl` beside the log.
//!
//! The chain alone proves only that records were not edited *without rewriting every later hash*;
//! someone who can write the log can rewrite the chain too. A checkpoint is an Ed25519 signature,
//! by a key kept outside the audit directory, over `(seq, hash, time)` of the head: records up to a
//! signed seq cannot be changed, removed or reordered without failing verification, and a log
//! shorter than a signed seq shows truncation. Anchors are checkpoints that also name where a
//! prune cut the log (first retained seq and its `prev_hash`), so what remains still verifies.
//!
//! Signed message: `b"tracegate-audit-checkpoint-v1\n"` followed by the canonical form
//! ([`crate::canonical`]) of the checkpoint without `sig`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::error::AuditError;
use crate::record::Timestamp;

/// Domain separation: a checkpoint signature can never be mistaken for another use of the key.
const SIGN_CONTEXT: &[u8] = b"tracegate-audit-checkpoint-v1\n";

/// Whether a checkpoint only vouches for the head, or also anchors a prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    Checkpoint,
    Anchor,
}

/// Where a prune cut the log. `prev_hash` is the hash of the last removed record, which the first
/// retained record carries as its own `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorInfo {
    /// First seq still in the log after the prune.
    pub first_seq: u64,
    pub prev_hash: String,
    /// How many records were removed by this prune.
    pub pruned: u64,
    /// File name the removed records were exported to (verbatim lines, still a valid chain).
    pub export_file: String,
    /// Lowercase hex SHA-256 of that export file.
    pub export_sha256: String,
}

/// One line of `checkpoints.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub kind: CheckpointKind,
    /// Seq of the head record vouched for.
    pub seq: u64,
    /// That record's `hash`.
    pub hash: String,
    pub time: Timestamp,
    /// [`PublicKey::key_id`] of the signing key, so verifiers can hold several (rotation).
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<AnchorInfo>,
    /// Base64 Ed25519 signature over the signed message (see module docs).
    pub sig: String,
}

impl Checkpoint {
    fn message(&self) -> Result<Vec<u8>, AuditError> {
        let mut v = serde_json::to_value(self).map_err(|e| AuditError::Serialize(e.to_string()))?;
        if let Some(m) = v.as_object_mut() {
            m.remove("sig");
        }
        let mut msg = SIGN_CONTEXT.to_vec();
        canonical::write(&v, &mut msg)?;
        Ok(msg)
    }

    /// True when `key` made `sig` over this checkpoint.
    pub fn verify(&self, key: &PublicKey) -> bool {
        let (Ok(msg), Ok(sig)) = (self.message(), B64.decode(&self.sig)) else {
            return false;
        };
        self.key_id == key.key_id() && UnparsedPublicKey::new(&ED25519, &key.bytes).verify(&msg, &sig).is_ok()
    }

    /// The line stored in `checkpoints.jsonl`, with `\n`.
    pub(crate) fn line(&self) -> Result<Vec<u8>, AuditError> {
        let v = serde_json::to_value(self).map_err(|e| AuditError::Serialize(e.to_string()))?;
        let mut out = canonical::to_canonical(&v)?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The private key that signs checkpoints. Loaded from a PKCS#8 PEM file (as written by
/// `openssl genpkey -algorithm ed25519`) that must live outside the audit directory.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("path", &self.path).field("key_id", &self.public.key_id()).finish()
    }
}

impl SigningKey {
    /// Loads the key at `path`.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let key_err = |what: String| AuditError::Key { path: path.to_owned(), what };
        let text = fs::read_to_string(path).map_err(|e| key_err(format!("cannot read: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(path = %path.display(), "audit signing key is readable by group or others; chmod 600 it");
            }
        }
        let b64: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
        let der = B64.decode(b64).map_err(|e| key_err(format!("not PEM base64: {e}")))?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| key_err(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(Self::from_pair(pair, path))
    }

    /// Creates a new key at `path` (mode 0600, never overwriting) and its public key at
    /// `<path>.pub` for verifiers.
    pub fn generate(path: &Path) -> Result<Self, AuditError> {
        let key_err = |what: String| AuditError::Key { path: path.to_owned(), what };
        let pair = Ed25519KeyPair::generate().map_err(|_| key_err("key generation failed".into()))?;
        let der = pair.to_pkcs8v1().map_err(|_| key_err("key encoding failed".into()))?;
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        let b64 = B64.encode(der.as_ref());
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| key_err(format!("cannot create its directory: {e}")))?;
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| key_err(format!("cannot create: {e}")))?;
        f.write_all(pem.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| key_err(format!("cannot write: {e}")))?;
        let key = Self::from_pair(pair, path);
        let pub_path = public_key_path(path);
        fs::write(&pub_path, format!("{}\n", key.public))
            .map_err(|e| key_err(format!("cannot write public key `{}`: {e}", pub_path.display())))?;
        Ok(key)
    }

    /// Loads the key, or creates it (with its `.pub`) when the file does not exist yet.
    pub fn load_or_generate(path: &Path) -> Result<Self, AuditError> {
        if path.exists() {
            Self::load(path)
        } else {
            Self::generate(path)
        }
    }

    fn from_pair(pair: Ed25519KeyPair, path: &Path) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&pair.public_key().as_ref()[..32]);
        SigningKey { pair, public: PublicKey { bytes }, path: path.to_owned() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs a checkpoint of `(seq, hash)` at `time`.
    pub fn sign(&self, seq: u64, hash: &str, time: Timestamp, anchor: Option<AnchorInfo>) -> Result<Checkpoint, AuditError> {
        let kind = if anchor.is_some() { CheckpointKind::Anchor } else { CheckpointKind::Checkpoint };
        let mut c = Checkpoint { kind, seq, hash: hash.to_owned(), time, key_id: self.public.key_id(), anchor, sig: String::new() };
        let sig = self.pair.sign(&c.message()?);
        c.sig = B64.encode(sig.as_ref());
        Ok(c)
    }
}

/// Where [`SigningKey::generate`] writes the public key: `<key path>.pub`.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// An Ed25519 public key, written as `ed25519:<base64 of 32 bytes>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    bytes: [u8; 32],
}

impl PublicKey {
    /// First 16 hex digits of SHA-256 of the raw key: short, stable, names the key in checkpoints.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.bytes)[..8])
    }

    /// Reads a public key file (one `ed25519:...` line).
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let text = fs::read_to_string(path).map_err(AuditError::io(path))?;
        text.trim().parse()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", B64.encode(self.bytes))
    }
}

impl FromStr for PublicKey {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, AuditError> {
        let b64 = s.strip_prefix("ed25519:").ok_or_else(|| AuditError::PublicKey(format!("`{s}` does not start with `ed25519:`")))?;
        let raw = B64.decode(b64).map_err(|e| AuditError::PublicKey(format!("`{s}`: {e}")))?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| AuditError::PublicKey(format!("`{s}` is not 32 bytes")))?;
        Ok(PublicKey { bytes })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_forgery() {
        let dir = tempfile::tempdir().unwrap();
        let k = SigningKey::generate(&dir.path().join("k.pem")).unwrap();
        let again = SigningKey::load(&dir.path().join("k.pem")).unwrap();
        assert_eq!(k.public_key(), again.public_key());
        let pubkey = PublicKey::load(&dir.path().join("k.pem.pub")).unwrap();
        assert_eq!(&pubkey, k.public_key());
        let c = k.sign(7, "ab", Timestamp::now(), None).unwrap();
        assert!(c.verify(&pubkey));
        let mut forged = c.clone();
        forged.seq = 8;
        assert!(!forged.verify(&pubkey));
        let other = SigningKey::generate(&dir.path().join("other.pem")).unwrap();
        assert!(!c.verify(other.public_key()));
    }
}
