//! `tracegate audit verify|replay|export|prune|public-key`: the auditor's commands.
//!
//! They read the `[audit]` (and `[state]`) tables of the config file themselves, so `verify` and
//! `export` work on a copied audit directory with only its public key (`--dir`, `--public-key`),
//! without the rest of the gateway's configuration. With `[state] url` (or `TRACEGATE_STATE_URL`)
//! in the config, `verify`, `replay` and `export` read the one PostgreSQL trail of every replica. `prune` takes the directory's writer lock: run it while the
//! gateway is stopped (the running gateway prunes itself when `retention` is set).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context};
use serde_json::json;
use tracegate_audit::{AuditConfig, AuditLog, AuditQuery, AuditSource, Decision, PublicKey, Timestamp};

#[derive(clap::Subcommand)]
pub enum AuditCmd {
    /// Check the whole hash chain and every checkpoint signature; report the first break.
    Verify {
        #[command(flatten)]
        src: Source,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reproduce what a read showed: re-fetch the recorded object version, re-apply the recorded
    /// policy version and masking, and compare with the recorded digest.
    Replay {
        /// The request id of the record (the `x-request-id` the client got).
        id: String,
        /// The gateway config file (`tracegate.toml`), for the store and the masking key.
        #[arg(long)]
        config: PathBuf,
        /// Also print the reproduced body.
        #[arg(long)]
        show: bool,
    },
    /// Write records as JSON Lines (verbatim, still verifiable) for a SIEM.
    Export {
        #[command(flatten)]
        src: Source,
        #[command(flatten)]
        filter: Filter,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export and remove records older than the retention age, anchoring the cut with a signed
    /// checkpoint so what remains still verifies. Run while the gateway is stopped (with
    /// `[state]`, the shared trail may be pruned while replicas run).
    Prune {
        /// The gateway config file (`tracegate.toml`).
        #[arg(long)]
        config: PathBuf,
        /// Age, e.g. `400d` (default: `[audit] retention`).
        #[arg(long)]
        older_than: Option<String>,
        /// Export file (default: `<audit dir>/exports/pruned-<unix ms>.jsonl`).
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Print the checkpoint public key for verifiers (`ed25519:<base64>`).
    PublicKey {
        /// The gateway config file (`tracegate.toml`).
        #[arg(long)]
        config: PathBuf,
    },
}

/// Where the audit trail is: a config file, or a directory and the public key(s) to trust.
#[derive(clap::Args)]
pub struct Source {
    /// The gateway config file (`tracegate.toml`); its `[audit]` table locates everything.
    #[arg(long, required_unless_present = "dir")]
    config: Option<PathBuf>,
    /// An audit directory (e.g. a copy), instead of `--config`.
    #[arg(long, conflicts_with = "config")]
    dir: Option<PathBuf>,
    /// Public key file(s) to trust (`ed25519:...`); default `<signing_key>.pub` from the config.
    #[arg(long = "public-key")]
    public_keys: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct Filter {
    /// Records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Records before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only this principal subject.
    #[arg(long)]
    subject: Option<String>,
    /// Only records naming this trace id.
    #[arg(long)]
    trace_id: Option<String>,
    /// `allow`, `deny`, `error` or `pending`.
    #[arg(long)]
    decision: Option<String>,
}

pub fn run(cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCmd::Verify { src, json } => super::serve::runtime()?.block_on(verify(&src, json)),
        AuditCmd::Replay { id, config, show } => super::serve::runtime()?.block_on(replay(&id, &config, show)),
        AuditCmd::Export { src, filter, out } => super::serve::runtime()?.block_on(export(&src, &filter, out.as_deref())),
        AuditCmd::Prune { config, older_than, export } => prune(&config, older_than.as_deref(), export),
        AuditCmd::PublicKey { config } => {
            let cfg = audit_config(&config)?;
            let key = PublicKey::load(&tracegate_audit::public_key_path(&cfg.signing_key))
                .or_else(|_| cfg.load_signing_key().map(|k| k.public_key().clone()))?;
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The `[audit]` table of a gateway config, paths resolved against the config file's directory.
pub fn audit_config(config: &Path) -> anyhow::Result<AuditConfig> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading `{}`", config.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing `{}`", config.display()))?;
    let audit: AuditConfig = match table.get("audit") {
        Some(v) => v.clone().try_into().with_context(|| format!("`{}`: [audit]", config.display()))?,
        None => AuditConfig::default(),
    };
    let base = config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(audit.resolve(base))
}

/// The `[state]` table of a gateway config (empty when absent; `TRACEGATE_STATE_URL` still applies).
pub fn state_config(config: &Path) -> anyhow::Result<tracegate_state::StateConfig> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading `{}`", config.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing `{}`", config.display()))?;
    Ok(match table.get("state") {
        Some(v) => v.clone().try_into().with_context(|| format!("`{}`: [state]", config.display()))?,
        None => tracegate_state::StateConfig::default(),
    })
}

/// The trail a config names: PostgreSQL when it has shared state, else its audit directory. The
/// schema is checked, never migrated: auditors read.
async fn source_of(config: &Path, acfg: &AuditConfig) -> anyhow::Result<AuditSource> {
    let state = state_config(config)?;
    if state.effective_url().is_none() {
        return Ok(AuditSource::Dir(acfg.dir.clone()));
    }
    let pool = tracegate_state::connect(&state).await?;
    tracegate_state::check_current(&pool).await?;
    Ok(AuditSource::Postgres(pool))
}

async fn locate(src: &Source) -> anyhow::Result<(AuditSource, Vec<PublicKey>)> {
    let cfg = src.config.as_deref().map(audit_config).transpose()?;
    let source = match (&src.dir, &cfg, &src.config) {
        (Some(d), _, _) => AuditSource::Dir(d.clone()),
        (None, Some(c), Some(path)) => source_of(path, c).await?,
        _ => bail!("give `--config FILE` or `--dir DIR`"),
    };
    let mut paths = src.public_keys.clone();
    if paths.is_empty() {
        match &cfg {
            Some(c) => paths.push(tracegate_audit::public_key_path(&c.signing_key)),
            None => bail!("with `--dir`, give the public key(s) to trust with `--public-key FILE`"),
        }
    }
    let keys = paths
        .iter()
        .map(|p| PublicKey::load(p).with_context(|| format!("public key `{}`", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((source, keys))
}

async fn verify(src: &Source, as_json: bool) -> anyhow::Result<ExitCode> {
    let (source, keys) = locate(src).await?;
    let report = source.verify(&keys).await?;
    let dir = source.describe();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    for p in &report.problems {
        eprintln!("{dir}: {:?}: {p}", p.kind);
    }
    let range = match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!("seq {a}..={b}"),
        _ => "no records".into(),
    };
    if report.torn_tail_bytes > 0 {
        eprintln!("note: {} bytes of an unfinished final line (a crash mid-write); the gateway cuts them on next start", report.torn_tail_bytes);
    }
    if report.ok() {
        eprintln!(
            "{dir}: ok: {} records ({range}), {} valid checkpoints ({} anchors), {} records after the last checkpoint",
            report.records,
            report.checkpoints,
            report.anchors,
            report.unsigned_records
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{dir}: FAILED: {} problem(s); chain intact up to {range}", report.problems.len());
        Ok(ExitCode::FAILURE)
    }
}

fn filter(f: &Filter) -> anyhow::Result<AuditQuery> {
    let time = |s: &Option<String>| s.as_deref().map(Timestamp::parse).transpose().map_err(anyhow::Error::msg);
    let decision = match f.decision.as_deref() {
        None => None,
        Some(d) => Some(serde_json::from_value::<Decision>(json!(d)).map_err(|_| anyhow::anyhow!("`{d}` is not a decision (allow, deny, error, pending)"))?),
    };
    Ok(AuditQuery {
        since: time(&f.since)?,
        until: time(&f.until)?,
        subject: f.subject.clone(),
        request_id: None,
        trace_id: f.trace_id.clone(),
        decision,
        kind: None,
        limit: None,
    })
}

async fn export(src: &Source, f: &Filter, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let source = match (&src.dir, &src.config) {
        (Some(d), _) => AuditSource::Dir(d.clone()),
        (None, Some(c)) => source_of(c, &audit_config(c)?).await?,
        (None, None) => bail!("give `--config FILE` or `--dir DIR`"),
    };
    let q = filter(f)?;
    let n = match out {
        Some(path) => {
            let file = File::options().write(true).create_new(true).open(path).with_context(|| format!("creating `{}`", path.display()))?;
            let mut w = BufWriter::new(file);
            let n = source.export(&q, &mut w).await?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            n
        }
        None => {
            let mut stdout = std::io::stdout();
            source.export(&q, &mut stdout).await?
        }
    };
    eprintln!("exported {n} records");
    Ok(ExitCode::SUCCESS)
}

fn prune(config: &Path, older_than: Option<&str>, export: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = audit_config(config)?;
    let state = state_config(config)?;
    let age = match older_than {
        Some(s) => humantime::parse_duration(s).with_context(|| format!("`{s}` is not a duration"))?,
        None => cfg.retention.context("no `--older-than` and no `[audit] retention` configured")?,
    };
    let before = SystemTime::now().checked_sub(age).context("age reaches before the epoch")?;
    let export = match export {
        Some(p) => p,
        None => {
            let dir = cfg.dir.join("exports");
            std::fs::create_dir_all(&dir)?;
            let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            dir.join(format!("pruned-{ms}.jsonl"))
        }
    };
    let key = cfg.load_signing_key()?;
    let rt = super::serve::runtime()?;
    let report = rt.block_on(async {
        // With [state], the one trail of every replica, pruned while they run (the cut holds the
        // chain head, so their appends wait for it); else the audit directory (gateway stopped).
        if state.effective_url().is_some() {
            let pool = tracegate_state::connect(&state).await?;
            tracegate_state::check_current(&pool).await?;
            let log = tracegate_audit::PgAuditLog::open(pool, cfg.pg_options(), key).await?;
            let r = log.prune(before, export.clone()).await;
            log.shutdown().await?;
            return anyhow::Ok(r?);
        }
        let log = AuditLog::open(cfg.log_options(), key)?;
        let r = log.prune(before, export.clone()).await;
        log.shutdown().await?;
        anyhow::Ok(r?)
    })?;
    match report.first_seq {
        Some(first) => eprintln!("pruned {} records to `{}`; the log now starts at seq {first}", report.pruned, export.display()),
        None => eprintln!("nothing older than {}", humantime::format_rfc3339_seconds(before)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(id: &str, config: &Path, show: bool) -> anyhow::Result<ExitCode> {
    let acfg = audit_config(config)?;
    let source = source_of(config, &acfg).await?;
    let record = tracegate_server::replay::find(&source, id)
        .await?
        .with_context(|| format!("no audit record for request `{id}` in `{}`", source.describe()))?;
    let gw = tracegate_server::GatewayConfig::load(config)?;
    let store = gw.open_store()?;
    let key = tracegate_core::mask::MaskKey(gw.mask_key()?.unwrap_or_default());
    // The operator holds the store's credential already: the CLI shows the body as replayed.
    let r = tracegate_server::replay::replay(&record, &source, &store, &key, gw.server.max_read_bytes, None).await?;
    if let (true, Some(bytes)) = (show, &r.bytes) {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.write_all(b"\n")?;
    }
    let outcome = json!({ "seq": record.seq, "request_id": record.entry.request_id, "result": r.outcome.code(), "detail": r.detail });
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(match r.outcome {
        tracegate_server::replay::Outcome::Reproduced => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

