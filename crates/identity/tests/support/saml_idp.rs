//! The real SAML identity provider for tests: `scripts/saml-idp.py` (pysaml2 signing with the
//! `xmlsec1` binary). Each [`Idp`] has its own fresh RSA key and certificate; every response is
//! issued and signed by pysaml2 for the parameters given. Self-contained (no other test module)
//! so the binary crate's end-to-end test includes it too.
//!
//! Never skipped: without python3, pysaml2 or xmlsec1 these tests fail saying what to install.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/saml-idp.py")
}

fn require_peers() {
    let ok = Command::new("python3")
        .args(["-c", "import saml2"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "python3 with pysaml2 is needed by the SAML tests (scripts/test.sh installs it: pip install pysaml2)");
    let ok = Command::new("xmlsec1")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "the `xmlsec1` binary is needed by the SAML tests (scripts/test.sh installs it: apt-get install xmlsec1)");
}

/// One identity provider: an entity id and its signing key pair, under `dir`.
pub struct Idp {
    pub entity_id: String,
    pub key: PathBuf,
    /// The PEM certificate an SP configures.
    pub cert: PathBuf,
}

/// What one response says; everything defaults to a valid response for the SP.
#[derive(Clone)]
pub struct Issue {
    pub sp_entity_id: String,
    pub acs_url: String,
    pub subject: String,
    pub groups: Vec<String>,
    pub in_response_to: Option<String>,
    /// The `SAMLRequest` value of the SP's redirect: the IdP parses it and answers its ID.
    pub authn_request: Option<String>,
    pub destination: Option<String>,
    pub recipient: Option<String>,
    pub audience: Option<String>,
    /// Seconds to shift the IdP's clock by.
    pub shift: i64,
    pub sign_response: bool,
    pub sign_assertion: bool,
    pub sha1: bool,
}

impl Issue {
    pub fn new(sp_entity_id: &str, acs_url: &str, subject: &str, groups: &[&str]) -> Issue {
        Issue {
            sp_entity_id: sp_entity_id.into(),
            acs_url: acs_url.into(),
            subject: subject.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            in_response_to: None,
            authn_request: None,
            destination: None,
            recipient: None,
            audience: None,
            shift: 0,
            sign_response: true,
            sign_assertion: true,
            sha1: false,
        }
    }
}

impl Idp {
    /// A fresh key pair in `dir` (created), for `entity_id`.
    pub fn new(dir: &Path, entity_id: &str) -> Idp {
        require_peers();
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("python3")
            .arg(script())
            .arg("keygen")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "saml-idp.py keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Idp {
            entity_id: entity_id.into(),
            key: dir.join("idp.key"),
            cert: dir.join("idp.crt"),
        }
    }

    /// A base64 SAMLResponse (HTTP-POST form value) for the SP whose metadata is `sp_metadata`.
    pub fn response(&self, sp_metadata: &Path, issue: &Issue) -> String {
        let mut cmd = Command::new("python3");
        cmd.arg(script()).arg("response");
        cmd.arg("--key")
            .arg(&self.key)
            .arg("--cert")
            .arg(&self.cert)
            .arg("--entity-id")
            .arg(&self.entity_id);
        cmd.arg("--sp-metadata").arg(sp_metadata);
        cmd.args([
            "--sp-entity-id",
            &issue.sp_entity_id,
            "--acs-url",
            &issue.acs_url,
            "--subject",
            &issue.subject,
        ]);
        cmd.args([
            "--groups",
            &issue.groups.join(","),
            "--shift",
            &issue.shift.to_string(),
        ]);
        for (flag, value) in [
            ("--in-response-to", &issue.in_response_to),
            ("--authn-request", &issue.authn_request),
            ("--destination", &issue.destination),
            ("--recipient", &issue.recipient),
            ("--audience", &issue.audience),
        ] {
            if let Some(v) = value {
                cmd.args([flag, v]);
            }
        }
        for (flag, on) in [
            ("--sign-response", issue.sign_response),
            ("--sign-assertion", issue.sign_assertion),
            ("--sha1", issue.sha1),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "saml-idp.py response failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The XML of a base64 SAMLResponse.
pub fn decode(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64.trim()).unwrap()).unwrap()
}

/// The base64 form value of an XML document.
pub fn encode(xml: &str) -> String {
    STANDARD.encode(xml.as_bytes())
}
