//! The CLI's one client of the gateway's HTTP API, shared by `tracegate requests` and
//! `tracegate service-accounts`: where the gateway is, how to call it as the caller, and how to
//! print what it says. Everything the gateway returns may carry other people's text (purposes,
//! comments, names), so every printed string passes through [`printable`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tracegate_server::GatewayConfig;

/// How to reach the gateway and as whom.
#[derive(clap::Args, Clone)]
pub struct Conn {
    /// The gateway config file; the gateway is reached at `approvals.public_url`, else at
    /// `server.listen`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080` (overrides the config).
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token of the caller.
    #[arg(long, env = "TRACEGATE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Print the gateway's JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}


/// `s` safe to print to a terminal: control characters (C0 including ESC and line breaks, DEL,
/// C1 including the one-byte CSI) and invisible characters (bidirectional overrides, zero-width)
/// become `\uXXXX` escapes — visible, and still valid inside a JSON string.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || tracegate_approvals::notify::is_invisible(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] for multi-line output we rendered ourselves (pretty JSON): its own line breaks
/// stay, anything inside a line is escaped.
pub fn printable_lines(s: &str) -> String {
    s.lines().map(printable).collect::<Vec<_>>().join("\n")
}

pub fn base_url(conn: &Conn) -> anyhow::Result<String> {
    if let Some(u) = &conn.url {
        return Ok(u.clone());
    }
    let Some(path) = &conn.config else {
        bail!("say where the gateway is: --url URL or --config FILE");
    };
    let cfg = GatewayConfig::load(path)?;
    Ok(match &cfg.approvals.public_url {
        Some(u) => u.clone(),
        None => format!("http://{}", cfg.server.listen),
    })
}

#[derive(Clone, Copy)]
pub enum Method {
    Get,
    Post,
}

/// Calls the gateway as `conn`'s caller. `Ok(Err(line))` is the gateway's refusal, rendered for a
/// terminal; `Err` is a failure to reach it at all. `null` members of `body` are left out.
pub async fn call(conn: &Conn, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Result<Value, String>> {
    let base = base_url(conn)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("building the HTTP client")?;
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let req = match method {
        Method::Post => client.post(&url).json(&strip_nulls(body.unwrap_or_else(|| Value::Object(Default::default())))),
        Method::Get => client.get(&url),
    };
    let resp = req.bearer_auth(conn.token.trim()).send().await.with_context(|| format!("reaching the gateway at `{base}`"))?;
    let status = resp.status();
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = json["error"]["message"].as_str().unwrap_or("no message");
        let code = json["error"]["code"].as_str().unwrap_or("error");
        return Ok(Err(format!("error: {} ({}): {}", printable(code), status.as_u16(), printable(msg))));
    }
    Ok(Ok(json))
}

/// Runs a command's `execute` future and prints its output: stdout on success, stderr otherwise.
pub fn print(fut: impl std::future::Future<Output = anyhow::Result<(ExitCode, String)>>) -> anyhow::Result<ExitCode> {
    let (code, out) = super::serve::runtime()?.block_on(fut)?;
    if code == ExitCode::SUCCESS {
        println!("{out}");
    } else {
        eprintln!("{out}");
    }
    Ok(code)
}

fn strip_nulls(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
    v
}
