//! `tracegate token`: mint a short-lived token from the config's development issuer. Refused
//! unless the config enables `[identity.dev]`: production issuers mint their own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use tracegate_identity::dev::DevIssuer;
use tracegate_server::GatewayConfig;

/// Longest lifetime a dev token may have.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(clap::Args)]
pub struct Args {
    /// The gateway config file.
    #[arg(long)]
    pub config: PathBuf,
    /// The token's subject.
    #[arg(long)]
    pub sub: String,
    /// Comma-separated groups, e.g. `support` or `eng,sre`.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub groups: Vec<String>,
    /// Extra string claims, e.g. `--claim tenant=acme`. Repeatable.
    #[arg(long = "claim", value_parser = parse_claim)]
    pub claims: Vec<(String, String)>,
    /// Lifetime, e.g. `15m` (at most 24h).
    #[arg(long, default_value = "15m")]
    pub ttl: humantime::Duration,
}

fn parse_claim(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not `name=value`")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = GatewayConfig::load(&args.config)?;
    let Some(dev) = &cfg.identity.dev else {
        bail!("`{}` does not enable the development issuer ([identity.dev]); tokens must come from your identity provider", args.config.display());
    };
    let ttl: Duration = args.ttl.into();
    if ttl > MAX_TTL || ttl.is_zero() {
        bail!("--ttl must be between 1s and 24h");
    }
    let issuer = DevIssuer::load(dev, &cfg.base_dir)
        .context("loading the dev issuer key")?
        .with_groups_claim(&cfg.identity.groups_claim);
    let groups: Vec<String> = args.groups.into_iter().filter(|g| !g.is_empty()).collect();
    let mut extra = serde_json::Map::new();
    for (k, v) in args.claims {
        extra.insert(k, serde_json::Value::String(v));
    }
    let token = issuer.mint(&args.sub, &groups, extra, ttl).context("minting the token")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
