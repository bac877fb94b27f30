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
    /// The true reason behind an answer that must not give it (a trace outside the caller's row
    /// scope answers like one that does not exist): recorded in the audit trail, never sent.
    pub hidden: Option<Box<Denial>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), role: None, rules: Vec::new(), hidden: None }
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

    /// The decision label for metrics and audit: `deny` for refusals, `error` for failures.
    pub fn decision(&self) -> &'static str {
        if self.status == StatusCode::FORBIDDEN || self.hidden.is_some() {
            "deny"
        } else {
            "error"
        }
    }
}

impl From<Denial> for ApiError {
    fn from(d: Denial) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, code: d.code.as_str(), message: d.message, role: d.role, rules: d.rules, hidden: None }
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
