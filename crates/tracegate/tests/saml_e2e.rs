//! SAML sign-in through the real `tracegate serve` process and a real IdP (pysaml2 + xmlsec1):
//! metadata → SP-initiated redirect → the IdP answers the AuthnRequest → POST to the ACS →
//! gateway token → a read served under the role the SAML groups map to, its audit record
//! naming the SAML subject and issuer. The replayed response is refused over HTTP too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::saml::{set_cookie, Login, Saml, IDP};
use common::{cli_token, spawn_serve_on};

struct Stop(std::process::Child);
impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn saml_sign_in_reaches_a_read_under_the_mapped_role_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    tracegate::commands::quickstart::lay_out(data).unwrap();
    // The ACS URL must be known before the port is: serve on a port chosen here.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let saml = Saml::new(data, &format!("http://127.0.0.1:{port}/saml/acs"));
    let cfg_path = data.join("tracegate.toml");
    let mut cfg = std::fs::read_to_string(&cfg_path).unwrap();
    cfg.push_str(&saml.config("5m"));
    std::fs::write(&cfg_path, cfg).unwrap();
    let (child, url) = spawn_serve_on(data, "", port);
    let _stop = Stop(child);
    let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The SP's metadata, as the IdP is configured with it.
    let r = http.get(format!("{url}/saml/metadata")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
    saml.save_metadata(&r.text().unwrap());

    // SP-initiated: the gateway redirects to the IdP with an AuthnRequest, which the IdP answers.
    let r = http.get(format!("{url}/saml/login")).send().unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap().split('?').next(), Some(format!("{IDP}/sso").as_str()));
    let saml_response = saml.answer(&Login::of(r.headers()).saml_request, "erin@example.com", &["eng"]);

    let r = http.post(format!("{url}/saml/acs")).form(&[("SAMLResponse", saml_response.as_str()), ("RelayState", "")]).send().unwrap();
    assert_eq!(r.status(), 200);
    let acs_request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!((body["subject"].as_str(), body["issuer"].as_str()), (Some("erin@example.com"), Some(IDP)));
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap().to_owned();

    // The same response again: refused, with its reason.
    let r = http.post(format!("{url}/saml/acs")).form(&[("SAMLResponse", saml_response.as_str())]).send().unwrap();
    assert_eq!(r.status(), 401);
    let refused: serde_json::Value = r.json().unwrap();
    assert_eq!(refused["error"]["code"], "saml_replayed");

    // The gateway token reads under the role `eng` maps to.
    let r = http.get(format!("{url}/v1/whoami")).bearer_auth(&token).send().unwrap();
    let who: serde_json::Value = r.json().unwrap();
    assert_eq!(who["roles"], serde_json::json!(["engineer"]), "{who}");
    assert_eq!(who["principal"]["auth_method"], "saml");
    let r = http.get(format!("{url}/v1/traces/demo-agent-1")).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200);
    let read_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();

    // The audit trail names the SAML subject and issuer, for the sign-in and for the read.
    let auditor = cli_token(data, "ada", "audit");
    let r = http.get(format!("{url}/v1/audit?limit=100")).bearer_auth(&auditor).send().unwrap();
    let trail: serde_json::Value = r.json().unwrap();
    let records = trail["records"].as_array().unwrap();
    for id in [&acs_request_id, &read_id] {
        let rec = records.iter().find(|r| r["request_id"] == id.as_str()).unwrap_or_else(|| panic!("no record {id}: {trail}"));
        assert_eq!(rec["principal"]["subject"], "erin@example.com", "{rec}");
        assert_eq!(rec["principal"]["issuer"], IDP, "{rec}");
        assert_eq!(rec["principal"]["auth_method"], "saml", "{rec}");
    }
    let read = records.iter().find(|r| r["request_id"] == read_id.as_str()).unwrap();
    assert_eq!((read["decision"].as_str(), read["role"].as_str()), (Some("allow"), Some("engineer")), "{read}");
}

/// With `[identity.browser]`, a sign-in started with `/saml/login?browser=1` ends in a session
/// cookie and a 303 to `after_login` (here the default, `/v1/whoami`), through the real
/// `tracegate serve` and the real IdP; the landing is reached even though the redirect chain
/// through the IdP marks it `cross-site`; the cookie then reads like the SAML token would.
#[test]
fn saml_browser_sign_in_ends_in_a_session_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    tracegate::commands::quickstart::lay_out(data).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let saml = Saml::new(data, &format!("http://127.0.0.1:{port}/saml/acs"));
    let cfg_path = data.join("tracegate.toml");
    let mut cfg = std::fs::read_to_string(&cfg_path).unwrap();
    cfg.push_str(&format!("{}{}", saml.config("5m"), saml.browser_config("/v1/whoami")));
    std::fs::write(&cfg_path, cfg).unwrap();
    let (child, url) = spawn_serve_on(data, "", port);
    let _stop = Stop(child);
    let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    saml.save_metadata(&http.get(format!("{url}/saml/metadata")).send().unwrap().text().unwrap());

    let r = http.get(format!("{url}/saml/login?browser=1")).send().unwrap();
    assert_eq!(r.status(), 303);
    let binding = set_cookie(r.headers(), "tracegate_session_saml=").expect("the SAML binding cookie");
    assert!(binding.contains("Path=/saml/acs") && binding.contains("HttpOnly"), "{binding}");
    let saml_response = saml.answer(&Login::of(r.headers()).saml_request, "erin@example.com", &["eng"]);

    let r = http
        .post(format!("{url}/saml/acs"))
        .header("cookie", binding.split(';').next().unwrap())
        .form(&[("SAMLResponse", saml_response.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/v1/whoami");
    let cookies: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session = cookies.iter().find(|c| c.starts_with("tracegate_session=tgs_")).unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"), "{session}");
    assert!(cookies.iter().any(|c| c.starts_with("tracegate_session_saml=;") && c.contains("Max-Age=0")), "{cookies:?}");
    assert!(!r.text().unwrap().contains("access_token"), "a browser sign-in gets no bearer token");

    // The landing, as the browser reaches it after the IdP: `Sec-Fetch-Site: cross-site`.
    let pair = session.split(';').next().unwrap();
    let r = http.get(format!("{url}/v1/whoami")).header("cookie", pair).header("sec-fetch-site", "cross-site").send().unwrap();
    assert_eq!(r.status(), 200);
    let who: serde_json::Value = r.json().unwrap();
    assert_eq!(who["principal"]["credential"], "session", "{who}");
    assert_eq!(who["principal"]["auth_method"], "saml", "{who}");
    assert_eq!(who["roles"], serde_json::json!(["engineer"]), "{who}");
    // Any other API route from another site is refused; from the gateway's own page it reads.
    let r = http.get(format!("{url}/v1/traces/demo-agent-1")).header("cookie", pair).header("sec-fetch-site", "cross-site").send().unwrap();
    assert_eq!(r.status(), 403);
    let r = http.get(format!("{url}/v1/traces/demo-agent-1")).header("cookie", pair).header("sec-fetch-site", "same-origin").send().unwrap();
    assert_eq!(r.status(), 200);
}
