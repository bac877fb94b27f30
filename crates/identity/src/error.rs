//! Errors: [`IdentityError`] when the identity layer cannot be built or a dev token minted,
//! [`AuthError`] when a caller's token is refused. Messages are lowercase, never contain the
//! token, and carry nothing the caller did not already send except the configured issuer name.

use std::path::PathBuf;

/// The identity layer could not be set up (configuration, key files), or a dev token could not
/// be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A configuration value is out of bounds or inconsistent; `field` is its path, e.g.
    /// `identity.oidc[0].issuer`.
    #[error("`{field}`: {reason}")]
    Config { field: String, reason: String },
    /// The dev signing key file could not be read.
    #[error("cannot read the dev signing key `{}`: {source}", path.display())]
    ReadKey { path: PathBuf, source: std::io::Error },
    /// The dev signing key file is not what it must be.
    #[error("the dev signing key `{}` is not a PKCS#8 PEM Ed25519 private key", path.display())]
    BadKey { path: PathBuf },
    /// The system's random source or the crypto library failed.
    #[error("generating a signing key failed")]
    KeyGeneration,
    /// The HTTP client for the identity providers could not be built.
    #[error("cannot build the identity providers' HTTP client: {0}")]
    HttpClient(String),
    /// A dev token could not be minted as asked.
    #[error("cannot mint the token: {0}")]
    Mint(String),
}

/// Why a bearer token was refused. Every variant is a 401 except [`AuthError::IssuerUnavailable`]
/// and [`AuthError::ServiceAccountsUnavailable`] (503): when what vouches for tokens cannot be
/// read at all the gateway fails closed, and says so rather than blaming the token. Keys that
/// were fetched but have aged past `jwks_max_age` are a 401 ([`AuthError::KeysStale`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("the token is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the token is malformed: {reason}")]
    Malformed { reason: &'static str },
    /// The header's `alg` is `none`, HMAC, unknown, or not allowed for the token's issuer.
    #[error("the token's signature algorithm `{alg}` is not allowed")]
    AlgorithmNotAllowed { alg: String },
    /// The (unverified) `iss` names no configured issuer.
    #[error("the token's issuer is not trusted by this gateway")]
    UnknownIssuer,
    /// The header's `kid` is not in the issuer's key set, even after a refresh.
    #[error("the token's key id is not published by its issuer")]
    UnknownKeyId,
    /// The token has no `kid` and the issuer does not publish exactly one key for its algorithm.
    #[error("the token names no key id and its issuer does not publish exactly one key for its algorithm")]
    NoMatchingKey,
    /// The key named by `kid` is of another type than the token's algorithm needs.
    #[error("the key named by the token does not fit the token's algorithm")]
    KeyMismatch,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's issuer does not match")]
    WrongIssuer,
    #[error("the token is not issued for this gateway (audience mismatch)")]
    WrongAudience,
    #[error("the token is not an access token (header `typ` is not one this issuer's tokens may have)")]
    WrongTokenType,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has no `{claim}` claim")]
    MissingClaim { claim: &'static str },
    #[error("the token's `{claim}` claim is invalid")]
    InvalidClaim { claim: &'static str },
    /// The issuer's keys could not be refreshed for longer than its `jwks_max_age`: its tokens
    /// are refused until it answers again (fail closed, cached tokens included).
    #[error("the signing keys of `{issuer}` could not be refreshed within their maximum age; its tokens are refused until it can be reached")]
    KeysStale { issuer: String },
    /// A `tgsa_` key that is unknown, malformed, or whose secret does not match (one answer for
    /// all, so a caller learns nothing about which ids exist).
    #[error("the service-account key is not valid")]
    ServiceAccountKey,
    #[error("the service-account key has expired")]
    ServiceAccountKeyExpired,
    #[error("the service-account key has been revoked")]
    ServiceAccountKeyRevoked,
    /// The service-account store cannot be read: refused, never waved through.
    #[error("the service-account store is unavailable")]
    ServiceAccountsUnavailable,
    /// An ID token's `nonce` is not the one this sign-in sent (a token from another sign-in).
    #[error("the ID token's nonce does not match this sign-in")]
    NonceMismatch,
    /// An ID token's `azp` names another client (or is missing while there are several audiences).
    #[error("the ID token is not issued to this gateway's client (`azp`)")]
    WrongAuthorizedParty,
    /// An ID token's `at_hash` does not match the access token returned with it.
    #[error("the ID token's `at_hash` does not match its access token")]
    AccessTokenHashMismatch,
    /// The issuer's discovery document or keys could not be fetched or were unusable.
    #[error("the identity provider `{issuer}` is unavailable")]
    IssuerUnavailable { issuer: String },
}

impl AuthError {
    /// The HTTP status this refusal becomes: 503 when the issuer is unreachable, 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::IssuerUnavailable { .. } | AuthError::ServiceAccountsUnavailable => 503,
            _ => 401,
        }
    }

    /// A stable, machine-readable code for the error body, metrics and audit.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::TooLarge { .. } => "token_too_large",
            AuthError::Malformed { .. } => "malformed_token",
            AuthError::AlgorithmNotAllowed { .. } => "alg_not_allowed",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::UnknownKeyId => "unknown_kid",
            AuthError::NoMatchingKey => "no_matching_key",
            AuthError::KeyMismatch => "key_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongTokenType => "wrong_token_type",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::MissingClaim { .. } => "missing_claim",
            AuthError::InvalidClaim { .. } => "invalid_claim",
            AuthError::NonceMismatch => "nonce_mismatch",
            AuthError::WrongAuthorizedParty => "wrong_azp",
            AuthError::AccessTokenHashMismatch => "at_hash_mismatch",
            AuthError::IssuerUnavailable { .. } => "issuer_unavailable",
            AuthError::KeysStale { .. } => "issuer_keys_stale",
            AuthError::ServiceAccountKey => "invalid_service_account_key",
            AuthError::ServiceAccountKeyExpired => "service_account_key_expired",
            AuthError::ServiceAccountKeyRevoked => "service_account_key_revoked",
            AuthError::ServiceAccountsUnavailable => "service_accounts_unavailable",
        }
    }

    /// An algorithm name from a token header, made safe to echo: the header is attacker-written.
    pub(crate) fn alg_not_allowed(alg: &str) -> AuthError {
        let alg: String = alg.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
        AuthError::AlgorithmNotAllowed { alg }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        assert_eq!(AuthError::Expired.status(), 401);
        assert_eq!(AuthError::Expired.code(), "token_expired");
        let down = AuthError::IssuerUnavailable { issuer: "https://idp".into() };
        assert_eq!(down.status(), 503);
        assert_eq!(down.code(), "issuer_unavailable");
        assert_eq!(down.to_string(), "the identity provider `https://idp` is unavailable");
        let stale = AuthError::KeysStale { issuer: "https://idp".into() };
        assert_eq!((stale.status(), stale.code()), (401, "issuer_keys_stale"));
        assert!(stale.to_string().contains("could not be refreshed"));
    }

    #[test]
    fn echoed_algorithm_is_sanitized() {
        let e = AuthError::alg_not_allowed("none\"}<script>aaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(e, AuthError::AlgorithmNotAllowed { alg: "nonescriptaaaaaa".into() });
    }
}
