//! Reading the trail: the filtered, newest-first query behind `GET /v1/audit`, and the verbatim
//! JSON Lines export for a SIEM (`tracegate audit export`).
//!
//! The embedded log has no index, so a query scans the file (sequential read, a few hundred MB/s);
//! the PostgreSQL trail ([`crate::pg`]) indexes the same filters. Lines are returned or exported exactly as
//! stored, so an exported file still verifies as a chain segment.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::Deserialize;

use crate::error::AuditError;
use crate::log::LOG_FILE;
use crate::record::{Decision, Kind, Record, Timestamp};

/// Default and largest number of records one query returns.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Filters of `GET /v1/audit` (query-string names are the field names). All are conjunctive.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records at or after this time (RFC 3339).
    pub since: Option<Timestamp>,
    /// Records before this time.
    pub until: Option<Timestamp>,
    /// `principal.subject` equals this.
    pub subject: Option<String>,
    /// `request_id` equals this.
    pub request_id: Option<String>,
    /// `request.trace_ids` contains this.
    pub trace_id: Option<String>,
    pub decision: Option<Decision>,
    pub kind: Option<Kind>,
    /// Most records returned, newest first; default 100, at most 1000.
    pub limit: Option<usize>,
}

impl AuditQuery {
    pub fn matches(&self, r: &Record) -> bool {
        let e = &r.entry;
        self.since.is_none_or(|s| e.time >= s)
            && self.until.is_none_or(|u| e.time < u)
            && self.subject.as_ref().is_none_or(|s| e.principal.as_ref().is_some_and(|p| &p.subject == s))
            && self.request_id.as_ref().is_none_or(|id| &e.request_id == id)
            && self.trace_id.as_ref().is_none_or(|t| e.request.as_ref().is_some_and(|q| q.trace_ids.contains(t)))
            && self.decision.is_none_or(|d| e.decision == Some(d))
            && self.kind.is_none_or(|k| e.kind == k)
    }

    /// The number of records a query returns: `limit`, default 100, at most 1000.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

/// The newest records matching `q`, newest first. Blocking: call from `spawn_blocking`.
pub fn query(dir: &Path, q: &AuditQuery) -> Result<Vec<Record>, AuditError> {
    let limit = q.effective_limit();
    let mut keep = VecDeque::with_capacity(limit);
    for_each_line(dir, |line_no, line| {
        let r: Record = serde_json::from_slice(line).map_err(|e| AuditError::Corrupt {
            path: dir.join(LOG_FILE),
            what: format!("line {line_no} is not a record: {e}"),
        })?;
        if q.matches(&r) {
            if keep.len() == limit {
                keep.pop_front();
            }
            keep.push_back(r);
        }
        Ok(())
    })?;
    Ok(keep.into_iter().rev().collect())
}

/// Writes every matching record, oldest first, verbatim as stored (one JSON object per line);
/// `q.limit` is ignored. Returns how many were written.
pub fn export(dir: &Path, q: &AuditQuery, out: &mut dyn Write) -> Result<u64, AuditError> {
    let mut n = 0;
    let everything = AuditQuery { limit: None, ..q.clone() } == AuditQuery::default();
    for_each_line(dir, |line_no, line| {
        if !everything {
            let r: Record = serde_json::from_slice(line).map_err(|e| AuditError::Corrupt {
                path: dir.join(LOG_FILE),
                what: format!("line {line_no} is not a record: {e}"),
            })?;
            if !q.matches(&r) {
                return Ok(());
            }
        }
        out.write_all(line).and_then(|()| out.write_all(b"\n")).map_err(AuditError::io(Path::new("<export>")))?;
        n += 1;
        Ok(())
    })?;
    out.flush().map_err(AuditError::io(Path::new("<export>")))?;
    Ok(n)
}

/// Calls `f(line number from 1, line without '\n')` for every complete line of the log. A final
/// line without `\n` is a write in progress (or a torn tail) and is skipped.
pub(crate) fn for_each_line(dir: &Path, mut f: impl FnMut(u64, &[u8]) -> Result<(), AuditError>) -> Result<(), AuditError> {
    let path = dir.join(LOG_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AuditError::Io { path, source: e }),
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut no = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(AuditError::io(&path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        no += 1;
        f(no, &line[..line.len() - 1])?;
    }
}
