//! Secret rules: one regex per credential format, woken up by trigger literals.
//!
//! The formats are public facts about each vendor's tokens (prefixes, alphabets, lengths),
//! expressed here in our own patterns. A rule either masks its whole match or, when the match
//! includes context such as `password=`, only its capture group(s): the first group that took
//! part in the match is the secret.

use regex::Regex;

use super::{Detector, Span};
use crate::mask::validate::looks_random;

/// After-the-fact checks that keep keyword-driven rules off ordinary words.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    None,
    /// Letters and digits mixed, entropy at least this many bits per byte.
    Random(f64),
    /// A credential rather than a word: has a digit or a symbol, or is at least this long.
    TokenLike(usize),
    /// Not a literal placeholder such as `null` or `true`.
    NotPlaceholder,
    /// A validator over the secret's bytes (checksums, password shape, ...).
    Valid(fn(&[u8]) -> bool),
}

/// One rule as written: detector, trigger literals, pattern, check, bounded.
pub type Spec = (Detector, &'static [&'static str], String, Check, bool);

#[derive(Debug)]
pub struct Rule {
    pub detector: Detector,
    pub triggers: &'static [&'static str],
    re: Regex,
    check: Check,
    /// The byte after the secret must not continue the token (so `{40}` does not cut a longer word).
    bounded: bool,
}

/// Token bytes for the `bounded` test.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=')
}

impl Rule {
    pub fn find(&self, text: &str, out: &mut Vec<Span>) {
        let groups = self.re.captures_len() > 1;
        if !groups {
            for m in self.re.find_iter(text) {
                self.push(text, m.start(), m.end(), out);
            }
            return;
        }
        for caps in self.re.captures_iter(text) {
            if let Some(m) = caps.iter().skip(1).flatten().next() {
                self.push(text, m.start(), m.end(), out);
            }
        }
    }

    fn push(&self, text: &str, start: usize, end: usize, out: &mut Vec<Span>) {
        let b = text.as_bytes();
        let Some(value) = b.get(start..end) else { return };
        if value.is_empty() {
            return;
        }
        if self.bounded && b.get(end).is_some_and(|&c| token_byte(c)) {
            return;
        }
        let ok = match self.check {
            Check::None => true,
            Check::Random(min) => looks_random(value, min),
            Check::TokenLike(len) => {
                value.len() >= len || value.iter().any(|c| !c.is_ascii_alphabetic())
            }
            Check::NotPlaceholder => {
                let v = String::from_utf8_lossy(value).to_ascii_lowercase();
                !matches!(v.as_str(), "null" | "none" | "true" | "false" | "undefined" | "nil")
            }
            Check::Valid(f) => f(value),
        };
        if ok {
            out.push(Span { start, end, detector: self.detector });
        }
    }
}

/// The separator between a name and its value: `=`, `:`, `:=`, `=>`, optional quotes and blanks.
/// A quote may be escaped (`\"`), as in JSON or logfmt embedded in text.
const ASSIGN: &str = r#"\\?["']?[ \t]*(?::=|=>|[:=])[ \t]*"#;

pub fn rules() -> Result<Vec<Rule>, String> {
    use Detector as D;
    let generic_names = r"(?:api[_\-.]?key|apikey|access[_\-.]?key|secret[_\-.]?key|private[_\-.]?key|client[_\-.]?secret|auth[_\-.]?token|access[_\-.]?token|refresh[_\-.]?token|session[_\-.]?token|api[_\-.]?token|token|credentials?|signing[_\-.]?key|encryption[_\-.]?key|master[_\-.]?key|secret)";
    let mut specs: Vec<Spec> = vec![
        (D::PrivateKey, &["-----BEGIN"],
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)".into(),
            Check::None, false),
        (D::PrivateKey, &["---- BEGIN SSH2"],
            r"---- BEGIN SSH2 (?:ENCRYPTED )?PRIVATE KEY ----(?:[\s\S]*?---- END SSH2 (?:ENCRYPTED )?PRIVATE KEY ----|[\s\S]*)".into(),
            Check::None, false),
        (D::PrivateKey, &["PuTTY-User-Key-File-"],
            r"PuTTY-User-Key-File-[0-9]+:[^\n]*(?:[\s\S]*?Private-(?:MAC|Hash):[ \t]*[0-9a-fA-F]+|[\s\S]*)".into(),
            Check::None, false),
        (D::AwsAccessKeyId, &["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
            r"(?-u:\b)(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?-u:\b)".into(), Check::None, false),
        (D::AwsSecretAccessKey, &["aws"],
            format!(r"(?i)aws[a-z0-9_\-. ]{{0,20}}(?:secret|sk)[a-z0-9_\-. ]{{0,20}}{ASSIGN}\\?[\x22']?([A-Za-z0-9/+]{{40}})"),
            Check::None, true),
        (D::GithubToken, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
            r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{36,255}".into(), Check::None, true),
        (D::GithubPat, &["github_pat_"], r"github_pat_[A-Za-z0-9_]{22,255}".into(), Check::None, true),
        (D::GitlabToken, &["glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glft-", "glimt-", "gloas-", "glsoat-", "glagent-"],
            r"gl(?:pat|dt|ptt|rt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_\-]{20,255}".into(), Check::None, true),
        (D::SlackToken, &["xox", "xapp-"],
            r"xox[abposre]-[A-Za-z0-9\-]{10,255}|xoxe\.xox[bp]-[A-Za-z0-9\-]{10,255}|xapp-[0-9]-[A-Za-z0-9\-]{10,255}".into(),
            Check::None, false),
        (D::SlackWebhook, &["hooks.slack.com"],
            r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,}".into(), Check::None, false),
        (D::AnthropicApiKey, &["sk-ant-"], r"sk-ant-[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_\-]{20,255}".into(), Check::None, false),
        (D::OpenaiApiKey, &["sk-"],
            r"(?-u:\b)sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,255}".into(), Check::Random(3.0), false),
        (D::StripeKey, &["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"],
            r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9+/=]{24,}".into(), Check::None, false),
        (D::GoogleApiKey, &["AIza"], r"AIza[0-9A-Za-z_\-]{35}".into(), Check::None, true),
        (D::NpmToken, &["npm_"], r"(?-u:\b)npm_[A-Za-z0-9]{36}".into(), Check::None, true),
        (D::PypiToken, &["pypi-AgEIcHlwaS5vcmc"], r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}".into(), Check::None, false),
        (D::SendgridApiKey, &["SG."], r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}".into(), Check::None, true),
        (D::HuggingfaceToken, &["hf_"], r"(?-u:\b)hf_[A-Za-z]{34}".into(), Check::None, true),
        (D::DigitaloceanToken, &["dop_v1_", "doo_v1_", "dor_v1_"], r"do[por]_v1_[a-f0-9]{64}".into(), Check::None, true),
        (D::ShopifyToken, &["shpat_", "shpca_", "shppa_", "shpss_"], r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}".into(), Check::None, true),
        (D::AzureStorageKey, &["AccountKey="], r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)".into(), Check::None, false),
        (D::AzureAdClientSecret, &["Q~"],
            r"(?-u:\b)[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}".into(), Check::None, true),
        (D::MailgunApiKey, &["key-"], r"(?-u:\b)key-[0-9a-zA-Z]{32}".into(), Check::Random(3.0), true),
        (D::SquareToken, &["sq0atp-", "sq0csp-"], r"sq0atp-[0-9A-Za-z_\-]{22}|sq0csp-[0-9A-Za-z_\-]{43}".into(), Check::None, true),
        (D::DatabricksToken, &["dapi"], r"(?-u:\b)dapi[a-f0-9]{32}(?:-[0-9])?".into(), Check::None, true),
        (D::LinearApiKey, &["lin_api_"], r"lin_api_[A-Za-z0-9]{40}".into(), Check::None, true),
        (D::GrafanaToken, &["glc_", "glsa_"],
            r"glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}".into(), Check::None, false),
        (D::NewRelicKey, &["NRAK-"], r"NRAK-[A-Z0-9]{27}".into(), Check::None, true),
        (D::PostmanApiKey, &["PMAK-"], r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}".into(), Check::None, true),
        (D::DopplerToken, &["dp."], r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}".into(), Check::None, true),
        (D::VaultToken, &["hvs.", "hvb."], r"hv[sb]\.[A-Za-z0-9_\-]{24,400}".into(), Check::None, true),
        (D::AgeSecretKey, &["AGE-SECRET-KEY-1"], r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}".into(), Check::None, false),
        (D::Jwt, &["eyJ"],
            r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*".into(), Check::None, false),
        (D::BearerToken, &["bearer"],
            r"(?i)(?-u:\b)bearer[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)".into(), Check::TokenLike(24), false),
        (D::AuthorizationHeader, &["authorization"],
            r#"(?i)authorization["']?[ \t]*[:=][ \t]*["']?(?:(?:bearer|basic|token|digest|negotiate|apikey|sso-key)[ \t]+)?([^\s"',;]{6,})"#.into(),
            Check::TokenLike(16), false),
        (D::ConnectionStringPassword, &["://"],
            r#"(?i)[a-z][a-z0-9+.\-]{1,30}://[^\s:/@"'<>]{0,128}:([^\s@/"'<>]{1,256})@[A-Za-z0-9\[]"#.into(), Check::None, false),
        (D::PasswordAssignment, &["passw", "passphrase", "pwd", "secret"],
            format!(r#"(?i)(?:password|passwd|passphrase|pwd|secret)[a-z0-9_\-.]{{0,30}}{ASSIGN}(?:\\?"([^"\\\r\n]{{1,256}})\\?"|'([^'\r\n]{{1,256}})'|([^\s"',;&<>\\]{{1,256}}))"#),
            Check::NotPlaceholder, false),
        (D::GenericSecret, &["key", "token", "secret", "credential"],
            format!(r#"(?i){generic_names}[a-z0-9_\-.]{{0,20}}(?:{ASSIGN}|[ \t]+(?:is|was)[ \t]+)\\?["']?([A-Za-z0-9_\-+/=.~]{{16,512}})"#),
            Check::Random(3.0), true),
    ];
    specs.extend(super::providers::specs());
    specs.extend(super::context::specs());
    specs
        .into_iter()
        .map(|(detector, triggers, pattern, check, bounded)| {
            let re = Regex::new(&pattern).map_err(|e| format!("detector `{}` does not compile: {e}", detector.name()))?;
            Ok(Rule { detector, triggers, re, check, bounded })
        })
        .collect()
}
