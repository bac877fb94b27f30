//! The authenticated caller as the core sees it: names and claims, never the credential.

use std::collections::BTreeMap;

/// How a principal proved who it is. Recorded for audit; the core treats all alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A bearer JWT from a configured OIDC issuer, checked against its JWKS.
    Oidc,
    /// A bearer JWT from the gateway's own development issuer.
    Dev,
    /// A service account's API key (`tgsa_…`): a non-human caller created by an operator.
    ServiceAccount,
    /// A gateway token minted for a verified SAML assertion (`POST /saml/acs`); its issuer is
    /// the SAML IdP's entity id.
    Saml,
}

/// What the caller presented on this request. How the identity was proven first is
/// [`AuthMethod`]; a browser session is a second credential standing for that proof (a session
/// started by OIDC sign-in is `auth_method: oidc`, `credential: session`). The core treats both
/// alike; the edge uses it for CSRF checks and audit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A bearer token or API key in the `Authorization` header.
    #[default]
    Bearer,
    /// A browser session cookie (issued after an interactive sign-in).
    Session,
}

impl Credential {
    /// For `skip_serializing_if`: the bearer case is left out, so records and stored principals
    /// written before sessions existed read and hash the same.
    pub fn is_bearer(&self) -> bool {
        *self == Credential::Bearer
    }
}

/// An authenticated caller. Built by the identity layer after the token checked out.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    pub subject: String,
    pub issuer: String,
    /// Group names from the configured groups claim; they select roles.
    pub groups: Vec<String>,
    /// String-valued claims (e.g. `tenant`), used by row scope. Only scalar claims are kept.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub auth_method: AuthMethod,
    /// The person behind this account when the identity config links accounts of several
    /// issuers to one person (`[identity.persons]`); `None` when unlinked. Self-approval is
    /// judged by person, so a second issuer is not a second person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// What was presented on this request: a bearer credential, or a browser session.
    #[serde(default, skip_serializing_if = "Credential::is_bearer")]
    pub credential: Credential,
}

impl Principal {
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).map(String::as_str)
    }
}
