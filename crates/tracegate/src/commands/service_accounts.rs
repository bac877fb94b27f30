//! `tracegate service-accounts create|list|rotate|revoke`: manage API keys for non-human callers
//! through the running gateway's admin API (`/v1/service-accounts`). The CLI authenticates like
//! any caller (`--token` or `TRACEGATE_TOKEN`), so only members of the configured admin groups
//! succeed, and every call is audited by the gateway. A new key is printed once, on stdout.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{json, Value};

use super::gateway::{printable, printable_lines, Conn, Method};

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Create a service account scoped to policy roles; prints its first key (once).
    Create {
        /// Account name: a-z, 0-9 and `-`.
        name: String,
        /// A policy role the account may act as (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A string claim its requests carry, `name=value` (e.g. `tenant=acme`; repeatable).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// What the account is for.
        #[arg(long)]
        description: Option<String>,
        /// Key lifetime, e.g. `30d` (default: the gateway's `default_key_ttl`).
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List service accounts and their keys (never a secret).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Issue a new key; the previous one keeps working until revoked (at most two live keys).
    Rotate {
        name: String,
        /// Lifetime of the new key, e.g. `30d`.
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke one key (`--key-id`) or the whole account; every gateway refuses it at once.
    Revoke {
        name: String,
        /// The key to revoke (as listed); without it, the account and all its keys.
        #[arg(long)]
        key_id: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    super::gateway::print(execute(cmd))
}

/// Runs a command and returns its exit code and output, so tests drive the same code.
pub async fn execute(cmd: Cmd) -> anyhow::Result<(ExitCode, String)> {
    let (conn, path, body) = match &cmd {
        Cmd::Create { name, roles, claims, description, ttl, conn } => {
            let mut c = serde_json::Map::new();
            for kv in claims {
                let Some((k, v)) = kv.split_once('=') else { bail!("`--claim {kv}`: expected name=value") };
                c.insert(k.to_owned(), json!(v));
            }
            let body = json!({ "name": name, "roles": roles, "claims": c, "description": description, "ttl": ttl });
            (conn, "/v1/service-accounts".to_owned(), Some(body))
        }
        Cmd::List { conn } => (conn, "/v1/service-accounts".to_owned(), None),
        Cmd::Rotate { name, ttl, conn } => (conn, format!("/v1/service-accounts/{}/rotate", seg(name)?), Some(json!({ "ttl": ttl }))),
        Cmd::Revoke { name, key_id, conn } => {
            (conn, format!("/v1/service-accounts/{}/revoke", seg(name)?), Some(json!({ "key_id": key_id })))
        }
    };
    let method = if body.is_some() { Method::Post } else { Method::Get };
    let json = match super::gateway::call(conn, method, &path, body).await? {
        Ok(json) => json,
        Err(refused) => return Ok((ExitCode::FAILURE, refused)),
    };
    if conn.json {
        return Ok((ExitCode::SUCCESS, printable_lines(&serde_json::to_string_pretty(&json)?)));
    }
    let out = match &cmd {
        Cmd::List { .. } => {
            let rows: Vec<String> = json["service_accounts"].as_array().map(|a| a.iter().map(summary).collect()).unwrap_or_default();
            if rows.is_empty() {
                "no service accounts".to_owned()
            } else {
                rows.join("\n")
            }
        }
        Cmd::Create { .. } | Cmd::Rotate { .. } => format!(
            "{}\nkey {} for `{}`, expires {} — shown once, store it now:\n{}",
            summary(&json["service_account"]),
            s(&json["key_id"]),
            s(&json["service_account"]["name"]),
            s(&json["expires_at"]),
            s(&json["key"]),
        ),
        Cmd::Revoke { .. } => summary(&json["service_account"]),
    };
    Ok((ExitCode::SUCCESS, out))
}

/// A string from the gateway, safe to print to a terminal.
fn s(v: &Value) -> String {
    printable(v.as_str().unwrap_or("-"))
}

/// One line per account: name, roles, live keys, then each key with its state.
fn summary(a: &Value) -> String {
    let roles: Vec<String> = a["roles"].as_array().map(|r| r.iter().filter_map(Value::as_str).map(printable).collect()).unwrap_or_default();
    let keys: Vec<String> = a["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .map(|k| {
                    let state = if k["live"].as_bool() == Some(true) { "live" } else if k.get("revoked_at").is_some() { "revoked" } else { "expired" };
                    format!("{}:{state}:expires={}:last_used={}", s(&k["id"]), s(&k["expires_at"]), s(&k["last_used_at"]))
                })
                .collect()
        })
        .unwrap_or_default();
    let revoked = if a.get("revoked_at").is_some() { "  REVOKED" } else { "" };
    format!("{}  roles={}  live_keys={}{revoked}  keys={}", s(&a["name"]), roles.join(","), a["live_keys"], keys.join(" "))
}

/// A name as one path segment; names are `[a-z0-9-]`, so anything else is refused before sending.
fn seg(name: &str) -> anyhow::Result<&str> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        bail!("`{name}` is not a service-account name");
    }
    Ok(name)
}
