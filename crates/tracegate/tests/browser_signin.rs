//! Browser sign-in end to end: a real OpenID Provider (npm `oidc-provider`, started by
//! `scripts/start-oidc.sh`, with its interactive login driven here as a browser would — follow
//! redirects, keep cookies, post the login form) and real `tracegate serve` processes.
//!
//! Shown: the authorization code flow with PKCE ends in a session cookie with the expected
//! attributes; the session reads under the role the groups claim maps to and the audit record
//! says `auth_method: oidc`, `credential: session`; a missing, unknown, replayed or
//! foreign-browser `state` is refused; a replayed code, a tampered PKCE challenge and a tampered
//! nonce are refused; CSRF: cookie state changes without the token, with a wrong token, from
//! another origin or site (a cross-site form POST) are refused, with the token served; a bearer
//! token and a cookie together are refused; logout revokes the session server side; idle
//! timeout and absolute lifetime end a session. Never skipped: without node/npm the test fails
//! saying what to install.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use sha2::Digest as _;

use common::code;

const CLIENT: &str = "tracegate-console";

/// The provider, with one browser client whose redirect URIs are the gateways' callbacks.
fn start_provider(secret: &str, gateway_ports: &[u16]) -> common::Provider {
    let redirects: Vec<String> = gateway_ports.iter().map(|p| format!("http://127.0.0.1:{p}/auth/callback")).collect();
    common::start_provider(&json!({
        "clients": [],
        "resources": {},
        "browser_clients": [{"client_id": CLIENT, "client_secret": secret, "redirect_uris": redirects}],
        "users": [
            {"username": "sam", "groups": ["support"], "tenant": "acme"},
            {"username": "wes", "groups": ["agents"], "tenant": "acme"},
        ],
    }))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `tracegate serve` process on `port` with browser sign-in against `issuer`.
struct Served {
    url: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(issuer: &str, secret: &str, port: u16, timeouts: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
    std::fs::write(dir.path().join("oidc-client-secret"), format!("{secret}\n")).unwrap();
    let cfg_path = dir.path().join("tracegate.toml");
    let mut cfg = std::fs::read_to_string(&cfg_path).unwrap();
    cfg.push_str(&format!(
        "\n[[identity.oidc]]\nissuer = \"{issuer}\"\naudience = \"tracegate\"\n\n\
         [identity.browser]\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT}\"\n\
         client_secret_file = \"oidc-client-secret\"\nredirect_url = \"http://127.0.0.1:{port}/auth/callback\"\n{timeouts}\n"
    ));
    std::fs::write(&cfg_path, cfg).unwrap();
    let (child, url) = common::spawn_serve_on(dir.path(), "", port);
    Served { url, dir, child }
}

/// A browser: no automatic redirects, one cookie jar per host:port, every `Set-Cookie` kept.
struct Browser {
    http: Client,
    jar: HashMap<String, HashMap<String, String>>,
    set_cookies: Vec<String>,
}

impl Browser {
    fn new() -> Browser {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Browser { http, jar: HashMap::new(), set_cookies: Vec::new() }
    }

    fn cookie_header(&self, url: &reqwest::Url) -> Option<String> {
        let jar = self.jar.get(&host(url))?;
        (!jar.is_empty()).then(|| jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
    }

    fn keep(&mut self, url: &reqwest::Url, resp: &Response) {
        for v in resp.headers().get_all("set-cookie") {
            let text = v.to_str().unwrap().to_owned();
            let (pair, attrs) = text.split_once(';').unwrap_or((&text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let jar = self.jar.entry(host(url)).or_default();
            if attrs.to_ascii_lowercase().contains("max-age=0") || value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
            self.set_cookies.push(text);
        }
    }

    fn get(&mut self, url: &str) -> Response {
        let url = reqwest::Url::parse(url).unwrap();
        let mut req = self.http.get(url.clone());
        if let Some(c) = self.cookie_header(&url) {
            req = req.header("cookie", c);
        }
        let resp = req.send().unwrap();
        self.keep(&url, &resp);
        resp
    }

    fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let url = reqwest::Url::parse(url).unwrap();
        let mut req = self.http.post(url.clone()).form(form);
        if let Some(c) = self.cookie_header(&url) {
            req = req.header("cookie", c);
        }
        let resp = req.send().unwrap();
        self.keep(&url, &resp);
        resp
    }

    /// The last `Set-Cookie` for cookie `name`.
    fn set_cookie(&self, name: &str) -> String {
        self.set_cookies.iter().rev().find(|c| c.starts_with(&format!("{name}="))).cloned().unwrap_or_default()
    }

    fn session(&self, gw: &Served) -> String {
        let url = reqwest::Url::parse(&gw.url).unwrap();
        self.jar.get(&host(&url)).and_then(|j| j.get("tracegate_session")).cloned().unwrap_or_default()
    }
}

fn host(url: &reqwest::Url) -> String {
    format!("{}:{}", url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0))
}

fn location(resp: &Response, base: &str) -> String {
    let loc = resp.headers().get("location").unwrap_or_else(|| panic!("no location on a {}", resp.status()));
    reqwest::Url::parse(base).unwrap().join(loc.to_str().unwrap()).unwrap().to_string()
}

/// Starts a sign-in at the gateway and returns the issuer's authorization URL (not yet visited).
fn start_login(b: &mut Browser, gw: &Served) -> String {
    let resp = b.get(&format!("{}/auth/login", gw.url));
    assert_eq!(resp.status(), 303);
    let auth = location(&resp, &gw.url);
    assert!(auth.contains("code_challenge_method=S256") && auth.contains("nonce=") && auth.contains("state="));
    auth
}

/// Plays the person at the provider: follows its redirects, posts the login form as `user`, and
/// returns the URL the provider sends the browser back to (the gateway's callback, not visited).
fn at_provider(b: &mut Browser, authorize: &str, user: &str, gw: &Served) -> String {
    let mut url = authorize.to_owned();
    for _ in 0..12 {
        let resp = b.get(&url);
        match resp.status().as_u16() {
            302 | 303 => {
                let next = location(&resp, &url);
                if next.starts_with(&gw.url) {
                    return next;
                }
                url = next;
            }
            200 => {
                let page = resp.text().unwrap();
                let action = page.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("a login form");
                let target = reqwest::Url::parse(&url).unwrap().join(action).unwrap().to_string();
                let resp = b.post_form(&target, &[("login", user)]);
                assert_eq!(resp.status(), 303, "login form: {}", resp.text().unwrap_or_default());
                url = location(&resp, &target);
            }
            s => panic!("provider answered {s} at {url}: {}", resp.text().unwrap_or_default()),
        }
    }
    panic!("the provider never redirected back to the gateway");
}

/// A whole sign-in as `user`; returns the callback's answer.
fn sign_in(b: &mut Browser, gw: &Served, user: &str) -> Response {
    let auth = start_login(b, gw);
    let cb = at_provider(b, &auth, user, gw);
    b.get(&cb)
}

fn param(url: &str, name: &str) -> String {
    reqwest::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap()
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> =
        u.query_pairs().map(|(k, v)| (k.to_string(), if k == name { value.to_owned() } else { v.into_owned() })).collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

fn json_of(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.bytes().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A request to the gateway with the session cookie `session` and extra headers.
fn with_cookie(method: reqwest::Method, gw: &Served, path: &str, session: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = Client::new().request(method, format!("{}{path}", gw.url)).header("cookie", format!("tracegate_session={session}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    json_of(req.send().unwrap())
}

fn audit_records(gw: &Served) -> Vec<Value> {
    let text = std::fs::read_to_string(gw.dir.path().join("audit/audit.jsonl")).unwrap();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn browser_sign_in_sessions_csrf_and_logout() {
    let secret = format!("console-secret-{}", std::process::id());
    let (main_port, idle_port, life_port) = (free_port(), free_port(), free_port());
    let provider = start_provider(&secret, &[main_port, idle_port, life_port]);
    let gw = serve(&provider.issuer, &secret, main_port, "");

    // ---- A full sign-in: session cookie, read under the mapped role, audit record.
    let mut b = Browser::new();
    let resp = sign_in(&mut b, &gw, "sam");
    assert_eq!(resp.status(), 303, "{}", resp.text().unwrap_or_default());
    assert_eq!(resp.headers()["location"], "/v1/whoami");
    let session = b.session(&gw);
    assert!(session.starts_with("tgs_"), "{:?}", b.set_cookies);
    let set = b.set_cookie("tracegate_session");
    for attr in ["Path=/;", "HttpOnly", "SameSite=Lax", "Max-Age=28800"] {
        assert!(set.contains(attr), "session cookie lacks {attr}: {set}");
    }
    assert!(!set.contains("Secure"), "plain-http loopback cannot have Secure cookies: {set}");
    let login = b.set_cookies.iter().find(|c| c.starts_with("tracegate_session_login=") && !c.contains("Max-Age=0")).unwrap();
    for attr in ["Path=/auth/callback", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(login.contains(attr), "login cookie lacks {attr}: {login}");
    }
    assert!(b.set_cookie("tracegate_session_login").contains("Max-Age=0"), "the callback clears the login cookie");
    assert!(!format!("{:?}", b.set_cookies).contains(&secret));

    let (s, who) = with_cookie(reqwest::Method::GET, &gw, "/v1/whoami", &session, &[]);
    assert_eq!(s, 200, "{who}");
    assert_eq!(who["principal"]["subject"], "sam");
    assert_eq!(who["principal"]["issuer"], provider.issuer.as_str());
    assert_eq!(who["principal"]["auth_method"], "oidc");
    assert_eq!(who["principal"]["credential"], "session");
    assert_eq!(who["principal"]["claims"]["tenant"], "acme");
    assert!(who["principal"]["claims"].get("nonce").is_none(), "protocol values are not claims: {who}");
    assert_eq!(who["roles"], json!(["support"]));
    let csrf = who["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 43);

    let (s, body) = with_cookie(reqwest::Method::GET, &gw, "/v1/traces/demo-agent-1", &session, &[]);
    assert_eq!(s, 200, "{body}");
    assert!(body.get("final_output").is_some() && !body.to_string().contains("reasoning"), "the support view: {body}");
    let (s, body) = with_cookie(reqwest::Method::GET, &gw, "/v1/traces/demo-agent-2", &session, &[]);
    assert_eq!((s, code(&body)), (404, "not_found"), "row scope applies as for bearer tokens");
    let records = audit_records(&gw);
    let read = records
        .iter()
        .find(|r| r["request"]["route"] == "/v1/traces/{id}" && r["status"] == 200)
        .expect("the read is on the trail");
    assert_eq!(read["principal"]["subject"], "sam");
    assert_eq!(read["principal"]["auth_method"], "oidc");
    assert_eq!(read["principal"]["credential"], "session");
    assert_eq!(read["role"], "support");
    let signed_in = records.iter().find(|r| r["request"]["route"] == "/auth/callback" && r["status"] == 303).unwrap();
    assert_eq!(signed_in["principal"]["subject"], "sam");

    // ---- state: missing, unknown, replayed, from another browser.
    let (s, body) = json_of(b.get(&format!("{}/auth/callback?code=abc", gw.url)));
    assert_eq!((s, code(&body)), (400, "missing_state"), "{body}");
    let (s, body) = json_of(b.get(&format!("{}/auth/callback?code=abc&state=made-up", gw.url)));
    assert_eq!((s, code(&body)), (400, "unknown_state"), "{body}");

    let auth = start_login(&mut b, &gw);
    let cb = at_provider(&mut b, &auth, "sam", &gw);
    let mut other = Browser::new();
    let (s, body) = json_of(other.get(&cb));
    assert_eq!((s, code(&body)), (400, "login_browser_mismatch"), "another browser cannot finish this sign-in: {body}");
    let (s, body) = json_of(b.get(&cb));
    assert_eq!((s, code(&body)), (400, "unknown_state"), "a state is good for one attempt: {body}");

    let auth = start_login(&mut b, &gw);
    let cb = at_provider(&mut b, &auth, "sam", &gw);
    let resp = b.get(&cb);
    assert_eq!(resp.status(), 303);
    let (s, body) = json_of(b.get(&cb));
    assert_eq!((s, code(&body)), (400, "unknown_state"), "a replayed callback: {body}");

    // ---- A replayed code under a fresh state: the provider refuses it, so does the gateway.
    let used_code = param(&cb, "code");
    let auth = start_login(&mut b, &gw);
    let fresh_state = param(&auth, "state");
    let replay = with_param(&with_param(&cb, "state", &fresh_state), "code", &used_code);
    let (s, body) = json_of(b.get(&replay));
    assert_eq!((s, code(&body)), (401, "code_rejected"), "{body}");

    // ---- PKCE: the challenge swapped on the way (the code is bound to another verifier).
    let auth = start_login(&mut b, &gw);
    let foreign = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"attacker-verifier-0123456789-abcdefghijklmn"));
    let cb = at_provider(&mut b, &with_param(&auth, "code_challenge", &foreign), "sam", &gw);
    let (s, body) = json_of(b.get(&cb));
    assert_eq!((s, code(&body)), (401, "code_rejected"), "a PKCE mismatch: {body}");

    // ---- nonce: swapped on the way, so the ID token carries another.
    let auth = start_login(&mut b, &gw);
    let cb = at_provider(&mut b, &with_param(&auth, "nonce", "attacker-nonce"), "sam", &gw);
    let (s, body) = json_of(b.get(&cb));
    assert_eq!((s, code(&body)), (401, "nonce_mismatch"), "{body}");

    // ---- CSRF on state changes made with the cookie; bearer + cookie is ambiguous.
    let mut w = Browser::new();
    assert_eq!(sign_in(&mut w, &gw, "wes").status(), 303);
    let writer = w.session(&gw);
    let (_, who) = with_cookie(reqwest::Method::GET, &gw, "/v1/whoami", &writer, &[]);
    let writer_csrf = who["csrf_token"].as_str().unwrap().to_owned();
    let doc = json!({"metadata": {"tenant": "acme", "agent": "console"}, "final_output": "hi"}).to_string();
    let put = |headers: &[(&str, &str)]| {
        let mut req = Client::new()
            .put(format!("{}/v1/traces/from-browser", gw.url))
            .header("cookie", format!("tracegate_session={writer}"))
            .body(doc.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        json_of(req.send().unwrap())
    };
    let (s, body) = put(&[]);
    assert_eq!((s, code(&body)), (403, "csrf_failed"), "no token: {body}");
    let (s, body) = put(&[("x-csrf-token", &csrf)]);
    assert_eq!((s, code(&body)), (403, "csrf_failed"), "another session's token: {body}");
    let (s, body) = put(&[("x-csrf-token", &writer_csrf), ("origin", "http://evil.example")]);
    assert_eq!((s, code(&body)), (403, "csrf_failed"), "another origin: {body}");
    let (s, body) = put(&[("x-csrf-token", &writer_csrf), ("sec-fetch-site", "same-site")]);
    assert_eq!((s, code(&body)), (403, "csrf_failed"), "another site: {body}");
    let own_origin = gw.url.clone();
    let (s, body) = put(&[("x-csrf-token", &writer_csrf), ("origin", &own_origin), ("sec-fetch-site", "same-origin")]);
    assert_eq!(s, 201, "with the token, from the gateway's own origin: {body}");
    assert_eq!(body["role"], "writer");
    // A cross-site HTML form POST: the browser sends the cookie (if it would), never the header.
    let (s, body) = with_cookie(
        reqwest::Method::POST,
        &gw,
        "/auth/logout",
        &session,
        &[("content-type", "application/x-www-form-urlencoded"), ("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")],
    );
    assert_eq!((s, code(&body)), (403, "csrf_failed"), "{body}");
    let (s, _) = with_cookie(reqwest::Method::GET, &gw, "/v1/whoami", &session, &[]);
    assert_eq!(s, 200, "the refused logout left the session alone");
    let (s, body) = with_cookie(reqwest::Method::GET, &gw, "/v1/whoami", &session, &[("authorization", "Bearer x.y.z")]);
    assert_eq!((s, code(&body)), (400, "ambiguous_credentials"), "{body}");

    // ---- Logout: revoked server side; the old cookie is refused from then on.
    let resp = Client::new()
        .post(format!("{}/auth/logout", gw.url))
        .header("cookie", format!("tracegate_session={session}"))
        .header("x-csrf-token", &csrf)
        .header("origin", &own_origin)
        .send()
        .unwrap();
    let cleared = resp.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (s, body) = json_of(resp);
    assert_eq!(s, 200, "{body}");
    assert!(cleared.starts_with("tracegate_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let (s, body) = with_cookie(reqwest::Method::GET, &gw, "/v1/whoami", &session, &[]);
    assert_eq!((s, code(&body)), (401, "session_invalid"), "{body}");
    let (s, body) = with_cookie(reqwest::Method::GET, &gw, "/v1/traces/demo-agent-1", &session, &[]);
    assert_eq!((s, code(&body)), (401, "session_invalid"), "{body}");
    let (s, _) = with_cookie(reqwest::Method::GET, &gw, "/v1/whoami", &writer, &[]);
    assert_eq!(s, 200, "other sessions are untouched");
    drop(gw);

    // ---- Idle timeout: unused past it, the session is gone.
    let idle = serve(&provider.issuer, &secret, idle_port, "session_lifetime = \"1h\"\nidle_timeout = \"2s\"");
    let mut b = Browser::new();
    assert_eq!(sign_in(&mut b, &idle, "sam").status(), 303);
    let s1 = b.session(&idle);
    std::thread::sleep(Duration::from_millis(2500));
    let (s, body) = with_cookie(reqwest::Method::GET, &idle, "/v1/whoami", &s1, &[]);
    assert_eq!((s, code(&body)), (401, "session_idle"), "{body}");
    let (s, body) = with_cookie(reqwest::Method::GET, &idle, "/v1/whoami", &s1, &[]);
    assert_eq!((s, code(&body)), (401, "session_invalid"), "{body}");
    drop(idle);

    // ---- Absolute lifetime: past it, the session ends however it was used.
    let life = serve(&provider.issuer, &secret, life_port, "session_lifetime = \"2s\"\nidle_timeout = \"2s\"");
    let mut b = Browser::new();
    assert_eq!(sign_in(&mut b, &life, "sam").status(), 303);
    assert!(b.set_cookie("tracegate_session").contains("Max-Age=2"));
    let s2 = b.session(&life);
    std::thread::sleep(Duration::from_millis(2500));
    let (s, body) = with_cookie(reqwest::Method::GET, &life, "/v1/whoami", &s2, &[]);
    assert_eq!((s, code(&body)), (401, "session_expired"), "{body}");
}
