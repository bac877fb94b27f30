//! `[identity.saml]`: the gateway as a SAML 2.0 service provider. A field's doc comment is its
//! user documentation; parsing is strict (`deny_unknown_fields`), and the safe choice is every
//! default (assertions signed, SHA-1 refused, IdP-initiated sign-in off).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration_text;
use crate::error::IdentityError;

/// Largest `max_response_bytes`: a SAML Response is a few KiB; a megabyte is an attack.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// One trusted SAML identity provider, and how this gateway appears to it.
///
/// ```toml
/// [identity.saml]
/// idp_entity_id = "https://idp.example.com/saml"
/// idp_sso_url = "https://idp.example.com/saml/sso"
/// idp_certificates = ["saml/idp-2025.crt", "saml/idp-2026.crt"]
/// sp_entity_id = "https://tracegate.example.com/saml/metadata"
/// acs_url = "https://tracegate.example.com/saml/acs"
/// token_key_file = "saml/gateway-token.pem"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlConfig {
    /// The IdP's entity id, exactly as its assertions' `<Issuer>` says it. It is also the `iss`
    /// of the gateway tokens minted for its users, so it must differ from every OIDC and dev
    /// issuer.
    pub idp_entity_id: String,
    /// Where SP-initiated sign-in sends the browser (the IdP's HTTP-Redirect SSO endpoint).
    /// Absent: only IdP-initiated sign-in, if allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_sso_url: Option<String>,
    /// The IdP's signing certificates (PEM files, relative to the config file). Several at once
    /// during a rotation: a signature by any of them is accepted.
    pub idp_certificates: Vec<PathBuf>,
    /// This gateway's entity id: the audience assertions must be restricted to.
    pub sp_entity_id: String,
    /// The assertion consumer service URL as the IdP posts to it (`https://host/saml/acs`):
    /// the `Destination` of responses and the `Recipient` of assertions must be exactly this.
    pub acs_url: String,
    /// The attribute (its `Name`, or `FriendlyName`) whose values are the user's groups; they
    /// map to roles exactly as OIDC groups do.
    #[serde(default = "default_groups_attribute")]
    pub groups_attribute: String,
    /// Tolerance for clock differences with the IdP, on `NotBefore`/`NotOnOrAfter` (at most 5m).
    #[serde(default = "default_clock_skew", with = "duration_text")]
    pub clock_skew: Duration,
    /// Accept responses no AuthnRequest of this gateway asked for (IdP-initiated). Off by
    /// default: an unsolicited response is easier to inject (login CSRF).
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// Accept RSA-SHA1 signatures and SHA-1 digests. Off by default (SHA-1 collisions are
    /// practical); for an IdP that cannot be changed, knowingly.
    #[serde(default)]
    pub allow_sha1: bool,
    /// The assertion itself must carry the IdP's signature (a signed Response around an
    /// unsigned Assertion is refused). On by default.
    #[serde(default = "yes")]
    pub require_signed_assertion: bool,
    /// Ed25519 PKCS#8 PEM key that signs the gateway tokens a verified assertion is exchanged
    /// for (relative to the config file). Those tokens are checked like every bearer token.
    pub token_key_file: PathBuf,
    /// Lifetime of those gateway tokens (1s to 24h; default 15m).
    #[serde(default = "default_token_ttl", with = "duration_text")]
    pub token_ttl: Duration,
    /// How long an AuthnRequest id stays redeemable (default 10m).
    #[serde(default = "default_request_ttl", with = "duration_text")]
    pub request_ttl: Duration,
    /// Largest decoded SAMLResponse accepted, in bytes, checked before any XML parsing
    /// (default 256 KiB, at most 1 MiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

fn default_groups_attribute() -> String {
    "groups".into()
}
fn default_clock_skew() -> Duration {
    Duration::from_secs(60)
}
fn default_token_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_request_ttl() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_max_response_bytes() -> usize {
    256 * 1024
}
fn yes() -> bool {
    true
}

impl SamlConfig {
    /// A config with every optional field at its default.
    pub fn new(
        idp_entity_id: impl Into<String>,
        idp_certificates: Vec<PathBuf>,
        sp_entity_id: impl Into<String>,
        acs_url: impl Into<String>,
        token_key_file: impl Into<PathBuf>,
    ) -> SamlConfig {
        SamlConfig {
            idp_entity_id: idp_entity_id.into(),
            idp_sso_url: None,
            idp_certificates,
            sp_entity_id: sp_entity_id.into(),
            acs_url: acs_url.into(),
            groups_attribute: default_groups_attribute(),
            clock_skew: default_clock_skew(),
            allow_idp_initiated: false,
            allow_sha1: false,
            require_signed_assertion: true,
            token_key_file: token_key_file.into(),
            token_ttl: default_token_ttl(),
            request_ttl: default_request_ttl(),
            max_response_bytes: default_max_response_bytes(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), IdentityError> {
        let bad = |f: &str, reason: &str| Err(IdentityError::Config { field: format!("identity.saml.{f}"), reason: reason.into() });
        if self.idp_entity_id.trim().is_empty() {
            return bad("idp_entity_id", "must not be empty");
        }
        if self.sp_entity_id.trim().is_empty() {
            return bad("sp_entity_id", "must not be empty");
        }
        if self.idp_certificates.is_empty() {
            return bad("idp_certificates", "name at least one IdP signing certificate");
        }
        if !(self.acs_url.starts_with("https://") || self.acs_url.starts_with("http://")) {
            return bad("acs_url", "must be an absolute http(s) URL");
        }
        if self.groups_attribute.is_empty() {
            return bad("groups_attribute", "must not be empty");
        }
        if self.clock_skew > crate::config::MAX_CLOCK_SKEW {
            return bad("clock_skew", "must be at most 5m");
        }
        if self.token_ttl < Duration::from_secs(1) || self.token_ttl > crate::dev::MAX_TTL {
            return bad("token_ttl", "must be between 1s and 24h");
        }
        if self.request_ttl < Duration::from_secs(10) || self.request_ttl > Duration::from_secs(3600) {
            return bad("request_ttl", "must be between 10s and 1h");
        }
        if self.max_response_bytes < 1024 || self.max_response_bytes > MAX_RESPONSE_BYTES {
            return bad("max_response_bytes", "must be between 1024 and 1048576");
        }
        if self.idp_sso_url.is_none() && !self.allow_idp_initiated {
            return bad("idp_sso_url", "set it (SP-initiated sign-in) or `allow_idp_initiated = true`");
        }
        Ok(())
    }

    /// The certificate files, resolved against the config file's directory.
    pub(crate) fn certificate_paths(&self, base_dir: &Path) -> Vec<PathBuf> {
        self.idp_certificates.iter().map(|p| base_dir.join(p)).collect()
    }
}
