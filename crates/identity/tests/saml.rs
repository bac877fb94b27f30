//! The SAML service provider against a real IdP (pysaml2 + xmlsec1, `scripts/saml-idp.py`):
//! the happy paths (SP- and IdP-initiated, assertion-only and response-only signatures, key
//! rotation), the exchange for a gateway token checked like any bearer token, and the attack
//! list — each attack built from a real signed response, mutated, and refused with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
#[path = "support/saml_idp.rs"]
mod saml_idp;

use std::path::PathBuf;
use std::time::Duration;

use saml_idp::{decode, encode, Idp, Issue};
use tracegate_core::AuthMethod;
use tracegate_identity::saml::{SamlConfig, SamlError, ServiceProvider};
use tracegate_identity::{dev, Authenticator, IdentityConfig};

const IDP: &str = "https://idp.test/saml";
const SP: &str = "https://tracegate.test/saml/metadata";
const ACS: &str = "https://tracegate.test/saml/acs";

struct Fixture {
    dir: support::TempDir,
    idp: Idp,
    auth: Authenticator,
    metadata: PathBuf,
}

impl Fixture {
    fn new(tune: impl FnOnce(&mut SamlConfig)) -> Fixture {
        let dir = support::TempDir::new("saml");
        let idp = Idp::new(&dir.path().join("idp"), IDP);
        std::fs::write(dir.path().join("token.pem"), dev::generate_key_pem().unwrap()).unwrap();
        let mut cfg = SamlConfig::new(IDP, vec![idp.cert.clone()], SP, ACS, "token.pem");
        cfg.idp_sso_url = Some(format!("{IDP}/sso"));
        tune(&mut cfg);
        let auth = Authenticator::new(&IdentityConfig { saml: Some(cfg), ..IdentityConfig::default() }, dir.path()).unwrap();
        let metadata = dir.path().join("sp-metadata.xml");
        std::fs::write(&metadata, auth.saml().unwrap().metadata_xml()).unwrap();
        Fixture { dir, idp, auth, metadata }
    }

    fn sp(&self) -> &ServiceProvider {
        self.auth.saml().unwrap()
    }

    /// A valid issue for a fresh SP-initiated request.
    fn solicited(&self, subject: &str, groups: &[&str]) -> Issue {
        let login = run(self.sp().begin_login("", None)).unwrap();
        Issue { in_response_to: Some(login.request_id), ..Issue::new(SP, ACS, subject, groups) }
    }

    fn issue(&self, issue: &Issue) -> String {
        self.idp.response(&self.metadata, issue)
    }

    /// A signed response's XML for a fresh request (both response and assertion signed).
    fn signed_xml(&self, subject: &str) -> String {
        decode(&self.issue(&self.solicited(subject, &["eng"])))
    }

    fn refuse(&self, b64: &str) -> SamlError {
        match run(self.sp().consume(b64)) {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(e) => e,
        }
    }
}

/// Runs one future of the service provider to completion (these tests are synchronous).
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn between<'a>(xml: &'a str, start: &str, end: &str) -> &'a str {
    let s = xml.find(start).unwrap_or_else(|| panic!("no `{start}`"));
    let e = xml[s..].find(end).unwrap_or_else(|| panic!("no `{end}`")) + s + end.len();
    &xml[s..e]
}

/// The first `ID="…"` attribute of `fragment`, whole.
fn id_attr(fragment: &str) -> String {
    let s = fragment.find(" ID=\"").unwrap() + 1;
    let e = fragment[s + 4..].find('"').unwrap() + s + 5;
    fragment[s..e].to_owned()
}

/// The assertion element of a pysaml2 response (prefix `ns1`).
fn assertion(xml: &str) -> &str {
    between(xml, "<ns1:Assertion ", "</ns1:Assertion>")
}

/// The first signature element after `from`.
fn signature_in(fragment: &str) -> &str {
    between(fragment, "<ns2:Signature", "</ns2:Signature>")
}

/// The assertion, made evil: another subject and id, its signature removed.
fn evil_assertion(xml: &str) -> String {
    let a = assertion(xml);
    a.replace(signature_in(a), "").replace("alice@example.com", "admin@example.com").replace(&id_attr(a), "ID=\"evil-assertion\"")
}

// ---- happy paths ----

#[test]
fn sp_initiated_sign_in_yields_the_principal_and_a_gateway_token_for_it() {
    let f = Fixture::new(|_| {});
    let issue = f.solicited("alice@example.com", &["eng", "sre"]);
    let v = run(f.sp().consume(&f.issue(&issue))).unwrap();
    assert_eq!((v.subject.as_str(), v.issuer.as_str()), ("alice@example.com", IDP));
    assert_eq!(v.groups, ["eng", "sre"]);
    assert_eq!(v.in_response_to, issue.in_response_to);
    let p = f.auth.saml_principal(&v);
    assert_eq!(p.auth_method, AuthMethod::Saml);
    // The gateway token goes through the bearer path and comes back as the same principal.
    let token = f.sp().mint(&v).unwrap();
    assert_eq!(token.expires_in, 15 * 60);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let via_token = rt.block_on(f.auth.authenticate(&token.access_token)).unwrap();
    assert_eq!(via_token, p);
    // A token of another gateway key is refused.
    let other = Fixture::new(|_| {});
    let foreign = other.sp().mint(&run(other.sp().consume(&other.issue(&other.solicited("alice@example.com", &["eng"])))).unwrap()).unwrap();
    assert!(rt.block_on(f.auth.authenticate(&foreign.access_token)).is_err());
}

#[test]
fn an_assertion_signed_alone_or_a_response_signed_alone_is_accepted_as_configured() {
    let f = Fixture::new(|_| {});
    let issue = Issue { sign_response: false, ..f.solicited("alice@example.com", &["eng"]) };
    assert_eq!(run(f.sp().consume(&f.issue(&issue))).unwrap().subject, "alice@example.com");
    // Signed response, unsigned assertion: only when the config does not require the assertion signed.
    let lax = Fixture::new(|c| c.require_signed_assertion = false);
    let issue = Issue { sign_assertion: false, ..lax.solicited("bob@example.com", &[]) };
    assert_eq!(run(lax.sp().consume(&lax.issue(&issue))).unwrap().subject, "bob@example.com");
}

#[test]
fn idp_initiated_is_accepted_only_when_configured() {
    let strict = Fixture::new(|_| {});
    let unsolicited = Issue::new(SP, ACS, "alice@example.com", &["eng"]);
    assert_eq!(strict.refuse(&strict.issue(&unsolicited)), SamlError::IdpInitiatedNotAllowed);
    let open = Fixture::new(|c| c.allow_idp_initiated = true);
    let v = run(open.sp().consume(&open.issue(&unsolicited))).unwrap();
    assert_eq!((v.subject.as_str(), v.in_response_to.as_deref()), ("alice@example.com", None));
}

#[test]
fn any_configured_certificate_verifies_during_a_rotation() {
    let dir = support::TempDir::new("saml-rot");
    let old = Idp::new(&dir.path().join("old"), IDP);
    let f = Fixture::new(|c| c.idp_certificates = vec![old.cert.clone(), c.idp_certificates[0].clone()]);
    let new_key = f.issue(&f.solicited("alice@example.com", &[]));
    run(f.sp().consume(&new_key)).unwrap();
    let old_key = old.response(&f.metadata, &f.solicited("alice@example.com", &[]));
    run(f.sp().consume(&old_key)).unwrap();
}

#[test]
fn metadata_names_the_entity_and_the_post_acs() {
    let f = Fixture::new(|_| {});
    let m = f.sp().metadata_xml();
    assert!(m.contains(&format!("entityID=\"{SP}\"")), "{m}");
    assert!(m.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"));
    assert!(m.contains(&format!("Location=\"{ACS}\"")));
    assert!(m.contains("WantAssertionsSigned=\"true\""));
    let login = run(f.sp().begin_login("back", None)).unwrap();
    assert!(login.redirect_url.starts_with(&format!("{IDP}/sso?SAMLRequest=")), "{}", login.redirect_url);
    assert!(login.request_id.starts_with("tg-") && login.request_id.len() == 35);
}

// ---- signature wrapping (XSW1–XSW8) ----

/// Each wrapping moves or copies the signed element; every variant must be refused, and none may
/// yield the evil subject.
fn xsw(name: &str, f: &Fixture, xml: &str) -> SamlError {
    assert!(xml.contains("admin@example.com"), "{name}: the attack document must carry the evil subject");
    let e = f.refuse(&encode(xml));
    assert!(
        matches!(e, SamlError::MultipleAssertions | SamlError::SignatureMisplaced { .. } | SamlError::DuplicateId | SamlError::BadSignature),
        "{name}: refused for an unexpected reason: {e:?}"
    );
    eprintln!("{name}: {}", e.code());
    e
}

#[test]
fn signature_wrapping_xsw1_to_xsw8_is_refused() {
    let f = Fixture::new(|c| c.require_signed_assertion = false);
    // Response-signature wrappings (XSW1, XSW2) on a response whose assertion is unsigned.
    let issue = Issue { sign_assertion: false, ..f.solicited("alice@example.com", &["eng"]) };
    let xml = decode(&f.issue(&issue));
    let resp_sig = signature_in(&xml).to_owned();
    let resp_id = id_attr(&xml);
    let evil_root = xml.replace(&resp_id, "ID=\"evil-response\"").replace("alice@example.com", "admin@example.com");
    let original = xml.trim_start_matches("<?xml version=\"1.0\"?>").trim().to_owned();
    // XSW1: evil response at the root, the original signed response inside its signature.
    let xsw1 = evil_root.replacen(&resp_sig.replace(&resp_id, "ID=\"evil-response\""), &resp_sig.replace("</ns2:Signature>", &format!("{original}</ns2:Signature>")), 1);
    xsw("XSW1", &f, &xsw1);
    // XSW2: the original response placed before the signature, detached.
    let xsw2 = evil_root.replacen(&resp_sig, &format!("{original}{resp_sig}"), 1);
    xsw("XSW2", &f, &xsw2);

    // Assertion-signature wrappings (XSW3–XSW8) on a response whose assertion alone is signed.
    let f = Fixture::new(|_| {});
    let issue = Issue { sign_response: false, ..f.solicited("alice@example.com", &["eng"]) };
    let xml = decode(&f.issue(&issue));
    let signed = assertion(&xml).to_owned();
    let evil = evil_assertion(&xml);
    let sig = signature_in(&signed).to_owned();
    // XSW3: evil assertion inserted before the signed one.
    xsw("XSW3", &f, &xml.replacen(&signed, &format!("{evil}{signed}"), 1));
    // XSW4: evil assertion wrapping the signed one.
    let wrapped = evil.replacen("</ns1:Assertion>", &format!("{signed}</ns1:Assertion>"), 1);
    xsw("XSW4", &f, &xml.replacen(&signed, &wrapped, 1));
    // XSW5: the signature moved onto the evil assertion, the original appended unsigned.
    let evil_signed = evil.replacen("</ns1:Issuer>", &format!("</ns1:Issuer>{sig}"), 1);
    let stripped = signed.replacen(&sig, "", 1);
    xsw("XSW5", &f, &xml.replacen(&signed, &format!("{evil_signed}{stripped}"), 1));
    // XSW5 without the copy: only the evil assertion, carrying the original signature.
    xsw("XSW5'", &f, &xml.replacen(&signed, &evil_signed, 1));
    // XSW6: the original assertion inside the evil assertion's (copied) signature.
    let sig_with_original = sig.replacen("</ns2:Signature>", &format!("{stripped}</ns2:Signature>"), 1);
    let xsw6 = evil.replacen("</ns1:Issuer>", &format!("</ns1:Issuer>{sig_with_original}"), 1);
    xsw("XSW6", &f, &xml.replacen(&signed, &xsw6, 1));
    // XSW7: the signed assertion hidden in an Extensions element, the evil one beside it.
    let ext = format!("<ns0:Extensions>{signed}</ns0:Extensions>{evil}");
    xsw("XSW7", &f, &xml.replacen(&signed, &ext, 1));
    // XSW8: the original (signature removed) inside an Object of the evil assertion's signature.
    let object = sig.replacen("</ns2:Signature>", &format!("<ns2:Object>{stripped}</ns2:Object></ns2:Signature>"), 1);
    let xsw8 = evil.replacen("</ns1:Issuer>", &format!("</ns1:Issuer>{object}"), 1);
    xsw("XSW8", &f, &xml.replacen(&signed, &xsw8, 1));
}

#[test]
fn the_signed_values_cannot_be_edited() {
    // Property: changing any one character of the signed NameID is refused — the values read are
    // the values signed.
    let f = Fixture::new(|_| {});
    let xml = f.signed_xml("alice@example.com");
    let at = xml.find("alice@example.com").unwrap();
    for (i, replacement) in [(0, "b"), (5, "_"), (6, "A"), (16, "n")] {
        let mut edited = xml.clone();
        edited.replace_range(at + i..at + i + 1, replacement);
        assert_eq!(f.refuse(&encode(&edited)), SamlError::BadSignature, "edit at {i}");
    }
    // And the groups attribute.
    let edited = xml.replacen(">eng<", ">admins<", 1);
    assert_eq!(f.refuse(&encode(&edited)), SamlError::BadSignature);
}

// ---- the rest of the attack list ----

#[test]
fn comment_injection_in_the_name_id_is_refused() {
    let f = Fixture::new(|_| {});
    let xml = f.signed_xml("admin@evil.example");
    // Exclusive c14n drops comments: the signature would still verify over `admin@evil.example`
    // while a text reader stopping at the comment sees `admin`.
    let injected = xml.replacen("admin@evil.example", "admin<!---->@evil.example", 1);
    assert_eq!(f.refuse(&encode(&injected)), SamlError::CommentForbidden);
}

#[test]
fn unsigned_or_partly_signed_assertions_are_refused() {
    let f = Fixture::new(|_| {});
    // A signed response around an unsigned assertion, where the assertion must be signed.
    let issue = Issue { sign_assertion: false, ..f.solicited("alice@example.com", &[]) };
    assert_eq!(f.refuse(&f.issue(&issue)), SamlError::AssertionNotSigned);
    // Nothing signed at all.
    let issue = Issue { sign_assertion: false, sign_response: false, ..f.solicited("alice@example.com", &[]) };
    assert_eq!(f.refuse(&f.issue(&issue)), SamlError::Unsigned);
    // An unsigned assertion swapped into a signed response (the assertion is not required signed).
    let lax = Fixture::new(|c| c.require_signed_assertion = false);
    let issue = Issue { sign_assertion: false, ..lax.solicited("alice@example.com", &[]) };
    let xml = decode(&lax.issue(&issue));
    let swapped = xml.replacen("alice@example.com", "admin@example.com", 1);
    assert_eq!(lax.refuse(&encode(&swapped)), SamlError::BadSignature);
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let f = Fixture::new(|_| {});
    let impostor = Idp::new(&f.dir.path().join("impostor"), IDP);
    let forged = impostor.response(&f.metadata, &f.solicited("alice@example.com", &["admins"]));
    assert_eq!(f.refuse(&forged), SamlError::BadSignature);
}

#[test]
fn audience_recipient_and_destination_must_be_this_sp() {
    let f = Fixture::new(|_| {});
    let wrong_audience = Issue { audience: Some("https://other-sp.test".into()), ..f.solicited("alice@example.com", &[]) };
    assert_eq!(f.refuse(&f.issue(&wrong_audience)), SamlError::WrongAudience);
    let wrong_recipient = Issue { recipient: Some("https://other-sp.test/acs".into()), ..f.solicited("alice@example.com", &[]) };
    assert_eq!(f.refuse(&f.issue(&wrong_recipient)), SamlError::WrongRecipient);
    let wrong_destination = Issue { destination: Some("https://other-sp.test/acs".into()), ..f.solicited("alice@example.com", &[]) };
    assert_eq!(f.refuse(&f.issue(&wrong_destination)), SamlError::WrongDestination);
    // The unsigned Destination of an assertion-signed response, edited: still refused.
    let issue = Issue { sign_response: false, ..f.solicited("alice@example.com", &[]) };
    let edited = decode(&f.issue(&issue)).replacen(&format!("Destination=\"{ACS}\""), "Destination=\"https://other-sp.test/acs\"", 1);
    assert_eq!(f.refuse(&encode(&edited)), SamlError::WrongDestination);
}

#[test]
fn expired_and_not_yet_valid_assertions_are_refused() {
    let f = Fixture::new(|c| c.clock_skew = Duration::from_secs(30));
    let expired = Issue { shift: -3600, ..f.solicited("alice@example.com", &[]) };
    assert_eq!(f.refuse(&f.issue(&expired)), SamlError::Expired);
    let early = Issue { shift: 3600, ..f.solicited("alice@example.com", &[]) };
    assert_eq!(f.refuse(&f.issue(&early)), SamlError::NotYetValid);
}

#[test]
fn assertions_and_requests_are_redeemed_once() {
    // A replayed assertion id (IdP-initiated, so only the replay cache stands in the way).
    let f = Fixture::new(|c| c.allow_idp_initiated = true);
    let once = f.issue(&Issue::new(SP, ACS, "alice@example.com", &[]));
    run(f.sp().consume(&once)).unwrap();
    assert_eq!(f.refuse(&once), SamlError::Replayed);
    // A replayed SP-initiated response: the assertion id is spent.
    let issue = f.solicited("alice@example.com", &[]);
    let first = f.issue(&issue);
    run(f.sp().consume(&first)).unwrap();
    assert_eq!(f.refuse(&first), SamlError::Replayed);
    // A fresh assertion for a request already answered.
    assert_eq!(f.refuse(&f.issue(&issue)), SamlError::UnknownRequest);
    // A request this gateway never made.
    let unknown = Issue { in_response_to: Some("tg-00000000000000000000000000000000".into()), ..issue };
    assert_eq!(f.refuse(&f.issue(&unknown)), SamlError::UnknownRequest);
}

#[test]
fn external_entities_and_entity_expansion_are_refused_before_expansion() {
    let f = Fixture::new(|_| {});
    let xml = f.signed_xml("alice@example.com");
    let body = xml.trim_start_matches("<?xml version=\"1.0\"?>");
    let xxe = format!("<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}", body.replacen("alice@example.com", "&x;", 1));
    assert_eq!(f.refuse(&encode(&xxe)), SamlError::DoctypeForbidden);
    let mut laughs = String::from("<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY l0 \"lol\">");
    for i in 1..10 {
        laughs.push_str(&format!("<!ENTITY l{i} \"{}\">", format!("&l{};", i - 1).repeat(10)));
    }
    laughs.push_str("]>");
    laughs.push_str(&body.replacen("alice@example.com", "&l9;", 1));
    assert_eq!(f.refuse(&encode(&laughs)), SamlError::DoctypeForbidden);
    // An entity reference without a DTD.
    assert_eq!(f.refuse(&encode(&xml.replacen("alice@example.com", "&x;", 1))), SamlError::DoctypeForbidden);
    // Processing instructions (e.g. a stylesheet) are refused too.
    let pi = xml.replacen("<?xml version=\"1.0\"?>", "<?xml version=\"1.0\"?><?xml-stylesheet href=\"http://evil/\"?>", 1);
    assert_eq!(f.refuse(&encode(&pi)), SamlError::ProcessingInstructionForbidden);
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    let f = Fixture::new(|c| c.max_response_bytes = 64 * 1024);
    let xml = f.signed_xml("alice@example.com");
    let padded = xml.replacen("<ns1:Issuer", &format!("{}<ns1:Issuer", " ".repeat(70 * 1024)), 1);
    assert_eq!(f.refuse(&encode(&padded)), SamlError::TooLarge { limit: 64 * 1024 });
    // Far beyond the cap: refused on the encoded length, without decoding.
    assert_eq!(f.refuse(&"A".repeat(10 * 1024 * 1024)), SamlError::TooLarge { limit: 64 * 1024 });
    assert_eq!(f.refuse("not base64!"), SamlError::NotBase64);
}

#[test]
fn sha1_is_refused_unless_configured() {
    let f = Fixture::new(|_| {});
    let sha1 = Issue { sha1: true, ..f.solicited("alice@example.com", &[]) };
    assert!(matches!(f.refuse(&f.issue(&sha1)), SamlError::WeakAlgorithm { .. }));
    let legacy = Fixture::new(|c| c.allow_sha1 = true);
    let sha1 = Issue { sha1: true, ..legacy.solicited("alice@example.com", &[]) };
    run(legacy.sp().consume(&legacy.issue(&sha1))).unwrap();
}

#[test]
fn duplicate_ids_and_misplaced_signatures_are_refused() {
    let f = Fixture::new(|_| {});
    let xml = f.signed_xml("alice@example.com");
    let a = assertion(&xml).to_owned();
    let id = id_attr(&a);
    // A second element with the assertion's ID.
    let dup = xml.replacen("<ns0:Status>", &format!("<ns0:Extensions><x {id}/></ns0:Extensions><ns0:Status>"), 1);
    assert_eq!(f.refuse(&encode(&dup)), SamlError::DuplicateId);
    // A signature outside the Response and Assertion.
    let sig = signature_in(&a).to_owned();
    let moved = xml.replacen(&sig, "", 1).replacen("<ns1:Subject>", &format!("<ns1:Subject>{sig}"), 1);
    assert!(matches!(f.refuse(&encode(&moved)), SamlError::SignatureMisplaced { .. }));
}
