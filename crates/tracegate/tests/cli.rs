//! The binary as a user runs it: quickstart, token, policy check and policy test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tracegate");

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn policy_check_prints_views_or_precise_errors() {
    let out = Command::new(BIN).args(["policy", "check"]).arg(examples().join("policy.toml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let views: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(views["roles"]["support"]["fields"]["deny"][0], "$..reasoning");
    assert_eq!(views["roles"]["support"]["rows"]["match"][0], "trace.tenant == caller.tenant");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[roles.support]\ngroups = [\"support\"]\nactions = [\"read\"]\n[roles.support.fields]\nallow = [\"$\"]\ndenny = [\"$..reasoning\"]\n").unwrap();
    let out = Command::new(BIN).args(["policy", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:6:1") && err.contains("denny"), "{err}");
}

#[test]
fn policy_test_runs_the_example_scenarios() {
    let out = Command::new(BIN).args(["policy", "test"]).arg(examples().join("scenarios")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");

    // A scenario whose expectation is wrong fails, with the difference shown.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wrong.toml"),
        "description = \"support sees reasoning (wrong on purpose)\"\n[principal]\nsubject = \"s\"\ngroups = [\"support\"]\nclaims = { tenant = \"acme\" }\n[request]\naction = \"read\"\ntrace = \"demo-agent-1\"\nfields = [\"$..reasoning\"]\n[expect]\ndecision = \"allow\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["policy", "test"])
        .arg(dir.path())
        .arg("--policy")
        .arg(examples().join("policy.toml"))
        .arg("--traces")
        .arg(examples().join("traces"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("0 passed, 1 failed") && stdout.contains("field_denied"), "{stdout}");
}

#[test]
fn token_is_refused_without_a_dev_issuer() {
    let dir = tempfile::tempdir().unwrap();
    tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
    let cfg = dir.path().join("tracegate.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let start = text.find("[identity.dev]").unwrap();
    let end = text.find("key_file = \"dev-signing-key.pem\"").unwrap() + "key_file = \"dev-signing-key.pem\"".len();
    std::fs::write(&cfg, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let out = Command::new(BIN).args(["token", "--sub", "x", "--groups", "eng", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not enable the development issuer"));
    assert!(out.stdout.is_empty());
}

/// The README's first command, end to end: quickstart serves, `token` mints, reads work.
#[test]
fn quickstart_serves_and_reuses_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for round in 0..2 {
        let mut child = Command::new(BIN)
            .args(["quickstart", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (url, rest) = loop {
            let line = lines.next().expect("quickstart exited before listening").unwrap();
            if let Some(rest) = line.trim().strip_prefix("tracegate is listening on ") {
                break (rest.split_whitespace().next().unwrap().to_owned(), rest.to_owned());
            }
        };
        let expected_word = if round == 0 { "(created" } else { "(reusing" };
        assert!(rest.contains(expected_word), "round {round}: {rest}");
        let banner: Vec<String> = lines.by_ref().take(6).map(Result::unwrap).collect();
        let cfg = data.join("tracegate.toml");
        let tok = Command::new(BIN)
            .args(["token", "--sub", "sam", "--groups", "support", "--claim", "tenant=acme", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(tok.status.success(), "{}", String::from_utf8_lossy(&tok.stderr));
        let token = String::from_utf8(tok.stdout).unwrap().trim().to_owned();
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let r = client.get(format!("{url}/v1/traces/demo-agent-1")).bearer_auth(&token).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{banner:?}");
        let body: serde_json::Value = r.json().unwrap();
        assert!(body.get("final_output").is_some());
        assert!(body.to_string().find("reasoning").is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(data.join("policy.toml").exists() && data.join("traces/demo-otlp-1.json").exists());
}

/// `tracegate mask` with the default plan runs the byte engine; what it prints must be what the
/// tree walk makes of the same document (compact, pretty and JSON Lines alike), and text that is
/// not JSON is refused with nothing printed.
#[test]
fn mask_command_serves_what_the_walk_masks() {
    use tracegate_core::mask::{MaskKey, Masker};
    let dir = tempfile::tempdir().unwrap();
    let masker = Masker::redact_all().unwrap();
    let walk = |text: &str| {
        let mut doc: serde_json::Value = serde_json::from_str(text).unwrap();
        masker.apply(&mut doc, &MaskKey::default());
        doc
    };
    let run = |args: &[&str], file: &std::path::Path| {
        let out = Command::new(BIN).arg("mask").args(args).arg(file).env_remove("TRACEGATE_MASK_KEY").output().unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // The sample traces, and one with a planted secret inside a JSON-encoded, Go-escaped string.
    let mut texts: Vec<String> = tracegate::samples::TRACES.iter().map(|(_, t)| (*t).to_owned()).collect();
    let inner = serde_json::json!({"note": "<b>login</b> with password Maple!River58 & token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"}).to_string();
    let escaped = serde_json::to_string(&inner).unwrap().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    texts.push(format!(r#"{{"attributes": {{"gen_ai.input.messages": {escaped}}}, "email": "alice.smith@example.com"}}"#));
    let mut lines = String::new();
    for (i, text) in texts.iter().enumerate() {
        let expected = walk(text);
        let file = dir.path().join(format!("t{i}.json"));
        std::fs::write(&file, text).unwrap();
        for args in [&[][..], &["--pretty"][..]] {
            let (ok, out, err) = run(args, &file);
            assert!(ok, "{err}");
            let got: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(got, expected, "{args:?} {i}");
        }
        lines.push_str(&serde_json::to_string(&serde_json::from_str::<serde_json::Value>(text).unwrap()).unwrap());
        lines.push('\n');
    }
    let (ok, out, err) = run(&[], &dir.path().join("t3.json"));
    assert!(ok && !out.contains("Maple!River58") && !out.contains("ghp_") && !out.contains("alice.smith"), "{out}{err}");
    let file = dir.path().join("all.jsonl");
    std::fs::write(&file, &lines).unwrap();
    let (ok, out, err) = run(&[], &file);
    assert!(ok, "{err}");
    let got: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let expected: Vec<serde_json::Value> = texts.iter().map(|t| walk(t)).collect();
    assert_eq!(got, expected);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"password": "hunter2", "x": [1, 2"#).unwrap();
    let (ok, out, err) = run(&[], &bad);
    assert!(!ok && out.is_empty() && err.contains("not JSON"), "{out}{err}");
}
