//! The example policy's golden scenarios (`examples/scenarios`), one test per file, through the
//! same code as `tracegate policy test`. Regenerate bodies with `UPDATE_GOLDEN=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use tracegate::commands::policy::{load_policy, load_traces, run_scenario, scenario_files};
use tracegate_core::mask::MaskKey;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn check(name: &str) {
    let root = root();
    let policy = load_policy(&root.join("policy.toml")).unwrap().unwrap();
    let traces = load_traces(&root.join("traces")).unwrap();
    let key = MaskKey(b"tracegate-scenario-key-not-secret-0000".to_vec());
    let bless = std::env::var_os("UPDATE_GOLDEN").is_some();
    let file = root.join("scenarios").join(format!("{name}.toml"));
    let r = run_scenario(&file, &policy, &traces, &key, bless).unwrap();
    assert!(r.problems.is_empty(), "{}: {}\n{}", name, r.description, r.problems.join("\n"));
}

macro_rules! scenarios {
    ($($name:ident = $file:literal;)*) => {
        $( #[test] fn $name() { check($file); } )*
        const ALL: &[&str] = &[$($file),*];
    };
}

scenarios! {
    support_reads_agent = "support-reads-agent";
    support_reads_otlp = "support-reads-otlp";
    support_narrow_final_output = "support-narrow-final-output";
    support_asks_reasoning = "support-asks-reasoning";
    support_asks_whole_step = "support-asks-whole-step";
    support_asks_system_instructions_otlp = "support-asks-system-instructions-otlp";
    support_asks_reasoning_inside_otlp_string = "support-asks-reasoning-inside-otlp-string";
    support_asks_step_reasoning = "support-asks-step-reasoning";
    support_filter_over_hidden_reasoning = "support-filter-over-hidden-reasoning";
    support_other_tenant = "support-other-tenant";
    support_without_tenant_claim = "support-without-tenant-claim";
    support_too_old = "support-too-old";
    support_cannot_search = "support-cannot-search";
    engineer_reads_otlp = "engineer-reads-otlp";
    engineer_reads_agent = "engineer-reads-agent";
    engineer_search_by_agent = "engineer-search-by-agent";
    engineer_search_all = "engineer-search-all";
    engineer_search_over_limit = "engineer-search-over-limit";
    writer_writes_own_tenant = "writer-writes-own-tenant";
    writer_writes_other_tenant = "writer-writes-other-tenant";
    writer_cannot_read = "writer-cannot-read";
    writer_replaces_other_tenant = "writer-replaces-other-tenant";
    auditor_cannot_read_traces = "auditor-cannot-read-traces";
    sre_needs_approval = "sre-needs-approval";
    sre_approved_read = "sre-approved-read";
    unknown_group = "unknown-group";
    eng_and_support_served_as_engineer = "eng-and-support-served-as-engineer";
}

#[test]
fn every_scenario_file_has_a_test() {
    let files = scenario_files(&root().join("scenarios")).unwrap();
    let mut names: Vec<String> = files.iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    names.sort_unstable();
    let mut listed: Vec<&str> = ALL.to_vec();
    listed.sort_unstable();
    assert_eq!(names, listed, "add new scenario files to the scenarios! list");
}
