//! Identity state shared by two replicas over one `[state]` database, with the real SAML IdP
//! (pysaml2 + xmlsec1): a SAML response is good once across both replicas (replayed to the
//! other replica: `saml_replayed`), an AuthnRequest issued by one is accepted by the other's ACS
//! exactly once, an unreachable database refuses SAML sign-in (fail closed), a SAML sign-in
//! started for a browser ends in a session that every replica honours and a logout through one
//! ends on the other — and a cookie request to the API marked `Sec-Fetch-Site: cross-site` is
//! refused (it could otherwise open an access request in the signed-in person's name).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::saml::{self, session_cookie, Saml, SESSION};
use common::Gateway;
use serde_json::Value;
use tracegate_identity::saml::SamlError;
use tracegate_server::{AppState, GatewayConfig};
use tracegate_state::testing::TestDb;

/// Both replicas stand behind one public ACS URL; the responses name it as their destination.
const ACS: &str = "https://tracegate.test/saml/acs";

/// A replica in this process, its state reachable (for the fail-closed checks below).
struct Replica {
    url: String,
    state: Arc<AppState>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Replica {
    async fn of(config: &Path) -> Replica {
        let cfg = GatewayConfig::load(config).unwrap();
        let state = Arc::new(AppState::from_config(&cfg).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tracegate_server::serve(state.clone(), listener, async {
            let _ = rx.await;
        }));
        Replica {
            url,
            state,
            _stop: tx,
        }
    }
}

struct Setup {
    _db: TestDb,
    _keys: tempfile::TempDir,
    saml: Saml,
    a: Gateway,
    b: Replica,
    http: reqwest::Client,
}

impl Setup {
    async fn new() -> Option<Setup> {
        let db = TestDb::create().await?;
        let keys = tempfile::tempdir().unwrap();
        let saml = Saml::new(keys.path(), ACS);
        let url = db.config().url.unwrap();
        let identity = format!("{}{}", saml.config("10m"), saml.browser_config("/console/"));
        let a = Gateway::start_with(|t| {
            format!(
                "{t}{identity}\n[identity.service_accounts]\nadmin_groups = [\"admins\"]\npath = \"service-accounts\"\n\n\
                 [state]\nurl = {url:?}\nacquire_timeout = \"1s\"\n"
            )
        })
        .await;
        let b = Replica::of(&a.data_dir().join("tracegate.toml")).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        saml.fetch_metadata(&http, &a.url("")).await;
        Some(Setup {
            _db: db,
            _keys: keys,
            saml,
            a,
            b,
            http,
        })
    }

    /// `GET /saml/login[?browser=1]` at `base`: the IdP's answer to its AuthnRequest, and the
    /// SAML binding cookie's value (browser sign-ins only).
    async fn sign_in_at(
        &self,
        base: &str,
        browser: bool,
        subject: &str,
        groups: &[&str],
    ) -> (String, Option<String>) {
        let (response, binding) = self.saml.sign_in(&self.http, base, browser, subject, groups).await;
        let value = binding.map(|pair| pair.split_once('=').unwrap().1.to_owned());
        (response, value)
    }

    fn answer(&self, saml_request: &str, subject: &str, groups: &[&str]) -> String {
        self.saml.answer(saml_request, subject, groups)
    }

    /// Whether the access requests `token` may list (through A) mention `who`.
    async fn requests_mention(&self, token: &str, who: &str) -> bool {
        let r = self
            .http
            .get(self.a.url("/v1/access-requests"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        json(r).await.1.to_string().contains(who)
    }

    async fn acs(&self, base: &str, response: &str, cookie: Option<&str>) -> reqwest::Response {
        saml::acs(&self.http, base, response, cookie).await
    }
}

async fn json(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_response_is_good_once_across_replicas() {
    let Some(s) = Setup::new().await else { return };
    let (a, b) = (s.a.url(""), s.b.url.clone());

    // The shared service-account store is passed in at construction: with `[state]`, the
    // embedded file named by `[identity.service_accounts] path` is never opened (or created).
    assert!(!s.a.data_dir().join("service-accounts").exists(), "the embedded service-account log was opened");

    // Issued by A, answered at B: accepted (B knows A's AuthnRequest).
    let (response, _) = s.sign_in_at(&a, false, "erin@example.com", &["eng"]).await;
    let (status, body) = json(s.acs(&b, &response, None).await).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();

    // The same response again, at either replica: replayed.
    for base in [&a, &b] {
        let (status, body) = json(s.acs(base, &response, None).await).await;
        assert_eq!(
            (status, common::code(&body)),
            (401, "saml_replayed"),
            "{base}: {body}"
        );
        assert!(body.get("access_token").is_none());
    }

    // The token B minted works on A.
    let r = s
        .http
        .get(format!("{a}/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, who) = json(r).await;
    assert_eq!(
        (status, who["principal"]["auth_method"].as_str()),
        (200, Some("saml")),
        "{who}"
    );

    // Another response to the same AuthnRequest (a fresh assertion id), at A: the request was
    // redeemed by B, so it answers nothing pending.
    let request = s.saml.login(&s.http, &a, false).await.saml_request;
    let first = s.answer(&request, "erin@example.com", &["eng"]);
    let second = s.answer(&request, "erin@example.com", &["eng"]);
    assert_eq!(s.acs(&b, &first, None).await.status(), 200);
    let (status, body) = json(s.acs(&a, &second, None).await).await;
    assert_eq!(
        (status, common::code(&body)),
        (401, "saml_unknown_request"),
        "{body}"
    );

    // One response raced to both replicas at once: exactly one token.
    let (raced, _) = s.sign_in_at(&a, false, "erin@example.com", &["eng"]).await;
    let (ra, rb) = tokio::join!(s.acs(&a, &raced, None), s.acs(&b, &raced, None));
    let statuses = [ra.status().as_u16(), rb.status().as_u16()];
    assert_eq!(
        statuses.iter().filter(|&&c| c == 200).count(),
        1,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_refuses_saml_sign_in_then_recovers() {
    let Some(s) = Setup::new().await else { return };
    let sp = s.b.state.auth.saml().unwrap();
    let login = sp.begin_login("", None).await.unwrap();
    let location = reqwest::Url::parse(&login.redirect_url).unwrap();
    let request = location
        .query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .unwrap()
        .1
        .into_owned();
    let response = s.answer(&request, "erin@example.com", &["eng"]);

    s._db.allow_connections(false).await;
    s._db.terminate_connections().await;
    assert_eq!(
        sp.consume(&response).await.unwrap_err(),
        SamlError::ReplayCacheUnavailable
    );
    assert_eq!(
        sp.begin_login("", None).await.unwrap_err(),
        SamlError::RequestStoreUnavailable
    );
    // Over HTTP: 503, no token (the audit trail is in the same database, so the refusal is
    // whichever of the two failed first; never a token).
    let r = s.acs(&s.a.url(""), &response, None).await;
    assert_eq!(r.status(), 503);
    assert!(!r.text().await.unwrap().contains("access_token"));

    // Back: nothing was remembered or redeemed while it was down, so the response now signs in.
    s._db.allow_connections(true).await;
    let v = sp.consume(&response).await.unwrap();
    assert_eq!(v.subject, "erin@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_browser_sign_in_is_a_session_on_every_replica_and_cross_site_api_calls_are_refused()
{
    let Some(s) = Setup::new().await else { return };
    let (a, b) = (s.a.url(""), s.b.url.clone());

    // A browser sign-in's response posted without (or with another browser's) binding cookie:
    // refused, no session (login CSRF).
    let (response, binding) = s.sign_in_at(&a, true, "sid@example.com", &["sre"]).await;
    let binding = binding.expect("`/saml/login?browser=1` sets the binding cookie");
    let r = s
        .acs(
            &b,
            &response,
            Some(&format!("{SESSION}_saml=not-{binding}")),
        )
        .await;
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|v| !v.to_str().unwrap().starts_with(&format!("{SESSION}="))));
    let (status, body) = json(r).await;
    assert_eq!(
        (status, common::code(&body)),
        (400, "login_browser_mismatch"),
        "{body}"
    );

    // Started on A, answered at B with the binding cookie: 303 to `after_login` with the session
    // cookie, the same attributes as the OIDC sign-in's.
    let (response, binding) = s.sign_in_at(&a, true, "sid@example.com", &["sre"]).await;
    let r = s
        .acs(
            &b,
            &response,
            Some(&format!("{SESSION}_saml={}", binding.unwrap())),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/");
    let (cookie, header) = session_cookie(r.headers());
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax") && header.contains("Path=/"),
        "{header}"
    );
    assert!(header.contains("Max-Age=28800"), "{header}");

    // The session works on A too, as the SAML principal, with a CSRF token.
    let whoami = |base: &str, site: Option<&str>| {
        let mut req = s
            .http
            .get(format!("{base}/v1/whoami"))
            .header("cookie", &cookie);
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        req.send()
    };
    let (status, who) = json(whoami(&a, None).await.unwrap()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        (
            who["principal"]["auth_method"].as_str(),
            who["principal"]["credential"].as_str()
        ),
        (Some("saml"), Some("session")),
        "{who}"
    );
    assert_eq!(who["principal"]["subject"], "sid@example.com");
    let csrf = who["csrf_token"].as_str().unwrap().to_owned();

    // Cross-site, with the cookie: refused on the API; same-origin, same-site and no header (old
    // browsers, non-browser clients) keep working.
    let (status, body) = json(whoami(&a, Some("cross-site")).await.unwrap()).await;
    assert_eq!(
        (status, common::code(&body)),
        (403, "cross_site_request"),
        "{body}"
    );
    for site in [Some("same-origin"), Some("same-site"), Some("none"), None] {
        assert_eq!(whoami(&b, site).await.unwrap().status(), 200, "{site:?}");
    }
    // A cross-site link to a read that needs approval opens no access request in sid's name.
    let writer =
        s.a.token("refund-agent", &["agents"], &[("tenant", "acme")]);
    let doc = serde_json::json!({"metadata": {"tenant": "acme", "agent": "a1", "started_at": "2026-11-24T00:00:00Z"}, "final_output": "done"});
    let (status, body) =
        s.a.put(
            "/v1/traces/incident-1",
            &writer,
            serde_json::to_vec(&doc).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let security = s.a.token("sam", &["security"], &[]);
    let read = |site: &'static str| {
        s.http
            .get(format!("{a}/v1/traces/incident-1"))
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .send()
    };
    let (status, body) = json(read("cross-site").await.unwrap()).await;
    assert_eq!(
        (status, common::code(&body)),
        (403, "cross_site_request"),
        "{body}"
    );
    assert!(
        !s.requests_mention(&security, "sid@example.com").await,
        "a cross-site GET must not open an access request"
    );
    let (status, body) = json(read("same-origin").await.unwrap()).await;
    assert_eq!(
        status, 202,
        "the same read from the gateway's own page asks for approval: {body}"
    );
    assert!(s.requests_mention(&security, "sid@example.com").await);
    // A bearer caller is not a browser: the header changes nothing for it.
    let r = s
        .http
        .get(format!("{a}/v1/whoami"))
        .bearer_auth(s.a.token("erin", &["eng"], &[]))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Pages outside /v1 (the sign-in landing, the console) are not refused by this rule.
    let r = s
        .http
        .get(format!("{a}/console/"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 403);
    // The refusal is on the audit trail, with its code and the session's principal.
    let auditor = s.a.token("ada", &["audit"], &[]);
    let trail = s
        .http
        .get(format!("{b}/v1/audit?limit=1000"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        trail.contains("cross_site_request") && trail.contains("sid@example.com"),
        "{trail}"
    );

    // Logout through B ends the session on A at once.
    let r = s
        .http
        .post(format!("{b}/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = json(whoami(&a, None).await.unwrap()).await;
    assert_eq!(
        (status, common::code(&body)),
        (401, "session_invalid"),
        "{body}"
    );
}
