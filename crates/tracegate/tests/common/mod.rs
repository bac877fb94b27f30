//! A gateway on the quickstart layout, served over real HTTP on loopback, for behaviour tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod peers;
pub mod saml;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracegate_identity::dev::DevIssuer;
use tracegate_server::{AppState, GatewayConfig};

pub struct Gateway {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    issuer: DevIssuer,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gateway {
    /// Lays out a fresh quickstart data directory, lets `edit` change the config text, serves it.
    pub async fn start_with(edit: impl FnOnce(String) -> String) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        tracegate::commands::quickstart::lay_out(dir.path()).unwrap();
        let cfg_path = dir.path().join("tracegate.toml");
        let text = std::fs::read_to_string(&cfg_path).unwrap();
        std::fs::write(&cfg_path, edit(text)).unwrap();
        let cfg = GatewayConfig::load(&cfg_path).unwrap();
        let issuer = DevIssuer::load(cfg.identity.dev.as_ref().unwrap(), &cfg.base_dir).unwrap();
        let state = Arc::new(AppState::from_config(&cfg).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tracegate_server::serve(state, listener, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Gateway {
            addr,
            dir,
            client,
            issuer,
            shutdown: Some(tx),
        }
    }

    pub async fn start() -> Gateway {
        Self::start_with(|t| t).await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A dev token for `sub` in `groups` with extra string claims.
    pub fn token(&self, sub: &str, groups: &[&str], claims: &[(&str, &str)]) -> String {
        mint(&self.issuer, sub, groups, claims, Duration::from_secs(300))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn put(&self, path: &str, token: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
        let r = self
            .client
            .put(self.url(path))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A dev token from `issuer` for `sub` in `groups` with extra string claims, valid for `ttl`.
pub fn mint(
    issuer: &DevIssuer,
    sub: &str,
    groups: &[&str],
    claims: &[(&str, &str)],
    ttl: Duration,
) -> String {
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let extra = claims
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
        .collect();
    issuer.mint(sub, &groups, extra, ttl).unwrap()
}

/// The error code of an error body.
pub fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

pub fn rules(body: &serde_json::Value) -> Vec<String> {
    body["error"]["rules"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Spawns `tracegate serve` for the data directory `data` on a free loopback port, waiting until
/// it answers; `prefix` runs before it in `sh` (e.g. `ulimit -f` to make the audit log fail).
pub fn spawn_serve(data: &std::path::Path, prefix: &str) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_serve_on(data, prefix, port)
}

/// [`spawn_serve`] on a port chosen beforehand (e.g. one already registered at an IdP).
pub fn spawn_serve_on(
    data: &std::path::Path,
    prefix: &str,
    port: u16,
) -> (std::process::Child, String) {
    let bin = env!("CARGO_BIN_EXE_tracegate");
    let cmd = format!(
        "{prefix} exec '{bin}' serve --config '{}' --listen 127.0.0.1:{port}",
        data.join("tracegate.toml").display()
    );
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    // Up to 30 s, as the shared peers' gateways wait (`peers.rs`): start-up fetches the identity
    // providers' metadata, and with the whole suite sharing two cores it has taken over ten
    // seconds. A gateway that exits is reported at once.
    for _ in 0..600 {
        if client
            .get(format!("{url}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return (child, url);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("gateway exited before answering ({status})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("gateway did not start");
}

/// A dev token minted by the `tracegate token` command for the data directory `data`.
pub fn cli_token(data: &std::path::Path, sub: &str, groups: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracegate"))
        .args(["token", "--sub", sub, "--groups", groups, "--config"])
        .arg(data.join("tracegate.toml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `tracegate audit replay ID --show`: success, the outcome object, and the reproduced body.
#[allow(dead_code)]
pub fn replay(data: &std::path::Path, id: &str) -> (bool, serde_json::Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracegate"))
        .args(["audit", "replay", id, "--show", "--config"])
        .arg(data.join("tracegate.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // With --show the reproduced body comes first, then the outcome object.
    let outcome_start = stdout.rfind("{\n").unwrap_or(0);
    let outcome = serde_json::from_str(&stdout[outcome_start..]).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        outcome,
        stdout[..outcome_start].trim().to_owned(),
    )
}

/// The real OpenID Provider (npm `oidc-provider`) started by `scripts/start-oidc.sh` with
/// `config` (see `scripts/oidc-provider/provider.js`); stopped when dropped, and by itself when
/// the test process is gone.
pub struct Provider {
    pub issuer: String,
    pub pid: u32,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.pid.to_string())
            .status();
    }
}

/// Starts the provider on a free loopback port. Never skipped: without node/npm this fails
/// saying what to install.
pub fn start_provider(config: &serde_json::Value) -> Provider {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("provider.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/start-oidc.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(port.to_string())
        .arg("--config")
        .arg(&config_path)
        .arg("--log")
        .arg(dir.path().join("provider.log"))
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .output()
        .expect("running scripts/start-oidc.sh (needs Node.js >= 20 and npm; scripts/test.sh installs them)");
    assert!(
        out.status.success(),
        "scripts/start-oidc.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    Provider {
        issuer: format!("http://127.0.0.1:{port}"),
        pid,
        _dir: dir,
    }
}
