//! The detector catalog and the engine that finds their matches in one string.
//!
//! Speed comes from not running every rule over every string: one ASCII case-insensitive
//! Aho-Corasick automaton finds trigger literals (`AKIA`, `ghp_`, `password`, `-----BEGIN`, ...)
//! and only the rules whose triggers occur run their regex; PII is found by hand-written scanners
//! keyed on cheap byte classes (`@` for email, digit runs for cards, phones, SSNs, IBANs and IPv4,
//! `:` for IPv6), and checksum validators run only on those candidates. The compiled engine is
//! built once per process and shared by every role.

mod pii;
mod secrets;

use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

/// What kind of data a detector finds; a policy sets one operator per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Secret,
    Pii,
    /// Values found by the name of their key, not their content.
    Key,
}

macro_rules! detectors {
    ($( $id:ident = $name:literal, $class:ident, $doc:literal; )*) => {
        /// A named detector a policy can select. Declaration order is priority: when two
        /// detections overlap, the union is masked under the earlier one (secrets first).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum Detector { $( #[doc = $doc] $id, )* }

        impl Detector {
            pub const ALL: &'static [Detector] = &[ $( Detector::$id, )* ];

            /// The name a policy uses, e.g. `email`.
            pub fn name(self) -> &'static str {
                match self { $( Detector::$id => $name, )* }
            }

            pub fn class(self) -> Class {
                match self { $( Detector::$id => Class::$class, )* }
            }

            pub fn doc(self) -> &'static str {
                match self { $( Detector::$id => $doc, )* }
            }
        }
    };
}

detectors! {
    PrivateKey = "private_key", Secret, "PEM/PGP private key blocks, the whole block (to the end of the text if the END line is missing).";
    AwsAccessKeyId = "aws_access_key_id", Secret, "AWS access key ids (`AKIA`, `ASIA`, ... + 16 base32 characters).";
    AwsSecretAccessKey = "aws_secret_access_key", Secret, "40-character AWS secret keys assigned next to an `aws ... secret` name.";
    GithubToken = "github_token", Secret, "GitHub classic tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`.";
    GithubPat = "github_pat", Secret, "GitHub fine-grained personal access tokens (`github_pat_`).";
    GitlabToken = "gitlab_token", Secret, "GitLab tokens (`glpat-`, `gldt-`, `glrt-`, ...).";
    SlackToken = "slack_token", Secret, "Slack bot, user, app and refresh tokens (`xoxb-`, `xoxp-`, `xapp-`, ...).";
    SlackWebhook = "slack_webhook", Secret, "Slack incoming-webhook and workflow URLs.";
    AnthropicApiKey = "anthropic_api_key", Secret, "Anthropic API keys (`sk-ant-...`).";
    OpenaiApiKey = "openai_api_key", Secret, "OpenAI-style `sk-` / `sk-proj-` API keys.";
    StripeKey = "stripe_key", Secret, "Stripe secret and restricted keys and webhook secrets.";
    GoogleApiKey = "google_api_key", Secret, "Google API keys (`AIza` + 35 characters).";
    NpmToken = "npm_token", Secret, "npm access tokens (`npm_`).";
    PypiToken = "pypi_token", Secret, "PyPI upload tokens.";
    SendgridApiKey = "sendgrid_api_key", Secret, "SendGrid API keys (`SG.`).";
    HuggingfaceToken = "huggingface_token", Secret, "Hugging Face access tokens (`hf_`).";
    DigitaloceanToken = "digitalocean_token", Secret, "DigitalOcean tokens (`dop_v1_`, `doo_v1_`, `dor_v1_`).";
    ShopifyToken = "shopify_token", Secret, "Shopify access tokens (`shpat_`, `shpca_`, `shppa_`, `shpss_`).";
    AzureStorageKey = "azure_storage_key", Secret, "Azure storage account keys in connection strings (`AccountKey=`).";
    AzureAdClientSecret = "azure_ad_client_secret", Secret, "Microsoft Entra (Azure AD) client secrets (`...8Q~...`).";
    MailgunApiKey = "mailgun_api_key", Secret, "Mailgun API keys (`key-` + 32 characters).";
    SquareToken = "square_token", Secret, "Square access tokens and OAuth secrets (`sq0atp-`, `sq0csp-`).";
    DatabricksToken = "databricks_token", Secret, "Databricks personal access tokens (`dapi` + 32 hex).";
    LinearApiKey = "linear_api_key", Secret, "Linear API keys (`lin_api_`).";
    GrafanaToken = "grafana_token", Secret, "Grafana Cloud and service-account tokens (`glc_`, `glsa_`).";
    NewRelicKey = "new_relic_key", Secret, "New Relic user API keys (`NRAK-`).";
    PostmanApiKey = "postman_api_key", Secret, "Postman API keys (`PMAK-`).";
    DopplerToken = "doppler_token", Secret, "Doppler tokens (`dp.pt.`, `dp.st.`, ...).";
    VaultToken = "vault_token", Secret, "HashiCorp Vault service and batch tokens (`hvs.`, `hvb.`).";
    AgeSecretKey = "age_secret_key", Secret, "age encryption secret keys (`AGE-SECRET-KEY-1...`).";
    Jwt = "jwt", Secret, "JSON Web Tokens (three base64url parts, header and payload starting `eyJ`).";
    BearerToken = "bearer_token", Secret, "The credential after `Bearer`.";
    AuthorizationHeader = "authorization_header", Secret, "The credential in an `Authorization:` header (Basic, Token, Digest, ...).";
    ConnectionStringPassword = "connection_string_password", Secret, "The password in `scheme://user:password@host`.";
    PasswordAssignment = "password_assignment", Secret, "The value in `password=...`, `secret: ...`, `pwd := ...` and the like, in free text or code.";
    GenericSecret = "generic_secret", Secret, "A random-looking token assigned to a secret-like name (`api_key`, `token`, `client_secret`, ...).";
    Email = "email", Pii, "Email addresses.";
    CreditCard = "credit_card", Pii, "Payment card numbers (13–19 digits, issuer prefix 2–6, valid Luhn checksum).";
    UsSsn = "us_ssn", Pii, "US social security numbers written `AAA-GG-SSSS` or `AAA GG SSSS`, without never-issued areas (000, 666, 9xx), group 00 or serial 0000.";
    Iban = "iban", Pii, "IBANs, compact or in groups, with a valid mod-97 check and country length.";
    Phone = "phone", Pii, "Phone numbers: international (`+` and 8–15 digits) and national (`(415) 555-2671`, `415-555-2671`, `020 7946 0958`).";
    Ipv4 = "ipv4", Pii, "IPv4 addresses (dotted quads, octets 0–255, not part of a longer dotted number or `v1.2.3.4`).";
    Ipv6 = "ipv6", Pii, "IPv6 addresses with at least three groups (not `::1`).";
    KeyName = "key_name", Key, "Any value under a key named like a credential (`password`, `token`, `api_key`, `authorization`, `cookie`, ...).";
}

impl Detector {
    /// The label shown by `redact` and used as the pseudonym prefix: the name in capitals.
    pub fn label(self) -> String {
        self.name().to_ascii_uppercase()
    }

    pub fn parse(name: &str) -> Option<Detector> {
        Detector::ALL.iter().copied().find(|d| d.name() == name)
    }

    fn bit(self) -> u64 {
        1u64 << (self as u8)
    }
}

/// A set of detectors as a bitmask (there are fewer than 64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetSet(u64);

impl DetSet {
    pub fn insert(&mut self, d: Detector) {
        self.0 |= d.bit();
    }

    pub fn contains(self, d: Detector) -> bool {
        self.0 & d.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One detection: byte offsets into the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub detector: Detector,
}

/// The compiled detector set, shared by every masker.
#[derive(Debug)]
pub struct Engine {
    triggers: AhoCorasick,
    /// For each trigger pattern, the bitmask of rules (indexes into `rules`) it wakes up.
    trigger_rules: Vec<u64>,
    rules: Vec<secrets::Rule>,
}

static ENGINE: OnceLock<Result<Arc<Engine>, String>> = OnceLock::new();

impl Engine {
    /// The process-wide engine, compiled on first use (the patterns are fixed, so this either
    /// always works or always fails; a failure becomes a policy error, never a panic).
    pub fn shared() -> Result<Arc<Engine>, String> {
        ENGINE.get_or_init(|| Engine::build().map(Arc::new)).clone()
    }

    fn build() -> Result<Engine, String> {
        let rules = secrets::rules()?;
        let mut patterns: Vec<&'static str> = Vec::new();
        let mut trigger_rules: Vec<u64> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            for t in rule.triggers {
                match patterns.iter().position(|p| p.eq_ignore_ascii_case(t)) {
                    Some(j) => trigger_rules[j] |= 1 << i,
                    None => {
                        patterns.push(t);
                        trigger_rules.push(1 << i);
                    }
                }
            }
        }
        // Standard semantics report the earliest-ending match, so where one trigger contains
        // another (`sk-` in `sk-ant-`), the shorter one must also wake the longer one's rules.
        let snapshot = trigger_rules.clone();
        for (i, short) in patterns.iter().enumerate() {
            let short = short.to_ascii_lowercase();
            for (j, long) in patterns.iter().enumerate() {
                if i != j && long.to_ascii_lowercase().contains(&short) {
                    trigger_rules[i] |= snapshot[j];
                }
            }
        }
        let triggers = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .map_err(|e| format!("masking triggers do not compile: {e}"))?;
        Ok(Engine { triggers, trigger_rules, rules })
    }

    /// Finds every enabled detector's matches in `text`, appending them to `out` (unsorted,
    /// possibly overlapping).
    pub fn scan(&self, text: &str, enabled: DetSet, out: &mut Vec<Span>) {
        let b = text.as_bytes();
        if b.len() < MIN_SCAN_LEN {
            return;
        }
        if b.len() < 20 && b.iter().all(u8::is_ascii_alphabetic) {
            // Letters only, and too short for the two all-letter formats (AWS key ids and
            // Google keys need 20+ characters): no detector can match. This is most object
            // keys (`content`, `stringValue`), so it matters for speed.
            return;
        }
        self.secrets(text, enabled, out);
        pii::scan(b, enabled, out);
    }

    fn secrets(&self, text: &str, enabled: DetSet, out: &mut Vec<Span>) {
        // Every trigger occurrence is found: after a match the search resumes one byte after
        // its start (not its end), and a trigger that contains a shorter one also wakes the
        // shorter one's rules (see `build`), so no occurrence hides behind another.
        let mut fire = 0u64;
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.triggers.find(Input::new(text).span(pos..text.len())) else { break };
            if let Some(r) = self.trigger_rules.get(m.pattern().as_usize()) {
                fire |= r;
            }
            pos = m.start() + 1;
        }
        while fire != 0 {
            let i = fire.trailing_zeros() as usize;
            fire &= fire - 1;
            if let Some(rule) = self.rules.get(i) {
                if enabled.contains(rule.detector) {
                    rule.find(text, out);
                }
            }
        }
    }
}

/// No detector can match fewer bytes than this (`a@b.co`, `1.1.1.1` minus one).
pub const MIN_SCAN_LEN: usize = 6;

/// Sorts detections and merges overlapping ones into their union, labelled with the
/// highest-priority detector, so that whatever any detector found is masked.
pub fn merge(spans: &mut Vec<Span>) {
    if spans.len() < 2 {
        return;
    }
    spans.sort_unstable_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut w = 0;
    for r in 1..spans.len() {
        let cur = spans[r];
        let last = &mut spans[w];
        if cur.start < last.end {
            last.end = last.end.max(cur.end);
            last.detector = last.detector.min(cur.detector);
        } else {
            w += 1;
            spans[w] = cur;
        }
    }
    spans.truncate(w + 1);
}

#[cfg(test)]
mod tests;
