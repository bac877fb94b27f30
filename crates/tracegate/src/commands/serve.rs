//! `tracegate serve --config FILE`: run the gateway.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tracegate_server::{AppState, GatewayConfig};

#[derive(clap::Args)]
pub struct Args {
    /// The gateway config file (`tracegate.toml`).
    #[arg(long)]
    pub config: PathBuf,
    /// Listen address, overriding `server.listen`.
    #[arg(long)]
    pub listen: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_tracing();
    runtime()?.block_on(serve(&args.config, args.listen.as_deref(), |_| {}))?;
    Ok(ExitCode::SUCCESS)
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Loads the config, builds state, binds, calls `on_ready` with the bound address, serves until
/// Ctrl-C or SIGTERM.
pub async fn serve(config: &Path, listen: Option<&str>, on_ready: impl FnOnce(std::net::SocketAddr)) -> anyhow::Result<()> {
    let cfg = GatewayConfig::load(config)?;
    let state = Arc::new(AppState::from_config(&cfg).await?);
    let addr = listen.unwrap_or(&cfg.server.listen);
    // The dev issuer mints any identity for whoever holds its key: loopback only, unless the
    // config says otherwise. Checked before binding, so nothing ever listens beyond loopback.
    if let Some(dev) = &cfg.identity.dev {
        for a in tokio::net::lookup_host(addr).await.with_context(|| format!("resolving `{addr}`"))? {
            dev.check_listen(a)?;
        }
    }
    let acceptors = cfg.acceptors();
    let served = if acceptors == 0 {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding `{addr}`"))?;
        let bound = listener.local_addr()?;
        tracing::info!(%bound, "tracegate listening");
        on_ready(bound);
        tracegate_server::serve(state.clone(), listener, shutdown_signal()).await
    } else {
        let listeners = bind_acceptors(addr, acceptors).await?;
        let bound = listeners[0].local_addr()?;
        tracing::info!(%bound, acceptors, "tracegate listening");
        on_ready(bound);
        tracegate_server::acceptors::serve(state.clone(), listeners, shutdown_signal()).await
    };
    // Seal the trail with a final signed checkpoint before exiting, whether serving ended on a
    // signal or on a failure. When both fail, the error names both: neither is dropped.
    let sealed = state.audit.shutdown().await;
    match (served, sealed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) => Err(anyhow::Error::from(e).context("serving")),
        (Ok(()), Err(e)) => Err(anyhow::Error::from(e).context("sealing the audit trail")),
        (Err(e), Err(seal)) => Err(anyhow::Error::from(e).context(format!("serving (and then sealing the audit trail failed too: {seal})"))),
    }
}

/// The acceptors' sockets on the first address `addr` resolves to that binds, as
/// `TcpListener::bind` tries them.
async fn bind_acceptors(addr: &str, n: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await.with_context(|| format!("resolving `{addr}`"))? {
        match tracegate_server::acceptors::bind(a, n) {
            Ok(ls) => return Ok(ls),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("`{addr}` resolves to no address"), anyhow::Error::from))
        .with_context(|| format!("binding `{addr}`"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
