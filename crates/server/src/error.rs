//! The one error type of the HTTP edge: where a failure came from, the status it becomes, a
//! stable code, and — for refusals — the policy rules behind it. The body is always JSON and
//! never carries trace data.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracegate_core::Denial;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub role: Option<String>,
    pub rules: Vec<String>,
    /// Seconds sent as `Retry-After` on `429`s (and `503`s that know it). Whole seconds keep
    /// the error small: it is returned by value on every path.
    pub retry_after: Option<u32>,
    /// Who was refused, when they were authenticated before the refusal (rate limits), so the
    /// audit record names them though no handler got as far as recording the principal.
    pub who: Option<Box<tracegate_core::Principal>>,
    /// The true reason behind an answer that must not give it (a trace outside the caller's row
    /// scope answers like one that does not exist): recorded in the audit trail, never sent.
    pub hidden: Option<Box<Denial>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), role: None, rules: Vec::new(), retry_after: None, who: None, hidden: None }
    }

    /// `429 rate_limited`: come back after `wait`.
    pub fn too_many(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let secs = u32::try_from(crate::limits::retry_after_secs(wait)).unwrap_or(u32::MAX);
        ApiError { retry_after: Some(secs), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message) }
    }

    /// The error for a response the router or an extractor produced before any handler could
    /// record it (unknown route, wrong method, a path that does not decode, …): the same status,
    /// a stable code, and the rejection's own text as the message (it names no trace data).
    pub fn from_rejection(status: StatusCode, method: &str, text: &[u8]) -> Self {
        let text: String = String::from_utf8_lossy(text).chars().filter(|c| !c.is_control()).take(300).collect();
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("no_route", "no such route".to_owned()),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", format!("method `{method}` is not allowed on this route")),
            StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the request body is too large".to_owned()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", text),
            s if s.is_client_error() => ("bad_request", if text.is_empty() { "the request is malformed".to_owned() } else { text }),
            _ => ("internal", "the request could not be handled".to_owned()),
        };
        Self::new(status, code, message)
    }

    /// `404 not_found`, exactly as for a trace that does not exist; `why` goes to the audit
    /// record only.
    pub fn not_found_hiding(id: &tracegate_core::TraceId, why: Denial) -> Self {
        let mut e = ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("trace `{id}` not found"));
        e.hidden = Some(Box::new(why));
        e
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }

    /// The decision label for metrics and audit: `deny` for refusals (policy, and rate limits),
    /// `error` for failures.
    pub fn decision(&self) -> &'static str {
        if self.is_refusal() || self.hidden.is_some() {
            "deny"
        } else {
            "error"
        }
    }
}

impl ApiError {
    /// A refusal (the caller may not, or not now), as opposed to a failure.
    pub fn is_refusal(&self) -> bool {
        self.status == StatusCode::FORBIDDEN || self.status == StatusCode::TOO_MANY_REQUESTS
    }
}

impl From<Denial> for ApiError {
    fn from(d: Denial) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, code: d.code.as_str(), message: d.message, role: d.role, rules: d.rules, retry_after: None, who: None, hidden: None }
    }
}

impl From<tracegate_identity::AuthError> for ApiError {
    fn from(e: tracegate_identity::AuthError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<tracegate_store::StoreError> for ApiError {
    fn from(e: tracegate_store::StoreError) -> Self {
        match e {
            tracegate_store::StoreError::NotFound(id) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("trace `{id}` not found"))
            }
            tracegate_store::StoreError::Precondition { id, reason } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", format!("trace `{id}`: {reason}"))
            }
            tracegate_store::StoreError::TooLarge { id, .. } => ApiError::internal(
                "trace_too_large",
                format!("trace `{id}` is larger than this gateway's read limit (`server.max_read_bytes`)"),
            ),
            other => {
                tracing::error!(error = %other, "trace store failed");
                ApiError::unavailable("store_unavailable", "the trace store is unavailable")
            }
        }
    }
}

impl ApiError {
    /// The JSON body and headers of this error, ready to audit and send.
    pub fn render(&self) -> crate::audit::Reply {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(role) = &self.role {
            error["role"] = role.clone().into();
        }
        if !self.rules.is_empty() {
            error["rules"] = self.rules.clone().into();
        }
        let body = serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default();
        let mut reply = crate::audit::Reply::json(self.status, body);
        if self.status == StatusCode::UNAUTHORIZED {
            reply.headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\"")));
        }
        if let Some(secs) = self.retry_after {
            reply.headers.push((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        reply
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reply = self.render();
        let mut resp = (reply.status, reply.body).into_response();
        for (k, v) in reply.headers {
            resp.headers_mut().insert(k, v);
        }
        resp.extensions_mut().insert(crate::metrics::DecisionLabel(self.decision()));
        resp
    }
}
