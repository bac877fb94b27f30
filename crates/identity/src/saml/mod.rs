//! tracegate as a SAML 2.0 service provider (HTTP-POST binding on the ACS; SP-initiated with
//! one-time AuthnRequest ids, IdP-initiated only when configured).
//!
//! A `SAMLResponse` goes through, in order:
//! 1. a size cap on the encoded and decoded document, before any parsing;
//! 2. the structural scan (`scan`): no DTD, comments, processing instructions or CDATA;
//!    exactly one Assertion; unique IDs; every signature enveloped by the element it references;
//!    allowed algorithms only (SHA-1 only if `allow_sha1`);
//! 3. `Destination` is the ACS URL; `InResponseTo` names a pending AuthnRequest (or there is none
//!    and IdP-initiated sign-in is allowed);
//! 4. samael (xmlsec1): every signature verified against the configured IdP certificates, the
//!    document reduced to the signed content, and the assertion read from that reduction —
//!    issuer, audience, recipient, bearer confirmation, `NotBefore`/`NotOnOrAfter` with the skew;
//! 5. our own cross-checks on that verified assertion: its ID is the one the scan found (the
//!    element the signature covers is the element read), an AudienceRestriction naming this SP
//!    is present, the subject confirmation answers the same request;
//! 6. one-time use: the assertion id is remembered until it expires ([`ReplayCache`]) and the
//!    AuthnRequest id is redeemed ([`RequestStore`]). Both stores are shared by every replica
//!    when `[state]` is configured, so a response is good once across all of them.
//!
//! The result is a [`Verified`] assertion. **Seam:** [`Verified::principal`] is the one way from
//! it to a [`Principal`] (for a browser session), and [`ServiceProvider::mint`] exchanges it for a
//! gateway token that the [`Authenticator`](crate::Authenticator) checks like any bearer token
//! and turns back into the same principal.

mod config;
mod replay;
mod scan;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::EntityDescriptor;
use samael::schema::Assertion;
use samael::service_provider::{Error as SamaelError, ServiceProvider as SamaelSp};
use serde_json::Map;
use tracegate_core::{AuthMethod, Principal};

pub use config::{SamlConfig, MAX_RESPONSE_BYTES};
pub use replay::{MemoryReplayCache, MemoryRequests, PendingRequest, ReplayCache, ReplayCacheError, RequestStore};

use crate::config::DevIssuerConfig;
use crate::dev::DevIssuer;
use crate::error::IdentityError;
use crate::keys::KeySet;
use scan::Signed;

/// Most AuthnRequests pending at once; more are refused until some are answered or expire.
pub const MAX_PENDING_REQUESTS: usize = 10_000;

/// Why a SAML response was refused. Every variant is a 401 except
/// [`SamlError::ReplayCacheUnavailable`] (503). Messages never echo document content beyond a
/// sanitized algorithm name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    #[error("the SAML response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the SAML response is not base64")]
    NotBase64,
    #[error("the SAML response is malformed: {reason}")]
    Malformed { reason: &'static str },
    /// A `<!DOCTYPE>` or an entity reference: external entities (XXE) and entity expansion
    /// (billion laughs) are refused before anything is expanded.
    #[error("the SAML response declares a document type or references an entity")]
    DoctypeForbidden,
    /// Comments are refused: canonicalization ignores them, so a comment inside a signed value
    /// (`admin<!---->@evil`) would be read differently from how it was signed.
    #[error("the SAML response contains a comment")]
    CommentForbidden,
    #[error("the SAML response contains a processing instruction")]
    ProcessingInstructionForbidden,
    #[error("the SAML response carries no assertion")]
    NoAssertion,
    #[error("the SAML response carries more than one assertion")]
    MultipleAssertions,
    #[error("encrypted assertions are not supported")]
    EncryptedAssertion,
    #[error("two elements of the SAML response have the same ID")]
    DuplicateId,
    /// A signature not enveloped by the element it covers, or covering something else: the
    /// signature-wrapping family (XSW).
    #[error("the SAML response's signature is misplaced: {reason}")]
    SignatureMisplaced { reason: &'static str },
    #[error("the SAML response is not signed")]
    Unsigned,
    #[error("the SAML assertion is not signed (the configuration requires a signed assertion)")]
    AssertionNotSigned,
    #[error("the signature algorithm `{algorithm}` is not allowed")]
    WeakAlgorithm { algorithm: String },
    #[error("the SAML signature does not verify against the identity provider's certificates")]
    BadSignature,
    #[error("the SAML issuer is not the configured identity provider")]
    WrongIssuer,
    #[error("the SAML assertion is not meant for this service provider (audience)")]
    WrongAudience,
    #[error("the SAML assertion's recipient is not this service provider's ACS URL")]
    WrongRecipient,
    #[error("the SAML response's destination is not this service provider's ACS URL")]
    WrongDestination,
    #[error("the SAML assertion has expired")]
    Expired,
    #[error("the SAML assertion is not valid yet")]
    NotYetValid,
    #[error("the SAML assertion was already used")]
    Replayed,
    /// `InResponseTo` names no pending AuthnRequest of this gateway: unknown, expired, or
    /// already answered.
    #[error("the SAML response answers no pending request of this gateway")]
    UnknownRequest,
    #[error("unsolicited (IdP-initiated) SAML responses are not accepted")]
    IdpInitiatedNotAllowed,
    #[error("the identity provider reported a failed sign-in")]
    StatusNotSuccess,
    #[error("the SAML assertion names no subject")]
    NoSubject,
    #[error("SP-initiated sign-in is not configured (`identity.saml.idp_sso_url`)")]
    NoSsoUrl,
    #[error("too many sign-ins are pending; try again later")]
    TooManyPending,
    #[error("the assertion replay cache is unavailable")]
    ReplayCacheUnavailable,
    /// The store of pending AuthnRequests cannot be read or written: no sign-in starts or
    /// completes (fail closed).
    #[error("the store of pending SAML requests is unavailable")]
    RequestStoreUnavailable,
}

impl SamlError {
    /// The HTTP status this refusal becomes.
    pub fn status(&self) -> u16 {
        match self {
            SamlError::ReplayCacheUnavailable | SamlError::RequestStoreUnavailable | SamlError::TooManyPending => 503,
            SamlError::NoSsoUrl => 404,
            SamlError::TooLarge { .. } => 413,
            _ => 401,
        }
    }

    /// A stable, machine-readable code for the error body, metrics and audit.
    pub fn code(&self) -> &'static str {
        match self {
            SamlError::TooLarge { .. } => "saml_too_large",
            SamlError::NotBase64 => "saml_not_base64",
            SamlError::Malformed { .. } => "saml_malformed",
            SamlError::DoctypeForbidden => "saml_doctype_forbidden",
            SamlError::CommentForbidden => "saml_comment_forbidden",
            SamlError::ProcessingInstructionForbidden => "saml_processing_instruction_forbidden",
            SamlError::NoAssertion => "saml_no_assertion",
            SamlError::MultipleAssertions => "saml_multiple_assertions",
            SamlError::EncryptedAssertion => "saml_encrypted_assertion",
            SamlError::DuplicateId => "saml_duplicate_id",
            SamlError::SignatureMisplaced { .. } => "saml_signature_misplaced",
            SamlError::Unsigned => "saml_unsigned",
            SamlError::AssertionNotSigned => "saml_assertion_not_signed",
            SamlError::WeakAlgorithm { .. } => "saml_weak_algorithm",
            SamlError::BadSignature => "saml_bad_signature",
            SamlError::WrongIssuer => "saml_wrong_issuer",
            SamlError::WrongAudience => "saml_wrong_audience",
            SamlError::WrongRecipient => "saml_wrong_recipient",
            SamlError::WrongDestination => "saml_wrong_destination",
            SamlError::Expired => "saml_expired",
            SamlError::NotYetValid => "saml_not_yet_valid",
            SamlError::Replayed => "saml_replayed",
            SamlError::UnknownRequest => "saml_unknown_request",
            SamlError::IdpInitiatedNotAllowed => "saml_idp_initiated_not_allowed",
            SamlError::StatusNotSuccess => "saml_status_not_success",
            SamlError::NoSubject => "saml_no_subject",
            SamlError::NoSsoUrl => "saml_no_sso_url",
            SamlError::TooManyPending => "saml_too_many_pending",
            SamlError::ReplayCacheUnavailable => "saml_replay_cache_unavailable",
            SamlError::RequestStoreUnavailable => "saml_request_store_unavailable",
        }
    }
}

/// A verified assertion: only values read from the signed element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The NameID.
    pub subject: String,
    /// The IdP's entity id (the assertion's `<Issuer>`, checked).
    pub issuer: String,
    /// Values of the configured groups attribute.
    pub groups: Vec<String>,
    pub assertion_id: String,
    /// The AuthnRequest this answered; `None` when IdP-initiated.
    pub in_response_to: Option<String>,
    /// The earliest `NotOnOrAfter` of the assertion.
    pub not_on_or_after: SystemTime,
    /// This SP's entity id (the audience the assertion was restricted to).
    pub audience: String,
    /// SHA-256 of the browser-binding cookie the answered AuthnRequest was started with, when
    /// it was started for a browser session (see [`ServiceProvider::begin_login`]).
    pub browser_binding: Option<[u8; 32]>,
}

impl Verified {
    /// The principal this assertion proves: subject, issuer and groups from the assertion,
    /// `auth_method = saml`, and the string claims a gateway token for it carries (`iss`, `sub`,
    /// `aud`), so a browser session built from this and a bearer token minted from it are the
    /// same principal. `person` is filled by the authenticator's `[identity.persons]` links.
    pub fn principal(&self) -> Principal {
        let claims = BTreeMap::from([
            ("iss".to_owned(), self.issuer.clone()),
            ("sub".to_owned(), self.subject.clone()),
            ("aud".to_owned(), self.audience.clone()),
        ]);
        Principal {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            groups: self.groups.clone(),
            claims,
            auth_method: AuthMethod::Saml,
            person: None,
            credential: Default::default(),
        }
    }
}

/// A gateway token minted for a verified assertion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GatewayToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// A started SP-initiated sign-in: where to send the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub request_id: String,
    /// The IdP's SSO URL with `SAMLRequest` (HTTP-Redirect binding) and `RelayState`.
    pub redirect_url: String,
}

/// The configured service provider: verifies responses and mints gateway tokens.
pub struct ServiceProvider {
    cfg: SamlConfig,
    /// samael, answering solicited responses (InResponseTo checked).
    solicited: SamaelSp,
    /// samael, for unsolicited responses (used only when `allow_idp_initiated`).
    unsolicited: SamaelSp,
    pending: Arc<dyn RequestStore>,
    replay: Arc<dyn ReplayCache>,
    signer: DevIssuer,
    random: SystemRandom,
}

impl std::fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider").field("idp", &self.cfg.idp_entity_id).field("sp", &self.cfg.sp_entity_id).finish()
    }
}

impl ServiceProvider {
    /// Reads the IdP certificates and the token key named by `cfg` (relative to `base_dir`).
    /// `groups_claim` is `[identity] groups_claim`: where minted tokens carry the groups.
    /// `replay` and `pending` are the one-time-use stores (shared ones behind several replicas).
    pub fn load(
        cfg: &SamlConfig,
        base_dir: &Path,
        groups_claim: &str,
        replay: Arc<dyn ReplayCache>,
        pending: Arc<dyn RequestStore>,
    ) -> Result<ServiceProvider, IdentityError> {
        cfg.validate()?;
        let mut certs = Vec::new();
        for path in cfg.certificate_paths(base_dir) {
            let pem = std::fs::read_to_string(&path).map_err(|source| IdentityError::ReadKey { path: path.clone(), source })?;
            let found = pem_certificates(&pem);
            if found.is_empty() {
                return Err(IdentityError::Config {
                    field: "identity.saml.idp_certificates".into(),
                    reason: format!("`{}` holds no PEM certificate", path.display()),
                });
            }
            certs.extend(found);
        }
        let idp_metadata: EntityDescriptor = idp_metadata_xml(cfg, &certs).parse().map_err(|_| IdentityError::Config {
            field: "identity.saml".into(),
            reason: "the identity provider's description could not be built".into(),
        })?;
        let mut allowed = vec![
            AllowedSignatureAlgorithm::RsaSha256,
            AllowedSignatureAlgorithm::RsaSha384,
            AllowedSignatureAlgorithm::RsaSha512,
            AllowedSignatureAlgorithm::EcdsaSha256,
            AllowedSignatureAlgorithm::EcdsaSha384,
            AllowedSignatureAlgorithm::EcdsaSha512,
        ];
        let allowed = if cfg.allow_sha1 {
            // samael has no SHA-1 entry; the scan's own allow-list (SHA-1 included, knowingly)
            // is then the only one.
            None
        } else {
            Some(std::mem::take(&mut allowed))
        };
        let skew = chrono::Duration::seconds(i64::try_from(cfg.clock_skew.as_secs()).unwrap_or(300));
        let solicited = SamaelSp {
            entity_id: Some(cfg.sp_entity_id.clone()),
            acs_url: Some(cfg.acs_url.clone()),
            metadata_url: None,
            slo_url: None,
            idp_metadata,
            allow_idp_initiated: false,
            max_clock_skew: skew,
            max_issue_delay: chrono::Duration::seconds(90) + skew,
            allowed_signature_algorithms: allowed,
            ..SamaelSp::default()
        };
        let unsolicited = SamaelSp { allow_idp_initiated: true, ..solicited.clone() };
        let key_path = base_dir.join(&cfg.token_key_file);
        let pem = std::fs::read(&key_path).map_err(|source| IdentityError::ReadKey { path: key_path.clone(), source })?;
        let signer_cfg = DevIssuerConfig::new(cfg.idp_entity_id.clone(), cfg.sp_entity_id.clone(), key_path.clone());
        let signer = DevIssuer::from_pem(&signer_cfg, &pem)
            .map_err(|_| IdentityError::BadKey { path: key_path })?
            .with_groups_claim(groups_claim);
        Ok(ServiceProvider {
            cfg: cfg.clone(),
            solicited,
            unsolicited,
            pending,
            replay,
            signer,
            random: SystemRandom::new(),
        })
    }

    pub fn config(&self) -> &SamlConfig {
        &self.cfg
    }

    /// The keys gateway tokens are checked with (the authenticator's local issuer for them).
    pub(crate) fn key_set(&self) -> Result<KeySet, IdentityError> {
        self.signer.key_set()
    }

    /// This SP's metadata (`GET /saml/metadata`): entity id, the POST ACS, unsigned
    /// AuthnRequests, and whether assertions must be signed.
    pub fn metadata_xml(&self) -> String {
        format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">"#,
                r#"<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="false" WantAssertionsSigned="{want}">"#,
                r#"<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>"#,
                r#"<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>"#,
                r#"</md:SPSSODescriptor></md:EntityDescriptor>"#
            ),
            entity = xml_escape(&self.cfg.sp_entity_id),
            want = self.cfg.require_signed_assertion,
            acs = xml_escape(&self.cfg.acs_url),
        )
    }

    /// Starts an SP-initiated sign-in: a fresh AuthnRequest id (128 random bits), remembered
    /// for `request_ttl` and redeemable once. `browser_binding` is the SHA-256 of a cookie set on
    /// the browser that starts a browser-session sign-in: the response then starts a session
    /// only for that same browser (login CSRF defence), and the verified assertion carries it.
    pub async fn begin_login(&self, relay_state: &str, browser_binding: Option<[u8; 32]>) -> Result<Login, SamlError> {
        let sso = self.cfg.idp_sso_url.as_deref().ok_or(SamlError::NoSsoUrl)?;
        let mut bytes = [0u8; 16];
        self.random.fill(&mut bytes).map_err(|_| SamlError::TooManyPending)?;
        let request_id = format!("tg-{}", hex::encode(bytes));
        let mut request = self.solicited.make_authentication_request(sso).map_err(|_| SamlError::NoSsoUrl)?;
        request.id = request_id.clone();
        let url = request.redirect(relay_state).ok().flatten().ok_or(SamlError::NoSsoUrl)?;
        let pending = PendingRequest { until: SystemTime::now() + self.cfg.request_ttl, binding: browser_binding };
        match self.pending.insert(&request_id, pending).await {
            Ok(true) => {}
            Ok(false) => return Err(SamlError::TooManyPending),
            Err(e) => {
                tracing::error!(error = %e, "the pending SAML request store is unavailable");
                return Err(SamlError::RequestStoreUnavailable);
            }
        }
        Ok(Login { request_id, redirect_url: url.to_string() })
    }

    /// Verifies a `SAMLResponse` form value (base64) and redeems it. See the module docs for the
    /// order of checks.
    pub async fn consume(&self, saml_response: &str) -> Result<Verified, SamlError> {
        let cfg = &self.cfg;
        // 1. Size, before parsing.
        let limit = cfg.max_response_bytes;
        if saml_response.len() > limit.div_ceil(3) * 4 + limit / 38 + 8 {
            return Err(SamlError::TooLarge { limit });
        }
        let compact: Vec<u8> = saml_response.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let bytes = STANDARD.decode(compact).map_err(|_| SamlError::NotBase64)?;
        if bytes.len() > limit {
            return Err(SamlError::TooLarge { limit });
        }
        let xml = std::str::from_utf8(&bytes).map_err(|_| SamlError::Malformed { reason: "the response is not UTF-8" })?;
        // 2. Structure.
        let shape = scan::scan(xml, cfg.allow_sha1)?;
        if cfg.require_signed_assertion && !shape.signed.contains(&Signed::Assertion) {
            return Err(SamlError::AssertionNotSigned);
        }
        // 3. Where it was sent, and what it answers.
        if shape.destination.as_deref() != Some(cfg.acs_url.as_str()) {
            return Err(SamlError::WrongDestination);
        }
        // A request id that is not (or no longer) pending is refused at step 6, after the
        // assertion id is spent: a replayed response is then reported as a replay.
        let request_ids: Vec<&str> = match shape.in_response_to.as_deref() {
            Some(id) => vec![id],
            None if cfg.allow_idp_initiated => Vec::new(),
            None => return Err(SamlError::IdpInitiatedNotAllowed),
        };
        // 4. Signatures, reduction to the signed content, and samael's checks.
        let assertion = if request_ids.is_empty() {
            self.unsolicited.parse_xml_response(xml, None)
        } else {
            self.solicited.parse_xml_response(xml, Some(&request_ids))
        }
        .map_err(refusal)?;
        // 5. Cross-checks on the verified assertion.
        let mut verified = self.cross_check(&assertion, &shape)?;
        // 6. One-time use.
        let remember_until = verified.not_on_or_after + cfg.clock_skew;
        match self.replay.check_and_remember(&format!("{}\u{0}{}", verified.issuer, verified.assertion_id), remember_until).await {
            Ok(true) => {}
            Ok(false) => return Err(SamlError::Replayed),
            Err(e) => {
                tracing::error!(error = %e, "the SAML replay cache is unavailable");
                return Err(SamlError::ReplayCacheUnavailable);
            }
        }
        if let Some(id) = &verified.in_response_to {
            match self.pending.take(id).await {
                Ok(Some(request)) => verified.browser_binding = request.binding,
                Ok(None) => return Err(SamlError::UnknownRequest),
                Err(e) => {
                    tracing::error!(error = %e, "the pending SAML request store is unavailable");
                    return Err(SamlError::RequestStoreUnavailable);
                }
            }
        }
        Ok(verified)
    }

    fn cross_check(&self, assertion: &Assertion, shape: &scan::Shape) -> Result<Verified, SamlError> {
        let cfg = &self.cfg;
        if assertion.id != shape.assertion_id {
            return Err(SamlError::SignatureMisplaced { reason: "the verified assertion is not the document's assertion" });
        }
        if assertion.issuer.value.as_deref() != Some(cfg.idp_entity_id.as_str()) {
            return Err(SamlError::WrongIssuer);
        }
        let conditions = assertion.conditions.as_ref().ok_or(SamlError::WrongAudience)?;
        let audience_ok = conditions
            .audience_restrictions
            .as_deref()
            .is_some_and(|rs| !rs.is_empty() && rs.iter().all(|r| r.audience.iter().any(|a| a == &cfg.sp_entity_id)));
        if !audience_ok {
            return Err(SamlError::WrongAudience);
        }
        let subject = assertion.subject.as_ref().ok_or(SamlError::NoSubject)?;
        let name = subject.name_id.as_ref().map(|n| n.value.trim().to_owned()).unwrap_or_default();
        if name.is_empty() {
            return Err(SamlError::NoSubject);
        }
        // The bearer confirmation(s) must answer the same request as the response.
        let mut expiry = conditions.not_on_or_after.map(SystemTime::from);
        for c in subject.subject_confirmations.iter().flatten() {
            if let Some(data) = &c.subject_confirmation_data {
                if data.in_response_to.is_some() && data.in_response_to != shape.in_response_to {
                    return Err(SamlError::UnknownRequest);
                }
                if let Some(t) = data.not_on_or_after.map(SystemTime::from) {
                    expiry = Some(expiry.map_or(t, |e| e.min(t)));
                }
            }
        }
        let not_on_or_after = expiry.ok_or(SamlError::Malformed { reason: "the assertion has no NotOnOrAfter" })?;
        let groups = assertion
            .attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .filter(|a| a.name.as_deref() == Some(cfg.groups_attribute.as_str()) || a.friendly_name.as_deref() == Some(cfg.groups_attribute.as_str()))
            .flat_map(|a| a.values.iter().filter_map(|v| v.value.clone()))
            .collect();
        Ok(Verified {
            subject: name,
            issuer: cfg.idp_entity_id.clone(),
            groups,
            assertion_id: assertion.id.clone(),
            in_response_to: shape.in_response_to.clone(),
            not_on_or_after,
            audience: cfg.sp_entity_id.clone(),
            browser_binding: None,
        })
    }

    /// Exchanges a verified assertion for a gateway token (`token_ttl`, but never beyond the
    /// assertion's own `NotOnOrAfter` by more than that): signed with `token_key_file`, issued
    /// as the IdP's entity id for this SP's entity id, checked by the authenticator like every
    /// bearer token.
    pub fn mint(&self, verified: &Verified) -> Result<GatewayToken, IdentityError> {
        let ttl = self.cfg.token_ttl;
        let token = self.signer.mint(&verified.subject, &verified.groups, Map::new(), ttl)?;
        Ok(GatewayToken { access_token: token, token_type: "Bearer", expires_in: ttl.as_secs() })
    }

    /// How long AuthnRequests stay redeemable.
    pub fn request_ttl(&self) -> Duration {
        self.cfg.request_ttl
    }
}

/// samael's refusals as ours.
fn refusal(e: SamaelError) -> SamlError {
    match e {
        SamaelError::DestinationValidationError { .. } => SamlError::WrongDestination,
        SamaelError::AssertionExpired { .. }
        | SamaelError::AssertionSubjectConfirmationExpired { .. }
        | SamaelError::AssertionConditionExpired { .. }
        | SamaelError::ResponseExpired { .. } => SamlError::Expired,
        SamaelError::AssertionSubjectConfirmationExpiredBefore { .. } | SamaelError::AssertionConditionExpiredBefore { .. } => {
            SamlError::NotYetValid
        }
        SamaelError::AssertionIssuerMismatch { .. } | SamaelError::ResponseIssuerMismatch { .. } => SamlError::WrongIssuer,
        SamaelError::AssertionConditionAudienceRestrictionFailed { .. } => SamlError::WrongAudience,
        SamaelError::AssertionRecipientMismatch { .. } => SamlError::WrongRecipient,
        SamaelError::AssertionInResponseToInvalid { .. } | SamaelError::ResponseInResponseToInvalid { .. } => {
            SamlError::UnknownRequest
        }
        SamaelError::ResponseBadStatusCode { .. } => SamlError::StatusNotSuccess,
        SamaelError::FailedToValidateSignature => SamlError::BadSignature,
        SamaelError::EncryptedAssertionsNotYetSupported => SamlError::EncryptedAssertion,
        SamaelError::AssertionBearerSubjectConfirmationMissing | SamaelError::AssertionSubjectConfirmationMissing => {
            SamlError::Malformed { reason: "the assertion has no usable bearer subject confirmation" }
        }
        _ => SamlError::Malformed { reason: "the response could not be read" },
    }
}

/// Base64 bodies of the `CERTIFICATE` blocks of a PEM file.
fn pem_certificates(pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(body) = current.take() {
                if STANDARD.decode(&body).is_ok() {
                    out.push(body);
                }
            }
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    out
}

/// The IdP as samael's metadata type wants it: entity id and signing certificates.
fn idp_metadata_xml(cfg: &SamlConfig, certs: &[String]) -> String {
    let keys: String = certs
        .iter()
        .map(|c| {
            format!(
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
            )
        })
        .collect();
    let sso = cfg.idp_sso_url.as_deref().unwrap_or(&cfg.idp_entity_id);
    format!(
        concat!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">"#,
            r#"<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}"#,
            r#"<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/>"#,
            r#"</md:IDPSSODescriptor></md:EntityDescriptor>"#
        ),
        entity = xml_escape(&cfg.idp_entity_id),
        keys = keys,
        sso = xml_escape(sso),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
