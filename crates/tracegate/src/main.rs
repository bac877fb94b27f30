//! `tracegate`: a least-privilege gateway for AI reasoning traces. This file only dispatches;
//! each command lives in its own file under `commands/`.

use clap::{Parser, Subcommand};
use tracegate::commands;

/// mimalloc instead of the system allocator: a read allocates and frees many small buffers
/// (headers, the audit record's members, masked strings) across worker threads, where glibc's
/// malloc spent ~13% of the gateway's CPU on 2 KB reads (see `docs/benchmarks.md`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tracegate", version, about = "A least-privilege Layer 7 gateway for AI reasoning traces")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lay out a data directory with sample traces, a policy and a dev issuer, then serve it.
    Quickstart(commands::quickstart::Args),
    /// Serve from a config file.
    Serve(commands::serve::Args),
    /// Mint a token from the config's development issuer.
    Token(commands::token::Args),
    /// Check a policy, or run golden scenarios against it.
    #[command(subcommand)]
    Policy(commands::policy::Cmd),
    /// Mask trace files offline with the gateway's masking engine.
    Mask(commands::mask::MaskArgs),
    /// Apply the shared-state (PostgreSQL) schema migrations, or check them with `--check`.
    Migrate(commands::migrate::Args),
    /// Rebuild the shared PostgreSQL metadata index from the store (`[state]`).
    #[command(subcommand)]
    Index(commands::index::Cmd),
    /// Verify, replay, export and prune the audit trail.
    #[command(subcommand)]
    Audit(commands::audit::AuditCmd),
    /// List, show, approve, deny or revoke access requests on a running gateway.
    #[command(subcommand)]
    Requests(commands::requests::Cmd),
    /// Create, list, rotate or revoke service-account API keys on a running gateway (admins).
    #[command(subcommand)]
    ServiceAccounts(commands::service_accounts::Cmd),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart(a) => commands::quickstart::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::Token(a) => commands::token::run(a),
        Command::Policy(c) => commands::policy::run(c),
        Command::Mask(a) => commands::mask::run(a).map(|()| std::process::ExitCode::SUCCESS),
        Command::Migrate(a) => commands::migrate::run(a),
        Command::Index(c) => commands::index::run(c),
        Command::Audit(c) => commands::audit::run(c),
        Command::Requests(c) => commands::requests::run(c),
        Command::ServiceAccounts(c) => commands::service_accounts::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
