//! True and false positives for every detector, one table per detector family.

use super::*;

fn all() -> DetSet {
    let mut s = DetSet::default();
    for d in Detector::ALL {
        s.insert(*d);
    }
    s
}

/// What the engine finds in `text`, as (detector, matched text), before merging (so each
/// detector is seen even where a higher-priority one overlaps it).
fn found(text: &str) -> Vec<(&'static str, String)> {
    let engine = Engine::shared().unwrap_or_else(|e| unreachable!("{e}"));
    let mut spans = Vec::new();
    engine.scan(text, all(), &mut spans);
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

/// Deterministic filler for token bodies (tests must not depend on a random seed).
fn fill(alphabet: &str, n: usize, seed: u64) -> String {
    let a = alphabet.as_bytes();
    let mut r = crate::mask::test_rng::Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n).map(|_| char::from(a[(r.next() % a.len() as u64) as usize])).collect()
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &str = "0123456789abcdef";
const UPPER_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER_DIGITS: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

fn uuid(seed: u64) -> String {
    format!("{}-{}-{}-{}-{}", fill(HEX, 8, seed), fill(HEX, 4, seed + 1), fill(HEX, 4, seed + 2), fill(HEX, 4, seed + 3), fill(HEX, 12, seed + 4))
}

/// One example per provider format, built from its documented prefix and body.
pub(super) fn provider_examples() -> Vec<(&'static str, String)> {
    let f = fill;
    vec![
        ("aws_session_token", format!("FwoGZXIvYXdzE{}", f(ALNUM, 120, 1))),
        ("gcp_service_account", format!("\"private_key_id\": \"{}\"", f(HEX, 40, 2))),
        ("google_oauth_token", format!("ya29.a0{}", f(B64URL, 120, 3))),
        ("google_oauth_token", format!("1//0{}", f(B64URL, 60, 4))),
        ("google_oauth_token", format!("GOCSPX-{}", f(B64URL, 28, 5))),
        ("azure_sas_token", format!("https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig={}%3D", f(ALNUM, 43, 6))),
        ("azure_sas_token", format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={}=", f(ALNUM, 43, 7))),
        ("groq_api_key", format!("gsk_{}", f(ALNUM, 52, 8))),
        ("tracegate_service_account_key", format!("tgsa_{}_{}", f(HEX, 16, 80), f(HEX, 64, 81))),
        ("replicate_token", format!("r8_{}", f(ALNUM, 37, 9))),
        ("perplexity_api_key", format!("pplx-{}", f(ALNUM, 48, 10))),
        ("xai_api_key", format!("xai-{}", f(ALNUM, 80, 11))),
        ("fireworks_api_key", format!("fw_{}", f(ALNUM, 24, 12))),
        ("langsmith_api_key", format!("lsv2_pt_{}_{}", f(HEX, 32, 13), f(HEX, 10, 14))),
        ("pinecone_api_key", format!("pcsk_{}_{}", f(ALNUM, 6, 15), f(ALNUM, 60, 16))),
        ("nvidia_api_key", format!("nvapi-{}", f(B64URL, 64, 17))),
        ("jina_api_key", format!("jina_{}{}", f(HEX, 32, 18), f(ALNUM, 28, 19))),
        ("anyscale_api_key", format!("esecret_{}", f(ALNUM, 26, 20))),
        ("elevenlabs_api_key", format!("sk_{}", f(HEX, 48, 21))),
        ("cohere_api_key", format!("COHERE_API_KEY={}", f(ALNUM, 40, 22))),
        ("mistral_api_key", format!("MISTRAL_API_KEY=\"{}\"", f(ALNUM, 32, 23))),
        ("atlassian_token", format!("ATATT3xFfGF0{}={}", f(B64URL, 180, 24), f("0123456789ABCDEF", 8, 25))),
        ("bitbucket_token", format!("ATBB{}", f(ALNUM, 32, 26))),
        ("twilio_key", format!("SK{}", f(HEX, 32, 27))),
        ("twilio_key", format!("TWILIO_AUTH_TOKEN={}", f(HEX, 32, 28))),
        ("mailchimp_api_key", format!("{}-us21", f(HEX, 32, 29))),
        ("mailchimp_api_key", format!("md-{}", f(B64URL, 22, 30))),
        ("datadog_key", format!("DD_API_KEY={}", f(HEX, 32, 31))),
        ("docker_hub_token", format!("dckr_pat_{}", f(B64URL, 27, 32))),
        ("heroku_api_key", format!("HRKU-AA{}", f(B64URL, 58, 33))),
        ("heroku_api_key", format!("HEROKU_API_KEY={}", uuid(34))),
        ("vercel_token", format!("vcp_{}", f(ALNUM, 56, 35))),
        ("netlify_token", format!("nfp_{}", f(ALNUM, 36, 36))),
        ("supabase_key", format!("sbp_{}", f(HEX, 40, 37))),
        ("supabase_key", format!("sb_secret_{}", f(B64URL, 31, 38))),
        ("cloudflare_key", format!("v1.0-{}-{}", f(HEX, 24, 39), f(HEX, 146, 40))),
        ("cloudflare_key", format!("CLOUDFLARE_API_TOKEN={}", f(B64URL, 40, 41))),
        ("fly_token", format!("fo1_{}", f(B64URL, 43, 42))),
        ("render_api_key", format!("rnd_{}", f(ALNUM, 32, 43))),
        ("terraform_token", format!("{}.atlasv1.{}", f(ALNUM, 14, 44), f(B64URL, 67, 45))),
        ("pulumi_token", format!("pul-{}", f(HEX, 40, 46))),
        ("sentry_token", format!("sntryu_{}", f(HEX, 64, 47))),
        ("discord_token", format!("https://discord.com/api/webhooks/{}/{}", f("0123456789", 18, 48), f(B64URL, 68, 49))),
        ("discord_token", format!("discord bot token M{}.{}.{}", f(ALNUM, 25, 50), f(B64URL, 6, 51), f(B64URL, 38, 52))),
        ("telegram_bot_token", format!("123456789:AA{}", f(B64URL, 33, 53))),
        ("teams_webhook", format!("https://acme.webhook.office.com/webhookb2/{}@{}/IncomingWebhook/{}/{}", uuid(54), uuid(55), f(HEX, 32, 56), uuid(57))),
        ("braintree_token", format!("access_token$production${}${}", f(LOWER_DIGITS, 16, 58), f(HEX, 32, 59))),
        ("plaid_token", format!("access-sandbox-{}", uuid(60))),
        ("airtable_token", format!("pat{}.{}", f(ALNUM, 14, 61), f(HEX, 64, 62))),
        ("notion_token", format!("ntn_{}{}", f("0123456789", 11, 63), f(ALNUM, 35, 64))),
        ("asana_token", format!("2/{}/{}:{}", f("0123456789", 16, 65), f("0123456789", 16, 66), f(ALNUM, 32, 67))),
        ("clickup_token", format!("pk_{}_{}", f("0123456789", 8, 68), f(UPPER_DIGITS, 32, 69))),
        ("figma_token", format!("figd_{}", f(B64URL, 40, 70))),
        ("dropbox_token", format!("sl.{}", f(B64URL, 140, 71))),
        ("contentful_token", format!("CFPAT-{}", f(B64URL, 43, 72))),
        ("prefect_api_key", format!("pnu_{}", f(ALNUM, 36, 73))),
        ("typeform_token", format!("tfp_{}", f(ALNUM, 59, 74))),
        ("shippo_token", format!("shippo_live_{}", f(HEX, 40, 75))),
        ("easypost_key", format!("EZAK{}", f(ALNUM, 54, 76))),
        ("flutterwave_key", format!("FLWSECK-{}-X", f("abcdefgh0123456789", 32, 77))),
        ("mapbox_token", format!("sk.eyJ1{}.{}", f(B64URL, 60, 78), f(B64URL, 22, 79))),
        ("sonarqube_token", format!("sqp_{}", f(HEX, 40, 80))),
        ("jfrog_token", format!("AKCp{}", f(ALNUM, 69, 81))),
        ("rubygems_api_key", format!("rubygems_{}", f(HEX, 48, 82))),
        ("nuget_api_key", format!("oy2{}", f(LOWER_DIGITS, 43, 83))),
        ("crates_io_token", format!("cio{}", f(ALNUM, 32, 84))),
        ("clojars_token", format!("CLOJARS_{}", f(LOWER_DIGITS, 60, 85))),
        ("onepassword_token", format!("ops_eyJ{}", f(ALNUM, 300, 86))),
        ("onepassword_token", format!("A3-{}-{}-{}-{}-{}-{}", f(UPPER_DIGITS, 6, 87), f(UPPER_DIGITS, 5, 88), f(UPPER_DIGITS, 5, 89), f(UPPER_DIGITS, 5, 90), f(UPPER_DIGITS, 5, 91), f(UPPER_DIGITS, 5, 92))),
        ("infracost_key", format!("ico-{}", f(ALNUM, 32, 93))),
        ("readme_api_key", format!("rdme_{}", f(LOWER_DIGITS, 70, 94))),
        ("brevo_api_key", format!("xkeysib-{}-{}", f(HEX, 64, 95), f(ALNUM, 16, 96))),
        ("hubspot_token", format!("pat-na1-{}", uuid(97))),
        ("salesforce_token", format!("00D{}!{}", f(ALNUM, 15, 98), f(ALNUM, 96, 99))),
        ("facebook_token", format!("EAAB{}", f(ALNUM, 120, 100))),
        ("twitter_bearer_token", format!("AAAAAAAAAAAAAAAAAAAAA{}", f(ALNUM, 80, 101))),
        ("alibaba_access_key", format!("LTAI{}", f(ALNUM, 20, 102))),
        ("tencent_secret_id", format!("AKID{}", f(ALNUM, 32, 103))),
        ("yandex_key", format!("AQVN{}", f(B64URL, 36, 104))),
        ("scaleway_key", format!("SCW{}", f(UPPER_DIGITS, 17, 105))),
        ("tailscale_key", format!("tskey-auth-{}-{}", f(ALNUM, 12, 106), f(ALNUM, 32, 107))),
        ("circleci_token", format!("CCIPAT_{}_{}", f(ALNUM, 22, 108), f(HEX, 40, 109))),
        ("buildkite_token", format!("bkua_{}", f(HEX, 40, 110))),
        ("harness_token", format!("pat.{}.{}.{}", f(B64URL, 22, 111), f(HEX, 24, 112), f(ALNUM, 20, 113))),
        ("octopus_api_key", format!("API-{}", f(UPPER_DIGITS, 26, 114))),
        ("dynatrace_token", format!("dt0c01.{}.{}", f(UPPER_DIGITS, 24, 115), f(UPPER_DIGITS, 64, 116))),
        ("planetscale_token", format!("pscale_tkn_{}", f(B64URL, 43, 117))),
        ("neon_api_key", format!("napi_{}", f(LOWER_DIGITS, 64, 118))),
        ("razorpay_key", format!("rzp_live_{}", f(ALNUM, 14, 119))),
        ("duffel_token", format!("duffel_test_{}", f(B64URL, 43, 120))),
        ("telnyx_api_key", format!("KEY0{}_{}", f("0123456789ABCDEF", 31, 121), f(ALNUM, 22, 122))),
        ("adafruit_key", format!("aio_{}", f(ALNUM, 28, 123))),
        ("launchdarkly_key", format!("sdk-{}", uuid(124))),
        ("okta_token", format!("Authorization: SSWS 00{}", f(B64URL, 40, 125))),
        ("square_token", format!("EAAA{}", f(B64URL, 60, 126))),
        ("huggingface_token", format!("api_org_{}", f("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 34, 127))),
        ("linear_api_key", format!("lin_oauth_{}", f(ALNUM, 64, 128))),
        ("new_relic_key", format!("NRII-{}", f(B64URL, 32, 129))),
        ("vault_token", format!("hvr.{}", f(B64URL, 30, 130))),
        ("gitlab_token", format!("GR1348941{}", f(B64URL, 20, 131))),
    ]
}

#[test]
fn provider_formats() {
    for (det, tok) in provider_examples() {
        let text = format!("config: {tok} (rotated)");
        let f = found(&text);
        assert!(f.iter().any(|(d, v)| *d == det && tok.contains(v.as_str()) && v.len() >= 12), "{det}: not found in {text:?}: {f:?}");
    }
    // Every provider detector has at least one example.
    let names: std::collections::BTreeSet<&str> = provider_examples().iter().map(|(d, _)| *d).collect();
    for d in Detector::ALL {
        let first_gen = (Detector::PrivateKey as u8..=Detector::AgeSecretKey as u8).contains(&(*d as u8));
        let provider = (Detector::AwsSessionToken as u8..=Detector::OktaToken as u8).contains(&(*d as u8));
        assert!(!provider || first_gen || names.contains(d.name()), "{}: no example", d.name());
    }
}

#[test]
fn provider_prefixes_alone_are_not_tokens() {
    for text in [
        "the gsk_ prefix", "r8_ is short", "sk_ then nothing", "pat.abc", "SKU 12345", "ask the desk",
        "API-docs", "pk_live is public", "the sl. abbreviation", "oy2 okay", "cio of the company", "an 00D id",
        "LTAI", "ATBB", "tskey-auth-", "pcsk_x_y", "1/2 of it", "2/3 done", "fw_version 1.2", "dd_trace enabled",
    ] {
        let f = found(text);
        assert!(f.is_empty(), "{text:?}: {f:?}");
    }
}

#[test]
fn github_checksum_finds_glued_tokens() {
    let random = fill(ALNUM, 30, 7);
    let tok = format!("ghp_{random}{}", crate::mask::validate::base62(crate::mask::validate::crc32(random.as_bytes()), 6));
    hits("github_token", &[(&format!("xtoken{tok}"), &tok)]);
    let bad = format!("ghp_{random}AAAAAA");
    misses("github_token", &[&format!("xtoken{bad}")]);
}

#[test]
fn private_keys_and_certificates() {
    let ppk = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5\nAAAAIE\nPrivate-Lines: 1\nAAAAIFaK3\nPrivate-MAC: 3f9a1c2b7d4e5f60";
    hits("private_key", &[(&format!("file:\n{ppk}\nend"), ppk)]);
    let ssh2 = "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAi4AAAA3\n---- END SSH2 ENCRYPTED PRIVATE KEY ----";
    hits("private_key", &[(ssh2, ssh2)]);
    let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----";
    hits("certificate", &[(&format!("pem: {cert} ok"), cert)]);
    misses("certificate", &["-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"]);
}

#[test]
fn passwords_in_prose_and_commands() {
    hits("password_in_text", &[
        ("I tried logging in with password Maple!River58 but it failed", "Maple!River58"),
        ("the password is `Tr0ub4dor&3`.", "Tr0ub4dor&3"),
        ("new pwd (Kestrel#2291) works", "Kestrel#2291"),
        ("the password for the admin account is Quartz7781.", "Quartz7781"),
        ("Password: \"s3cret pass!\"", "s3cret pass!"),
    ]);
    misses("password_in_text", &[
        "reset your password by email", "the password manager is open", "password policy requires 12 characters",
        "password-protected zip", "password for the admin account is required", "enter the password $DB_PASSWORD",
        "password was re-enter", "passwords are hashed with bcrypt",
    ]);
    hits("password_flag", &[
        ("mysql -u admin -pAutumn2026! billing", "Autumn2026!"),
        ("mysqldump --user=root --password=Hx9!kLp2 shop > dump.sql", "Hx9!kLp2"),
        ("sshpass -p 'W1nter!9' ssh deploy@host", "W1nter!9"),
        ("redis-cli -h cache -a Zr8#pq2Lm ping", "Zr8#pq2Lm"),
        ("curl -u admin:Sup3rS3cret https://api.example.com", "Sup3rS3cret"),
        ("keytool -list -storepass changeit9 -keystore a.jks", "changeit9"),
        ("deploy --token q8Zt3xLw9PmK2vB7nR4c --env prod", "q8Zt3xLw9PmK2vB7nR4c"),
    ]);
    misses("password_flag", &["mysql -p billing", "ssh -p 2222 host", "mysql --password=$MYSQL_PWD", "docker run -p 8080:80 img", "git log -p main"]);
    hits("password_assignment", &[("DB_PASS=hunter2x", "hunter2x"), ("PGPASSWORD=Pg!2026x psql -h db", "Pg!2026x"), ("Server=db;User Id=sa;Password=Autumn2026!;", "Autumn2026!")]);
    hits("connection_string_password", &[("redis://:r3disPass@cache:6379/0", "r3disPass")]);
}

/// Each text holds one spelling a rule's pattern accepts and no other trigger, so only that
/// spelling's own trigger can wake the rule (found missing in review: the pattern accepted
/// these, the trigger list did not).
#[test]
fn every_spelling_a_rule_accepts_wakes_it() {
    hits("password_in_text", &[
        ("the passphrase for the vault is Xk9!mQ2pLz", "Xk9!mQ2pLz"),
        ("the passcode for the door is Qw7#rT5yUi", "Qw7#rT5yUi"),
        ("pw for root: Zr8#pq2Lm", "Zr8#pq2Lm"),
    ]);
    hits("password_flag", &[
        ("keytool -importkeystore -srcstorepass Chg9it1x -destkeystore b.jks", "Chg9it1x"),
        ("keytool -importkeystore -deststorepass Chg9it1x -destkeystore b.jks", "Chg9it1x"),
        ("curl -u=admin:Sup3rS3cret https://api.example.com", "Sup3rS3cret"),
        ("curl -u\tadmin:Sup3rS3cret https://api.example.com", "Sup3rS3cret"),
    ]);
    // Found missing in review (session 8): `vcc_`, `DD-API-KEY`, `d.ob` / `do.b`.
    hits("vercel_token", &[("deploy with vcc_Ab3dE5fG7hJ9kL1mN3pQ5rS7t", "vcc_Ab3dE5fG7hJ9kL1mN3pQ5rS7t")]);
    hits("date_of_birth", &[("d.ob: 1985-03-14", "1985-03-14"), ("do.b 1985-03-14", "1985-03-14")]);
    hits("datadog_key", &[("DD-API-KEY=0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"), ("dd.app.key: 0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567")]);
    // The two characters Unicode folds to ASCII letters, which `(?i)` regexes accept: the
    // trigger pass must see `password` in `pasſword` and `key` in `\u{212A}ey`.
    hits("password_assignment", &[("pasſword=Xk9mQ2pLz7w", "Xk9mQ2pLz7w"), ("ſecret: Xk9mQ2pLz7w", "Xk9mQ2pLz7w")]);
    hits("generic_secret", &[("api_\u{212A}ey = \"Qm9vT2tlbkZvclRlc3Rpbmc5OQ\"", "Qm9vT2tlbkZvclRlc3Rpbmc5OQ")]);
}

#[test]
fn secrets_and_tokens_in_prose() {
    hits("secret_in_text", &[
        ("The secret key (kq3VfP9sLm2Rx9Tb) was committed together with the config", "kq3VfP9sLm2Rx9Tb"),
        ("rejected with 401 even with token Zx81bQ0pLmN3kRt5Vw7Y", "Zx81bQ0pLmN3kRt5Vw7Y"),
        ("the api key for staging is 7f3a9c2e1b4d8f60a5c7e9b1d3f5a7c9", "7f3a9c2e1b4d8f60a5c7e9b1d3f5a7c9"),
        ("use the access key 'QmVyeSBzZWNyZXQgdmFsdWU1'", "QmVyeSBzZWNyZXQgdmFsdWU1"),
        ("credentials: hT6yUq2WzX9pLk3M", "hT6yUq2WzX9pLk3M"),
    ]);
    misses("secret_in_text", &[
        "the token limit was exceeded after 4096 tokens", "token 550e8400-e29b-41d4-a716-446655440000",
        "the secret is to retry", "token expired at 2026-11-25T12:00:00Z", "api key rotation schedule",
        "max_tokens=4096", "the secret sauce", "token count 128000",
    ]);
    hits("google_oauth_token", &[("rejected with 401 even with token ya29.a0AfH6SMBx3kQ9pL2mN8vR7tY", "ya29.a0AfH6SMBx3kQ9pL2mN8vR7tY")]);
    hits("aws_secret_access_key", &[("AKIAIOSFODNN7EXAMPLE,Jx7kP2mQ9vR4tY6wZ1bN3cF5hL8sD0gA2eK4uI6o", "Jx7kP2mQ9vR4tY6wZ1bN3cF5hL8sD0gA2eK4uI6o")]);
    misses("aws_secret_access_key", &["sha 3f9a1c2b7d4e5f60718293a4b5c6d7e8f9012345", "crates/core/src/mask/detectors/Providers", "abcdefghijklmnopqrstuvwxyzabcdefghijklmn"]);
    hits("cookie_header", &[("Cookie: session=eyJpZCI6MX0; csrftoken=abc123", "session=eyJpZCI6MX0; csrftoken=abc123")]);
}

#[test]
fn more_pii() {
    hits("date_of_birth", &[("DOB: 1985-03-14", "1985-03-14"), ("born on 14 March 1985 in Leeds", "14 March 1985"), ("date of birth 03/14/1985", "03/14/1985"), ("Geburtsdatum: 14.03.1985", "14.03.1985")]);
    misses("date_of_birth", &["deployed on 2026-03-14", "at 2026-11-25T12:00:00Z", "birthday party planning"]);
    hits("postal_address", &[
        ("ship to 1600 Pennsylvania Ave NW, Washington, DC 20500 today", "1600 Pennsylvania Ave NW, Washington, DC 20500"),
        ("lives at 221B Baker Street, London NW1 6XE.", "221B Baker Street, London NW1 6XE"),
        ("Adresse: Hauptstraße 5, 10115 Berlin", "Hauptstraße 5, 10115 Berlin"),
        ("postcode: SW1A 1AA", "SW1A 1AA"),
    ]);
    misses("postal_address", &["retry 3 Times Faster", "step 2 Build Stage", "the street was quiet", "version 2 St"]);
    hits("uk_nino", &[("NI number AB 12 34 56 C", "AB 12 34 56 C"), ("nino=JG103759A;", "JG103759A")]);
    misses("uk_nino", &["GB 12 34 56 A", "QQ123456C", "AB123456E", "AB1234567C"]);
    hits("nhs_number", &[("NHS 943 476 5919", "943 476 5919"), ("nhs number: 9434765919", "9434765919")]);
    misses("nhs_number", &["order 9434765919", "943 476 5918"]);
    hits("de_tax_id", &[("Steuer-ID: 86 095 742 719", "86 095 742 719")]);
    misses("de_tax_id", &["Steuer-ID: 86 095 742 718", "invoice 86095742719"]);
    hits("aadhaar", &[("Aadhaar 2341 2341 2346", "2341 2341 2346")]);
    misses("aadhaar", &["2341 2341 2345", "order 234123412346"]);
    hits("india_pan", &[("PAN: ABCPE1234F", "ABCPE1234F")]);
    misses("india_pan", &["ABCDE1234F", "SKU ABCPE12345"]);
    hits("passport_number", &[
        ("passport no. 533380006", "533380006"),
        ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10", "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"),
    ]);
    misses("passport_number", &["passport photo required", "L898902C37UTO7408122F1204159ZE184226B<<<<<10"]);
    hits("es_dni", &[("DNI 12345678Z", "12345678Z"), ("NIE X1234567L.", "X1234567L"), ("dni 12345678-Z", "12345678-Z")]);
    misses("es_dni", &["12345678A", "ref 12345678Zq"]);
    hits("mac_address", &[("mac 00:1a:2b:3c:4d:5e up", "00:1a:2b:3c:4d:5e"), ("hw 00-1A-2B-3C-4D-5E", "00-1A-2B-3C-4D-5E")]);
    misses("mac_address", &["12:30:45", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "2024-01-15-10-30-45"]);
    hits("crypto_wallet", &[
        ("send to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        ("eth 0x52908400098527886E0F7030069857D2E4169EE7", "0x52908400098527886E0F7030069857D2E4169EE7"),
    ]);
    misses("crypto_wallet", &["1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "0x52908400098527886E0F7030069857D2E4169EE", "tx 0x5290840009852788"]);
    hits("us_routing_number", &[("routing number 021000021", "021000021"), ("ABA: 011000015", "011000015")]);
    misses("us_routing_number", &["routing number 021000022", "order 021000021"]);
}

#[test]
fn person_names() {
    hits("person_name", &[
        ("ticket from Priya Patel about billing", "Priya Patel"),
        ("Hi Maria, the refund is done", "Maria"),
        ("Thanks,\nJohn", "John"),
        ("my name is José García and", "José García"),
        ("assigned to John F. Kennedy", "John F. Kennedy"),
        ("full_name: Zoë Müller", "Zoë Müller"),
        ("Dr. Okafor reviewed it", "Okafor"),
        ("\"author\": \"Łukasz Kowalski\"", "Łukasz Kowalski"),
        ("Best regards,\nSiobhán Kelly", "Siobhán Kelly"),
        ("Will Smith called", "Will Smith"),
    ]);
    misses("person_name", &[
        "May the deploy succeed", "Will the job finish?", "Grant access to the bucket", "Mark the task as done",
        "Visual Studio Code crashed", "Ruby Rails upgrade", "Apache Kafka lag", "Will Power", "GRANT SELECT ON users",
        "Jenkins Pipeline failed", "Build Status: Green", "200 ms. Then retry", "Amazon Web Services",
        "function getUserName() returns", "Hi team, the build is green", "Dear Customer,",
    ]);
}


/// The engine without its byte-class gate: every scanner on every text.
fn ungated(engine: &Engine, text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    if b.len() < MIN_SCAN_LEN || (b.len() < 20 && b.iter().all(u8::is_ascii_alphabetic)) {
        return out;
    }
    engine.secrets(text, gate::Classes::MAX, all(), &mut out);
    shapes::scan(b, all(), &mut out);
    pii::scan(b, gate::Classes::MAX, all(), &mut out);
    engine.names.scan(text, &mut out);
    out
}

/// The gate skips only scanners that cannot match: on texts built to need exactly the class a
/// gate tests (a digitless Twilio key, letter-only MACs and IPv6, non-ASCII names) and
/// on random texts over a mixed alphabet, the gated engine finds what every scanner finds.
#[test]
fn byte_class_gate_loses_nothing() {
    let engine = Engine::shared().unwrap_or_else(|e| unreachable!("{e}"));
    let mut texts: Vec<String> = [
        "crates token ciozqxwvjkplmnbhgfdsaertyuioplkjhqw here",
        "mac ab-cd-ef-ab-cd-ef on eth0",
        "route via dead:beef:cafe:babe::face now",
        "mac ab:cd:ef:ab:cd:ef",
        "thanks,\nÉmile",
        "signed, zoë",
        "SKabcdefabcdefabcdefabcdefabcdefab",
        "write to alice@example.com today",
        "Hi Thandiwe, thanks",
        "a b c d e f g",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let alphabet: Vec<char> = "abcdefxyzABCDEFXYZ0123456789 @:-._/+=é\n".chars().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = 6 + (x % 60) as usize;
        let pool = &alphabet[..alphabet.len().min(8 + (x >> 8) as usize % alphabet.len())];
        let s: String = (0..n)
            .map(|i| {
                let r = x.rotate_left(i as u32 * 7) ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
                pool[(r >> 11) as usize % pool.len()]
            })
            .collect();
        texts.push(s);
    }
    let key = |s: &Span| (s.start, s.end, s.detector);
    for t in &texts {
        let mut gated = Vec::new();
        engine.scan(t, all(), &mut gated);
        let mut want = ungated(&engine, t);
        gated.sort_unstable_by_key(key);
        want.sort_unstable_by_key(key);
        assert_eq!(gated, want, "{t:?}");
    }
    // The hand-written texts do hold what the gates test for.
    for (text, det) in [(6, "twilio_key"), (1, "mac_address"), (2, "ipv6"), (4, "person_name")] {
        let f = found(&texts[text]);
        assert!(f.iter().any(|(d, _)| *d == det), "{det} not found in {:?}: {f:?}", texts[text]);
    }
}
