//! The web console: its static files and headers, the development sign-in and its refusals
//! (over HTTP against an in-process gateway), and the console in a real browser — headless
//! Debian `chromium` driven by `playwright-core` (`console-tests/`) against `tracegate serve`
//! on a quickstart data directory. Under `TRACEGATE_REQUIRE_PEERS=1` a missing chromium, node
//! or npm fails the browser test; otherwise it says so and returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::Gateway;
use reqwest::header;
use reqwest::redirect::Policy;
use serde_json::Value;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The raw values planted in the sample traces that every role but `sre` is served masked.
const PLANTED: [&str; 13] = [
    "sk-ant-api03-Vq7fXr2LmN8pQ4sT6uW9yZ1aB3cD5eF7gH9iJ0kL2mN4oP6qR8sT0uV2wX4yZ6aB8cD0eF2gH-AbCdEf",
    "ghp_4mXq8Zr2Tn6Vb1Lc9Kd3Hs7Jf5Pw0Ya2Qe4R",
    "ghp_R8mT2vX9kL4nQ7pW1zB6cY3dF5gH0jK2sA4e",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "S3cr3t-Pa55w0rd",
    "dana.whitfield@example.com",
    "priya.raman@example.org",
    "hank.scorpio@globex.example",
    "4111 1111 1111 1111",
    "4242 4242 4242 4242",
    "123-45-6789",
    "415 555 0134",
    "Dana Whitfield",
];

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn audit_lines(data: &Path) -> usize {
    std::fs::read_to_string(data.join("audit/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_carry_the_strict_headers_and_nothing_else_is_served() {
    let gw = Gateway::start().await;
    let c = no_redirects();
    let before = audit_lines(&gw.data_dir());
    for (path, ty) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/dev-login", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/inbox.js", "text/javascript; charset=utf-8"),
        ("/console/style.css", "text/css; charset=utf-8"),
    ] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], ty, "{path}");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        let body = r.text().await.unwrap();
        assert!(!body.is_empty());
        if ty.starts_with("text/html") {
            // Plain GETs that need no API call to render, and no inline code.
            assert!(
                !body.contains("<script>") && !body.contains("<style"),
                "{path}: {body}"
            );
        }
        // Revalidation: the same bytes answer 304, still under the policy.
        let again = c
            .get(gw.url(path))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()[header::CONTENT_SECURITY_POLICY], CSP);
    }
    for path in [
        "/console/nope.js",
        "/console/app.js/x",
        "/console/..%2fCargo.toml",
        "/console/index.html.bak",
    ] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.url().path(), path, "the client rewrote the path");
        assert_eq!(
            r.headers()
                .get(header::CONTENT_SECURITY_POLICY)
                .map(|v| v.to_str().unwrap()),
            Some(CSP),
            "{path}"
        );
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let r = c.get(gw.url("/console")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()[header::LOCATION], "/console/");
    // Static files are the same bytes for everyone and are not on the trail; a POST there is
    // an ordinary unknown route, recorded.
    assert_eq!(
        audit_lines(&gw.data_dir()),
        before,
        "static console files were recorded"
    );
    let r = c.post(gw.url("/console/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(audit_lines(&gw.data_dir()) > before);
}

/// A refused sign-in form: what, `Origin`, other headers, body, status, error code.
type FormCase<'a> = (
    &'a str,
    Option<String>,
    Vec<(&'a str, &'a str)>,
    &'a str,
    u16,
    &'a str,
);

/// A POST of the dev sign-in form: `origin`, extra headers, body.
async fn dev_login(
    gw: &Gateway,
    origin: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut req = no_redirects()
        .post(gw.url("/auth/dev-login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn get_json(c: &reqwest::Client, url: String) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_sign_in_starts_a_session_and_refuses_forged_or_foreign_forms() {
    let gw = Gateway::start().await;
    let origin = format!("http://{}", gw.addr);
    let c = no_redirects();
    let methods: Value = get_json(&c, gw.url("/auth/methods")).await;
    assert_eq!(methods, serde_json::json!({"browser": false, "dev": true}));
    let list: Value = get_json(&c, gw.url("/auth/dev-login")).await;
    let subjects: Vec<&str> = list["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["sam", "erin", "sid", "sec-lead", "sec-two", "ava", "ivy"]
    );
    assert_eq!(list["identities"][0]["claims"]["tenant"], "acme");

    // Login CSRF and DNS rebinding: each refused, and no session cookie is set.
    let rebound = format!("evil.example:{}", gw.addr.port());
    let cases: Vec<FormCase<'_>> = vec![
        ("no origin", None, vec![], "subject=sam", 403, "csrf_failed"),
        (
            "foreign origin",
            Some("http://evil.example".into()),
            vec![],
            "subject=sam",
            403,
            "csrf_failed",
        ),
        (
            "null origin",
            Some("null".into()),
            vec![],
            "subject=sam",
            403,
            "csrf_failed",
        ),
        (
            "null origin, cross-site",
            Some("null".into()),
            vec![("sec-fetch-site", "cross-site")],
            "subject=sam",
            403,
            "csrf_failed",
        ),
        (
            "foreign origin, same-origin",
            Some("http://evil.example".into()),
            vec![("sec-fetch-site", "same-origin")],
            "subject=sam",
            403,
            "csrf_failed",
        ),
        (
            "cross-site",
            Some(origin.clone()),
            vec![("sec-fetch-site", "cross-site")],
            "subject=sam",
            403,
            "csrf_failed",
        ),
        (
            "same-site",
            Some(origin.clone()),
            vec![("sec-fetch-site", "same-site")],
            "subject=sam",
            403,
            "csrf_failed",
        ),
        (
            "rebound host",
            Some(format!("http://{rebound}")),
            vec![("host", rebound.as_str())],
            "subject=sam",
            403,
            "dev_sign_in_refused",
        ),
        (
            "unknown identity",
            Some(origin.clone()),
            vec![],
            "subject=root",
            400,
            "unknown_identity",
        ),
        (
            "two subjects",
            Some(origin.clone()),
            vec![],
            "subject=sam&subject=sid",
            400,
            "bad_request",
        ),
        (
            "extra field",
            Some(origin.clone()),
            vec![],
            "subject=sam&groups=sre",
            400,
            "unknown_parameter",
        ),
        (
            "no subject",
            Some(origin.clone()),
            vec![],
            "",
            400,
            "bad_request",
        ),
    ];
    for (what, o, extra, body, status, code) in cases {
        let r = dev_login(&gw, o.as_deref(), &extra, body).await;
        assert!(
            r.headers().get(header::SET_COOKIE).is_none(),
            "{what}: a cookie was set"
        );
        assert_eq!(error_code(r).await, (status, code.to_owned()), "{what}");
    }
    let r = no_redirects()
        .get(gw.url("/auth/dev-login"))
        .header("host", &rebound)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (403, "dev_sign_in_refused".into()),
        "the list on a rebound host"
    );

    // What Chromium sends for the console's form (`Referrer-Policy: no-referrer`) is accepted.
    let r = dev_login(
        &gw,
        Some("null"),
        &[("sec-fetch-site", "same-origin")],
        "subject=sam",
    )
    .await;
    assert_eq!(r.status(), 303, "the browser's own form post");
    // The real form post: a session as `sid`, the same principal a dev token gives.
    let r = dev_login(
        &gw,
        Some(&origin),
        &[("sec-fetch-site", "same-origin")],
        "subject=sid",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/console/");
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tracegate_session=tgs_"), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain-http loopback cannot use Secure: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let who: Value = c
        .get(gw.url("/v1/whoami"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["principal"]["subject"], "sid");
    assert_eq!(who["principal"]["issuer"], "tracegate-dev");
    assert_eq!(who["principal"]["credential"], "session");
    assert_eq!(who["roles"], serde_json::json!(["sre"]));
    let csrf = who["csrf_token"].as_str().unwrap().to_owned();

    // State changes with that cookie follow the session rules: token and origin.
    let logout = |token: Option<&str>, o: &str| {
        let mut req = c
            .post(gw.url("/auth/logout"))
            .header(header::COOKIE, &session)
            .header(header::ORIGIN, o);
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    assert_eq!(
        error_code(logout(None, &origin).await.unwrap()).await,
        (403, "csrf_failed".into())
    );
    assert_eq!(
        error_code(logout(Some(&csrf), "http://evil.example").await.unwrap()).await,
        (403, "csrf_failed".into())
    );
    assert_eq!(logout(Some(&csrf), &origin).await.unwrap().status(), 200);
    let after = c
        .get(gw.url("/v1/whoami"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "the session outlived its logout");

    // The sign-in is on the trail, naming who signed in.
    let text = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    let signed_in = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            r["request"]["route"] == "/auth/dev-login"
                && r["request"]["method"] == "POST"
                && r["status"] == 303
        })
        .collect::<Vec<_>>();
    let subjects: Vec<&str> = signed_in
        .iter()
        .map(|r| r["principal"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["sam", "sid"],
        "one record per sign-in, naming who signed in"
    );
}

/// The quickstart config with `edit` applied; whether the gateway starts, and its error.
async fn start_error(edit: impl FnOnce(String) -> String) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
    let path = dir.path().join("tracegate.toml");
    let text = edit(std::fs::read_to_string(&path).unwrap());
    std::fs::write(&path, text).unwrap();
    let cfg = tracegate_server::GatewayConfig::load(&path).unwrap();
    tracegate_server::AppState::from_config(&cfg)
        .await
        .err()
        .map(|e| e.to_string())
}

const DEV_TABLE: &str = "[identity.dev]\nissuer = \"tracegate-dev\"\naudience = \"tracegate\"\nkey_file = \"dev-signing-key.pem\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_sign_in_is_refused_without_the_dev_issuer_or_beyond_loopback() {
    // Beyond loopback: the gateway does not start at all.
    let err = start_error(|t| {
        t.replace(
            "key_file = \"dev-signing-key.pem\"\n",
            "key_file = \"dev-signing-key.pem\"\nallow_non_loopback = true\n",
        )
    })
    .await;
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("allow_non_loopback")),
        "{err:?}"
    );
    // No dev issuer (an OIDC issuer instead): listed identities are a start-up error.
    let err = start_error(|t| {
        assert!(t.contains(DEV_TABLE));
        t.replace(
            DEV_TABLE,
            "[[identity.oidc]]\nissuer = \"http://127.0.0.1:9\"\naudience = \"tracegate\"\n",
        )
    })
    .await;
    assert!(
        err.as_deref().is_some_and(|e| e.contains("[identity.dev]")),
        "{err:?}"
    );
    // No identities listed: no dev sign-in, the console still served.
    let gw = Gateway::start_with(|t| {
        t.split("[[console.dev_identities]]")
            .next()
            .unwrap()
            .to_owned()
    })
    .await;
    let c = no_redirects();
    let methods: Value = get_json(&c, gw.url("/auth/methods")).await;
    assert_eq!(methods, serde_json::json!({"browser": false, "dev": false}));
    assert_eq!(
        error_code(c.get(gw.url("/auth/dev-login")).send().await.unwrap()).await,
        (404, "no_route".into())
    );
    let origin = format!("http://{}", gw.addr);
    let r = dev_login(&gw, Some(&origin), &[], "subject=sam").await;
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(error_code(r).await, (404, "no_route".into()));
    assert_eq!(
        c.get(gw.url("/console/")).send().await.unwrap().status(),
        200
    );
    // And a session cookie means nothing there.
    let r = c
        .get(gw.url("/v1/whoami"))
        .header(header::COOKIE, "tracegate_session=tgs_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

// ---- the real browser -----------------------------------------------------------------------

fn require_peers() -> bool {
    std::env::var("TRACEGATE_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `node`, chromium and `console-tests/node_modules` (installed here with `npm ci` when missing),
/// or why not.
fn browser_tools() -> Result<PathBuf, String> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!(
            "{} is missing (apt-get install chromium; scripts/test.sh installs it)",
            chromium.display()
        ));
    }
    let dir = repo().join("console-tests");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let out = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("npm is missing ({e}); scripts/test.sh installs Node.js"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci in console-tests failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(chromium)
}

/// Runs `console-tests/<spec>` against a fresh `tracegate serve` on a quickstart directory.
fn run_spec(spec: &str) {
    let chromium = match browser_tools() {
        Ok(c) => c,
        Err(why) if !require_peers() => {
            eprintln!(
                "skipping the browser test: {why} (TRACEGATE_REQUIRE_PEERS=1 makes this a failure)"
            );
            return;
        }
        Err(why) => panic!("the browser test cannot run: {why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
    // Checkpoints every few records, so the audit explorer has a signed one to show.
    let cfg = dir.path().join("tracegate.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n[audit]\ncheckpoint_every_records = 5\n")).unwrap();
    let (mut child, url) = common::spawn_serve(dir.path(), "");
    let mut cmd = std::process::Command::new("node");
    cmd.arg(repo().join("console-tests").join(spec))
        .env("GATEWAY_URL", &url)
        .env("CHROMIUM", &chromium)
        .env("PLANTED", serde_json::to_string(&PLANTED).unwrap());
    if let Ok(shots) = std::env::var("CONSOLE_SCREENSHOTS") {
        cmd.env("SHOTS", shots);
    }
    let out = cmd.output();
    let _ = child.kill();
    let _ = child.wait();
    let out = out.expect("running node (scripts/test.sh installs Node.js)");
    assert!(
        out.status.success(),
        "{spec} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The planted list is real: every value is in the raw sample traces, and no masked role's API
/// answer holds any of them (so a hit in the browser would be the console's own leak).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planted_secrets_are_in_the_samples_and_masked_by_the_api() {
    let raw: String = tracegate::samples::TRACES.iter().map(|(_, t)| *t).collect();
    for s in PLANTED {
        assert!(raw.contains(s), "`{s}` is not in the sample traces");
    }
    let gw = Gateway::start().await;
    let erin = gw.token("erin", &["eng"], &[]);
    for (id, _) in tracegate::samples::TRACES {
        let body = gw
            .client
            .get(gw.url(&format!("/v1/traces/{id}")))
            .bearer_auth(&erin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for s in PLANTED {
            assert!(
                !body.contains(s),
                "{id}: the engineer's API answer holds `{s}`"
            );
        }
    }
}

#[test]
fn the_console_in_chromium() {
    run_spec("console.spec.mjs");
}

/// `GET /v1/audit/verify`, the console's chain status: auditors only, recorded, and a record
/// edited on disk behind the gateway's back turns it to `ok: false` naming the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_status_is_for_auditors_and_sees_tampering() {
    let gw = Gateway::start().await;
    let ava = gw.token("ava", &["audit"], &[]);
    let erin = gw.token("erin", &["eng"], &[]);
    let _ = gw.get("/v1/traces/demo-agent-1", &erin).await;
    let (status, body) = gw.get("/v1/audit/verify", &ava).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    // The read; this request's own record is written after the answer is made.
    assert!(body["report"]["records"].as_u64().unwrap() >= 1, "{body}");
    let (status, body) = gw.get("/v1/audit/verify", &erin).await;
    assert_eq!((status, common::code(&body)), (403, "action_not_permitted"), "{body}");
    let (status, _) = gw.get("/v1/audit/verify", "").await;
    assert_eq!(status, 401);
    // Edit the served read's record: the digest of the bytes sent is changed.
    let path = gw.data_dir().join("audit/audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| l.contains("\"route\":\"/v1/traces/{id}\"") && l.contains("\"status\":200")).unwrap();
    let edited = line.replace("\"status\":200", "\"status\":404");
    std::fs::write(&path, text.replace(line, &edited)).unwrap();
    let (status, body) = gw.get("/v1/audit/verify", &ava).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], false, "an edited record went unnoticed: {body}");
    assert!(!body["report"]["problems"].as_array().unwrap().is_empty());
}

/// `GET /v1/access-requests/{id}/reveals`: the asked-for role's view, for the requester and its
/// approvers only (404 for anyone else, as for the request itself), recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_grant_reveals_is_shown_to_requester_and_approvers_only() {
    let gw = Gateway::start().await;
    let sid = gw.token("sid", &["sre"], &[]);
    let (status, body) = gw.get("/v1/traces/demo-agent-1", &sid).await;
    assert_eq!(status, 202, "{body}");
    let id = body["access_request"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/access-requests/{id}/reveals");
    for token in [sid.clone(), gw.token("sec-lead", &["security"], &[])] {
        let (status, body) = gw.get(&path, &token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["role"], "sre");
        assert_eq!(body["view"]["fields"]["allow"], serde_json::json!(["$"]));
        let off: Vec<&str> = body["view"]["masking"]["operators"]["off"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(off.contains(&"email"), "{body}");
    }
    let (status, body) = gw.get(&path, &gw.token("erin", &["eng"], &[])).await;
    assert_eq!((status, common::code(&body)), (404, "not_found"), "{body}");
    let (status, body) = gw.get("/v1/access-requests/ar_nope/reveals", &sid).await;
    assert_eq!((status, common::code(&body)), (404, "not_found"), "{body}");
    let text = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    assert_eq!(text.matches("\"route\":\"/v1/access-requests/{id}/reveals\"").count(), 4, "every preview is recorded");

    // Compared with the requester's own view, recorded from the requester's principal: sid
    // reads nothing without the grant, whoever looks.
    for token in [sid.clone(), gw.token("sec-lead", &["security", "eng"], &[])] {
        let (_, body) = gw.get(&path, &token).await;
        assert_eq!(body["current"], serde_json::json!({"recorded": true, "role": null, "view": null}), "{body}");
        assert_eq!(body["reveals"]["from_nothing"], true, "{body}");
    }
    // A support engineer who is also an SRE asks for the reasoning support may not see: served
    // as support without a grant, so the grant unhides the reasoning and lifts support's masks.
    // An approver who is an engineer does not turn the comparison into the engineer's.
    let pat = gw.token("pat", &["support", "sre"], &[("tenant", "acme")]);
    let (status, body) = gw.get("/v1/traces/demo-agent-1?fields=%24..reasoning", &pat).await;
    assert_eq!(status, 202, "{body}");
    let pat_req = body["access_request"]["id"].as_str().unwrap().to_owned();
    for token in [pat.clone(), gw.token("sec-lead", &["security", "eng"], &[])] {
        let (status, body) = gw.get(&format!("/v1/access-requests/{pat_req}/reveals"), &token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["current"]["role"], "support", "{body}");
        let d = &body["reveals"];
        assert_eq!((d["current_role"].as_str(), d["granted_role"].as_str()), (Some("support"), Some("sre")), "{body}");
        assert!(d["deny_lifted"].as_array().unwrap().contains(&Value::from("$..reasoning")), "{body}");
        let email = d["masks"].as_array().unwrap().iter().find(|m| m["detector"] == "email").unwrap();
        assert_eq!((email["from"].as_str(), email["to"].as_str(), email["lifted"].as_bool()), (Some("redact"), Some("off"), Some(true)));
    }
}

/// A read's request id (`x-request-id`), status and the bytes sent.
async fn read_trace(gw: &Gateway, path: &str, token: &str) -> (String, u16, Vec<u8>) {
    let r = gw.client.get(gw.url(path)).bearer_auth(token).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let status = r.status().as_u16();
    (id, status, r.bytes().await.unwrap().to_vec())
}

/// `GET /v1/audit/{request_id}/replay`, the audit explorer's replay: auditors only, recorded,
/// always saying whether the reproduced body matches the recorded digest, and including the body
/// only for a caller whose own read of that version covers it — never the raw values of an
/// approved unmasked read to an auditor who may not read traces, or reads them masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_for_auditors_and_shows_a_body_only_to_a_view_that_covers_it() {
    let gw = Gateway::start().await;
    let erin = gw.token("erin", &["eng"], &[]);
    let sam = gw.token("sam", &["support"], &[("tenant", "acme")]);
    let sid = gw.token("sid", &["sre"], &[]);
    let ava = gw.token("ava", &["audit"], &[]);
    let ivy = gw.token("ivy", &["audit", "eng"], &[]);
    let trace = "/v1/traces/demo-agent-1";
    let (erin_id, status, erin_body) = read_trace(&gw, trace, &erin).await;
    assert_eq!(status, 200);
    let (sam_id, status, _) = read_trace(&gw, trace, &sam).await;
    assert_eq!(status, 200);
    // The SRE's read is unmasked, after a security approval.
    let (_, status, body) = read_trace(&gw, &format!("{trace}?purpose=incident"), &sid).await;
    assert_eq!(status, 202);
    let ask: Value = serde_json::from_slice(&body).unwrap();
    let ar = ask["access_request"]["id"].as_str().unwrap();
    let r = gw
        .client
        .post(gw.url(&format!("/v1/access-requests/{ar}/approve")))
        .bearer_auth(gw.token("sec-lead", &["security"], &[]))
        .json(&serde_json::json!({ "comment": "incident" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (sid_id, status, sid_body) = read_trace(&gw, &format!("{trace}?purpose=incident"), &sid).await;
    assert_eq!(status, 200);
    let raw = String::from_utf8(sid_body).unwrap();
    assert!(PLANTED.iter().any(|s| raw.contains(s)), "the SRE read is not unmasked");
    let replay = |id: &str| format!("/v1/audit/{id}/replay");

    // An auditor without a read role: every read reproduced, no body, no planted value.
    for id in [&erin_id, &sam_id, &sid_id] {
        let (status, b) = gw.get(&replay(id), &ava).await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(b["result"], "reproduced", "{b}");
        assert_eq!(b["replayed_sha256"], b["recorded_sha256"], "{b}");
        assert!(b["replayed_sha256"].as_str().is_some_and(|d| d.len() == 64), "{b}");
        assert!(b["body"].is_null(), "an auditor who reads no trace got a body: {b}");
        assert_eq!(b["body_withheld"], "none of your roles reads this trace");
        let text = b.to_string();
        assert!(!PLANTED.iter().any(|s| text.contains(s)), "{text}");
    }
    // An auditor who reads as an engineer: the engineer's read is her own view, byte for byte.
    let (status, b) = gw.get(&replay(&erin_id), &ivy).await;
    assert_eq!((status, &b["result"]), (200, &Value::from("reproduced")), "{b}");
    assert_eq!(b["body"], serde_json::from_slice::<Value>(&erin_body).unwrap());
    assert!(b["body_withheld"].is_null());
    // Support's read shows less, redacted where she sees pseudonyms: it is covered.
    let (_, b) = gw.get(&replay(&sam_id), &ivy).await;
    assert_eq!(b["result"], "reproduced", "{b}");
    assert!(b["body"]["steps"][0]["output"].as_str().is_some_and(|s| s.contains("[REDACTED:PERSON_NAME]")), "{b}");
    assert!(b["body"]["steps"][0].get("reasoning").is_none(), "{b}");
    // The SRE's unmasked read holds what her view masks: withheld, nothing raw sent.
    let (_, b) = gw.get(&replay(&sid_id), &ivy).await;
    assert_eq!(b["result"], "reproduced", "{b}");
    assert!(b["body"].is_null(), "{b}");
    assert_eq!(b["body_withheld"], "the body holds more than your own read of this trace would show you");
    let text = b.to_string();
    assert!(!PLANTED.iter().any(|s| text.contains(s)), "{text}");

    // Readers may not replay, not even their own reads; anonymous callers are refused.
    for token in [&erin, &sid, &sam] {
        let (status, b) = gw.get(&replay(&erin_id), token).await;
        assert_eq!((status, common::code(&b)), (403, "action_not_permitted"), "{b}");
    }
    assert_eq!(gw.get(&replay(&erin_id), "").await.0, 401);
    let (status, b) = gw.get(&replay("no-such-request"), &ava).await;
    assert_eq!((status, common::code(&b)), (404, "not_found"), "{b}");
    // A record that is not a read says so.
    let (who_id, _, _) = read_trace(&gw, "/v1/whoami", &erin).await;
    let (status, b) = gw.get(&replay(&who_id), &ava).await;
    assert_eq!((status, &b["result"]), (200, &Value::from("not_replayable")), "{b}");

    // Every replay is on the trail, naming the trace, the replayed request and whether the body
    // was shown.
    let text = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    let replays: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["request"]["route"] == "/v1/audit/{request_id}/replay")
        .collect();
    assert_eq!(replays.len(), 12, "every replay is recorded");
    let shown: Vec<(&str, bool)> = replays
        .iter()
        .filter(|r| r["status"] == 200 && r["event"]["result"] == "reproduced")
        .map(|r| (r["principal"]["subject"].as_str().unwrap(), r["event"]["body_shown"].as_bool().unwrap()))
        .collect();
    assert_eq!(shown, [("ava", false), ("ava", false), ("ava", false), ("ivy", true), ("ivy", true), ("ivy", false)]);
    assert!(replays.iter().filter(|r| r["status"] == 200).all(|r| r["request"]["trace_ids"] == serde_json::json!(["demo-agent-1"])
        || r["event"]["result"] == "not_replayable"));

    // `tracegate audit replay` runs the same replay and shows the operator the very bytes sent;
    // over the gateway's read limit it refuses rather than rebuild what it would not serve.
    let (ok, outcome, shown) = common::replay(&gw.data_dir(), &erin_id);
    assert!(ok && outcome["result"] == "reproduced", "{outcome}");
    assert_eq!(shown.as_bytes(), erin_body.as_slice());
    let cfg = gw.data_dir().join("tracegate.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("max_trace_bytes = 16777216\n"));
    std::fs::write(&cfg, text.replace("max_trace_bytes = 16777216\n", "max_trace_bytes = 16777216\nmax_read_bytes = 16\n")).unwrap();
    let (ok, outcome, shown) = common::replay(&gw.data_dir(), &erin_id);
    assert!(!ok && outcome.is_null() && shown.is_empty(), "{outcome} {shown}");
}

/// A read's status, headers and bytes.
async fn read_with(gw: &Gateway, path: &str, token: &str) -> (u16, header::HeaderMap, Vec<u8>) {
    let r = gw.client.get(gw.url(path)).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

fn withheld_of(h: &header::HeaderMap) -> Value {
    serde_json::from_str(h["x-tracegate-withheld"].to_str().unwrap()).unwrap()
}

/// `?explain=withheld`, attacked: the list of withheld paths travels outside the body (the body
/// and its audit digest are the bytes of a plain read), names the view's boundary without any
/// planted value, says nothing about traces outside the row scope (the same 404 as a missing
/// trace), lists nothing for a narrowed read (a filter over a hidden field learns nothing), and
/// takes no other value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_paths_are_listed_outside_the_body_and_leak_nothing() {
    let gw = Gateway::start().await;
    let sam = gw.token("sam", &["support"], &[("tenant", "acme")]);
    let erin = gw.token("erin", &["eng"], &[]);
    let trace = "/v1/traces/demo-agent-1";
    let (status, plain_h, plain) = read_with(&gw, trace, &sam).await;
    assert_eq!(status, 200);
    assert!(plain_h.get("x-tracegate-withheld").is_none(), "listed without being asked");
    let (status, h, body) = read_with(&gw, &format!("{trace}?explain=withheld"), &sam).await;
    assert_eq!(status, 200);
    assert_eq!(body, plain, "asking for the list changed the body");
    let w = withheld_of(&h);
    let paths: Vec<&str> = w["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(paths.contains(&"$['system_instructions']"), "{w}");
    assert!(paths.iter().any(|p| p.ends_with("['reasoning']")), "{w}");
    assert_eq!(w["narrowed"], false);
    let text = h["x-tracegate-withheld"].to_str().unwrap();
    for s in PLANTED {
        assert!(!text.contains(s), "the withheld list holds `{s}`: {text}");
    }
    // The two reads' records carry the same digest: the list is not part of what was sent.
    let records = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    let digests: Vec<Value> = records
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["request"]["route"] == "/v1/traces/{id}" && r["status"] == 200)
        .map(|r| r["body_sha256"].clone())
        .collect();
    assert_eq!(digests.len(), 2);
    assert_eq!(digests[0], digests[1]);

    // Outside the row scope (globex), with the list asked for: the answer of a trace that does
    // not exist, no header.
    let (s1, h1, b1) = read_with(&gw, "/v1/traces/demo-agent-2?explain=withheld", &sam).await;
    let (s2, h2, b2) = read_with(&gw, "/v1/traces/no-such-trace?explain=withheld", &sam).await;
    assert_eq!((s1, s2), (404, 404));
    assert!(h1.get("x-tracegate-withheld").is_none() && h2.get("x-tracegate-withheld").is_none());
    let msg = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap()["error"].clone();
    assert_eq!(msg(&b1)["code"], msg(&b2)["code"]);
    assert_eq!(
        msg(&b1)["message"].as_str().unwrap().replace("demo-agent-2", "X"),
        msg(&b2)["message"].as_str().unwrap().replace("no-such-trace", "X")
    );

    // A narrowed read whose filter probes the hidden reasoning: no paths, whatever it holds.
    for probe in ["$.steps[?search(@.reasoning, 'refund')].output", "$.steps[?search(@.reasoning, 'zzzz')].output"] {
        let q = format!("{trace}?explain=withheld&fields={}", urlencode(probe));
        let (status, h, _) = read_with(&gw, &q, &sam).await;
        assert_eq!(status, 200, "{probe}");
        assert_eq!(withheld_of(&h), serde_json::json!({"paths": [], "more": 0, "too_deep": 0, "narrowed": true}), "{probe}");
    }
    // A view of everything withholds nothing.
    let (_, h, _) = read_with(&gw, &format!("{trace}?explain=withheld"), &erin).await;
    assert_eq!(withheld_of(&h)["paths"], serde_json::json!([]));
    // Only `withheld`, once.
    for q in ["explain=all", "explain=withheld&explain=withheld", "explain="] {
        let (status, _, b) = read_with(&gw, &format!("{trace}?{q}"), &sam).await;
        assert_eq!(status, 400, "{q}: {}", String::from_utf8_lossy(&b));
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /v1/audit/checkpoint`, the audit explorer's latest signed checkpoint: auditors only,
/// recorded, and the newest checkpoint on the trail with a signature that verifies against the
/// gateway's key, no older than what `verify` last saw signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_checkpoint_is_for_auditors_and_verifies() {
    let gw = Gateway::start_with(|t| format!("{t}\n[audit]\ncheckpoint_every_records = 1\n")).await;
    let ava = gw.token("ava", &["audit"], &[]);
    let erin = gw.token("erin", &["eng"], &[]);
    // Records until the trail has a signed checkpoint (each record is followed by one).
    let mut signed = None;
    for _ in 0..50 {
        let _ = gw.get("/v1/traces/demo-agent-1", &erin).await;
        let (_, v) = gw.get("/v1/audit/verify", &ava).await;
        if let Some(s) = v["report"]["last_signed_seq"].as_u64() {
            signed = Some(s);
            break;
        }
    }
    let signed = signed.expect("no checkpoint was ever signed");
    let (status, b) = gw.get("/v1/audit/checkpoint", &ava).await;
    assert_eq!(status, 200, "{b}");
    let cp = &b["checkpoint"];
    assert!(cp["seq"].as_u64().unwrap() >= signed, "{b}");
    assert_eq!(cp["hash"].as_str().unwrap().len(), 64, "{b}");
    assert_eq!(b["signature_valid"], true, "{b}");
    assert_eq!(cp["key_id"], b["gateway_key_id"], "{b}");
    // The head it names is the hash of the record at that seq.
    let text = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    let rec = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["seq"] == cp["seq"])
        .unwrap();
    assert_eq!(rec["hash"], cp["hash"]);
    let (status, b) = gw.get("/v1/audit/checkpoint", &erin).await;
    assert_eq!((status, common::code(&b)), (403, "action_not_permitted"), "{b}");
    assert_eq!(gw.get("/v1/audit/checkpoint", "").await.0, 401);
    let text = std::fs::read_to_string(gw.data_dir().join("audit/audit.jsonl")).unwrap();
    assert_eq!(text.matches("\"route\":\"/v1/audit/checkpoint\"").count(), 3, "every look is recorded");
}

/// Replaying a read whose role has since gained a `fields.deny` rule: the replay still reproduces
/// what was shown (under the archived policy), but the body holds what the auditor's own read
/// under today's policy no longer shows, so it is withheld.
#[test]
fn a_replay_after_the_view_narrowed_withholds_the_body() {
    let dir = tempfile::tempdir().unwrap();
    tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
    let client = reqwest::blocking::Client::new();
    let erin = common::cli_token(dir.path(), "erin", "eng");
    let ivy = common::cli_token(dir.path(), "ivy", "audit,eng");
    let (mut child, url) = common::spawn_serve(dir.path(), "");
    let r = client.get(format!("{url}/v1/traces/demo-agent-1")).bearer_auth(&erin).send().unwrap();
    assert_eq!(r.status(), 200);
    let read_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let shown: Value = r.json().unwrap();
    assert!(shown["steps"][0].get("reasoning").is_some(), "the engineer saw reasoning then");
    let replay = |url: &str| -> Value {
        client.get(format!("{url}/v1/audit/{read_id}/replay")).bearer_auth(&ivy).send().unwrap().json().unwrap()
    };
    let before = replay(&url);
    assert_eq!(before["result"], "reproduced", "{before}");
    assert_eq!(before["body"], shown, "under the same policy her own view covers it");
    let _ = child.kill();
    let _ = child.wait();

    // Engineers may no longer see reasoning.
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    let narrowed = text.replace("[roles.engineer.fields]\nallow = [\"$\"]\n", "[roles.engineer.fields]\nallow = [\"$\"]\ndeny = [\"$..reasoning\"]\n");
    assert_ne!(narrowed, text);
    std::fs::write(&policy, narrowed).unwrap();
    let (mut child, url) = common::spawn_serve(dir.path(), "");
    let after = replay(&url);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(after["result"], "reproduced", "the archived policy still reproduces it: {after}");
    assert!(after["body"].is_null(), "a body with reasoning went to a reader who may no longer see it: {after}");
    assert_eq!(after["body_withheld"], "the body holds more than your own read of this trace would show you");
    let reasoning = shown["steps"][0]["reasoning"].as_str().unwrap();
    assert!(!after.to_string().contains(reasoning), "{after}");
}
