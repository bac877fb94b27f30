//! Masking secrets and PII inside what a caller is shown. (Engine lands with the masking issue;
//! until then a role's `masking` table is accepted empty and masks nothing.)

use serde_json::Value;

/// A role's masking settings as written in the policy.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingSpec {}

impl MaskingSpec {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    pub fn summary(&self) -> Value {
        Value::Null
    }

    /// Masks `doc` in place and reports what was masked (never the values).
    pub fn apply(&self, _doc: &mut Value, _key: &MaskKey) -> MaskReport {
        MaskReport::default()
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

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaskHit {
    pub detector: String,
    pub operator: String,
    pub count: u64,
    pub paths: Vec<String>,
}
