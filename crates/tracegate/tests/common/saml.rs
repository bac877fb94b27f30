//! The SAML round trip the gateway tests drive, written once: the real IdP (pysaml2 + xmlsec1,
//! `scripts/saml-idp.py`) with a fresh key pair, the `[identity.saml]` (and, for browser
//! sign-ins, `[identity.browser]`) sections naming it, the SP's metadata as the IdP is given it,
//! SP-initiated login (`/saml/login` → the AuthnRequest in the redirect) and the IdP's signed
//! answer, and the POST to the ACS.

use std::path::{Path, PathBuf};

#[path = "../../../identity/tests/support/saml_idp.rs"]
pub mod saml_idp;

use saml_idp::{Idp, Issue};

/// The IdP's entity id.
pub const IDP: &str = "https://idp.test/saml";
/// The gateway's SP entity id.
pub const SP: &str = "https://tracegate.test/saml/metadata";
/// The session cookie's default name; the SAML binding cookie is `<SESSION>_saml`.
pub const SESSION: &str = "tracegate_session";

/// One IdP and the key files the gateway's config names, under one directory.
pub struct Saml {
    pub idp: Idp,
    /// The ACS URL the gateway is configured with, which every response names as destination.
    pub acs: String,
    /// Where [`Saml::save_metadata`] keeps the SP's metadata for the IdP.
    pub metadata: PathBuf,
    token_key: PathBuf,
    oidc_secret: PathBuf,
}

/// What `GET /saml/login` answered: the AuthnRequest for the IdP and, for a browser sign-in,
/// the binding cookie (`tracegate_session_saml=…` pair) the ACS will ask for.
pub struct Login {
    pub saml_request: String,
    pub binding: Option<String>,
}

impl Saml {
    /// A fresh IdP key pair and gateway token key in `dir` (created), for an SP whose ACS is `acs`.
    pub fn new(dir: &Path, acs: &str) -> Saml {
        let idp = Idp::new(&dir.join("idp"), IDP);
        let token_key = dir.join("saml-token.pem");
        std::fs::write(&token_key, tracegate_identity::dev::generate_key_pem().unwrap()).unwrap();
        let oidc_secret = dir.join("oidc-secret");
        std::fs::write(&oidc_secret, "unused-in-these-tests").unwrap();
        Saml { idp, acs: acs.to_owned(), metadata: dir.join("sp-metadata.xml"), token_key, oidc_secret }
    }

    /// The `[identity.saml]` section (gateway tokens valid for `token_ttl`).
    pub fn config(&self, token_ttl: &str) -> String {
        format!(
            "\n[identity.saml]\nidp_entity_id = \"{IDP}\"\nidp_sso_url = \"{IDP}/sso\"\nidp_certificates = [{:?}]\n\
             sp_entity_id = \"{SP}\"\nacs_url = {:?}\ntoken_key_file = {:?}\ntoken_ttl = {token_ttl:?}\n",
            self.idp.cert.display().to_string(),
            self.acs,
            self.token_key.display().to_string(),
        )
    }

    /// `[identity.browser]`, so a SAML sign-in can end in a session. Browser sign-in needs an
    /// OIDC issuer, which these tests never reach (a closed port): the SAML ACS ends in the same
    /// sessions.
    pub fn browser_config(&self, after_login: &str) -> String {
        format!(
            "\n[[identity.oidc]]\nissuer = \"http://127.0.0.1:9/oidc\"\naudience = \"tracegate\"\n\n\
             [identity.browser]\nissuer = \"http://127.0.0.1:9/oidc\"\nclient_id = \"tracegate\"\nclient_secret_file = {:?}\n\
             redirect_url = \"http://127.0.0.1:9/auth/callback\"\nafter_login = {after_login:?}\n",
            self.oidc_secret.display().to_string(),
        )
    }

    /// Keeps the SP metadata document a gateway served, for the IdP.
    pub fn save_metadata(&self, xml: &str) {
        std::fs::write(&self.metadata, xml).unwrap();
    }

    /// The IdP's signed answer to `saml_request` for `subject` in `groups` (each call a fresh
    /// assertion id).
    pub fn answer(&self, saml_request: &str, subject: &str, groups: &[&str]) -> String {
        let issue = Issue { authn_request: Some(saml_request.to_owned()), ..Issue::new(SP, &self.acs, subject, groups) };
        self.idp.response(&self.metadata, &issue)
    }

    /// `GET {base}/saml/metadata`, kept for the IdP.
    pub async fn fetch_metadata(&self, http: &reqwest::Client, base: &str) {
        let r = http.get(format!("{base}/saml/metadata")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        self.save_metadata(&r.text().await.unwrap());
    }

    /// `GET {base}/saml/login[?browser=1]` with a client that does not follow redirects.
    pub async fn login(&self, http: &reqwest::Client, base: &str, browser: bool) -> Login {
        let path = if browser { "/saml/login?browser=1" } else { "/saml/login" };
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "{base}{path}");
        Login::of(r.headers())
    }

    /// [`Saml::login`] at `base`, answered by the IdP.
    pub async fn sign_in(&self, http: &reqwest::Client, base: &str, browser: bool, subject: &str, groups: &[&str]) -> (String, Option<String>) {
        let login = self.login(http, base, browser).await;
        (self.answer(&login.saml_request, subject, groups), login.binding)
    }
}

impl Login {
    /// From the headers of `/saml/login`'s 303.
    pub fn of(headers: &reqwest::header::HeaderMap) -> Login {
        let location = reqwest::Url::parse(headers["location"].to_str().unwrap()).unwrap();
        let saml_request = location.query_pairs().find(|(k, _)| k == "SAMLRequest").unwrap().1.into_owned();
        let binding = set_cookie(headers, &format!("{SESSION}_saml=")).map(|h| h.split(';').next().unwrap().to_owned());
        Login { saml_request, binding }
    }
}

/// `POST {base}/saml/acs` with `response` and, if given, a `Cookie` header.
pub async fn acs(http: &reqwest::Client, base: &str, response: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = http.post(format!("{base}/saml/acs")).form(&[("SAMLResponse", response)]);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// The first `Set-Cookie` header starting with `prefix`, whole.
pub fn set_cookie(headers: &reqwest::header::HeaderMap, prefix: &str) -> Option<String> {
    headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).find(|v| v.starts_with(prefix))
}

/// The session cookie a sign-in set: its `tracegate_session=tgs_…` pair, and the whole header.
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> (String, String) {
    let header = set_cookie(headers, &format!("{SESSION}=tgs_")).unwrap_or_else(|| panic!("no session cookie: {headers:?}"));
    (header.split(';').next().unwrap().to_owned(), header)
}
