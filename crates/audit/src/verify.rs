//! `verify`: checks the whole chain and every checkpoint signature, and says precisely where the
//! trail first stops being trustworthy.
//!
//! Order of checks: every line of `checkpoints.jsonl` must parse and carry a valid signature by a
//! known key (each bad one is reported). Then the log is read once: each record must hash to its
//! `hash`; its `seq` must follow the previous one (a jump is a deleted record, a smaller seq
//! followed by the missing one is a reordered pair); its `prev_hash` must be the previous `hash`;
//! a record a checkpoint signed must have the signed hash. The first record must be seq 1 after
//! the genesis hash, or the first retained record of a signed prune anchor. Finally no signed
//! checkpoint may name a seq beyond the end of the log (truncated tail). The chain check stops at
//! the first break, since what follows it cannot be trusted in order.
//!
//! Limits, stated: records after the last checkpoint are protected by the chain only; someone able
//! to rewrite the log could rewrite that unsigned tail consistently. `checkpoint_interval` bounds
//! that window.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::chain::{check_line, Checked};
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::error::AuditError;
use crate::log::{read_tail, CHECKPOINT_FILE, LOG_FILE};
use crate::query::for_each_line;
use crate::record::GENESIS_HASH;

/// What kind of break was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line is not a record at all (not JSON, or missing chain fields).
    Malformed,
    /// A record's content does not hash to its `hash`: it was edited.
    HashMismatch,
    /// A record's `prev_hash` is not the previous record's `hash`.
    PrevLinkBroken,
    /// Seqs jump: records were deleted.
    SeqGap,
    /// Records appear out of order.
    Reordered,
    /// The log does not start at seq 1 and no signed anchor explains the cut.
    HeadMissing,
    /// A record's hash differs from what a signed checkpoint vouched for: the chain was rewritten.
    CheckpointMismatch,
    /// A checkpoint line does not parse.
    CheckpointMalformed,
    /// A checkpoint was signed by a key the verifier was not given.
    CheckpointUnknownKey,
    /// A checkpoint's signature does not verify: forged or edited.
    CheckpointSignatureInvalid,
    /// A signed checkpoint names a seq beyond the end of the log: records were cut off the tail.
    Truncated,
    /// A PostgreSQL row's filter columns (`subject`, `decision`, `trace_ids`, …) say something
    /// other than its hashed line: `GET /v1/audit` filters would find or hide it wrongly.
    ColumnMismatch,
}

/// One break, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// `audit.jsonl` or `checkpoints.jsonl`.
    pub file: &'static str,
    /// Line number in `file`, from 1 (0 when the problem is the end of the file).
    pub line: u64,
    /// The record's seq, where known.
    pub seq: Option<u64>,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(s) = self.seq {
            write!(f, "seq {s}: ")?;
        }
        write!(f, "{}", self.detail)
    }
}

/// The result of [`verify`]. `ok()` is the verdict; the counts say what it covered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// Checkpoints (including anchors) whose signature verified.
    pub checkpoints: u64,
    pub anchors: u64,
    /// Highest seq a valid checkpoint signs.
    pub last_signed_seq: Option<u64>,
    /// Records after `last_signed_seq`: protected by the chain alone.
    pub unsigned_records: u64,
    /// Bytes of an incomplete final line (a write cut by a crash, never acknowledged); removed
    /// when the gateway next opens the log. Not a failure.
    pub torn_tail_bytes: u64,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the audit directory `dir` against the given public keys (several when keys were
/// rotated). `Err` only when the files cannot be read; a broken trail is an `Ok` report with
/// problems.
pub fn verify(dir: &Path, keys: &[PublicKey]) -> Result<VerifyReport, AuditError> {
    let mut v = Verifier::new(keys, LOG_FILE, CHECKPOINT_FILE);
    let ckpt_path = dir.join(CHECKPOINT_FILE);
    let ckpt_text = match fs::read(&ckpt_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AuditError::Io { path: ckpt_path, source: e }),
    };
    let complete = ckpt_text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    for (i, line) in ckpt_text[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        v.checkpoint(i as u64 + 1, line);
    }
    let mut chain = v.into_chain();
    for_each_line(dir, |line_no, line| {
        chain.record(line_no, line);
        Ok(())
    })?;
    let mut report = chain.finish();
    let log_path = dir.join(LOG_FILE);
    if log_path.exists() {
        let mut f = fs::File::open(&log_path).map_err(AuditError::io(&log_path))?;
        report.torn_tail_bytes = read_tail(&mut f, &log_path)?.torn.len() as u64;
    }
    Ok(report)
}

/// The verification of one trail, fed line by line by whichever backend stores it (the file
/// log, or PostgreSQL): first every checkpoint, then every record in seq order. One
/// implementation of the rules, whatever the storage.
pub(crate) struct Verifier {
    report: VerifyReport,
    by_id: HashMap<String, PublicKey>,
    /// Checkpoints: seq -> (hash, line) they vouch for; anchors: first_seq -> (prev_hash, line).
    signed: BTreeMap<u64, (String, u64)>,
    anchors: BTreeMap<u64, (String, u64)>,
    /// Names of the record and checkpoint stores, for [`Problem::file`].
    log: &'static str,
    ckpts: &'static str,
}

impl Verifier {
    pub(crate) fn new(keys: &[PublicKey], log: &'static str, ckpts: &'static str) -> Self {
        Verifier {
            report: VerifyReport::default(),
            by_id: keys.iter().map(|k| (k.key_id(), k.clone())).collect(),
            signed: BTreeMap::new(),
            anchors: BTreeMap::new(),
            log,
            ckpts,
        }
    }

    /// One stored checkpoint; `line_no` locates it in problems.
    pub(crate) fn checkpoint(&mut self, line_no: u64, line: &[u8]) {
        let file = self.ckpts;
        let report = &mut self.report;
        let problem = |kind, seq, detail: String| Problem { kind, file, line: line_no, seq, detail };
        let c: Checkpoint = match serde_json::from_slice(line) {
            Ok(c) => c,
            Err(e) => {
                report.problems.push(problem(ProblemKind::CheckpointMalformed, None, format!("not a checkpoint: {e}")));
                return;
            }
        };
        let Some(key) = self.by_id.get(&c.key_id) else {
            report.problems.push(problem(ProblemKind::CheckpointUnknownKey, Some(c.seq), format!("signed by unknown key `{}`", c.key_id)));
            return;
        };
        if !c.verify(key) {
            report.problems.push(problem(ProblemKind::CheckpointSignatureInvalid, Some(c.seq), "signature does not verify: forged or edited checkpoint".into()));
            return;
        }
        report.checkpoints += 1;
        if let Some((h, l)) = self.signed.get(&c.seq) {
            if *h != c.hash {
                report.problems.push(problem(
                    ProblemKind::CheckpointMismatch,
                    Some(c.seq),
                    format!("signs hash {} for seq {} but line {l} signed {h}: the chain was forked", c.hash, c.seq),
                ));
            }
        }
        self.signed.insert(c.seq, (c.hash.clone(), line_no));
        if let Some(a) = &c.anchor {
            report.anchors += 1;
            self.anchors.insert(a.first_seq, (a.prev_hash.clone(), line_no));
            if a.first_seq > 1 {
                // The last removed record's hash is the first retained record's prev_hash.
                self.signed.entry(a.first_seq - 1).or_insert((a.prev_hash.clone(), line_no));
            }
        }
    }

    /// Every checkpoint has been seen: the records follow.
    pub(crate) fn into_chain(mut self) -> ChainCheck {
        self.report.last_signed_seq = self.signed.keys().next_back().copied();
        ChainCheck {
            report: self.report,
            chain: Chain { signed: self.signed, anchors: self.anchors, log: self.log, ckpts: self.ckpts, prev: None, pending: None, broken: false },
        }
    }
}

/// The record half of a [`Verifier`]: records in stored order, with one of lookahead to tell a
/// reordered pair from a gap.
pub(crate) struct ChainCheck {
    report: VerifyReport,
    chain: Chain,
}

impl ChainCheck {
    pub(crate) fn record(&mut self, line_no: u64, line: &[u8]) {
        self.chain.push(line_no, line, &mut self.report);
    }

    /// True once a break was found: later records cannot change the verdict.
    pub(crate) fn broken(&self) -> bool {
        self.chain.broken
    }

    pub(crate) fn finish(mut self) -> VerifyReport {
        let (chain, report) = (&mut self.chain, &mut self.report);
        chain.finish(report);
        if let Some((seq, hash)) = &chain.prev {
            report.last_seq = Some(*seq);
            report.head_hash = Some(hash.clone());
        }
        if !chain.broken {
            let end = chain.prev.as_ref().map_or(0, |(s, _)| *s);
            if let Some((&seq, (_, l))) = chain.signed.range(end + 1..).next_back() {
                report.problems.push(Problem {
                    kind: ProblemKind::Truncated,
                    file: chain.log,
                    line: 0,
                    seq: Some(seq),
                    detail: format!("the log ends at seq {end} but {}:{l} signed seq {seq}: records were cut off the tail", chain.ckpts),
                });
            }
        }
        report.unsigned_records = match (report.last_seq, report.last_signed_seq) {
            (Some(last), Some(signed)) => last.saturating_sub(signed),
            (Some(_), None) => report.records,
            _ => 0,
        };
        self.report
    }
}

struct Chain {
    /// seq -> (hash, checkpoint line) vouched for by a valid signature.
    signed: BTreeMap<u64, (String, u64)>,
    /// first retained seq -> (its prev_hash, checkpoint line).
    anchors: BTreeMap<u64, (String, u64)>,
    log: &'static str,
    ckpts: &'static str,
    /// Last accepted record.
    prev: Option<(u64, String)>,
    /// A parsed record waiting for the next line's seq.
    pending: Option<(u64, Checked)>,
    broken: bool,
}

impl Chain {
    fn push(&mut self, line_no: u64, line: &[u8], report: &mut VerifyReport) {
        if self.broken {
            return;
        }
        match check_line(line) {
            Ok(c) => {
                let next_seq = c.seq;
                self.settle(Some(next_seq), report);
                if !self.broken {
                    self.pending = Some((line_no, c));
                }
            }
            Err(what) => {
                self.settle(None, report);
                if !self.broken {
                    report.problems.push(Problem { kind: ProblemKind::Malformed, file: self.log, line: line_no, seq: None, detail: what });
                    self.broken = true;
                }
            }
        }
    }

    fn finish(&mut self, report: &mut VerifyReport) {
        if !self.broken {
            self.settle(None, report);
        }
    }

    /// Judges the pending record, knowing the seq of the line after it.
    fn settle(&mut self, next_seq: Option<u64>, report: &mut VerifyReport) {
        let Some((line_no, c)) = self.pending.take() else { return };
        match self.judge(&c, next_seq, report) {
            Ok(()) => {
                report.records += 1;
                self.prev = Some((c.seq, c.hash));
            }
            Err((kind, detail)) => {
                report.problems.push(Problem { kind, file: self.log, line: line_no, seq: Some(c.seq), detail });
                self.broken = true;
            }
        }
    }

    fn judge(&self, c: &Checked, next_seq: Option<u64>, report: &mut VerifyReport) -> Result<(), (ProblemKind, String)> {
        let ckpts = self.ckpts;
        if !c.intact() {
            return Err((
                ProblemKind::HashMismatch,
                format!("content hashes to {} but the record says {}: the record was edited", c.computed, c.hash),
            ));
        }
        match &self.prev {
            None => {
                report.first_seq = Some(c.seq);
                if c.seq == 1 {
                    if c.prev_hash != GENESIS_HASH {
                        return Err((ProblemKind::PrevLinkBroken, "the first record does not follow the genesis hash".into()));
                    }
                } else {
                    match self.anchors.get(&c.seq) {
                        None => {
                            return Err((
                                ProblemKind::HeadMissing,
                                format!(
                                    "the log starts at seq {} and no signed anchor names that cut: records 1..{} were removed",
                                    c.seq,
                                    c.seq - 1
                                ),
                            ))
                        }
                        Some((h, l)) if *h != c.prev_hash => {
                            return Err((
                                ProblemKind::PrevLinkBroken,
                                format!("prev_hash differs from the one the anchor at {ckpts}:{l} signed"),
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
            Some((pseq, phash)) => {
                let expected = pseq + 1;
                if c.seq > expected && next_seq == Some(expected) {
                    return Err((ProblemKind::Reordered, format!("seq {} comes before seq {expected}", c.seq)));
                }
                if c.seq > expected {
                    return Err((ProblemKind::SeqGap, format!("expected seq {expected}: records {expected}..{} are missing", c.seq - 1)));
                }
                if c.seq < expected {
                    return Err((ProblemKind::Reordered, format!("seq {} appears after seq {pseq}", c.seq)));
                }
                if c.prev_hash != *phash {
                    return Err((ProblemKind::PrevLinkBroken, format!("prev_hash is not the hash of seq {pseq}")));
                }
            }
        }
        if let Some((h, l)) = self.signed.get(&c.seq) {
            if *h != c.hash {
                return Err((
                    ProblemKind::CheckpointMismatch,
                    format!("hash {} differs from {h} signed at {ckpts}:{l}: the chain was rewritten", c.hash),
                ));
            }
        }
        Ok(())
    }
}
