//! `tracegate migrate`: bring the shared-state database to this binary's schema (or, with
//! `--check`, only say whether it matches). Run from a deploy job before rolling replicas; replicas
//! also migrate at start-up unless `[state] migrate_on_start = false`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tracegate_server::GatewayConfig;
use tracegate_state::StateConfig;

#[derive(clap::Args)]
pub struct Args {
    /// The gateway config file whose `[state]` names the database.
    #[arg(long, conflicts_with = "url")]
    pub config: Option<PathBuf>,
    /// The database URL instead of a config file (`postgres://…`; also `TRACEGATE_STATE_URL`).
    #[arg(long)]
    pub url: Option<String>,
    /// Change nothing; exit 1 unless the schema is exactly this binary's.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = match (&args.config, &args.url) {
        (Some(path), _) => GatewayConfig::load(path)?.state,
        (None, Some(url)) => StateConfig { url: Some(url.clone()), ..StateConfig::default() },
        (None, None) => StateConfig::default(),
    };
    if cfg.effective_url().is_none() {
        bail!("no database: give --config with a [state] url, --url, or TRACEGATE_STATE_URL");
    }
    super::serve::runtime()?.block_on(async {
        let pool = tracegate_state::connect(&cfg).await?;
        if args.check {
            return Ok(match tracegate_state::check_current(&pool).await {
                Ok(()) => {
                    println!("schema is current (version {})", tracegate_state::latest_version());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{e}");
                    ExitCode::from(1)
                }
            });
        }
        let applied = tracegate_state::migrate(&pool).await.context("migrating")?;
        if applied.is_empty() {
            println!("schema already current (version {})", tracegate_state::latest_version());
        } else {
            let list: Vec<String> = applied.iter().map(|v| format!("{v:04}")).collect();
            println!("applied {}; schema is at version {}", list.join(", "), tracegate_state::latest_version());
        }
        Ok(ExitCode::SUCCESS)
    })
}
