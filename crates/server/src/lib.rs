//! The HTTP edge of tracegate.
//!
//! **Architecture Invariant:** only this crate knows HTTP. Handlers read top to bottom in request
//! phase order — authenticate, decide, fetch, project and mask, respond — and every failure
//! becomes one [`ApiError`] with its status, a stable code and the rules behind it.

pub mod audit;
pub mod config;
pub mod error;
pub mod metrics;
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

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
