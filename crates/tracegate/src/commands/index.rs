//! `tracegate index rebuild`: fill the shared PostgreSQL metadata index (`[state]`) from the
//! store. The listing is streamed (a bucket page by page, in key order), traces are indexed in
//! committed batches, and an interrupted rebuild resumes after the last committed key; progress
//! goes to stderr after each batch. Safe to run while gateways serve: a trace they write during
//! the rebuild keeps the row they wrote. The embedded in-memory index needs no command: it is
//! rebuilt at every start-up.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use tracegate_server::GatewayConfig;
use tracegate_store::PgTraceIndex;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Re-index every trace of the configured store into the `[state]` database.
    Rebuild(RebuildArgs),
}

#[derive(clap::Args)]
pub struct RebuildArgs {
    /// The gateway config file (its `[store]` is read, its `[state]` is written).
    #[arg(long)]
    pub config: PathBuf,
    /// Start from the first key instead of resuming an interrupted rebuild.
    #[arg(long)]
    pub fresh: bool,
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Rebuild(args) => rebuild(args),
    }
}

fn rebuild(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let cfg = GatewayConfig::load(&args.config)?;
    if cfg.state.effective_url().is_none() {
        bail!("no [state] url (or TRACEGATE_STATE_URL): the embedded index is rebuilt at start-up, nothing to do");
    }
    let store = cfg.open_store().context("opening the store")?;
    super::serve::runtime()?.block_on(async {
        let pool = tracegate_state::open(&cfg.state)
            .await
            .context("opening the shared-state database")?;
        let index = PgTraceIndex::new(pool);
        let started = std::time::Instant::now();
        let report = index
            .rebuild(&store, args.fresh, |p| {
                let resumed = if p.resumed { " (resumed)" } else { "" };
                eprintln!(
                    "indexed {} traces{resumed}, through `{}`, {:.1}s",
                    p.indexed,
                    p.last,
                    started.elapsed().as_secs_f64()
                );
            })
            .await
            .context("rebuilding the metadata index (run it again to resume where it stopped)")?;
        println!(
            "metadata index rebuilt: {} traces{}; {} rows of traces no longer in the store removed",
            report.indexed,
            if report.resumed { " (resumed)" } else { "" },
            report.removed
        );
        Ok(ExitCode::SUCCESS)
    })
}
