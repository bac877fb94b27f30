//! A role's `[roles.<name>.masking]` table as written, and its compilation into a [`Masker`].
//!
//! ```toml
//! [roles.engineer.masking]
//! secrets = "redact"          # every secret detector; default "redact"
//! pii = "hash"                # every PII detector; default "redact"
//! keys = "redact"             # values under credential-like key names; default "redact"
//! key_names = ["password", "x_internal_pin"]   # optional: replaces the built-in list
//! [roles.engineer.masking.detectors]
//! email = "partial"           # per-detector override
//! ipv4 = "off"
//! ```
//!
//! Operators: `off`, `redact`, `partial`, `hash`, `drop`. Unknown keys, detectors and operators
//! are errors. Every class defaults to `redact`, so a role without a masking table, or one that
//! forgets a class, masks it: serving a value unmasked must be spelled out with `off`.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::detectors::{Class, Detector};
use super::keys::KeyNames;
use super::operators::Op;
use super::Masker;

/// A role's masking settings as written in the policy.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingSpec {
    /// Operator for every secret detector (default `redact`).
    pub secrets: Option<Spanned<String>>,
    /// Operator for every PII detector (default `redact`).
    pub pii: Option<Spanned<String>>,
    /// Operator for values found by key name (default `redact`).
    pub keys: Option<Spanned<String>>,
    /// Per-detector operators, overriding the class setting.
    #[serde(default)]
    pub detectors: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Key names whose values are masked whole; replaces the built-in list.
    pub key_names: Option<Vec<Spanned<String>>>,
}

/// A mistake in a masking table, with where it is in the policy file when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSpecError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

fn op_of(s: &Spanned<String>, what: &str, errors: &mut Vec<MaskSpecError>) -> Op {
    Op::parse(s.get_ref()).unwrap_or_else(|| {
        errors.push(MaskSpecError {
            span: Some(s.span()),
            message: format!("`masking.{what}`: unknown operator `{}` (expected one of: {})", s.get_ref(), Op::NAMES.join(", ")),
        });
        Op::Redact
    })
}

impl MaskingSpec {
    /// Checks the table without keeping the result.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ()).map_err(|errs| errs.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; "))
    }

    /// Compiles the table into the masker a role holds. The detector engine is built once per
    /// process and shared, so this is cheap and requests never rebuild regexes.
    pub fn compile(&self) -> Result<Masker, Vec<MaskSpecError>> {
        let mut errors = Vec::new();
        let class_op = |o: &Option<Spanned<String>>, what: &str, errors: &mut Vec<MaskSpecError>| {
            o.as_ref().map_or(Op::Redact, |s| op_of(s, what, errors))
        };
        let secrets = class_op(&self.secrets, "secrets", &mut errors);
        let pii = class_op(&self.pii, "pii", &mut errors);
        let keys = class_op(&self.keys, "keys", &mut errors);
        let mut ops: Vec<Op> = Detector::ALL
            .iter()
            .map(|d| match d.class() {
                Class::Secret => secrets,
                Class::Pii => pii,
                Class::Key => keys,
            })
            .collect();
        for (name, op) in &self.detectors {
            let what = format!("detectors.{}", name.get_ref());
            let op = op_of(op, &what, &mut errors);
            match Detector::parse(name.get_ref()) {
                Some(d) => {
                    if let Some(slot) = ops.get_mut(d as usize) {
                        *slot = op;
                    }
                }
                None => errors.push(MaskSpecError {
                    span: Some(name.span()),
                    message: format!(
                        "`masking.detectors`: unknown detector `{}` (expected one of: {})",
                        name.get_ref(),
                        Detector::ALL.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
                    ),
                }),
            }
        }
        let key_names = match &self.key_names {
            None => KeyNames::builtin(),
            Some(list) => {
                let mut names = Vec::new();
                for n in list {
                    match KeyNames::normalize(n.get_ref()) {
                        Some(norm) => names.push((n.get_ref().clone(), norm)),
                        None => errors.push(MaskSpecError {
                            span: Some(n.span()),
                            message: format!("`masking.key_names`: `{}` has no letters or digits", n.get_ref()),
                        }),
                    }
                }
                KeyNames::new(names)
            }
        };
        let masker = Masker::new(ops, key_names);
        match masker {
            Ok(m) if errors.is_empty() => Ok(m),
            Ok(_) => Err(errors),
            Err(e) => {
                errors.push(MaskSpecError { span: None, message: e });
                Err(errors)
            }
        }
    }
}
