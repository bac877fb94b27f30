//! Masking secrets and PII inside what a caller is shown: the hot loop of the gateway.
//!
//! A role's `masking` table ([`MaskingSpec`]) is compiled at policy-parse time into a
//! [`Masker`]; [`Masker::apply`] then masks a projected document in place and returns a
//! [`MaskReport`] (detector, operator, count, JSON paths — never values) for the audit trail.
//!
//! Module map: [`detectors`] (the catalog and the scanning engine: secret rules woken by
//! trigger literals, PII scanners), [`validate`] (Luhn, mod-97, SSN rules, entropy),
//! [`operators`] (redact, partial, keyed hash, drop), `keys` (credential-like key names),
//! `memo` (answers for texts repeated in one document), `walk` (the JSON walk, JSON-in-strings and escapes), `spec` (the policy table).

mod bytes;
pub mod detectors;
mod keys;
mod memo;
pub mod operators;
mod spec;
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../tests/corpus/rng.rs"]
mod test_rng;
pub mod validate;
mod walk;

use std::sync::Arc;

use serde_json::{json, Value};

pub use bytes::{quote as quote_json, MaskError};
pub use detectors::{Class, Detector};
pub use keys::BUILTIN as BUILTIN_KEY_NAMES;
pub use operators::{Op, MIN_KEY_LEN};
pub use spec::{MaskSpecError, MaskingSpec};
pub use walk::{decode_escapes, MAX_REPORT_PATHS};

use detectors::{DetSet, Engine};
use keys::KeyNames;

/// A role's compiled masking: an operator per detector over the shared detector engine.
#[derive(Clone)]
pub struct Masker {
    engine: Arc<Engine>,
    ops: Vec<Op>,
    /// Detectors whose operator is not `off`, excluding `key_name` (applied by the walk).
    enabled: DetSet,
    key_op: Op,
    key_names: KeyNames,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("summary", &self.summary()).finish()
    }
}

impl Masker {
    fn new(ops: Vec<Op>, key_names: KeyNames) -> Result<Masker, String> {
        let engine = Engine::shared()?;
        let mut enabled = DetSet::default();
        for (d, op) in Detector::ALL.iter().zip(&ops) {
            if *op != Op::Off && d.class() != Class::Key {
                enabled.insert(*d);
            }
        }
        let key_op = ops.get(Detector::KeyName as usize).copied().unwrap_or(Op::Redact);
        Ok(Masker { engine, ops, enabled, key_op, key_names })
    }

    /// Every built-in detector with `redact`: what `tracegate mask` uses without a policy,
    /// and what a role without a masking table gets.
    pub fn redact_all() -> Result<Masker, String> {
        Masker::new(vec![Op::Redact; Detector::ALL.len()], KeyNames::builtin())
    }

    /// The operator this masker applies for `d`.
    pub fn op(&self, d: Detector) -> Op {
        self.ops.get(d as usize).copied().unwrap_or(Op::Redact)
    }

    /// True when some detector pseudonymises (`hash`), which needs a masking key.
    pub fn uses_hash(&self) -> bool {
        self.ops.contains(&Op::Hash)
    }

    /// The operators for one masking run: the keyed MAC only when some detector uses `hash`.
    fn operators(&self, key: &MaskKey) -> operators::Operators {
        if self.uses_hash() {
            operators::Operators::new(key)
        } else {
            operators::Operators::without_hash()
        }
    }

    /// True when this masker never changes anything (e.g. the `sre` role), so callers may skip it.
    pub fn is_off(&self) -> bool {
        self.enabled.is_empty() && self.key_op == Op::Off
    }

    /// Masks `doc` in place and reports what was masked (never the values). `key` keys the
    /// `hash` pseudonyms; with a key shorter than [`MIN_KEY_LEN`] bytes `hash` redacts instead.
    ///
    /// JSON documents inside strings are decoded first and encoded back after, through the
    /// same decoder projection uses ([`crate::embedded`]).
    pub fn apply(&self, doc: &mut Value, key: &MaskKey) -> MaskReport {
        if self.is_off() {
            return MaskReport::default();
        }
        let mut decoded = crate::embedded::decode_tree(doc);
        let report = self.walk(doc, &mut decoded.embedded, decoded.withheld, key);
        crate::embedded::encode_tree(doc, &decoded.embedded);
        report
    }

    /// Masks the JSON text `input` in one pass over its bytes (the byte engine, [`bytes`]),
    /// appending the masked document, compact, to `out`: what [`Masker::apply`] does to the
    /// parsed document, without building one. For reads that show the whole document; a
    /// projected view goes through [`Masker::apply_view`]. Nothing is appended on error.
    pub fn apply_json(&self, input: &[u8], key: &MaskKey, out: &mut Vec<u8>) -> Result<MaskReport, MaskError> {
        let text = std::str::from_utf8(input)
            .map_err(|e| MaskError::NotJson { what: "invalid UTF-8", at: e.valid_up_to() })?;
        let start = out.len();
        let mut cx = walk::Cx::new(self, &self.engine, self.operators(key));
        if self.is_off() {
            // Nothing to mask: check the text is JSON and serve it as it is.
            return serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map(|_| {
                    out.extend_from_slice(input);
                    MaskReport::default()
                })
                .map_err(|e| MaskError::NotJson { what: "invalid JSON", at: e.column() });
        }
        let mut engine = bytes::Engine::new(&mut cx);
        let res = engine.document(text, out);
        let repeated = engine.repeated_key;
        if res.is_err() {
            out.truncate(start);
        }
        res?;
        if !repeated {
            return Ok(cx.report());
        }
        // An object repeats a key: serve what the walk serves (the last member of each name),
        // so both engines show and count the same values. The text was validated above.
        out.truncate(start);
        let mut doc: Value = serde_json::from_str(text).map_err(|_| MaskError::NotJson { what: "invalid JSON", at: 0 })?;
        let report = self.apply(&mut doc, key);
        if serde_json::to_writer(&mut *out, &doc).is_err() {
            out.truncate(start);
            return Err(MaskError::NotJson { what: "unserializable", at: 0 });
        }
        Ok(report)
    }

    /// Masks a projected view (already decoded) in place, before the caller's own queries
    /// are evaluated over it.
    pub fn apply_view(&self, view: &mut crate::project::View, key: &MaskKey) -> MaskReport {
        if self.is_off() {
            return MaskReport::default();
        }
        self.walk(&mut view.doc, &mut view.embedded, view.withheld, key)
    }

    fn walk(&self, doc: &mut Value, exp: &mut crate::embedded::Embedded, withheld: u64, key: &MaskKey) -> MaskReport {
        let mut cx = walk::Cx::new(self, &self.engine, self.operators(key));
        cx.withheld(withheld);
        cx.document(doc, exp);
        cx.report()
    }

    /// The effective operators grouped by operator, for `tracegate policy check`.
    pub fn summary(&self) -> Value {
        let mut by_op = serde_json::Map::new();
        for op in [Op::Redact, Op::Partial, Op::Hash, Op::Drop, Op::Off] {
            let names: Vec<&str> = Detector::ALL.iter().filter(|d| self.op(**d) == op).map(|d| d.name()).collect();
            if !names.is_empty() {
                by_op.insert(op.name().to_owned(), json!(names));
            }
        }
        json!({ "operators": by_op, "key_names": self.key_names.written() })
    }
}

/// The secret key behind keyed pseudonyms.
#[derive(Clone, Default)]
pub struct MaskKey(pub Vec<u8>);

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

/// What masking did to one response: per detector and operator, how many values and where.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MaskReport {
    pub hits: Vec<MaskHit>,
}

impl MaskReport {
    /// Total number of masked values.
    pub fn total(&self) -> u64 {
        self.hits.iter().map(|h| h.count).sum()
    }
}

/// One detector/operator pair's work. `paths` holds at most [`MAX_REPORT_PATHS`] distinct
/// paths (with masked keys shown masked); `count` counts every value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaskHit {
    pub detector: String,
    pub operator: String,
    pub count: u64,
    pub paths: Vec<String>,
}

#[cfg(test)]
mod tests;
