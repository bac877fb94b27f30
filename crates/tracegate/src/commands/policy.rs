//! `tracegate policy check FILE` and `tracegate policy test DIR`: validate a policy and show each
//! role's effective view; run golden scenarios (the format is documented in
//! `tracegate_core::scenario`) so operators can test their own policies as we test ours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::Value;
use tracegate_core::mask::MaskKey;
use tracegate_core::scenario::Scenario;
use tracegate_core::{Policy, TraceId};

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Validate a policy file and print each role's effective view.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Run every `*.toml` scenario in DIR against a policy.
    Test {
        /// Directory of scenario files (golden bodies beside them).
        dir: PathBuf,
        /// The policy file [default: DIR/policy.toml, else DIR/../policy.toml].
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Directory of trace documents (`<trace id>.json`) the scenarios refer to
        /// [default: DIR/traces, else DIR/../traces].
        #[arg(long)]
        traces: Option<PathBuf>,
        /// Write the observed bodies as the new golden files instead of comparing.
        #[arg(long, env = "UPDATE_GOLDEN")]
        bless: bool,
    },
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check { file } => check(&file),
        Cmd::Test { dir, policy, traces, bless } => {
            let policy = policy.unwrap_or_else(|| beside(&dir, "policy.toml"));
            let traces = traces.unwrap_or_else(|| beside(&dir, "traces"));
            test(&dir, &policy, &traces, bless)
        }
    }
}

/// `dir/name` if it exists, else `dir/../name`.
fn beside(dir: &Path, name: &str) -> PathBuf {
    let inside = dir.join(name);
    if inside.exists() {
        inside
    } else {
        dir.join("..").join(name)
    }
}

pub fn load_policy(file: &Path) -> anyhow::Result<Result<Policy, tracegate_core::PolicyError>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading `{}`", file.display()))?;
    Ok(Policy::parse(&file.display().to_string(), &text))
}

fn check(file: &Path) -> anyhow::Result<ExitCode> {
    match load_policy(file)? {
        Ok(p) => {
            println!("{}", serde_json::to_string_pretty(&p.effective_views())?);
            eprintln!("{}: ok ({} roles, version {})", file.display(), p.roles.len(), p.version);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Loads every `<id>.json` in `dir`.
pub fn load_traces(dir: &Path) -> anyhow::Result<BTreeMap<TraceId, Value>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading `{}`", dir.display()))? {
        let path = entry?.path();
        let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        let id = TraceId::parse(stem)?;
        let bytes = std::fs::read(&path)?;
        let doc = serde_json::from_slice(&bytes).with_context(|| format!("`{}` is not valid JSON", path.display()))?;
        out.insert(id, doc);
    }
    Ok(out)
}

/// The outcome of one scenario file.
pub struct ScenarioResult {
    pub file: PathBuf,
    pub description: String,
    pub problems: Vec<String>,
}

/// Runs one scenario file. With `bless`, (re)writes its golden body instead of comparing it.
pub fn run_scenario(
    file: &Path,
    policy: &Policy,
    traces: &BTreeMap<TraceId, Value>,
    key: &MaskKey,
    bless: bool,
) -> anyhow::Result<ScenarioResult> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading `{}`", file.display()))?;
    let sc = Scenario::parse(&text).with_context(|| format!("`{}` is not a valid scenario", file.display()))?;
    let seen = sc.run(policy, traces, key).with_context(|| format!("running `{}`", file.display()))?;
    let golden_path = sc.expect.body.as_ref().map(|b| file.parent().unwrap_or(Path::new(".")).join(b));
    let mut problems = Vec::new();
    let golden = match (&golden_path, bless) {
        (Some(p), true) => {
            let body = seen.body.as_ref().map_or(Ok(String::from("null")), serde_json::to_string_pretty)?;
            std::fs::write(p, format!("{body}\n")).with_context(|| format!("writing `{}`", p.display()))?;
            None
        }
        (Some(p), false) => match std::fs::read(p) {
            Ok(b) => Some(serde_json::from_slice::<Value>(&b).with_context(|| format!("`{}` is not JSON", p.display()))?),
            Err(e) => {
                problems.push(format!("golden body `{}` unreadable ({e}); run with --bless to create it", p.display()));
                None
            }
        },
        (None, _) => None,
    };
    problems.extend(sc.expect.mismatches(&seen, golden.as_ref()));
    if let (Some(g), Some(b)) = (&golden, &seen.body) {
        if g != b {
            problems.push(format!("observed body:\n{}", serde_json::to_string_pretty(b)?));
        }
    }
    Ok(ScenarioResult { file: file.to_owned(), description: sc.description, problems })
}

/// Scenario files in `dir`, sorted.
pub fn scenario_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

fn test(dir: &Path, policy_file: &Path, traces_dir: &Path, bless: bool) -> anyhow::Result<ExitCode> {
    let policy = match load_policy(policy_file)? {
        Ok(p) => p,
        Err(e) => bail!("{e}"),
    };
    let traces = load_traces(traces_dir)?;
    // Scenarios use a fixed, public test key so golden pseudonyms are stable.
    let key = MaskKey(b"tracegate-scenario-key-not-secret-0000".to_vec());
    let (mut passed, mut failed) = (0, 0);
    for file in scenario_files(dir)? {
        let r = run_scenario(&file, &policy, &traces, &key, bless)?;
        if r.problems.is_empty() {
            passed += 1;
            println!("ok    {}  {}", r.file.display(), r.description);
        } else {
            failed += 1;
            println!("FAIL  {}  {}", r.file.display(), r.description);
            for p in &r.problems {
                println!("      {}", p.replace('\n', "\n      "));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
