//! `tracegate mask [--config FILE --role ROLE] [--out DIR] FILE...`: masks trace files offline
//! with the gateway's own engine, for batch jobs and pipelines, and so operators can see exactly
//! what a role would be served (its field view, then its masking).
//!
//! Without `--config` (or `--policy`), every built-in detector runs with `redact`. Files ending in
//! `.jsonl` / `.ndjson` are masked line by line; `-` reads standard input. With one input and no
//! `--out`, the result goes to standard output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::Value;
use tracegate_core::mask::{MaskKey, MaskReport, Masker, MIN_KEY_LEN};
use tracegate_core::project::project;
use tracegate_core::{Policy, Role};

#[derive(Debug, clap::Args)]
pub struct MaskArgs {
    /// Gateway config: its policy supplies `--role`'s view and masking, its `[masking]` section
    /// the pseudonym key.
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub config: Option<PathBuf>,
    /// A policy file to take `--role` from, instead of a gateway config. The pseudonym key then
    /// comes from the `TRACEGATE_MASK_KEY` environment variable.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The role whose view and masking to apply (needs `--config` or `--policy`).
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Write each masked file into DIR under its own name (needed for more than one input).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print what was masked to standard error: detector, operator, count and JSON paths,
    /// never the values.
    #[arg(long)]
    pub report: bool,
    /// Indent the output (JSON Lines stay one document per line).
    #[arg(long)]
    pub pretty: bool,
    /// Trace files: JSON, or JSON Lines for `.jsonl` / `.ndjson`; `-` is standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Where the masking comes from: a role (view + masker) or the redact-everything default.
enum Plan {
    Role(Policy, String),
    Default(Masker),
}

impl Plan {
    fn role(&self) -> Option<&Role> {
        match self {
            Plan::Role(p, name) => p.role(name),
            Plan::Default(_) => None,
        }
    }

    /// Projects to the role's view (if any), then masks.
    fn apply(&self, doc: Value, key: &MaskKey) -> anyhow::Result<(Value, MaskReport)> {
        match (self, self.role()) {
            (Plan::Default(m), _) => {
                let mut doc = doc;
                let r = m.apply(&mut doc, key);
                Ok((doc, r))
            }
            (Plan::Role(..), Some(role)) => {
                let mut doc = project(doc, role, None).map_err(|d| anyhow::anyhow!("role `{}` may not see this trace: {} ({})", role.name, d.message, d.rules.join(", ")))?;
                let r = role.masking.apply(&mut doc, key);
                Ok((doc, r))
            }
            (Plan::Role(_, name), None) => bail!("no role `{name}` in the policy"),
        }
    }
}

impl Plan {
    /// Masks one JSON text into `out`. The default plan with compact output runs the byte engine
    /// (one pass over the text, no document built); a role's view, or pretty output, goes
    /// through the parsed document. Both mask the same (`core/tests/mask_differential.rs`).
    fn mask_into(&self, text: &[u8], key: &MaskKey, pretty: bool, out: &mut Vec<u8>, at: &dyn Fn() -> String) -> anyhow::Result<MaskReport> {
        if let (Plan::Default(m), false) = (self, pretty) {
            return m.apply_json(text, key, out).with_context(|| format!("{}: not JSON", at()));
        }
        let doc: Value = serde_json::from_slice(text).with_context(|| format!("{}: not JSON", at()))?;
        let (doc, r) = self.apply(doc, key)?;
        if pretty {
            serde_json::to_writer_pretty(&mut *out, &doc)?;
        } else {
            serde_json::to_writer(&mut *out, &doc)?;
        }
        Ok(r)
    }
}

pub fn run(args: MaskArgs) -> anyhow::Result<()> {
    let (plan, key) = plan(&args)?;
    if args.files.len() > 1 && args.out.is_none() {
        bail!("{} inputs need `--out DIR` (one input without it goes to standard output)", args.files.len());
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    }
    for file in &args.files {
        let (bytes, name) = read_input(file)?;
        let lines = matches!(file.extension().and_then(|e| e.to_str()), Some("jsonl" | "ndjson"));
        let mut out = Vec::with_capacity(bytes.len());
        let mut reports = Vec::new();
        if lines {
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let r = plan.mask_into(line, &key, false, &mut out, &|| format!("{}:{}", file.display(), i + 1))?;
                out.push(b'\n');
                reports.push(r);
            }
        } else {
            let r = plan.mask_into(&bytes, &key, args.pretty, &mut out, &|| file.display().to_string())?;
            out.push(b'\n');
            reports.push(r);
        }
        if args.report {
            for r in &reports {
                eprintln!("{}: {}", file.display(), serde_json::to_string(r)?);
            }
        }
        match &args.out {
            Some(dir) => {
                let dest = dir.join(&name);
                std::fs::write(&dest, &out).with_context(|| format!("writing `{}`", dest.display()))?;
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&out)?;
                stdout.flush()?;
            }
        }
    }
    Ok(())
}

fn plan(args: &MaskArgs) -> anyhow::Result<(Plan, MaskKey)> {
    let env_key = || std::env::var("TRACEGATE_MASK_KEY").ok().map(|k| k.trim().as_bytes().to_vec());
    let (policy_file, key) = match (&args.config, &args.policy) {
        (Some(cfg), _) => {
            let gw = tracegate_server::GatewayConfig::load(cfg)?;
            (Some(gw.policy_path()), gw.mask_key()?.or_else(env_key))
        }
        (None, Some(p)) => (Some(p.clone()), env_key()),
        (None, None) => (None, env_key()),
    };
    let key = MaskKey(key.unwrap_or_default());
    let plan = match (policy_file, &args.role) {
        (None, Some(_)) => bail!("`--role` needs `--config` or `--policy`"),
        (None, None) => Plan::Default(Masker::redact_all().map_err(anyhow::Error::msg)?),
        (Some(_), None) => bail!("`--role` is required with `--config` or `--policy`"),
        (Some(file), Some(role)) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading `{}`", file.display()))?;
            let policy = Policy::parse(&file.display().to_string(), &text).map_err(|e| anyhow::anyhow!("{e}"))?;
            let Some(r) = policy.role(role) else {
                let names: Vec<&str> = policy.roles.iter().map(|r| r.name.as_str()).collect();
                bail!("no role `{role}` in `{}` (roles: {})", file.display(), names.join(", "));
            };
            if r.masking.summary()["operators"].get("hash").is_some() && key.0.len() < MIN_KEY_LEN {
                eprintln!("warning: role `{role}` pseudonymises with `hash` but no key of at least {MIN_KEY_LEN} bytes is set; those values are redacted instead");
            }
            Plan::Role(policy, role.clone())
        }
    };
    Ok((plan, key))
}

/// Reads `-` (standard input) or a file; returns the bytes and the output file name.
fn read_input(file: &Path) -> anyhow::Result<(Vec<u8>, PathBuf)> {
    if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("reading standard input")?;
        return Ok((b, PathBuf::from("stdin.json")));
    }
    let b = std::fs::read(file).with_context(|| format!("reading `{}`", file.display()))?;
    let name = file.file_name().map_or_else(|| PathBuf::from("out.json"), PathBuf::from);
    Ok((b, name))
}
