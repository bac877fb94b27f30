//! The detector catalog and the engine that finds their matches in one string.
//!
//! Speed comes from not running every rule over every string: one ASCII case-insensitive
//! Aho-Corasick automaton finds trigger literals (`AKIA`, `ghp_`, `password`, `-----BEGIN`, ...)
//! in one overlapping pass (`triggers`) and only the rules whose triggers occur run their regex (`secrets`
//! for the first-generation formats, `providers` for the rest, `context` for values announced
//! by words); PII is found by hand-written scanners keyed on cheap byte classes (`pii`: `@` for
//! email, digit runs for cards, phones, SSNs, IBANs, NHS and Aadhaar numbers and IPv4, `:` for
//! IPv6 and MACs), `shapes` classifies runs of letters and digits by length (AWS secrets without
//! a key name, wallets, NINO, PAN, DNI), and `names` looks capitalised words up in the census
//! lists. Checksum validators run only on candidates. Before the scanners, one table pass
//! (`gate`) finds which byte classes a text holds, and scanners whose anchor class is absent
//! are skipped. The compiled engine is built once per process and shared by every role.

mod context;
pub(super) mod gate;
mod names;
mod pii;
mod providers;
mod secrets;
mod shapes;
mod triggers;

use std::sync::{Arc, OnceLock};

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
    PrivateKey = "private_key", Secret, "Private keys of every armoured form, the whole block: PEM (`-----BEGIN … PRIVATE KEY-----`, PKCS#1/#8, EC, DSA, encrypted), PGP, OpenSSH, SSH2 (`---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----`) and PuTTY `.ppk` files (to the end of the text if the END line is missing).";
    AwsAccessKeyId = "aws_access_key_id", Secret, "AWS access key ids (`AKIA`, `ASIA`, ... + 16 base32 characters).";
    AwsSecretAccessKey = "aws_secret_access_key", Secret, "40-character AWS secret keys: assigned next to an `aws ... secret` name, or anywhere as a 40-character base64 token mixing cases and digits.";
    GithubToken = "github_token", Secret, "GitHub classic tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` (also glued to other text when their CRC32 checksum holds).";
    GithubPat = "github_pat", Secret, "GitHub fine-grained personal access tokens (`github_pat_`).";
    GitlabToken = "gitlab_token", Secret, "GitLab tokens (`glpat-`, `gldt-`, `glrt-`, ..., runner registration `GR1348941`).";
    SlackToken = "slack_token", Secret, "Slack bot, user, app and refresh tokens (`xoxb-`, `xoxp-`, `xapp-`, ...).";
    SlackWebhook = "slack_webhook", Secret, "Slack incoming-webhook and workflow URLs.";
    AnthropicApiKey = "anthropic_api_key", Secret, "Anthropic API keys (`sk-ant-...`).";
    OpenaiApiKey = "openai_api_key", Secret, "OpenAI-style `sk-` / `sk-proj-` API keys (also DeepSeek, OpenRouter `sk-or-v1-`).";
    StripeKey = "stripe_key", Secret, "Stripe secret and restricted keys and webhook secrets.";
    GoogleApiKey = "google_api_key", Secret, "Google API keys, Google AI / Gemini included (`AIza` + 35 characters).";
    NpmToken = "npm_token", Secret, "npm access tokens (`npm_`).";
    PypiToken = "pypi_token", Secret, "PyPI and TestPyPI upload tokens.";
    SendgridApiKey = "sendgrid_api_key", Secret, "SendGrid API keys (`SG.`).";
    HuggingfaceToken = "huggingface_token", Secret, "Hugging Face user and organisation tokens (`hf_`, `api_org_`).";
    DigitaloceanToken = "digitalocean_token", Secret, "DigitalOcean tokens (`dop_v1_`, `doo_v1_`, `dor_v1_`).";
    ShopifyToken = "shopify_token", Secret, "Shopify access tokens (`shpat_`, `shpca_`, `shppa_`, `shpss_`).";
    AzureStorageKey = "azure_storage_key", Secret, "Azure storage account keys in connection strings (`AccountKey=`).";
    AzureAdClientSecret = "azure_ad_client_secret", Secret, "Microsoft Entra (Azure AD) client secrets (`...8Q~...`).";
    MailgunApiKey = "mailgun_api_key", Secret, "Mailgun API keys (`key-` + 32 characters).";
    SquareToken = "square_token", Secret, "Square access tokens and OAuth secrets (`sq0atp-`, `sq0csp-`, `EAAA`).";
    DatabricksToken = "databricks_token", Secret, "Databricks personal access tokens (`dapi` + 32 hex).";
    LinearApiKey = "linear_api_key", Secret, "Linear API and OAuth keys (`lin_api_`, `lin_oauth_`).";
    GrafanaToken = "grafana_token", Secret, "Grafana Cloud, service-account and legacy API tokens (`glc_`, `glsa_`, `eyJrIjoi`).";
    NewRelicKey = "new_relic_key", Secret, "New Relic user, insert and browser keys (`NRAK-`, `NRII-`, `NRJS-`).";
    PostmanApiKey = "postman_api_key", Secret, "Postman API keys (`PMAK-`).";
    DopplerToken = "doppler_token", Secret, "Doppler tokens (`dp.pt.`, `dp.st.`, ...).";
    VaultToken = "vault_token", Secret, "HashiCorp Vault service, batch and recovery tokens (`hvs.`, `hvb.`, `hvr.`).";
    AgeSecretKey = "age_secret_key", Secret, "age encryption secret keys (`AGE-SECRET-KEY-1...`).";
    AwsSessionToken = "aws_session_token", Secret, "AWS STS session tokens (`FwoGZXIvYXdzE…`, `IQoJb3JpZ2luX2Vj…`).";
    GcpServiceAccount = "gcp_service_account", Secret, "The `private_key_id` of a GCP service-account JSON key (its `private_key` is `private_key`'s).";
    GoogleOauthToken = "google_oauth_token", Secret, "Google OAuth access tokens (`ya29.`), refresh tokens (`1//0…`) and client secrets (`GOCSPX-`).";
    AzureSasToken = "azure_sas_token", Secret, "Azure shared-access signatures (`sig=` in SAS URLs, `SharedAccessKey=` in Service Bus / Event Hubs strings).";
    GroqApiKey = "groq_api_key", Secret, "Groq API keys (`gsk_`).";
    TracegateServiceAccountKey = "tracegate_service_account_key", Secret, "tracegate's own service-account keys (`tgsa_<16 hex>_<64 hex>`).";
    ReplicateToken = "replicate_token", Secret, "Replicate API tokens (`r8_`).";
    PerplexityApiKey = "perplexity_api_key", Secret, "Perplexity API keys (`pplx-`).";
    XaiApiKey = "xai_api_key", Secret, "xAI API keys (`xai-`).";
    FireworksApiKey = "fireworks_api_key", Secret, "Fireworks AI API keys (`fw_`).";
    LangsmithApiKey = "langsmith_api_key", Secret, "LangSmith / LangChain API keys (`lsv2_pt_`, `lsv2_sk_`).";
    PineconeApiKey = "pinecone_api_key", Secret, "Pinecone API keys (`pcsk_`).";
    NvidiaApiKey = "nvidia_api_key", Secret, "NVIDIA NGC / NIM API keys (`nvapi-`).";
    JinaApiKey = "jina_api_key", Secret, "Jina AI API keys (`jina_`).";
    AnyscaleApiKey = "anyscale_api_key", Secret, "Anyscale endpoint keys (`esecret_`).";
    ElevenlabsApiKey = "elevenlabs_api_key", Secret, "ElevenLabs API keys (`sk_` + 48 hex).";
    CohereApiKey = "cohere_api_key", Secret, "Cohere API keys (no prefix: 40 characters assigned to a `cohere`/`co_api_key` name).";
    MistralApiKey = "mistral_api_key", Secret, "Mistral API keys (no prefix: 32 characters assigned to a `mistral` name).";
    AtlassianToken = "atlassian_token", Secret, "Atlassian (Jira, Confluence) API tokens (`ATATT3…`, `ATCTT3…`).";
    BitbucketToken = "bitbucket_token", Secret, "Bitbucket app passwords and access tokens (`ATBB…`).";
    TwilioKey = "twilio_key", Secret, "Twilio API key SIDs (`SK` + 32 hex) and auth tokens assigned to a `twilio` name.";
    MailchimpApiKey = "mailchimp_api_key", Secret, "Mailchimp API keys (32 hex + `-us<N>`) and Mandrill keys (`md-`).";
    DatadogKey = "datadog_key", Secret, "Datadog API and application keys (32/40 hex assigned to a `datadog`/`dd_` name).";
    DockerHubToken = "docker_hub_token", Secret, "Docker Hub personal and organisation access tokens (`dckr_pat_`, `dckr_oat_`).";
    HerokuApiKey = "heroku_api_key", Secret, "Heroku API keys (`HRKU-`, and UUID keys assigned to a `heroku` name).";
    VercelToken = "vercel_token", Secret, "Vercel tokens (`vcp_`, `vci_`, `vca_`, `vcr_`, `vck_`).";
    NetlifyToken = "netlify_token", Secret, "Netlify personal access tokens (`nfp_`).";
    SupabaseKey = "supabase_key", Secret, "Supabase access tokens and secret keys (`sbp_`, `sb_secret_`).";
    CloudflareKey = "cloudflare_key", Secret, "Cloudflare Origin CA keys (`v1.0-…`) and API tokens/keys assigned to a `cloudflare`/`CF_` name.";
    FlyToken = "fly_token", Secret, "Fly.io tokens (`fo1_`, `fm1r_`, `fm1a_`, `fm2_`).";
    RenderApiKey = "render_api_key", Secret, "Render API keys (`rnd_`).";
    TerraformToken = "terraform_token", Secret, "Terraform Cloud / HCP tokens (`….atlasv1.…`).";
    PulumiToken = "pulumi_token", Secret, "Pulumi access tokens (`pul-`).";
    SentryToken = "sentry_token", Secret, "Sentry organisation and user auth tokens (`sntrys_`, `sntryu_`).";
    DiscordToken = "discord_token", Secret, "Discord bot tokens and webhook URLs.";
    TelegramBotToken = "telegram_bot_token", Secret, "Telegram bot tokens (`<bot id>:AA…`).";
    TeamsWebhook = "teams_webhook", Secret, "Microsoft Teams / Office 365 incoming-webhook URLs.";
    BraintreeToken = "braintree_token", Secret, "Braintree / PayPal access tokens (`access_token$production$…`).";
    PlaidToken = "plaid_token", Secret, "Plaid access tokens (`access-sandbox-…`, `access-production-…`).";
    AirtableToken = "airtable_token", Secret, "Airtable personal access tokens (`pat…` + `.` + 64 hex).";
    NotionToken = "notion_token", Secret, "Notion integration tokens (`secret_`, `ntn_`).";
    AsanaToken = "asana_token", Secret, "Asana personal access tokens (`1/…:…`, `2/…`).";
    ClickupToken = "clickup_token", Secret, "ClickUp personal tokens (`pk_<id>_…`).";
    FigmaToken = "figma_token", Secret, "Figma personal access tokens (`figd_`).";
    DropboxToken = "dropbox_token", Secret, "Dropbox short-lived access tokens (`sl.`).";
    ContentfulToken = "contentful_token", Secret, "Contentful personal access tokens (`CFPAT-`).";
    PrefectApiKey = "prefect_api_key", Secret, "Prefect Cloud API keys (`pnu_`).";
    TypeformToken = "typeform_token", Secret, "Typeform personal tokens (`tfp_`).";
    ShippoToken = "shippo_token", Secret, "Shippo API tokens (`shippo_live_`, `shippo_test_`).";
    EasypostKey = "easypost_key", Secret, "EasyPost API keys (`EZAK`, `EZTK`).";
    FlutterwaveKey = "flutterwave_key", Secret, "Flutterwave secret and encryption keys (`FLWSECK-`, `FLWSECK_TEST`).";
    MapboxToken = "mapbox_token", Secret, "Mapbox secret tokens (`sk.eyJ…`).";
    SonarqubeToken = "sonarqube_token", Secret, "SonarQube / SonarCloud tokens (`sqp_`, `squ_`, `sqa_`).";
    JfrogToken = "jfrog_token", Secret, "JFrog Artifactory API keys (`AKCp`) and reference tokens (`cmVmd`).";
    RubygemsApiKey = "rubygems_api_key", Secret, "RubyGems API keys (`rubygems_`).";
    NugetApiKey = "nuget_api_key", Secret, "NuGet API keys (`oy2` + 43 characters).";
    CratesIoToken = "crates_io_token", Secret, "crates.io API tokens (`cio` + 32 characters).";
    ClojarsToken = "clojars_token", Secret, "Clojars deploy tokens (`CLOJARS_`).";
    OnepasswordToken = "onepassword_token", Secret, "1Password service-account tokens (`ops_eyJ…`) and account secret keys (`A3-…`).";
    InfracostKey = "infracost_key", Secret, "Infracost API keys (`ico-`).";
    ReadmeApiKey = "readme_api_key", Secret, "ReadMe API keys (`rdme_`).";
    BrevoApiKey = "brevo_api_key", Secret, "Brevo (Sendinblue) API keys (`xkeysib-`, `xsmtpsib-`).";
    HubspotToken = "hubspot_token", Secret, "HubSpot private-app tokens (`pat-na1-…`, `pat-eu1-…`).";
    SalesforceToken = "salesforce_token", Secret, "Salesforce session / access tokens (`00D…!…`).";
    FacebookToken = "facebook_token", Secret, "Meta (Facebook, Instagram, WhatsApp) Graph API access tokens (`EAAB…`, `EAAG…`).";
    TwitterBearerToken = "twitter_bearer_token", Secret, "X (Twitter) app bearer tokens (`AAAAAAAAAAAAAAAAAAAAA…`).";
    AlibabaAccessKey = "alibaba_access_key", Secret, "Alibaba Cloud AccessKey ids (`LTAI`).";
    TencentSecretId = "tencent_secret_id", Secret, "Tencent Cloud SecretIds (`AKID`).";
    YandexKey = "yandex_key", Secret, "Yandex Cloud API keys, IAM tokens and static access keys (`AQVN`, `t1.`, `YC`).";
    ScalewayKey = "scaleway_key", Secret, "Scaleway access keys (`SCW` + 17 characters).";
    TailscaleKey = "tailscale_key", Secret, "Tailscale auth, API and OAuth client keys (`tskey-`).";
    CircleciToken = "circleci_token", Secret, "CircleCI personal API tokens (`CCIPAT_`).";
    BuildkiteToken = "buildkite_token", Secret, "Buildkite user access tokens (`bkua_`).";
    HarnessToken = "harness_token", Secret, "Harness personal and service-account tokens (`pat.…`, `sat.…`).";
    OctopusApiKey = "octopus_api_key", Secret, "Octopus Deploy API keys (`API-` + 26 characters).";
    DynatraceToken = "dynatrace_token", Secret, "Dynatrace API tokens (`dt0c01.`).";
    PlanetscaleToken = "planetscale_token", Secret, "PlanetScale service tokens, passwords and OAuth tokens (`pscale_tkn_`, `pscale_pw_`, `pscale_oauth_`).";
    NeonApiKey = "neon_api_key", Secret, "Neon API keys (`napi_`).";
    RazorpayKey = "razorpay_key", Secret, "Razorpay key ids (`rzp_live_`, `rzp_test_`).";
    DuffelToken = "duffel_token", Secret, "Duffel access tokens (`duffel_live_`, `duffel_test_`).";
    TelnyxApiKey = "telnyx_api_key", Secret, "Telnyx API v2 keys (`KEY0…`).";
    AdafruitKey = "adafruit_key", Secret, "Adafruit IO keys (`aio_`).";
    LaunchdarklyKey = "launchdarkly_key", Secret, "LaunchDarkly API and SDK keys (`api-…`, `sdk-…` + UUID).";
    OktaToken = "okta_token", Secret, "Okta API tokens (`SSWS …`, and `00…` tokens assigned to an `okta` name).";
    Certificate = "certificate", Secret, "PEM certificates, certificate requests and PKCS#7 blocks (`-----BEGIN CERTIFICATE-----`), the whole block.";
    Jwt = "jwt", Secret, "JSON Web Tokens (three base64url parts, header and payload starting `eyJ`).";
    BearerToken = "bearer_token", Secret, "The credential after `Bearer`.";
    AuthorizationHeader = "authorization_header", Secret, "The credential in an `Authorization:` header (Basic, Token, Digest, ...).";
    ConnectionStringPassword = "connection_string_password", Secret, "The password in `scheme://user:password@host` (user may be empty).";
    PasswordAssignment = "password_assignment", Secret, "The value in `password=...`, `secret: ...`, `pwd := ...` and the like, in free text or code.";
    GenericSecret = "generic_secret", Secret, "A random-looking token assigned to a secret-like name (`api_key`, `token`, `client_secret`, ...).";
    PasswordInText = "password_in_text", Secret, "A password announced in prose (`with password Maple!River58`, `the password is …`, `pwd (…)`): a token with a letter and a digit or symbol, not a word.";
    PasswordFlag = "password_flag", Secret, "Passwords on command lines: `mysql -p<value>`, `--password <value>`, `sshpass -p`, `redis-cli -a`, `curl -u user:pass`, `-storepass`.";
    SecretInText = "secret_in_text", Secret, "A random-looking value announced in prose by `secret`, `secret key`, `token`, `api key`, `credentials`, `access key` (quoted, parenthesised or after a few words).";
    CookieHeader = "cookie_header", Secret, "Cookie values in `Cookie:` and `Set-Cookie:` headers (names kept).";
    Email = "email", Pii, "Email addresses.";
    CreditCard = "credit_card", Pii, "Payment card numbers (13–19 digits, issuer prefix 2–6, valid Luhn checksum).";
    UsSsn = "us_ssn", Pii, "US social security numbers written `AAA-GG-SSSS` or `AAA GG SSSS`, without never-issued areas (000, 666, 9xx), group 00 or serial 0000.";
    Iban = "iban", Pii, "IBANs, compact or in groups, with a valid mod-97 check and country length.";
    Phone = "phone", Pii, "Phone numbers: international (`+` and 8–15 digits) and national (`(415) 555-2671`, `415-555-2671`, `020 7946 0958`).";
    Ipv4 = "ipv4", Pii, "IPv4 addresses (dotted quads, octets 0–255, not part of a longer dotted number or `v1.2.3.4`).";
    Ipv6 = "ipv6", Pii, "IPv6 addresses with at least three groups (not `::1`).";
    DateOfBirth = "date_of_birth", Pii, "Dates announced as a birth date (`DOB`, `date of birth`, `born on`, `birthday`, `geb.`), numeric or with month names.";
    PostalAddress = "postal_address", Pii, "Street lines (`221B Baker Street`, `1600 Pennsylvania Ave NW, Washington, DC 20500`, `Hauptstraße 5, 10115 Berlin`) and UK postcodes after an address word.";
    UkNino = "uk_nino", Pii, "UK National Insurance numbers (`AB 12 34 56 C`, `AB123456C`; allocated prefixes only).";
    NhsNumber = "nhs_number", Pii, "NHS numbers (`943 476 5919`, mod-11 check; compact only after `NHS`).";
    DeTaxId = "de_tax_id", Pii, "German tax ids (Steuer-IdNr, 11 digits, ISO 7064 mod 11,10 check) after a tax-id word.";
    Aadhaar = "aadhaar", Pii, "Indian Aadhaar numbers (12 digits, Verhoeff check; grouped 4-4-4, or compact after `Aadhaar`).";
    IndiaPan = "india_pan", Pii, "Indian PAN numbers (`ABCPE1234F`: holder type in the fourth letter).";
    PassportNumber = "passport_number", Pii, "Passport numbers after `passport`, and ICAO 9303 machine-readable zones with valid check digits.";
    EsDni = "es_dni", Pii, "Spanish DNI/NIE numbers (`12345678Z`, `X1234567L`, mod-23 check letter).";
    MacAddress = "mac_address", Pii, "MAC addresses (`00:1a:2b:3c:4d:5e`, `00-1A-2B-3C-4D-5E`).";
    CryptoWallet = "crypto_wallet", Pii, "Bitcoin (base58check, bech32) and Ethereum addresses.";
    UsRoutingNumber = "us_routing_number", Pii, "US bank routing numbers (ABA checksum) after `routing`, `ABA`, `RTN`.";
    PersonName = "person_name", Pii, "Person names: a given name and a family name from the census lists, or a name after a greeting, sign-off, `my name is`, `Mr.`/`Dr.`, or a `name`/`author`/`full_name` key in text.";
    KeyName = "key_name", Key, "Any value under a key named like a credential (`password`, `token`, `api_key`, `authorization`, `cookie`, ...).";
}

impl Detector {
    /// The label shown by `redact` and used as the pseudonym prefix: the name in capitals.
    /// From a table built once, so masking a value allocates no label.
    pub fn label(self) -> &'static str {
        static LABELS: OnceLock<Vec<String>> = OnceLock::new();
        let labels = LABELS.get_or_init(|| Detector::ALL.iter().map(|d| d.name().to_ascii_uppercase()).collect());
        labels.get(self as usize).map_or("", String::as_str)
    }

    pub fn parse(name: &str) -> Option<Detector> {
        Detector::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// The detector whose [`Detector::label`] is `label` (capitals only): how masked output is
    /// recognised, so masking it again neither relabels it nor lets look-alikes through.
    pub fn from_label(label: &str) -> Option<Detector> {
        if !label.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_') {
            return None;
        }
        Detector::ALL.iter().copied().find(|d| d.label() == label)
    }
}

/// A fixed-size bit set: detectors ([`DetSet`]) and secret rules (which rules a trigger wakes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bits<const N: usize>([u64; N]);

impl<const N: usize> Default for Bits<N> {
    fn default() -> Self {
        Bits([0; N])
    }
}

impl<const N: usize> Bits<N> {
    pub const CAPACITY: usize = N * 64;

    pub fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn has(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn union(&mut self, other: &Bits<N>) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The set members, smallest first.
    pub fn members(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// A set of detectors (up to 256; `Detector` is `repr(u8)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetSet(Bits<4>);

impl DetSet {
    pub fn insert(&mut self, d: Detector) {
        self.0.set(d as usize);
    }

    pub fn contains(self, d: Detector) -> bool {
        self.0.has(d as usize)
    }

    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }
}

/// Which secret rules a trigger wakes (up to 320 rules).
pub type RuleSet = Bits<5>;

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
    triggers: triggers::Triggers,
    rules: Vec<secrets::Rule>,
    names: names::Names,
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
        if rules.len() > RuleSet::CAPACITY {
            return Err(format!("more than {} secret rules", RuleSet::CAPACITY));
        }
        let triggers = triggers::Triggers::build(&rules)?;
        Ok(Engine { triggers, rules, names: names::Names::load() })
    }

    /// Finds every enabled detector's matches in `text`, appending them to `out` (unsorted,
    /// possibly overlapping).
    pub fn scan(&self, text: &str, enabled: DetSet, out: &mut Vec<Span>) {
        self.scan_classified(text, gate::classes(text.as_bytes()), enabled, out);
    }

    /// [`Engine::scan`] of a text whose byte classes (`gate::classes`) are `seen`.
    pub fn scan_classified(&self, text: &str, seen: gate::Classes, enabled: DetSet, out: &mut Vec<Span>) {
        let b = text.as_bytes();
        if b.len() < MIN_SCAN_LEN {
            return;
        }
        if b.len() < PLAIN_LEN && seen & !(gate::LOWER | gate::UPPER) == 0 {
            // [`too_plain`], from the classes already found.
            return;
        }
        self.secrets(text, seen, enabled, out);
        if seen & (gate::DIGIT | gate::UPPER | gate::DASH) != 0 {
            shapes::scan(b, enabled, out);
        }
        pii::scan(b, seen, enabled, out);
        if enabled.contains(Detector::PersonName) && seen & (gate::UPPER | gate::HIGH) != 0 {
            self.names.scan(text, out);
        }
    }

    fn secrets(&self, text: &str, seen: gate::Classes, enabled: DetSet, out: &mut Vec<Span>) {
        let mut fired = self.triggers.fired(text.as_bytes());
        if seen & gate::HIGH != 0 {
            fired.union(&self.triggers.fired_by_lookalikes(text));
        }
        for i in fired.members() {
            if let Some(rule) = self.rules.get(i) {
                if enabled.contains(rule.detector) && rule.may_match(seen) {
                    rule.find(text, out);
                }
            }
        }
    }
}

/// Texts of letters only shorter than this hold nothing any detector finds: the two
/// all-letter formats (AWS key ids and Google keys) need 20+ characters.
const PLAIN_LEN: usize = 20;

/// True when no detector can match in `b`: letters only, and shorter than [`PLAIN_LEN`]. This
/// is most object keys (`content`, `stringValue`), so it matters for speed.
pub(in crate::mask) fn too_plain(b: &[u8]) -> bool {
    b.len() < PLAIN_LEN && b.iter().all(u8::is_ascii_alphabetic)
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
