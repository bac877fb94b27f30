//! `tracegate quickstart`: lay out a data directory on first run — config, policy, sample
//! traces, a dev signing key, a masking key — then serve it. Re-running reuses what is there.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::samples;

pub const CONFIG_FILE: &str = "tracegate.toml";

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Data directory, created and filled if empty.
    #[arg(long, default_value = "./tracegate-data")]
    pub data: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::serve::init_tracing();
    let created = lay_out(&args.data)?;
    let config = args.data.join(CONFIG_FILE);
    let exe = std::env::current_exe().map_or_else(|_| "tracegate".to_owned(), |p| p.display().to_string());
    super::serve::runtime()?.block_on(super::serve::serve(&config, Some(&args.listen), |addr| {
        print_tour(&exe, &config, addr, created);
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the data directory if it holds no config yet. Returns whether it did.
pub fn lay_out(dir: &Path) -> anyhow::Result<bool> {
    if dir.join(CONFIG_FILE).exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir.join("traces")).with_context(|| format!("creating `{}`", dir.display()))?;
    write_new(&dir.join("policy.toml"), samples::POLICY)?;
    for (id, json) in samples::TRACES {
        write_new(&dir.join("traces").join(format!("{id}.json")), json)?;
    }
    write_secret(&dir.join("dev-signing-key.pem"), &tracegate_identity::dev::generate_key_pem()?)?;
    write_secret(&dir.join("mask.key"), &random_hex(32)?)?;
    // The config goes last: its presence marks a complete layout.
    write_new(&dir.join(CONFIG_FILE), CONFIG)?;
    Ok(true)
}

const CONFIG: &str = r#"# tracegate configuration, written by `tracegate quickstart`. Paths are relative to this file.

[server]
listen = "127.0.0.1:8080"
# Largest trace accepted on write (bytes).
max_trace_bytes = 16777216
# Acceptor threads (socket + thread + single-threaded runtime each); unset: one per core here,
# since the store is local. 0: one shared runtime for every connection.
# acceptors = 2

[store]
kind = "local"
path = "traces"

[policy]
path = "policy.toml"

[identity]
groups_claim = "groups"
clock_skew = "30s"

# The development issuer: `tracegate token` mints tokens with this key. Remove this table in
# production and add your identity provider under [[identity.oidc]].
[identity.dev]
issuer = "tracegate-dev"
audience = "tracegate"
key_file = "dev-signing-key.pem"

# [[identity.oidc]]
# issuer = "https://idp.example.com/realms/main"
# audience = "tracegate"
# algorithms = ["RS256", "ES256"]
# token_types = ["at+jwt"]      # RFC 9068 access tokens; add "JWT" if your IdP types them so

# Browser sign-in through that identity provider (the console's production sign-in):
# [identity.browser]
# issuer = "https://idp.example.com/realms/main"
# client_id = "tracegate-console"
# client_secret_file = "oidc-client-secret"
# redirect_url = "https://tracegate.example.com/auth/callback"
# after_login = "/console/"

[masking]
# The key behind keyed pseudonyms (hash operator). Keep it secret.
key_file = "mask.key"

# The web console is at /console/. Its development sign-in (/console/dev-login) signs a browser
# in as one of these sample identities with no password: it needs [identity.dev] above and works
# only on loopback. Remove these tables in production and configure [identity.browser].
[[console.dev_identities]]
subject = "sam"
groups = ["support"]
claims = { tenant = "acme" }
note = "support engineer, tenant acme: metadata and final outputs, masked"

[[console.dev_identities]]
subject = "erin"
groups = ["eng"]
note = "engineer: every field, secrets redacted, PII pseudonymised"

[[console.dev_identities]]
subject = "sid"
groups = ["sre"]
note = "SRE: everything unmasked, after a security approval"

[[console.dev_identities]]
subject = "sec-lead"
groups = ["security"]
note = "security approver"

[[console.dev_identities]]
subject = "sec-two"
groups = ["security"]
note = "a second security approver"

[[console.dev_identities]]
subject = "ava"
groups = ["audit"]
note = "auditor: the audit trail; replays say whether a read is reproduced, never show its body"

[[console.dev_identities]]
subject = "ivy"
groups = ["audit", "eng"]
note = "auditor who also reads as an engineer: replays show what her own view covers"
"#;

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing `{}`", path.display()))
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    write_new(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting `{}`", path.display()))?;
    }
    Ok(())
}

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn print_tour(exe: &str, config: &Path, addr: std::net::SocketAddr, created: bool) {
    let cfg = config.display();
    let url = format!("http://{addr}");
    println!(
        r#"
tracegate is listening on {url}  ({} {})

The web console: {url}/console/  (development sign-in with the sample identities)

Try it (in another shell):

  # a support engineer of tenant acme: metadata and final outputs only, masked
  TOKEN=$({exe} token --config {cfg} --sub sam --groups support --claim tenant=acme)
  curl -s -H "Authorization: Bearer $TOKEN" {url}/v1/traces/demo-agent-1

  # ...asking for the reasoning is blocked, with the reason and the rule
  curl -s -H "Authorization: Bearer $TOKEN" '{url}/v1/traces/demo-agent-1?fields=$..reasoning'

  # an engineer: every field, searchable
  TOKEN=$({exe} token --config {cfg} --sub erin --groups eng)
  curl -s -H "Authorization: Bearer $TOKEN" '{url}/v1/traces?agent=refund-agent'
  curl -s -H "Authorization: Bearer $TOKEN" {url}/v1/traces/demo-otlp-1

  # an SRE: everything unmasked, after a security approval (202 with an access-request id)
  SRE=$({exe} token --config {cfg} --sub sid --groups sre)
  curl -s -H "Authorization: Bearer $SRE" {url}/v1/traces/demo-agent-1
  SEC=$({exe} token --config {cfg} --sub sec-lead --groups security)
  {exe} requests list --url {url} --token "$SEC"
  {exe} requests approve <ID> --comment "incident 42" --url {url} --token "$SEC"
  curl -s -H "Authorization: Bearer $SRE" {url}/v1/traces/demo-agent-1    # now served

  # the audit trail: verify the chain, replay what a request showed (its x-request-id)
  {exe} audit verify --config {cfg}
  {exe} audit replay <REQUEST-ID> --config {cfg}
"#,
        if created { "created" } else { "reusing" },
        config.parent().map_or_else(|| ".".into(), |p| p.display().to_string()),
    );
}
