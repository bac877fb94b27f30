//! Golden masked outputs: `tests/golden/mask/NAME.input.json` masked with the default table
//! (or `NAME.masking.toml` beside it) must equal `NAME.masked.json` — the document and the
//! report. Regenerate with `UPDATE_GOLDEN=1 cargo test -p tracegate-core --test mask_golden`
//! and review the diff.

use std::path::PathBuf;

use serde_json::{json, Value};
use tracegate_core::mask::{MaskKey, MaskingSpec};

fn check(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mask");
    let input = std::fs::read(dir.join(format!("{name}.input.json"))).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    let table = std::fs::read_to_string(dir.join(format!("{name}.masking.toml"))).unwrap_or_default();
    let spec: MaskingSpec = toml::from_str(&table).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    let masker = spec.compile().unwrap_or_else(|e| unreachable!("{name}: {e:?}"));
    let mut doc: Value = serde_json::from_slice(&input).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    let report = masker.apply(&mut doc, &MaskKey(b"golden-key-0123456789abcdef".to_vec()));
    let got = json!({ "masked": doc, "report": report });
    let got_text = serde_json::to_string_pretty(&got).unwrap_or_default() + "\n";
    let path = dir.join(format!("{name}.masked.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got_text).unwrap_or_else(|e| unreachable!("{name}: {e}"));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| unreachable!("{name}: {e} (run with UPDATE_GOLDEN=1)"));
    assert_eq!(got_text, want, "{name}: masked output differs from {} (UPDATE_GOLDEN=1 to accept)", path.display());
}

#[test]
fn otel_genai() {
    check("otel_genai");
}

#[test]
fn agent_steps() {
    check("agent_steps");
}

#[test]
fn agent_steps_engineer() {
    check("agent_steps_engineer");
}

#[test]
fn escapes() {
    check("escapes");
}

#[test]
fn key_names_extend() {
    check("key_names_extend");
}

#[test]
fn key_names_replace() {
    check("key_names_replace");
}
