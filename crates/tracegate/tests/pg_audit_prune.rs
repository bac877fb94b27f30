//! `tracegate audit prune` on the PostgreSQL trail, while the gateway keeps serving: the old
//! records go to an export file, the trail still verifies, and later appends extend it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;

fn tracegate(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracegate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_while_serving_then_verify() {
    let Some(db) = tracegate_state::testing::TestDb::create().await else {
        return;
    };
    let url = db.config().url.unwrap();
    let gw = Gateway::start_with(|t| format!("{t}\n[state]\nurl = {url:?}\n")).await;
    let erin = gw.token("erin", &["eng"], &[]);
    for _ in 0..5 {
        let (s, _) = gw.get("/v1/traces?limit=5", &erin).await;
        assert_eq!(s, 200);
    }
    let config = gw.data_dir().join("tracegate.toml");
    let config = config.to_str().unwrap();
    let export = gw.data_dir().join("pruned.jsonl");
    let (ok, said) = tracegate(&[
        "audit",
        "prune",
        "--config",
        config,
        "--older-than",
        "0s",
        "--export",
        export.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    assert!(said.contains("pruned 4 records"), "{said}");
    assert_eq!(std::fs::read_to_string(&export).unwrap().lines().count(), 4);
    // The gateway goes on appending to the shortened chain, which verifies.
    let (s, _) = gw.get("/v1/traces?limit=5", &erin).await;
    assert_eq!(s, 200);
    let (ok, said) = tracegate(&["audit", "verify", "--config", config]);
    assert!(ok, "{said}");
}
