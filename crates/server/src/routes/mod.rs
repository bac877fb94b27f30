//! Routes. Each trace route is one file whose handler reads in request-phase order. Every
//! response except `GET /healthz`, `GET /readyz` and `GET /metrics` is recorded: by its handler through
//! [`crate::audit::finish`], or else by the [`crate::audit::record_unrecorded`] layer.

mod access_preview;
pub mod approvals;
mod audit_trail;
pub(crate) mod authenticate;
pub mod browser;
pub(crate) mod console;
pub mod dev_login;
mod read;
#[cfg(feature = "saml")]
mod saml;
mod search;
pub mod service_accounts;
mod whoami;
mod write;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};


pub use authenticate::Caller;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    approvals::spawn_sweeper(&state);
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/whoami", get(whoami::whoami))
        .route("/auth/login", get(browser::login))
        .route("/auth/callback", get(browser::callback))
        .route("/auth/logout", axum::routing::post(browser::logout))
        .route("/auth/methods", get(dev_login::methods))
        .route("/auth/dev-login", get(dev_login::identities).post(dev_login::sign_in))
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/{*path}", get(console::file))
        .route("/v1/traces", get(search::search))
        .route("/v1/audit", get(audit_trail::list))
        .route("/v1/audit/verify", get(audit_trail::verify))
        .route("/v1/audit/checkpoint", get(audit_trail::checkpoint))
        .route("/v1/audit/{request_id}/replay", get(audit_trail::replay))
        .route("/v1/traces/{id}", get(read::read).put(write::write))
        .route("/v1/access-requests", get(approvals::list))
        .route("/v1/access-requests/{id}", get(approvals::show))
        .route("/v1/access-requests/{id}/result", get(approvals::result))
        .route("/v1/access-requests/{id}/reveals", get(access_preview::reveals))
        .route("/v1/access-requests/{id}/{verb}", axum::routing::post(approvals::decision))
        .route("/v1/service-accounts", get(service_accounts::list).post(service_accounts::create))
        .route("/v1/service-accounts/{name}/{verb}", axum::routing::post(service_accounts::action));
    #[cfg(feature = "saml")]
    let router = router
        .route("/saml/metadata", get(saml::metadata))
        .route("/saml/login", get(saml::login))
        .route("/saml/acs", axum::routing::post(saml::acs));
    router
        .fallback(not_found)
        // Inside the metrics layer, so what is counted is what was recorded and released.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::record_unrecorded))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        // Bodies are read with an explicit limit in the write handler, which answers 413 as JSON.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Liveness: 503 while the audit trail cannot be written, since every request would then be
/// refused (a load balancer should send traffic elsewhere); `audit` says why. With PostgreSQL
/// the probe reaches the database, so it turns healthy again as soon as the database is back,
/// traffic or not. `database` and `store` name the state of PostgreSQL and the bucket (see
/// [`crate::health`]: probed at most once a second, never their error text), `ready` whether
/// [`readyz`] would answer 200. `identity` reports each issuer's key freshness (`fresh`,
/// `stale`: refreshes failing but keys still used, `expired`: its tokens refused); it changes
/// neither status, as every replica shares the IdP.
async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let report = state.health.report(&state).await;
    health_reply(&state, &report, report.live())
}

/// Readiness: 200 only while the audit trail, PostgreSQL (with `[state]`) and the bucket all
/// answer; a replica that cannot reach one of them is not ready (fail closed). Same body as
/// [`healthz`].
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let report = state.health.report(&state).await;
    health_reply(&state, &report, report.ready())
}

fn health_reply(state: &AppState, report: &crate::health::Report, up: bool) -> impl IntoResponse {
    let status = if up { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    let body = Json(serde_json::json!({
        "status": if report.live() { "ok" } else { "audit_failed" },
        "ready": report.ready(),
        "audit": match &report.audit { Ok(()) => "ok".to_owned(), Err(why) => why.clone() },
        "database": report.database,
        "store": report.store,
        "policy_version": state.policy.version,
        "traces_indexed": state.index.len_hint(),
        "identity": state.auth.health(),
    }));
    (status, body)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

/// Unknown routes: recorded by the audit layer like any other refusal.
async fn not_found() -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "no_route", "no such route")
}

/// Splits a raw query string into decoded pairs, rejecting names not in `allowed`, so a typo in
/// a parameter is an error rather than a silently wider request.
pub(crate) fn query_pairs(raw: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown query parameter `{k}` (expected one of: {})", allowed.join(", ")),
            ));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}
