//! Prometheus metrics, named once here.
//!
//! - `tracegate_http_requests_total{route, status, decision}` — every request; `decision` is
//!   `allow`, `deny`, `pending` (held for approval), `error` or `none` (routes that decide
//!   nothing, such as `/healthz`).
//! - `tracegate_http_request_duration_seconds{route}` — latency histogram.
//!
//! - `tracegate_webhook_{delivered,failed,retried,dropped}_total` — approval notifications, when
//!   a webhook is configured.
//!
//! Labels are low-cardinality: `route` is the matched route template, never the raw path.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Set on a response by handlers so the metrics layer can label the decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionLabel(pub &'static str);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tracegate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, status and decision", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        Metrics { registry, requests, latency }
    }
}

impl Metrics {
    /// Registers the approval webhook's delivery counters:
    /// `tracegate_webhook_{delivered,failed,retried,dropped}_total`.
    pub fn register_webhook(&mut self, c: &tracegate_approvals::Counters) {
        let r = &mut self.registry;
        r.register("webhook_delivered", "Approval notifications delivered", c.delivered.clone());
        r.register("webhook_failed", "Approval notifications given up on (logged)", c.failed.clone());
        r.register("webhook_retried", "Approval notification attempts retried", c.retried.clone());
        r.register("webhook_dropped", "Approval notifications dropped on a full queue", c.dropped.clone());
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Middleware: counts and times every request.
pub async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let resp = next.run(req).await;
    let decision = resp.extensions().get::<DecisionLabel>().map_or("none", |d| d.0);
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels { route: route.clone(), status: resp.status().as_u16(), decision })
        .inc();
    m.latency.get_or_create(&RouteLabels { route }).observe(start.elapsed().as_secs_f64());
    resp
}
