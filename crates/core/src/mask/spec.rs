//! A role's `[roles.<name>.masking]` table as written, and its compilation into a [`Masker`].
//!
//! ```toml
//! [roles.engineer.masking]
//! secrets = "redact"          # every secret detector; default "redact"
//! pii = "hash"                # every PII detector; default "redact"
//! keys = "redact"             # values under credential-like key names; default "redact"
//! key_names = ["x_internal_pin"]   # optional: added to the built-in list
//! # key_names = { names = ["password"], replace = true }   # only these, built-ins dropped
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
    /// Key names whose values are masked whole, in addition to the built-in list — or instead
    /// of it, when written as `{ names = [...], replace = true }`.
    pub key_names: Option<KeyNamesSpec>,
}

/// `key_names` as written: a list extends the built-in names; a table with `replace = true`
/// replaces them. Extending is the default so that naming one extra key never silently stops
/// masking `password`, `token` or `authorization`; dropping the built-ins must be spelled out.
#[derive(Debug, Clone, Default)]
pub struct KeyNamesSpec {
    pub names: Vec<Spanned<String>>,
    pub replace: bool,
}

impl<'de> serde::Deserialize<'de> for KeyNamesSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyNamesSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of key names, or a table `{ names = [...], replace = true }`")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<KeyNamesSpec, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = seq.next_element::<Spanned<String>>()? {
                    names.push(n);
                }
                Ok(KeyNamesSpec { names, replace: false })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<KeyNamesSpec, A::Error> {
                let (mut names, mut replace) = (None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "names" if names.is_none() => names = Some(map.next_value::<Vec<Spanned<String>>>()?),
                        "replace" if replace.is_none() => replace = Some(map.next_value::<bool>()?),
                        "names" | "replace" => return Err(serde::de::Error::duplicate_field("names or replace")),
                        other => return Err(serde::de::Error::unknown_field(other, &["names", "replace"])),
                    }
                }
                let names = names.ok_or_else(|| serde::de::Error::missing_field("names"))?;
                Ok(KeyNamesSpec { names, replace: replace.unwrap_or(false) })
            }
        }
        d.deserialize_any(V)
    }
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
            Some(spec) => {
                let mut names = if spec.replace { Vec::new() } else { KeyNames::builtin_names() };
                for n in &spec.names {
                    match KeyNames::normalize(n.get_ref()) {
                        Some(norm) if names.iter().any(|(_, have)| *have == norm) => {}
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
