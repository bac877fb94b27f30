//! The real OpenID Provider (npm `oidc-provider`), started on a free loopback port by
//! `scripts/start-oidc.sh` (which installs it if needed), and stopped and restarted on the same
//! port by the outage tests. Every start generates fresh signing keys, so a restart is also a
//! complete key rotation: the keys published before are gone.
//!
//! Never skipped: without node/npm these tests fail with a message saying what to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The provider process, killed on drop. It also exits by itself once the test process is gone
/// (`--parent-pid`), since a static is never dropped.
pub struct Provider {
    pub issuer: String,
    port: u16,
    pid: Option<u32>,
    /// The provider's config and log.
    dir: super::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require(tool: &str) {
    let ok = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{tool}` is not installed: the real OIDC provider tests need Node.js >= 20 and npm \
         (scripts/test.sh installs them: apt-get install nodejs npm)"
    );
}

impl Provider {
    /// Starts a provider with `config` (`{"clients": [...], "resources": {...}}`).
    pub fn start(config: &Value) -> Provider {
        require("node");
        require("npm");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        remove_stale_provider_dirs();
        let dir = super::TempDir::new("oidc-provider");
        std::fs::write(dir.path().join("provider.json"), config.to_string()).unwrap();
        let mut p = Provider { issuer: format!("http://127.0.0.1:{port}"), port, pid: None, dir };
        p.launch();
        p
    }

    fn launch(&mut self) {
        let dir = self.dir.path();
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/start-oidc.sh"))
            .arg(self.port.to_string())
            .arg("--config")
            .arg(dir.join("provider.json"))
            .arg("--log")
            .arg(dir.join("provider.log"))
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("running scripts/start-oidc.sh");
        assert!(
            out.status.success(),
            "scripts/start-oidc.sh failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        self.pid = Some(String::from_utf8_lossy(&out.stdout).trim().parse().expect("start-oidc.sh prints the pid"));
    }

    /// Kills the provider and waits until it is gone (its port refuses connections).
    pub fn stop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        let _ = Command::new("kill").arg(pid.to_string()).status();
        // Gone means the port refuses connections (a dying process may hold it a while).
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the provider still answers on port {} 10s after being stopped", self.port);
    }

    /// Starts the provider again on the same port (and so the same issuer), with fresh keys.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// An access token from the token endpoint (client credentials grant).
    pub async fn access_token(&self, client: &str, secret: &str, resource: &str) -> String {
        let url = format!("{}/token", self.issuer);
        let body = format!("grant_type=client_credentials&scope=traces&resource={}", resource.replace(':', "%3A"));
        let resp = reqwest::Client::new()
            .post(url)
            .basic_auth(client, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "token endpoint: {status} {json}");
        json["access_token"].as_str().unwrap().to_owned()
    }
}

/// A provider's directory outlives its test run when a static holds it: clear those of runs
/// whose process is gone.
fn remove_stale_provider_dirs() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("identity-oidc-provider-").and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
