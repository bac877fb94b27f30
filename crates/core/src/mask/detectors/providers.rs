//! Provider token formats beyond the first-generation set in `secrets`: one rule per documented
//! prefix family, each woken by its prefix literal, checksummed where the vendor has a checksum.
//!
//! Why prefixes: a vendor prefix (`gsk_`, `dckr_pat_`, `ATATT3`) is what makes a token findable
//! without context, and what keeps ordinary base64 and hex out. Formats without a prefix
//! (Cohere, Mistral, Datadog, Twilio auth tokens) are found by the vendor's name assigned to
//! them. The patterns are our own, written from the vendors' public token descriptions.
//! Fixed-length formats whose prefix is two or three common letters (Twilio `SK…`, crates.io
//! `cio…`) are found by `shapes` instead, so that `ask` and `precious` wake no regex.

use super::secrets::{Check, Spec};
use super::Detector;
use crate::mask::validate;

/// The separator between a name and its value (as in `secrets`): `=`, `:`, `:=`, `=>`, quotes.
const ASSIGN: &str = r#"\\?["']?[ \t]*(?::=|=>|[:=])[ \t]*\\?["']?"#;

fn named(names: &str, value: &str) -> String {
    format!(r"(?i-u){names}[a-z0-9_\-.]{{0,24}}{ASSIGN}({value})")
}

pub fn specs() -> Vec<Spec> {
    use Detector as D;
    let b = |s: &str| format!(r"(?-u:\b)(?:{s})");
    vec![
        // GitHub tokens glued to other text (`tokenghp_…`, inside base64 or URLs): no word
        // boundary to lean on, so the CRC32 checksum in the last six characters must hold.
        (D::GithubToken, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], r"gh[pousr]_[A-Za-z0-9]{36}".into(), Check::Valid(validate::github_checksum), true),
        // Project, service-account and admin keys: the prefix is specific enough without the
        // randomness check the bare `sk-` rule needs.
        (D::OpenaiApiKey, &["sk-proj-", "sk-svcacct-", "sk-admin-"], b(r"(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,255~})"), Check::None, false),
        (D::GitlabToken, &["GR1348941"], r"GR1348941[A-Za-z0-9_\-]{20}".into(), Check::None, true),
        (D::SquareToken, &["EAAA"], b(r"EAAA[A-Za-z0-9_\-]{60}"), Check::None, true),
        (D::HuggingfaceToken, &["api_org_"], b(r"api_org_[A-Za-z]{34}"), Check::None, true),
        (D::PypiToken, &["pypi-AgENdGVzdC5weXBpLm9yZw"], r"pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9_\-]{50,}".into(), Check::None, false),
        (D::LinearApiKey, &["lin_oauth_"], r"lin_oauth_[A-Za-z0-9]{64}".into(), Check::None, true),
        (D::GrafanaToken, &["eyJrIjoi"], r"eyJrIjoi[A-Za-z0-9]{60,400}={0,2}".into(), Check::None, false),
        (D::NewRelicKey, &["NRII-", "NRJS-", "NRAA-"], r"NRII-[A-Za-z0-9_\-]{32}|NRJS-[a-f0-9]{19}|NRAA-[a-f0-9]{27}".into(), Check::None, true),
        (D::VaultToken, &["hvr."], r"hvr\.[A-Za-z0-9_\-]{24,400}".into(), Check::None, true),
        (D::AwsSessionToken, &["FwoGZXIvYXdzE", "IQoJb3JpZ2luX2Vj"], r"(?:FwoGZXIvYXdzE|IQoJb3JpZ2luX2Vj)[A-Za-z0-9/+=]{80,}".into(), Check::None, false),
        (D::GcpServiceAccount, &["private_key_id"], r#"private_key_id\\?"[ \t]*:[ \t]*\\?"([a-f0-9]{40})"#.into(), Check::None, false),
        (D::GoogleOauthToken, &["ya29."], r"ya29\.[0-9A-Za-z_\-.]{20,}".into(), Check::None, false),
        (D::GoogleOauthToken, &["1//0"], b(r"1//0[0-9A-Za-z_\-]{30,}"), Check::None, false),
        (D::GoogleOauthToken, &["GOCSPX-"], r"GOCSPX-[A-Za-z0-9_\-]{28}".into(), Check::None, true),
        (D::AzureSasToken, &["sig="], r"[?&;]sig=([A-Za-z0-9%+/]{30,}(?:%3D|=){0,2})".into(), Check::None, false),
        (D::AzureSasToken, &["SharedAccessKey="], r"(?i-u)SharedAccessKey=([A-Za-z0-9+/]{30,}=*)".into(), Check::None, false),
        (D::GroqApiKey, &["gsk_"], b(r"gsk_[A-Za-z0-9]{52}"), Check::None, true),
        // Our own service-account keys: a reader must never see another caller's key.
        (D::TracegateServiceAccountKey, &["tgsa_"], r"tgsa_[0-9a-f]{16}_[0-9a-f]{64}".into(), Check::None, true),
        (D::ReplicateToken, &["r8_"], b(r"r8_[A-Za-z0-9]{37}"), Check::None, true),
        (D::PerplexityApiKey, &["pplx-"], b(r"pplx-[A-Za-z0-9]{48}"), Check::None, true),
        (D::XaiApiKey, &["xai-"], b(r"xai-[A-Za-z0-9]{80}"), Check::None, true),
        (D::FireworksApiKey, &["fw_"], b(r"fw_[A-Za-z0-9]{24}"), Check::Random(3.0), true),
        (D::LangsmithApiKey, &["lsv2_"], r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}".into(), Check::None, true),
        (D::PineconeApiKey, &["pcsk_"], r"pcsk_[A-Za-z0-9]{4,10}_[A-Za-z0-9]{40,80}".into(), Check::None, true),
        (D::NvidiaApiKey, &["nvapi-"], r"nvapi-[A-Za-z0-9_\-]{64}".into(), Check::None, true),
        (D::JinaApiKey, &["jina_"], r"jina_[a-f0-9]{32}[A-Za-z0-9_\-]{28}".into(), Check::None, true),
        (D::AnyscaleApiKey, &["esecret_"], r"esecret_[A-Za-z0-9]{26}".into(), Check::None, true),
        (D::ElevenlabsApiKey, &["sk_"], b(r"sk_[a-f0-9]{48}"), Check::None, true),
        (D::CohereApiKey, &["cohere", "co_api_key"], named(r"(?:cohere|co_api_key)", r"[A-Za-z0-9]{40}"), Check::Random(3.0), true),
        (D::MistralApiKey, &["mistral"], named("mistral", r"[A-Za-z0-9]{32}"), Check::Random(3.0), true),
        (D::AtlassianToken, &["ATATT3", "ATCTT3"], r"(AT[AC]TT3[A-Za-z0-9_\-=]{60,300~})".into(), Check::None, false),
        (D::BitbucketToken, &["ATBB"], b(r"ATBB[A-Za-z0-9_=.\-]{32,}"), Check::None, false),
        (D::TwilioKey, &["twilio"], named("twilio", r"[a-f0-9]{32}"), Check::None, true),
        (D::MailchimpApiKey, &["-us"], b(r"[0-9a-f]{32}-us[0-9]{1,2}"), Check::None, true),
        (D::MailchimpApiKey, &["md-"], b(r"md-[A-Za-z0-9_\-]{22}"), Check::Random(3.0), true),
        (D::DatadogKey, &["datadog", "dd_", "dd-api", "dd-app", "dd.api", "dd.app", "dd api", "dd app", "ddapi", "ddapp"], named(r"(?:datadog|dd)[_\-. ]?(?:api|app|application)", r"[a-f0-9]{32}(?:[a-f0-9]{8})?"), Check::None, true),
        (D::DockerHubToken, &["dckr_"], r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{27,}".into(), Check::None, true),
        (D::HerokuApiKey, &["HRKU-"], r"HRKU-[A-Za-z0-9_\-]{58,}".into(), Check::None, true),
        (D::HerokuApiKey, &["heroku"], named("heroku", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), Check::None, true),
        (D::VercelToken, &["vcp_", "vcc_", "vci_", "vca_", "vcr_", "vck_"], b(r"vc[pcairk]_[A-Za-z0-9]{24,}"), Check::None, true),
        (D::NetlifyToken, &["nfp_"], b(r"nfp_[A-Za-z0-9]{36}"), Check::None, true),
        (D::SupabaseKey, &["sbp_", "sb_secret_"], b(r"sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{20,}"), Check::None, true),
        (D::CloudflareKey, &["v1.0-"], r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}".into(), Check::None, true),
        (D::CloudflareKey, &["cloudflare", "cf_"], named(r"(?:cloudflare|cf)[_\-. ]?(?:api|global|auth)?[_\-. ]?(?:token|key)", r"[A-Za-z0-9_\-]{37,40}"), Check::Random(3.0), true),
        (D::FlyToken, &["fo1_", "fm1r_", "fm1a_", "fm2_"], b(r"(?:fo1|fm1[ra]|fm2)_[A-Za-z0-9+/=_\-]{40,}"), Check::None, false),
        (D::RenderApiKey, &["rnd_"], b(r"rnd_[A-Za-z0-9]{32}"), Check::None, true),
        (D::TerraformToken, &[".atlasv1."], r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}".into(), Check::None, true),
        (D::PulumiToken, &["pul-"], b(r"pul-[a-f0-9]{40}"), Check::None, true),
        (D::SentryToken, &["sntrys_", "sntryu_"], r"sntrys_eyJ[A-Za-z0-9+/=_\-]{40,}|sntryu_[a-f0-9]{64}".into(), Check::None, false),
        (D::DiscordToken, &["discord"], r"https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,68}".into(), Check::None, false),
        (D::DiscordToken, &["discord", "bot "], b(r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}"), Check::Random(3.5), true),
        (D::TelegramBotToken, &[":AA"], b(r"[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}"), Check::None, true),
        (D::TeamsWebhook, &["webhook.office.com"], r"https://[A-Za-z0-9\-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@\-]+/IncomingWebhook/[A-Za-z0-9]{32}/[A-Za-z0-9\-]{36}(?:/[A-Za-z0-9_\-]+)?".into(), Check::None, false),
        (D::BraintreeToken, &["access_token$"], r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}".into(), Check::None, true),
        (D::PlaidToken, &["access-sandbox-", "access-development-", "access-production-"], r"access-(?:sandbox|development|production)-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}".into(), Check::None, true),
        (D::AirtableToken, &["pat"], b(r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"), Check::None, true),
        (D::NotionToken, &["secret_", "ntn_"], b(r"secret_[A-Za-z0-9]{43}|ntn_[0-9]{11}[A-Za-z0-9]{35}"), Check::None, true),
        (D::AsanaToken, &["1/", "2/"], b(r"[12]/[0-9]{12,20}(?::|/[0-9]{12,20}:)[A-Za-z0-9]{32}"), Check::None, true),
        (D::ClickupToken, &["pk_"], b(r"pk_[0-9]{6,10}_[A-Z0-9]{32}"), Check::None, true),
        (D::FigmaToken, &["figd_"], r"figd_[A-Za-z0-9_\-]{40}".into(), Check::None, true),
        (D::DropboxToken, &["sl."], b(r"sl\.(?:u\.)?[A-Za-z0-9_\-]{130,}"), Check::None, false),
        (D::ContentfulToken, &["CFPAT-"], r"CFPAT-[A-Za-z0-9_\-]{43}".into(), Check::None, true),
        (D::PrefectApiKey, &["pnu_"], b(r"pnu_[A-Za-z0-9]{36}"), Check::None, true),
        (D::TypeformToken, &["tfp_"], b(r"tfp_[A-Za-z0-9_\-.=]{59}"), Check::None, false),
        (D::ShippoToken, &["shippo_"], r"shippo_(?:live|test)_[a-f0-9]{40}".into(), Check::None, true),
        (D::EasypostKey, &["EZAK", "EZTK"], b(r"EZ[AT]K[A-Za-z0-9]{54}"), Check::None, true),
        (D::FlutterwaveKey, &["FLWSECK"], r"FLWSECK(?:_TEST)?-[a-h0-9]{32}-X|FLWSECK_TEST[a-h0-9]{12}".into(), Check::None, false),
        (D::MapboxToken, &["sk.eyJ"], b(r"sk\.eyJ[A-Za-z0-9_\-]{50,}\.[A-Za-z0-9_\-]{20,}"), Check::None, false),
        (D::SonarqubeToken, &["sqp_", "squ_", "sqa_"], b(r"sq[pua]_[a-f0-9]{40}"), Check::None, true),
        (D::JfrogToken, &["AKCp", "cmVmd"], b(r"AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59}"), Check::None, true),
        (D::RubygemsApiKey, &["rubygems_"], r"rubygems_[a-f0-9]{48}".into(), Check::None, true),
        (D::NugetApiKey, &["oy2"], b(r"oy2[a-z0-9]{43}"), Check::None, true),
        (D::ClojarsToken, &["CLOJARS_"], r"CLOJARS_[a-z0-9]{60}".into(), Check::None, true),
        (D::OnepasswordToken, &["ops_eyJ"], r"ops_eyJ[A-Za-z0-9+/=_\-]{100,}".into(), Check::None, false),
        (D::OnepasswordToken, &["A3-"], b(r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{6}-)?[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"), Check::None, true),
        (D::InfracostKey, &["ico-"], b(r"ico-[A-Za-z0-9]{32}"), Check::None, true),
        (D::ReadmeApiKey, &["rdme_"], r"rdme_[a-z0-9]{70}".into(), Check::None, true),
        (D::BrevoApiKey, &["xkeysib-", "xsmtpsib-"], r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}".into(), Check::None, true),
        (D::HubspotToken, &["pat-na1-", "pat-eu1-"], r"pat-(?:na|eu)1-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}".into(), Check::None, true),
        (D::SalesforceToken, &["00D"], b(r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9_.]{90,}"), Check::None, false),
        (D::FacebookToken, &["EAAB", "EAAG", "EAAI", "EAAJ"], b(r"EAA[BGIJ][A-Za-z0-9]{80,}"), Check::None, true),
        (D::TwitterBearerToken, &["AAAAAAAAAAAAAAAAAAAAA"], r"AAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,}".into(), Check::None, true),
        (D::AlibabaAccessKey, &["LTAI"], b(r"LTAI[A-Za-z0-9]{12,20}"), Check::None, true),
        (D::TencentSecretId, &["AKID"], b(r"AKID[A-Za-z0-9]{32}"), Check::None, true),
        (D::YandexKey, &["AQVN", "t1."], b(r"AQVN[A-Za-z0-9_\-]{35,38}|t1\.[A-Za-z0-9_\-]+={0,2}\.[A-Za-z0-9_\-]{86}={0,2}"), Check::Random(3.0), true),
        (D::ScalewayKey, &["SCW"], b(r"SCW[A-Z0-9]{17}"), Check::Random(3.0), true),
        (D::TailscaleKey, &["tskey-"], r"tskey-(?:auth|api|client|scim|webhook)-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,}".into(), Check::None, true),
        (D::CircleciToken, &["CCIPAT_"], r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}".into(), Check::None, true),
        (D::BuildkiteToken, &["bkua_"], r"bkua_[a-f0-9]{40}".into(), Check::None, true),
        (D::HarnessToken, &["pat.", "sat."], b(r"(?:pat|sat)\.[A-Za-z0-9_\-]{22}\.[a-f0-9]{24}\.[A-Za-z0-9]{20}"), Check::None, true),
        (D::OctopusApiKey, &["API-"], b(r"API-[A-Z0-9]{26}"), Check::Random(3.0), true),
        (D::DynatraceToken, &["dt0c01."], r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}".into(), Check::None, true),
        (D::PlanetscaleToken, &["pscale_"], r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-.]{32,64}".into(), Check::None, true),
        (D::NeonApiKey, &["napi_"], b(r"napi_[a-z0-9]{64}"), Check::None, true),
        (D::RazorpayKey, &["rzp_"], r"rzp_(?:live|test)_[A-Za-z0-9]{14}".into(), Check::None, true),
        (D::DuffelToken, &["duffel_"], r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}".into(), Check::None, true),
        (D::TelnyxApiKey, &["KEY0"], b(r"KEY0[0-9A-F]{31}_[A-Za-z0-9]{22}"), Check::None, true),
        (D::AdafruitKey, &["aio_"], b(r"aio_[A-Za-z0-9]{28}"), Check::None, true),
        (D::LaunchdarklyKey, &["api-", "sdk-"], b(r"(?:api|sdk)-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}"), Check::None, true),
        (D::OktaToken, &["SSWS"], r"SSWS[ \t]+([A-Za-z0-9_\-]{40,44})".into(), Check::None, true),
        (D::OktaToken, &["okta"], named("okta", r"00[A-Za-z0-9_\-]{40}"), Check::None, true),
        (D::Certificate, &["-----BEGIN"],
            r"-----BEGIN (?:TRUSTED )?(?:CERTIFICATE|X509 CRL|CERTIFICATE REQUEST|NEW CERTIFICATE REQUEST|PKCS7|X509 CERTIFICATE|ATTRIBUTE CERTIFICATE)-----(?:[\s\S]*?-----END [A-Z0-9 ]+-----|[\s\S]*)".into(),
            Check::None, false),
    ]
}
