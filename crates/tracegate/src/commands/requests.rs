//! `tracegate requests list|show|approve|deny|revoke`: the approver's (and requester's) view of
//! access requests, through the running gateway's HTTP API. The CLI authenticates like any
//! caller — with a bearer token from `--token` or `TRACEGATE_TOKEN` — so it can do exactly what
//! that identity may do over HTTP, nothing more.
//!
//! Purposes, comments and subjects are other people's text: everything printed passes through
//! [`printable`](super::gateway::printable), so an ANSI escape in a purpose cannot recolour, move the cursor, retitle the
//! window or hide itself, and a line break cannot forge a line of output.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::Value;

pub use super::gateway::Conn;
use super::gateway::{printable, printable_lines, Method};

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// List the access requests you may see (your own, and those you may decide).
    List {
        /// Only requests in this state: pending, approved, denied, expired, used, revoked.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one access request.
    Show {
        /// The access request id (`ar_...`).
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Approve a request (never your own).
    Approve {
        /// The access request id (`ar_...`).
        id: String,
        /// Why, for the record.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Deny a request; a deny by any approver ends it.
    Deny {
        /// The access request id (`ar_...`).
        id: String,
        /// Why (required: the requester deserves a reason).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke an active grant.
    Revoke {
        /// The access request id (`ar_...`).
        id: String,
        /// Why (required).
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    super::gateway::print(execute(cmd))
}

/// Runs a command and returns its exit code and output, so tests drive the same code.
pub async fn execute(cmd: Cmd) -> anyhow::Result<(ExitCode, String)> {
    let (conn, method, path, body) = match &cmd {
        Cmd::List { status, conn } => {
            let q = status.as_deref().map(|s| format!("?status={s}")).unwrap_or_default();
            (conn, Method::Get, format!("/v1/access-requests{q}"), None)
        }
        Cmd::Show { id, conn } => (conn, Method::Get, format!("/v1/access-requests/{}", seg(id)?), None),
        Cmd::Approve { id, comment, conn } => {
            (conn, Method::Post, format!("/v1/access-requests/{}/approve", seg(id)?), Some(serde_json::json!({ "comment": comment })))
        }
        Cmd::Deny { id, comment, conn } => {
            (conn, Method::Post, format!("/v1/access-requests/{}/deny", seg(id)?), Some(serde_json::json!({ "comment": comment })))
        }
        Cmd::Revoke { id, comment, conn } => {
            (conn, Method::Post, format!("/v1/access-requests/{}/revoke", seg(id)?), Some(serde_json::json!({ "comment": comment })))
        }
    };
    let json = match super::gateway::call(conn, method, &path, body).await? {
        Ok(json) => json,
        Err(refused) => return Ok((ExitCode::FAILURE, refused)),
    };
    if conn.json {
        return Ok((ExitCode::SUCCESS, printable_lines(&serde_json::to_string_pretty(&json)?)));
    }
    let out = match &cmd {
        Cmd::List { .. } => {
            let rows: Vec<String> = json["access_requests"].as_array().map(|a| a.iter().map(summary).collect()).unwrap_or_default();
            if rows.is_empty() {
                "no access requests".to_owned()
            } else {
                rows.join("\n")
            }
        }
        Cmd::Show { .. } => printable_lines(&serde_json::to_string_pretty(&json)?),
        _ => summary(&json),
    };
    Ok((ExitCode::SUCCESS, out))
}

/// One line: id, status, requester, role, traces, purpose, approvers.
fn summary(r: &Value) -> String {
    let s = |v: &Value| printable(v.as_str().unwrap_or("-"));
    let list = |v: &Value| {
        v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(printable).collect::<Vec<_>>().join(",")).unwrap_or_default()
    };
    format!(
        "{}  {:<8}  {}  role={}  traces={}  purpose={}  approved_by={}",
        s(&r["id"]),
        s(&r["status"]),
        s(&r["shape"]["requester"]["subject"]),
        s(&r["shape"]["role"]),
        list(&r["shape"]["traces"]),
        s(&r["shape"]["purpose"]),
        list(&r["approved_by"]),
    )
}

/// An id as one path segment; ids are `ar_<hex>`, so anything else is refused before sending.
fn seg(id: &str) -> anyhow::Result<&str> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        bail!("`{id}` is not an access request id");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_drive_the_terminal() {
        let hostile = "INC-1\u{1b}[2J\u{1b}]0;pwned\u{7}\r\napproved_by=security\u{9b}31m\u{202e}gnp\u{7f}";
        let out = printable(hostile);
        assert!(out.chars().all(|c| !c.is_control() && !tracegate_approvals::notify::is_invisible(c)), "{out:?}");
        assert_eq!(out, "INC-1\\u001b[2J\\u001b]0;pwned\\u0007\\u000d\\u000aapproved_by=security\\u009b31m\\u202egnp\\u007f");
        // A summary line stays one line, whatever the purpose says.
        let r = serde_json::json!({ "id": "ar_1", "status": "pending", "shape": { "requester": { "subject": "sid\u{1b}[1m" }, "purpose": hostile } });
        let line = summary(&r);
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
        // Escaped JSON is still JSON, with the same text.
        let pretty = serde_json::to_string_pretty(&serde_json::json!({ "purpose": hostile })).unwrap_or_default();
        let safe = printable_lines(&pretty);
        assert!(!safe.contains('\u{9b}') && !safe.contains('\u{202e}'));
        let back: Value = serde_json::from_str(&safe).unwrap_or_default();
        assert_eq!(back["purpose"], hostile);
    }
}
