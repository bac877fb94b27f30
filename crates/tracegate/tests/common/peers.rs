//! Real peers for the tests that serve the scaled-out configuration, written once: a
//! `moto_server` bucket, an `s3s-fs` bucket (SigV4 checked), a loopback relay the test can cut
//! (so "the bucket is unreachable" and "the bucket is back" happen without losing moto's
//! in-memory objects), the quickstart laid out over a bucket and a database, and
//! `tracegate serve` run with its own environment and its stdout and stderr kept in files, so a
//! test can read everything the gateway printed.
//!
//! Without `moto_server` or `s3s-fs` the tests that need them skip, unless
//! `TRACEGATE_REQUIRE_PEERS` is set (as `scripts/test.sh` sets it), when a missing peer fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A `moto_server` child, killed when dropped.
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns a peer with its output discarded; `None` (the test skips) when it is not installed,
/// unless `TRACEGATE_REQUIRE_PEERS` is set, when that fails the test (scripts/test.sh installs
/// every peer).
fn spawn_peer(cmd: &mut Command) -> Option<Child> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
        Ok(c) => Some(c),
        Err(e) if std::env::var_os("TRACEGATE_REQUIRE_PEERS").is_some() => {
            panic!("{program} is required (scripts/test.sh installs it): {e}")
        }
        Err(e) => {
            eprintln!("skipping: {program} is not available ({e})");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto on a free port and creates `bucket` (moto accepts unsigned requests).
    pub async fn start(bucket: &str) -> Option<Moto> {
        let port = free_port();
        let child = spawn_peer(
            Command::new("moto_server").args(["-H", "127.0.0.1", "-p", &port.to_string()]),
        )?;
        let moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client
                .put(format!("http://{}/{bucket}", moto.addr))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Some(moto);
                }
            }
            assert!(Instant::now() < deadline, "moto_server did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// An `s3s-fs` child (the S3 server that checks SigV4 signatures) over a fresh directory holding
/// `bucket`, accepting one key pair; killed when dropped. `scripts/test.sh` builds it once into
/// `~/.cache/tracegate/s3s-fs`, which is looked in when it is not on the PATH.
pub struct S3sFs {
    child: Child,
    pub endpoint: String,
    /// The directory the bucket's objects are files in.
    pub root: tempfile::TempDir,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3sFs {
    pub async fn start(bucket: &str, key: &str, secret: &str) -> Option<S3sFs> {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(bucket)).unwrap();
        let port = free_port();
        let cached = std::env::var_os("HOME")
            .map(|h| Path::new(&h).join(".cache/tracegate/s3s-fs/bin/s3s-fs"))
            .filter(|p| p.exists());
        let program = cached.unwrap_or_else(|| PathBuf::from("s3s-fs"));
        let child = spawn_peer(
            Command::new(&program)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", key, "--secret-key", secret])
                .arg(root.path()),
        )?;
        let peer = S3sFs {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        };
        // Any HTTP answer will do: unsigned requests are refused, which is the point.
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(&peer.endpoint).send().await.is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(peer)
    }
}

/// A TCP relay to a peer that the test can cut and restore. While cut, new connections are
/// accepted and closed at once and every relayed connection is torn down, which is what a client
/// sees of a peer that went away; the port stays this relay's, so nothing else can take it.
pub struct Relay {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (flag, cuts) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Relay { addr, up, cut }
    }

    /// Cuts (`false`) or restores (`true`) the peer.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|n| *n += 1);
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// `tracegate serve` as a child process with `env` added to its environment, stdout and stderr
/// in `<logs>/serve.{out,err}`. Killed when dropped.
pub struct Served {
    child: Child,
    pub url: String,
    pub logs: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts the gateway on `config` and waits until `/healthz` answers 200.
    pub fn start(config: &Path, env: &[(&str, String)], logs: &Path) -> Served {
        let port = free_port();
        let out = std::fs::File::create(logs.join("serve.out")).unwrap();
        let err = std::fs::File::create(logs.join("serve.err")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracegate"));
        cmd.args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.stdout(out).stderr(err).spawn().unwrap();
        let mut served = Served {
            child,
            url: format!("http://127.0.0.1:{port}"),
            logs: logs.to_owned(),
        };
        let client = reqwest::blocking::Client::new();
        for _ in 0..600 {
            if client
                .get(format!("{}/healthz", served.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return served;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("gateway exited with {status}: {}", served.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not start: {}", served.output());
    }

    /// Everything the gateway printed so far, stdout then stderr.
    pub fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.logs.join(f)).unwrap_or_default();
        format!("{}{}", read("serve.out"), read("serve.err"))
    }
}

/// A tracegate CLI run with `env` added: (success, stdout + stderr).
pub fn cli(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracegate"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The environment that points the gateway's `s3://` store at `endpoint` with this key pair.
pub fn s3_env(endpoint: &str, key_id: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", key_id.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// Replaces the quickstart's local `[store]` with `url` (`None`: keeps it) and adds `[state]`
/// (and `extra` after it).
pub fn bucket_and_state_config(
    quickstart: &str,
    store_url: Option<&str>,
    state_url: &str,
    extra: &str,
) -> String {
    let text = match store_url {
        Some(url) => {
            let local = "[store]\nkind = \"local\"\npath = \"traces\"\n";
            assert!(
                quickstart.contains(local),
                "the quickstart config changed its [store]"
            );
            quickstart.replace(local, &format!("[store]\nurl = {url:?}\n"))
        }
        None => quickstart.to_owned(),
    };
    format!("{text}\n[state]\nurl = {state_url:?}\nacquire_timeout = \"1s\"\n{extra}")
}

/// The quickstart laid out in `dir` over `store_url` (`None`: its local directory) and the
/// database at `state_url`: the config's path and the dev issuer that mints its test tokens.
pub fn lay_out_scaled(
    dir: &Path,
    store_url: Option<&str>,
    state_url: &str,
) -> (PathBuf, tracegate_identity::dev::DevIssuer) {
    tracegate::commands::quickstart::lay_out(dir).unwrap();
    let cfg_path = dir.join("tracegate.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        bucket_and_state_config(&text, store_url, state_url, ""),
    )
    .unwrap();
    let cfg = tracegate_server::GatewayConfig::load(&cfg_path).unwrap();
    let issuer =
        tracegate_identity::dev::DevIssuer::load(cfg.identity.dev.as_ref().unwrap(), &cfg.base_dir)
            .unwrap();
    (cfg_path, issuer)
}

/// [`Served::start`] from async code (it waits on blocking calls).
pub async fn serve(config: &Path, env: &[(&'static str, String)], logs: &Path) -> Served {
    let (config, env, logs) = (config.to_owned(), env.to_vec(), logs.to_owned());
    tokio::task::spawn_blocking(move || Served::start(&config, &env, &logs))
        .await
        .unwrap()
}

/// The HTTP client these tests talk to a served gateway with.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}
