//! The HTTP edge of tracegate.
//!
//! **Architecture Invariant:** only this crate knows HTTP. Handlers read top to bottom in request
//! phase order — authenticate, decide, fetch, project and mask, respond — and every failure
//! becomes one [`ApiError`] with its status, a stable code and the rules behind it.

pub mod acceptors;
pub mod audit;
pub mod budget;
pub mod config;
pub mod error;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod replay;
pub mod routes;
pub mod state;

pub use config::{ConfigError, GatewayConfig};
pub use error::ApiError;
pub use state::AppState;

use std::sync::Arc;

use axum::Router;

/// The gateway's routes over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    routes::router(state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests. Runs the audit retention
/// task beside the connections (see [`spawn_retention`]).
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let retention = spawn_retention(&state);
    let served = serve_connections(state, listener, shutdown).await;
    if let Some(task) = retention {
        task.abort();
    }
    served
}

/// Serves one listener's connections until `shutdown` resolves, then drains in-flight
/// requests; nothing else. [`acceptors`] runs one of these per thread.
pub async fn serve_connections(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Starts the hourly audit retention task on the current runtime, if `[audit] retention` is
/// set. One per process: abort the handle when serving ends.
pub fn spawn_retention(state: &Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    state.audit_retention.map(|age| tokio::spawn(prune_periodically(state.clone(), age)))
}

/// How often the retention task looks for records past their age.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Exports and prunes audit records older than `age`, hourly. A failed prune is logged and
/// retried; it never touches the request path (pruning anchors the cut with a signed checkpoint).
async fn prune_periodically(state: Arc<AppState>, age: std::time::Duration) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        let Some(before) = std::time::SystemTime::now().checked_sub(age) else { continue };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let export = state.audit_dir.join("exports").join(format!("pruned-{stamp}.jsonl"));
        match state.audit.prune(before, export).await {
            Ok(report) => tracing::info!(pruned = report.pruned, "audit retention ran"),
            Err(e) => tracing::error!(error = %e, "audit retention failed"),
        }
    }
}
