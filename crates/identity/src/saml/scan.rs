//! The structural check a SAML Response passes before any signature is looked at: one streaming
//! pass (quick-xml, no DTD processing, nothing expanded) that refuses what a legitimate IdP never
//! sends and what the known attacks need.
//!
//! - no `<!DOCTYPE>` (external entities and entity expansion — XXE, billion laughs — need one),
//!   no comments (the `admin<!---->@evil` class: canonicalization drops comments, so the signature
//!   still verifies while a parser reads a shorter name), no processing instructions, no CDATA,
//!   and no entity references but the five predefined ones and character references;
//! - the root is a protocol `Response` with exactly one `Assertion`, its direct child, and no
//!   `EncryptedAssertion`;
//! - every `ID` in the document is unique, and every `ds:Signature` is enveloped: a direct child
//!   of the Response or of the Assertion, with exactly one `Reference` whose URI is `#` + its
//!   parent's ID, only the enveloped-signature and exclusive-c14n transforms, no `ds:Object`,
//!   and algorithms from the allowed list.
//!
//! Together these leave one reading of the document: the element a signature covers is the one
//! the values are taken from (signature wrapping, XSW1–XSW8, moves or copies the signed element
//! elsewhere, which breaks one of the rules above). The reduction to signed content that samael
//! performs afterwards is a second, independent line.

use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::SamlError;

pub(crate) const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";

/// Signature algorithms accepted by default: RSA and ECDSA with SHA-256 or stronger.
const STRONG_SIGNATURES: [&str; 6] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const STRONG_DIGESTS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
const SHA1_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SHA1_DIGEST: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// Which element a signature envelops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signed {
    Response,
    Assertion,
}

/// What the scan learned; values here are unverified and serve only to check the structure and
/// to pick the request id to look up (the verified assertion is compared against them).
#[derive(Debug, Default)]
pub(crate) struct Shape {
    pub response_id: String,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub assertion_id: String,
    pub signed: Vec<Signed>,
    /// `true` if any signature or digest uses SHA-1 (allowed only when configured).
    pub uses_sha1: bool,
}

/// One open element: its namespace, local name, and `ID` attribute.
struct Open {
    ns: Vec<u8>,
    local: Vec<u8>,
    id: Option<String>,
}

/// Where the scan is inside a `ds:Signature`.
#[derive(Default)]
struct SigState {
    /// Depth of the `Signature` element in the stack, while inside one.
    depth: Option<usize>,
    parent: Option<Signed>,
    parent_id: String,
    references: usize,
    reference_ok: bool,
    method: Option<String>,
    digest: Option<String>,
}

pub(crate) fn scan(xml: &str, allow_sha1: bool) -> Result<Shape, SamlError> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Open> = Vec::new();
    let mut ids: HashSet<String> = HashSet::new();
    let mut shape = Shape::default();
    let mut assertions = 0usize;
    let mut sig = SigState::default();
    let mut seen_root = false;
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|_| SamlError::Malformed { reason: "the response is not well-formed XML" })?;
        let ns: Option<Vec<u8>> = match ns {
            ResolveResult::Bound(n) => Some(n.as_ref().to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return Err(SamlError::Malformed { reason: "an element uses an undeclared namespace prefix" }),
        };
        match event {
            Event::DocType(_) => return Err(SamlError::DoctypeForbidden),
            Event::Comment(_) => return Err(SamlError::CommentForbidden),
            Event::PI(_) => return Err(SamlError::ProcessingInstructionForbidden),
            Event::CData(_) => return Err(SamlError::Malformed { reason: "CDATA sections are not accepted" }),
            Event::GeneralRef(r) => {
                let name: &[u8] = &r;
                let predefined = matches!(name, b"amp" | b"lt" | b"gt" | b"quot" | b"apos") || name.starts_with(b"#");
                if !predefined {
                    return Err(SamlError::DoctypeForbidden);
                }
            }
            Event::Decl(_) | Event::Text(_) => {}
            Event::Start(e) => {
                open(&e, ns, &mut stack, &mut ids, &mut shape, &mut assertions, &mut sig, &mut seen_root)?;
            }
            Event::Empty(e) => {
                open(&e, ns, &mut stack, &mut ids, &mut shape, &mut assertions, &mut sig, &mut seen_root)?;
                close(&mut stack, &mut sig, &mut shape, allow_sha1)?;
            }
            Event::End(_) => close(&mut stack, &mut sig, &mut shape, allow_sha1)?,
            Event::Eof => break,
        }
    }
    if !seen_root {
        return Err(SamlError::Malformed { reason: "the response has no root element" });
    }
    match assertions {
        0 => return Err(SamlError::NoAssertion),
        1 => {}
        _ => return Err(SamlError::MultipleAssertions),
    }
    if shape.signed.is_empty() {
        return Err(SamlError::Unsigned);
    }
    Ok(shape)
}

#[allow(clippy::too_many_arguments)]
fn open(
    e: &BytesStart<'_>,
    ns: Option<Vec<u8>>,
    stack: &mut Vec<Open>,
    ids: &mut HashSet<String>,
    shape: &mut Shape,
    assertions: &mut usize,
    sig: &mut SigState,
    seen_root: &mut bool,
) -> Result<(), SamlError> {
    let ns = ns.unwrap_or_default();
    let local = e.local_name().as_ref().to_vec();
    let mut id = None;
    let mut attrs: Vec<(Vec<u8>, String)> = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|_| SamlError::Malformed { reason: "an attribute is malformed or repeated" })?;
        let value = a.normalized_value(quick_xml::XmlVersion::default()).map_err(|_| SamlError::DoctypeForbidden)?.into_owned();
        if a.key.as_ref() == b"ID" {
            if !ids.insert(value.clone()) {
                return Err(SamlError::DuplicateId);
            }
            id = Some(value.clone());
        }
        attrs.push((a.key.as_ref().to_vec(), value));
    }
    let attr = |name: &[u8]| attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let depth = stack.len();
    if depth == 0 {
        if *seen_root {
            return Err(SamlError::Malformed { reason: "more than one root element" });
        }
        *seen_root = true;
        if ns != PROTOCOL_NS || local != b"Response" {
            return Err(SamlError::Malformed { reason: "the root element is not a SAML protocol Response" });
        }
        shape.response_id = id.clone().ok_or(SamlError::Malformed { reason: "the Response has no ID" })?;
        shape.destination = attr(b"Destination");
        shape.in_response_to = attr(b"InResponseTo");
    }
    if ns == ASSERTION_NS && local == b"EncryptedAssertion" {
        return Err(SamlError::EncryptedAssertion);
    }
    if ns == ASSERTION_NS && local == b"Assertion" {
        *assertions += 1;
        if *assertions > 1 {
            return Err(SamlError::MultipleAssertions);
        }
        if depth != 1 {
            return Err(SamlError::SignatureMisplaced { reason: "the Assertion is not a direct child of the Response" });
        }
        shape.assertion_id = id.clone().ok_or(SamlError::Malformed { reason: "the Assertion has no ID" })?;
    }
    if ns == DSIG_NS {
        if local == b"Signature" {
            if sig.depth.is_some() {
                return Err(SamlError::SignatureMisplaced { reason: "a signature inside a signature" });
            }
            let parent = stack.last().ok_or(SamlError::SignatureMisplaced { reason: "a signature is the root" })?;
            let kind = match (parent.ns.as_slice(), parent.local.as_slice(), depth) {
                (PROTOCOL_NS, b"Response", 1) => Signed::Response,
                (ASSERTION_NS, b"Assertion", 2) => Signed::Assertion,
                _ => return Err(SamlError::SignatureMisplaced { reason: "a signature is not enveloped by the Response or the Assertion" }),
            };
            *sig = SigState {
                depth: Some(depth),
                parent: Some(kind),
                parent_id: parent.id.clone().unwrap_or_default(),
                ..SigState::default()
            };
        } else if sig.depth.is_none() {
            return Err(SamlError::SignatureMisplaced { reason: "a signature element outside a signature" });
        } else {
            match local.as_slice() {
                b"Object" | b"Manifest" => {
                    return Err(SamlError::SignatureMisplaced { reason: "a signature carries an Object" });
                }
                b"Reference" if stack.last().is_some_and(|p| p.local == b"SignedInfo") => {
                    sig.references += 1;
                    sig.reference_ok = attr(b"URI").is_some_and(|u| u.strip_prefix('#') == Some(sig.parent_id.as_str()) && !sig.parent_id.is_empty());
                }
                b"Transform" => {
                    let alg = attr(b"Algorithm").unwrap_or_default();
                    if alg != ENVELOPED && alg != EXC_C14N && alg != EXC_C14N_COMMENTS {
                        return Err(SamlError::SignatureMisplaced { reason: "a reference uses a transform other than enveloped-signature and exclusive c14n" });
                    }
                }
                b"SignatureMethod" => sig.method = attr(b"Algorithm"),
                b"DigestMethod" => sig.digest = attr(b"Algorithm"),
                _ => {}
            }
        }
    }
    stack.push(Open { ns, local, id });
    Ok(())
}

fn close(stack: &mut Vec<Open>, sig: &mut SigState, shape: &mut Shape, allow_sha1: bool) -> Result<(), SamlError> {
    stack.pop();
    if sig.depth == Some(stack.len()) {
        if sig.references != 1 || !sig.reference_ok {
            return Err(SamlError::SignatureMisplaced { reason: "a signature does not reference exactly its enclosing element" });
        }
        let method = sig.method.take().unwrap_or_default();
        let digest = sig.digest.take().unwrap_or_default();
        for alg in [&method, &digest] {
            let strong = STRONG_SIGNATURES.contains(&alg.as_str()) || STRONG_DIGESTS.contains(&alg.as_str());
            let sha1 = alg == SHA1_SIGNATURE || alg == SHA1_DIGEST;
            if sha1 {
                shape.uses_sha1 = true;
            }
            if !(strong || sha1 && allow_sha1) {
                return Err(SamlError::WeakAlgorithm { algorithm: sanitize(alg) });
            }
        }
        if let Some(kind) = sig.parent {
            shape.signed.push(kind);
        }
        *sig = SigState::default();
    }
    Ok(())
}

/// An algorithm URI from the document, made safe to echo (it is attacker-written).
fn sanitize(alg: &str) -> String {
    alg.chars().filter(|c| c.is_ascii_graphic()).take(80).collect()
}
