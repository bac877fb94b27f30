//! True and false positives for every detector, one table per detector family.

use super::*;

fn all() -> DetSet {
    let mut s = DetSet::default();
    for d in Detector::ALL {
        s.insert(*d);
    }
    s
}

/// What the engine finds in `text`, as (detector, matched text), after merging.
fn found(text: &str) -> Vec<(&'static str, String)> {
    let engine = Engine::shared().unwrap_or_else(|e| unreachable!("{e}"));
    let mut spans = Vec::new();
    engine.scan(text, all(), &mut spans);
    merge(&mut spans);
    spans.iter().map(|s| (s.detector.name(), text[s.start..s.end].to_owned())).collect()
}

fn hits(det: &str, cases: &[(&str, &str)]) {
    for (text, want) in cases {
        let f = found(text);
        assert!(f.iter().any(|(d, v)| *d == det && v == want), "{det}: expected `{want}` in {text:?}, found {f:?}");
    }
}

fn misses(det: &str, cases: &[&str]) {
    for text in cases {
        let f = found(text);
        assert!(!f.iter().any(|(d, _)| *d == det), "{det}: false positive in {text:?}: {f:?}");
    }
}

#[test]
fn aws() {
    hits("aws_access_key_id", &[("key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"), ("ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A")]);
    misses("aws_access_key_id", &["AKIAIOSFODNN7EXAMPLEX", "the akia river", "AKIA1234"]);
    hits("aws_secret_access_key", &[(
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )]);
    misses("aws_secret_access_key", &["aws secret rotation is documented here at length today"]);
}

#[test]
fn vcs_tokens() {
    hits("github_token", &[("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 ok", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789")]);
    misses("github_token", &["ghp_short", "see the ghp_ prefix"]);
    hits("github_pat", &[("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ")]);
    misses("github_pat", &["github_pat_ is the prefix"]);
    hits("gitlab_token", &[("glpat-xYz12345678901234567", "glpat-xYz12345678901234567")]);
    misses("gitlab_token", &["glpat-short", "glpattern"]);
}

#[test]
fn chat_and_ai_keys() {
    hits("slack_token", &[("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx")]);
    misses("slack_token", &["xoxo hugs and kisses", "xoxb-"]);
    hits("slack_webhook", &[(
        "post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX now",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    )]);
    misses("slack_webhook", &["see https://hooks.slack.com/ docs"]);
    hits("openai_api_key", &[("OPENAI sk-proj-4fGh8Jk2Lm9Np3Qr5St7Uv1Wx6Yz0Ab", "sk-proj-4fGh8Jk2Lm9Np3Qr5St7Uv1Wx6Yz0Ab")]);
    misses("openai_api_key", &["risk-management-framework-document", "task-", "sk-learn-is-a-python-library-name"]);
    hits("anthropic_api_key", &[(
        "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-AbCdEfGh",
        "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-AbCdEfGh",
    )]);
    misses("anthropic_api_key", &["sk-ant-nothing"]);
}

#[test]
fn cloud_and_payment_keys() {
    hits("stripe_key", &[("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"), ("rk_test_abcdef1234567890", "rk_test_abcdef1234567890")]);
    misses("stripe_key", &["pk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_"]);
    hits("google_api_key", &[("AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI")]);
    misses("google_api_key", &["AIzaShort"]);
    hits("npm_token", &[("npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_abcdefghijklmnopqrstuvwxyz0123456789")]);
    hits("huggingface_token", &[("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH")]);
    misses("huggingface_token", &["hf_hub_download"]);
}

#[test]
fn more_vendor_tokens() {
    let cases: &[(&str, &str)] = &[
        ("azure_ad_client_secret", "abc8Q~xYz0123456789abcdefghijklmnopqrs"),
        ("mailgun_api_key", "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"),
        ("square_token", "sq0atp-1a2B3c4D5e6F7g8H9i0JkL"),
        ("databricks_token", "dapi0123456789abcdef0123456789abcdef"),
        ("linear_api_key", "lin_api_0123456789abcdefghijklmnopqrstuvwxyzABCD"),
        ("grafana_token", "glsa_0123456789abcdefghijklmnopqrstuv_0a1b2c3d"),
        ("new_relic_key", "NRAK-0123456789ABCDEFGHIJKLMNOPQ"),
        ("postman_api_key", "PMAK-0123456789abcdef01234567-0123456789abcdef0123456789abcdef01"),
        ("doppler_token", "dp.pt.0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"),
        ("vault_token", "hvs.CAESIJ0123456789abcdefghijklmnopqrstuvwxyz"),
        ("age_secret_key", "AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE"),
    ];
    for (det, tok) in cases {
        hits(det, &[(&format!("value {tok} end"), tok)]);
    }
    misses("mailgun_api_key", &["the primary key-value store"]);
    misses("doppler_token", &["dp.pt. is a prefix"]);
    misses("vault_token", &["hvs.short"]);
    misses("databricks_token", &["dapi is the prefix"]);
}

#[test]
fn jwt_and_private_keys() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    hits("jwt", &[(&format!("cookie={jwt};"), jwt)]);
    misses("jwt", &["eyJ is base64 for {\"", "eyJhbGciOiJIUzI1NiJ9 alone"]);
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----";
    hits("private_key", &[(&format!("key:\n{pem}\nthanks"), pem)]);
    let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA";
    hits("private_key", &[(cut, cut)]);
    misses("private_key", &["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "-----BEGIN PUBLIC KEY-----"]);
}

#[test]
fn headers_urls_and_assignments() {
    hits("bearer_token", &[("Authorization: Bearer abc.def-123_XYZ", "abc.def-123_XYZ")]);
    misses("bearer_token", &["Bearer authentication is described in RFC 6750", "bearer tokens"]);
    hits("authorization_header", &[("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==")]);
    misses("authorization_header", &["Authorization: required for this endpoint"]);
    hits("connection_string_password", &[
        ("postgres://app:s3cr3t!@db.internal:5432/app", "s3cr3t!"),
        ("mongodb+srv://u:hunter2@cluster0.example.net", "hunter2"),
    ]);
    misses("connection_string_password", &["https://example.com:8443/path", "http://user@host/"]);
    hits("password_assignment", &[
        ("login with password=hunter2 please", "hunter2"),
        ("DB_PASSWORD: 'correct horse'", "correct horse"),
        ("{\"secret\": \"x1\"}", "x1"),
        ("?user=bob&pwd=abc123&x=1", "abc123"),
    ]);
    misses("password_assignment", &["reset your password by email", "password: null", "the secret of success"]);
    hits("generic_secret", &[
        ("api_key = \"Zt8qW3xLp9vK2mN7bR4c\"", "Zt8qW3xLp9vK2mN7bR4c"),
        ("my access token is q8Zt3xLw9PmK2vB7nR4cT6", "q8Zt3xLw9PmK2vB7nR4cT6"),
    ]);
    misses("generic_secret", &["\"key\": \"gen_ai.input.messages\"", "token: the next token in the sequence", "max_tokens=4096000000000000"]);
}

#[test]
fn email() {
    hits("email", &[("mail alice.smith+tag@example.co.uk.", "alice.smith+tag@example.co.uk"), ("<bob@mail.example.com>", "bob@mail.example.com")]);
    misses("email", &["@decorator", "user@localhost", "npm i @types/node", "a@b.c1", "price @ 5.00"]);
}

#[test]
fn cards() {
    hits("credit_card", &[
        ("card 4111 1111 1111 1111 exp", "4111 1111 1111 1111"),
        ("4111-1111-1111-1111", "4111-1111-1111-1111"),
        ("amex 3782 822463 10005", "3782 822463 10005"),
        ("n=5555555555554444;", "5555555555554444"),
    ]);
    misses("credit_card", &["4111 1111 1111 1112", "1234567812345678", "id 4111111111111111abc", "4111.1111.1111.1111"]);
}

#[test]
fn ssn() {
    hits("us_ssn", &[("SSN 123-45-6789.", "123-45-6789"), ("ssn: 123 45 6789", "123 45 6789")]);
    misses("us_ssn", &["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "2024-01-15", "123-456-789"]);
}

#[test]
fn iban() {
    hits("iban", &[
        ("pay to DE89 3704 0044 0532 0130 00 today", "DE89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432", "GB82WEST12345698765432"),
    ]);
    misses("iban", &["DE89 3704 0044 0532 0130 01", "XX12 3456", "ISO8601"]);
}

#[test]
fn phone() {
    hits("phone", &[
        ("call +1 415 555 2671 now", "+1 415 555 2671"),
        ("call (415) 555-2671", "(415) 555-2671"),
        ("415-555-2671", "415-555-2671"),
        ("+44 20 7946 0958", "+44 20 7946 0958"),
        ("tel: 020 7946 0958", "020 7946 0958"),
        ("+4915112345678", "+4915112345678"),
    ]);
    misses("phone", &[
        "2024-01-15 10:30:00",
        "v1.2.3",
        "550e8400-e29b-41d4-a716-446655440000",
        "timestamp 1700000000000",
        "scores 10 20 30",
        "01-02-2024",
        "12:30:45",
    ]);
}

#[test]
fn ip_addresses() {
    hits("ipv4", &[("from 192.168.1.20:8080", "192.168.1.20"), ("ip=10.0.0.1.", "10.0.0.1")]);
    misses("ipv4", &["version 1.2.3", "v1.2.3.4", "1.2.3.4.5", "256.1.1.1", "3.14159"]);
    hits("ipv6", &[("client 2001:db8:85a3::8a2e:370:7334 connected", "2001:db8:85a3::8a2e:370:7334"), ("[fe80:0:0:0:202:b3ff:fe1e:8329]", "fe80:0:0:0:202:b3ff:fe1e:8329")]);
    misses("ipv6", &["std::vector<int>", "12:30:45", "::1", "00:1a:2b:3c:4d:5e", "a::b"]);
}

#[test]
fn uuids_dates_and_versions_are_left_alone() {
    for text in [
        "id 550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-1234-1234-123456789012",
        "at 2026-11-25T12:00:00Z",
        "release v1.2.3.4 and 1.2.3",
        "sha 3f9a1c2b7d4e5f60718293a4b5c6d7e8f9012345",
    ] {
        assert!(found(text).is_empty(), "{text}: {:?}", found(text));
    }
}

#[test]
fn merge_takes_the_union_under_the_higher_priority() {
    let mut v = vec![
        Span { start: 5, end: 10, detector: Detector::Email },
        Span { start: 0, end: 7, detector: Detector::ConnectionStringPassword },
        Span { start: 20, end: 22, detector: Detector::Ipv4 },
    ];
    merge(&mut v);
    assert_eq!(v, vec![
        Span { start: 0, end: 10, detector: Detector::ConnectionStringPassword },
        Span { start: 20, end: 22, detector: Detector::Ipv4 },
    ]);
}
