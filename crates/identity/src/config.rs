//! The `[identity]` configuration: which issuers the gateway trusts and how their tokens are
//! checked. A field's doc comment is its user documentation.
//!
//! Parsing is strict (unknown keys are errors: a typo must not silently weaken a check) and the
//! dangerous choices are unrepresentable: `none` and HMAC algorithms do not parse.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::IdentityError;

/// Largest clock skew accepted: more would keep expired tokens alive for longer than a typical
/// token lifetime.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Bounds of `max_token_bytes`: below 1 KiB real IdP tokens do not fit; above 64 KiB a token is
/// a denial-of-service vector, not a credential.
pub const TOKEN_BYTES_RANGE: (usize, usize) = (1024, 64 * 1024);

/// How the gateway authenticates callers (`[identity]`).
///
/// ```toml
/// [identity]
/// groups_claim = "groups"
/// clock_skew = "30s"
///
/// [[identity.oidc]]
/// issuer = "https://idp.example.com/realms/main"
/// audience = "tracegate"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Where the caller's groups are in the token, as a dotted path (`groups`,
    /// `realm_access.roles`). A claim whose name is exactly this string (e.g. a namespaced
    /// `https://example.com/groups`) wins over the dotted reading. The value must be an array of
    /// strings or a single string; anything else yields no groups (and so no roles).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Tolerance for clock differences with the issuer, applied to `exp` and `nbf`
    /// (e.g. `"30s"`; at most `"5m"`).
    #[serde(default = "default_clock_skew", with = "duration_text")]
    pub clock_skew: Duration,
    /// Largest bearer token accepted, in bytes (1024 to 65536). Larger tokens are refused before
    /// any parsing.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Trusted OpenID Connect issuers (`[[identity.oidc]]`), one table per issuer.
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
    /// The gateway's own development issuer (`[identity.dev]`): `tracegate token` mints tokens
    /// with a local key. For trying the gateway out; remove it in production.
    #[serde(default)]
    pub dev: Option<DevIssuerConfig>,
    /// One person reached through several issuers (`[identity.persons]`): each entry names a
    /// person and the (issuer, subject) accounts that are theirs, so that nobody approves their
    /// own access request by arriving through a second issuer.
    ///
    /// ```toml
    /// [identity.persons]
    /// alice = [
    ///   { issuer = "https://idp.example.com/realms/main", subject = "8f0c..." },
    ///   { issuer = "tracegate-dev", subject = "alice" },
    /// ]
    /// ```
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub persons: BTreeMap<String, Vec<AccountRef>>,
    /// API keys for non-human callers (`[identity.service_accounts]`). Absent: no service
    /// account can authenticate and the admin API answers 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<ServiceAccountsConfig>,
    /// Browser sign-in (`[identity.browser]`): the OIDC authorization code flow with PKCE
    /// against one of the `[[identity.oidc]]` issuers, ending in a session cookie. Absent: the
    /// `/auth/*` routes answer 404 and session cookies are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<crate::browser::BrowserConfig>,
    /// A SAML 2.0 identity provider (`[identity.saml]`): the gateway is its service provider,
    /// and exchanges each verified assertion for a short-lived gateway token. See
    /// [`crate::saml::SamlConfig`]. Needs the `saml` build feature (on by default).
    #[cfg(feature = "saml")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml: Option<crate::saml::SamlConfig>,
}

/// One account of a person: a subject within an issuer, exactly as the tokens say them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRef {
    pub issuer: String,
    pub subject: String,
}

/// `[identity.service_accounts]`: where the accounts are kept and who manages them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountsConfig {
    /// Directory of the service-account log, relative to the config file (default
    /// `service-accounts`). Gateways that share this directory share the accounts: a key
    /// revoked through one is refused by every other on its next request.
    #[serde(default = "default_sa_path")]
    pub path: PathBuf,
    /// Groups whose members may create, list, rotate and revoke service accounts. Empty (the
    /// default): nobody may; service accounts themselves never may.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Lifetime of a key when the request names none (e.g. `"90d"`).
    #[serde(default = "default_sa_key_ttl", with = "duration_text")]
    pub default_key_ttl: Duration,
    /// Longest lifetime a key may be given (e.g. `"365d"`).
    #[serde(default = "default_sa_max_key_ttl", with = "duration_text")]
    pub max_key_ttl: Duration,
}

impl Default for ServiceAccountsConfig {
    fn default() -> Self {
        ServiceAccountsConfig {
            path: default_sa_path(),
            admin_groups: Vec::new(),
            default_key_ttl: default_sa_key_ttl(),
            max_key_ttl: default_sa_max_key_ttl(),
        }
    }
}

fn default_sa_path() -> PathBuf {
    PathBuf::from("service-accounts")
}
fn default_sa_key_ttl() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}
fn default_sa_max_key_ttl() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}

/// One trusted OpenID Connect issuer (`[[identity.oidc]]`). Its signing keys are read from the
/// `jwks_uri` of its discovery document, on first use, and refreshed when a token names a key
/// the gateway has not seen (key rotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The issuer identifier, exactly as it appears in the tokens' `iss` claim and in the
    /// discovery document (`https://...`; plain `http` only for a loopback address).
    pub issuer: String,
    /// The audience tokens must be issued for (`aud`): the name this gateway has at the IdP.
    pub audience: String,
    /// Signature algorithms accepted from this issuer. `none` and the HMAC family (`HS256`...)
    /// are refused: a shared secret is not an identity, and accepting HMAC invites key confusion.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Shortest time between two key-set fetches triggered by unknown key ids (e.g. `"30s"`,
    /// from 1s to 1h): tokens with made-up key ids cannot make the gateway hammer the IdP.
    #[serde(default = "default_min_refresh", with = "duration_text")]
    pub jwks_min_refresh_interval: Duration,
    /// How often the key set is checked again (default `"60s"`, at least
    /// `jwks_min_refresh_interval`): a key the IdP withdrew stops being accepted within this
    /// interval, for tokens already verified and cached too.
    #[serde(default = "default_refresh_interval", with = "duration_text")]
    pub jwks_refresh_interval: Duration,
    /// How long keys stay usable after the last successful fetch while the IdP cannot be
    /// reached (e.g. `"10m"`, at least `jwks_refresh_interval`). Past it, tokens from this
    /// issuer are refused (401 `issuer_keys_stale`) until the IdP answers again, and
    /// `/healthz` says so.
    #[serde(default = "default_max_age", with = "duration_text")]
    pub jwks_max_age: Duration,
    /// Timeout for each request to the IdP (discovery and keys), e.g. `"5s"`.
    #[serde(default = "default_request_timeout", with = "duration_text")]
    pub request_timeout: Duration,
    /// Where the discovery document is, if not at `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// Accepted values of the token header's `typ` (case-insensitive). The default is the
    /// RFC 9068 access-token type, which keeps ID tokens (whose audience may also be us) out.
    /// For an IdP that types its access tokens `JWT`, list `"JWT"` here.
    #[serde(default = "default_token_types")]
    pub token_types: Vec<String>,
}

/// The development issuer (`[identity.dev]`): Ed25519 (`EdDSA`) tokens signed with a local key,
/// checked by the same code as tokens from an OIDC issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIssuerConfig {
    /// The `iss` of dev tokens, e.g. `"tracegate-dev"`. Must differ from every OIDC issuer.
    pub issuer: String,
    /// The `aud` of dev tokens, e.g. `"tracegate"`.
    pub audience: String,
    /// The signing key: an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm
    /// ed25519`, or written by `tracegate quickstart`). Relative to the config file's directory.
    pub key_file: PathBuf,
    /// Serve on an address other than loopback while this issuer is configured. Off by default:
    /// anyone who can read the key file mints any identity, so `tracegate serve` refuses to
    /// listen beyond this machine unless this says it knowingly may.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_non_loopback: bool,
}

impl DevIssuerConfig {
    /// A dev issuer with every optional field at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, key_file: impl Into<PathBuf>) -> Self {
        DevIssuerConfig { issuer: issuer.into(), audience: audience.into(), key_file: key_file.into(), allow_non_loopback: false }
    }

    /// Refuses a listen address beyond loopback unless `allow_non_loopback` is set.
    pub fn check_listen(&self, addr: std::net::SocketAddr) -> Result<(), IdentityError> {
        if addr.ip().is_loopback() || self.allow_non_loopback {
            return Ok(());
        }
        Err(IdentityError::Config {
            field: "identity.dev.allow_non_loopback".into(),
            reason: format!(
                "the development issuer is configured and `{addr}` is not a loopback address: anyone holding \
                 its key file can mint any identity. Remove `[identity.dev]`, listen on 127.0.0.1, or set \
                 `allow_non_loopback = true` knowingly"
            ),
        })
    }

    /// The key file's path, resolved against the directory of the config file that named it.
    pub fn key_path(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.key_file)
    }
}

/// A signature algorithm an issuer may use. Only asymmetric algorithms exist here: `none` and
/// `HS*` are rejected when the configuration is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigningAlgorithm(Algorithm);

impl SigningAlgorithm {
    pub const RS256: SigningAlgorithm = SigningAlgorithm(Algorithm::RS256);
    pub const ES256: SigningAlgorithm = SigningAlgorithm(Algorithm::ES256);
    pub const EDDSA: SigningAlgorithm = SigningAlgorithm(Algorithm::EdDSA);

    /// The accepted names, for error messages.
    const NAMES: &'static str = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

    pub(crate) fn algorithm(self) -> Algorithm {
        self.0
    }

    /// The JOSE name (`RS256`).
    pub fn as_str(self) -> &'static str {
        match self.0 {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            // Unreachable by construction: `from_str` admits only the names above.
            _ => "unsupported",
        }
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("none") {
            return Err("`none` is never allowed: it means an unsigned token".into());
        }
        if s.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("hs")) {
            return Err(format!(
                "`{s}` is never allowed: HMAC needs a secret shared with the issuer, and accepting it \
                 invites signing with a public key"
            ));
        }
        let alg = crate::keys::asymmetric_alg(s)
            .ok_or_else(|| format!("unknown signature algorithm `{s}`; expected one of {}", Self::NAMES))?;
        Ok(SigningAlgorithm(alg))
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SigningAlgorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SigningAlgorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_clock_skew() -> Duration {
    Duration::from_secs(30)
}
fn default_max_token_bytes() -> usize {
    8192
}
fn default_algorithms() -> Vec<SigningAlgorithm> {
    vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256]
}
fn default_min_refresh() -> Duration {
    Duration::from_secs(30)
}
fn default_refresh_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_max_age() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            groups_claim: default_groups_claim(),
            clock_skew: default_clock_skew(),
            max_token_bytes: default_max_token_bytes(),
            oidc: Vec::new(),
            dev: None,
            persons: BTreeMap::new(),
            service_accounts: None,
            browser: None,
            #[cfg(feature = "saml")]
            saml: None,
        }
    }
}

impl OidcIssuerConfig {
    /// An issuer with every optional field at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        OidcIssuerConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: default_algorithms(),
            jwks_min_refresh_interval: default_min_refresh(),
            jwks_refresh_interval: default_refresh_interval(),
            jwks_max_age: default_max_age(),
            request_timeout: default_request_timeout(),
            discovery_url: None,
            token_types: default_token_types(),
        }
    }
}

/// RFC 9068 §2.1: access tokens are typed `at+jwt` (or its long form).
pub(crate) fn default_token_types() -> Vec<String> {
    vec!["at+jwt".into(), "application/at+jwt".into()]
}

impl IdentityConfig {
    /// Checks what the types cannot: bounds, URL schemes, duplicate issuers. Run by
    /// [`Authenticator::new`](crate::Authenticator::new); public so a config loader can report
    /// problems before starting anything.
    pub fn validate(&self) -> Result<(), IdentityError> {
        let bad = |field: String, reason: String| Err(IdentityError::Config { field, reason });
        if self.groups_claim.is_empty() || self.groups_claim.split('.').any(str::is_empty) {
            return bad("identity.groups_claim".into(), "must be a dotted path such as `groups`".into());
        }
        if self.clock_skew > MAX_CLOCK_SKEW {
            return bad("identity.clock_skew".into(), "must be at most 5m".into());
        }
        let (lo, hi) = TOKEN_BYTES_RANGE;
        if !(lo..=hi).contains(&self.max_token_bytes) {
            return bad("identity.max_token_bytes".into(), format!("must be between {lo} and {hi}"));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (i, o) in self.oidc.iter().enumerate() {
            let at = |f: &str| format!("identity.oidc[{i}].{f}");
            if let Err(reason) = check_idp_url(&o.issuer) {
                return bad(at("issuer"), reason);
            }
            if o.token_types.is_empty() {
                return bad(at("token_types"), "list at least one accepted `typ` (default: at+jwt)".into());
            }
            if let Some(url) = &o.discovery_url {
                if let Err(reason) = check_idp_url(url) {
                    return bad(at("discovery_url"), reason);
                }
            }
            if o.audience.trim().is_empty() {
                return bad(at("audience"), "must not be empty".into());
            }
            if o.algorithms.is_empty() {
                return bad(at("algorithms"), "must name at least one algorithm".into());
            }
            let refresh = o.jwks_min_refresh_interval;
            if refresh < Duration::from_secs(1) || refresh > Duration::from_secs(3600) {
                return bad(at("jwks_min_refresh_interval"), "must be between 1s and 1h".into());
            }
            if o.jwks_refresh_interval < refresh || o.jwks_refresh_interval > Duration::from_secs(24 * 3600) {
                return bad(
                    at("jwks_refresh_interval"),
                    "must be at least `jwks_min_refresh_interval` and at most 24h".into(),
                );
            }
            if o.jwks_max_age < o.jwks_refresh_interval {
                return bad(at("jwks_max_age"), "must be at least `jwks_refresh_interval`".into());
            }
            if o.request_timeout.is_zero() || o.request_timeout > Duration::from_secs(60) {
                return bad(at("request_timeout"), "must be between 1ms and 60s".into());
            }
            if seen.contains(&o.issuer.as_str()) {
                return bad(at("issuer"), format!("`{}` is configured twice", o.issuer));
            }
            seen.push(&o.issuer);
        }
        if let Some(d) = &self.dev {
            if d.issuer.trim().is_empty() {
                return bad("identity.dev.issuer".into(), "must not be empty".into());
            }
            if d.audience.trim().is_empty() {
                return bad("identity.dev.audience".into(), "must not be empty".into());
            }
            if d.key_file.as_os_str().is_empty() {
                return bad("identity.dev.key_file".into(), "must not be empty".into());
            }
            if seen.contains(&d.issuer.as_str()) {
                return bad("identity.dev.issuer".into(), format!("`{}` is also an OIDC issuer", d.issuer));
            }
        }
        #[cfg(feature = "saml")]
        if let Some(s) = &self.saml {
            s.validate()?;
            let clashes = seen.contains(&s.idp_entity_id.as_str())
                || self.dev.as_ref().is_some_and(|d| d.issuer == s.idp_entity_id);
            if clashes {
                return bad(
                    "identity.saml.idp_entity_id".into(),
                    format!("`{}` is also an OIDC or dev issuer: its gateway tokens would be ambiguous", s.idp_entity_id),
                );
            }
        }
        let mut linked: BTreeMap<&AccountRef, &str> = BTreeMap::new();
        for (person, accounts) in &self.persons {
            let at = format!("identity.persons.{person}");
            if person.trim().is_empty() || accounts.is_empty() {
                return bad(at, "a person needs a name and at least one `{ issuer, subject }`".into());
            }
            for a in accounts {
                if a.issuer.is_empty() || a.subject.is_empty() {
                    return bad(at, "`issuer` and `subject` must not be empty".into());
                }
                if let Some(other) = linked.insert(a, person) {
                    return bad(
                        at,
                        format!("`{}` at `{}` is already linked to person `{other}`", a.subject, a.issuer),
                    );
                }
            }
        }
        if let Some(sa) = &self.service_accounts {
            if sa.default_key_ttl.is_zero() || sa.default_key_ttl > sa.max_key_ttl {
                return bad(
                    "identity.service_accounts.default_key_ttl".into(),
                    "must be positive and at most `max_key_ttl`".into(),
                );
            }
            if sa.admin_groups.iter().any(|g| g.trim().is_empty()) {
                return bad("identity.service_accounts.admin_groups".into(), "group names must not be empty".into());
            }
        }
        if let Some(b) = &self.browser {
            b.validate(&self.oidc)?;
        }
        Ok(())
    }
}

/// An IdP URL must be `https`, or `http` on a loopback address (a local test IdP): keys fetched
/// in clear text over a network could be swapped by anyone on the path.
pub(crate) fn check_idp_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(format!("`{text}` must use https (plain http only for loopback addresses)")),
        other => return Err(format!("`{text}`: scheme `{other}` is not supported; use https")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}` must not carry credentials, a query or a fragment"));
    }
    Ok(url)
}

pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Durations as human-readable strings (`"30s"`, `"5m"`), as operators write them.
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration such as \"30s\" or \"5m\": {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IdentityConfig, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Root {
            identity: IdentityConfig,
        }
        toml::from_str::<Root>(text).map(|r| r.identity).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fill_in() {
        let cfg =
            parse("[identity]\n[[identity.oidc]]\nissuer = \"https://idp.example.com\"\naudience = \"tg\"\n").unwrap();
        assert_eq!(cfg.groups_claim, "groups");
        assert_eq!(cfg.clock_skew, Duration::from_secs(30));
        assert_eq!(cfg.max_token_bytes, 8192);
        assert_eq!(cfg.oidc[0].algorithms, vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256]);
        assert_eq!(cfg.oidc[0].jwks_min_refresh_interval, Duration::from_secs(30));
        cfg.validate().unwrap();
    }

    /// Every field, as an operator would write it (the snippet in the crate's docs and report).
    const FULL_EXAMPLE: &str = r#"
[identity]
groups_claim = "realm_access.roles"
clock_skew = "30s"
max_token_bytes = 8192

[[identity.oidc]]
issuer = "https://idp.example.com/realms/main"
audience = "tracegate"
algorithms = ["RS256", "ES256"]
jwks_min_refresh_interval = "30s"
jwks_refresh_interval = "60s"
jwks_max_age = "10m"
request_timeout = "5s"
# discovery_url = "https://idp.example.com/realms/main/.well-known/openid-configuration"

[identity.dev]
issuer = "tracegate-dev"
audience = "tracegate"
key_file = "dev-signing-key.pem"

[identity.persons]
alice = [
  { issuer = "https://idp.example.com/realms/main", subject = "8f0c2a" },
  { issuer = "tracegate-dev", subject = "alice" },
]

[identity.service_accounts]
path = "service-accounts"
admin_groups = ["platform-admin"]
default_key_ttl = "90d"
max_key_ttl = "365d"
"#;

    #[test]
    fn full_example_parses_and_round_trips() {
        let cfg = parse(FULL_EXAMPLE).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.oidc[0].jwks_max_age, Duration::from_secs(600));
        assert_eq!(cfg.dev.as_ref().unwrap().key_file, PathBuf::from("dev-signing-key.pem"));
        let text = toml::to_string(&cfg).unwrap();
        let again: IdentityConfig = toml::from_str(&text).unwrap();
        assert_eq!(again, cfg);
    }

    #[test]
    fn none_and_hmac_do_not_parse() {
        for alg in ["none", "NONE", "HS256", "HS384", "HS512", "hs256"] {
            let text = format!(
                "[identity]\n[[identity.oidc]]\nissuer = \"https://i\"\naudience = \"a\"\nalgorithms = [\"RS256\", \"{alg}\"]\n"
            );
            let err = parse(&text).unwrap_err();
            assert!(err.contains("never allowed"), "{alg}: {err}");
        }
        assert!(parse(
            "[identity]\n[[identity.oidc]]\nissuer = \"https://i\"\naudience = \"a\"\nalgorithms = [\"RS257\"]\n"
        )
        .unwrap_err()
        .contains("unknown signature algorithm"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse("[identity]\ngroup_claim = \"groups\"\n").unwrap_err().contains("unknown field"));
        assert!(parse(
            "[identity]\n[[identity.oidc]]\nissuer = \"https://i\"\naudience = \"a\"\naudiences = [\"b\"]\n"
        )
        .unwrap_err()
        .contains("unknown field"));
    }

    #[test]
    fn bounds_and_urls_are_checked() {
        let mut cfg = IdentityConfig { clock_skew: Duration::from_secs(301), ..IdentityConfig::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("clock_skew"));
        cfg.clock_skew = Duration::from_secs(30);
        cfg.oidc.push(OidcIssuerConfig::new("http://idp.example.com", "tg"));
        assert!(cfg.validate().unwrap_err().to_string().contains("https"));
        cfg.oidc[0].issuer = "http://127.0.0.1:9999".into();
        cfg.validate().unwrap();
        cfg.oidc[0].issuer = "http://localhost:9999/realms/x".into();
        cfg.validate().unwrap();
        cfg.oidc.push(OidcIssuerConfig::new("http://localhost:9999/realms/x", "tg"));
        assert!(cfg.validate().unwrap_err().to_string().contains("twice"));
        cfg.oidc.pop();
        cfg.oidc[0].jwks_min_refresh_interval = Duration::ZERO;
        assert!(cfg.validate().unwrap_err().to_string().contains("jwks_min_refresh_interval"));
        cfg.oidc[0].jwks_min_refresh_interval = Duration::from_secs(1);
        cfg.max_token_bytes = 10;
        assert!(cfg.validate().unwrap_err().to_string().contains("max_token_bytes"));
        cfg.max_token_bytes = 8192;
        cfg.groups_claim = "a..b".into();
        assert!(cfg.validate().unwrap_err().to_string().contains("groups_claim"));
    }

    #[test]
    fn links_and_refresh_bounds_are_checked() {
        let mut cfg = parse(FULL_EXAMPLE).unwrap();
        cfg.persons.insert(
            "mallory".into(),
            vec![AccountRef { issuer: "tracegate-dev".into(), subject: "alice".into() }],
        );
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("already linked to person `alice`"), "{err}");
        let mut cfg = parse(FULL_EXAMPLE).unwrap();
        cfg.oidc[0].jwks_refresh_interval = Duration::from_secs(10);
        assert!(cfg.validate().unwrap_err().to_string().contains("jwks_refresh_interval"));
        cfg.oidc[0].jwks_refresh_interval = Duration::from_secs(3600);
        assert!(cfg.validate().unwrap_err().to_string().contains("jwks_max_age"));
    }

    #[test]
    fn dev_issuer_listens_on_loopback_unless_allowed() {
        let mut d = DevIssuerConfig::new("i", "a", "k.pem");
        for ok in ["127.0.0.1:8080", "[::1]:8080", "127.3.2.1:1"] {
            d.check_listen(ok.parse().unwrap()).unwrap();
        }
        for refused in ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:8080"] {
            let err = d.check_listen(refused.parse().unwrap()).unwrap_err().to_string();
            assert!(err.contains("allow_non_loopback"), "{err}");
        }
        d.allow_non_loopback = true;
        d.check_listen("0.0.0.0:8080".parse().unwrap()).unwrap();
        let text = "[identity.dev]\nissuer = \"i\"\naudience = \"a\"\nkey_file = \"k\"\nallow_non_loopback = true\n";
        assert!(parse(text).unwrap().dev.unwrap().allow_non_loopback);
    }

    #[test]
    fn durations_read_as_text() {
        let cfg = parse("[identity]\nclock_skew = \"2m\"\n").unwrap();
        assert_eq!(cfg.clock_skew, Duration::from_secs(120));
        assert!(parse("[identity]\nclock_skew = \"soon\"\n").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn key_path_resolves_against_the_config_dir() {
        let d = DevIssuerConfig::new("i", "a", "k.pem");
        assert_eq!(d.key_path(Path::new("/etc/tracegate")), PathBuf::from("/etc/tracegate/k.pem"));
        let abs = DevIssuerConfig { key_file: "/keys/k.pem".into(), ..d };
        assert_eq!(abs.key_path(Path::new("/etc/tracegate")), PathBuf::from("/keys/k.pem"));
    }
}
