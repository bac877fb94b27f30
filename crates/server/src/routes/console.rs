//! `GET /console/…`: the web console's static files (`tracegate-console`), with its
//! Content-Security-Policy and the other headers of [`tracegate_console::HEADERS`] on every
//! answer, 404s included. `GET /console` redirects to `/console/`.
//!
//! These answers are not audited (like `/healthz`): they are the same bytes for everyone,
//! carry no trace, principal or policy, and need no credential; a page load would otherwise
//! write half a dozen records. Everything the console shows comes from `/v1` routes, each
//! recorded as for any other client.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The path prefix the console is served under.
pub const PREFIX: &str = "/console";

pub async fn index(headers: HeaderMap) -> Response {
    serve("", &headers)
}

pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

pub async fn redirect() -> Response {
    let mut resp = respond(
        StatusCode::PERMANENT_REDIRECT,
        "text/plain; charset=utf-8",
        &b""[..],
    );
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/console/"));
    resp
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = tracegate_console::asset(path) else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            &b"no such console file\n"[..],
        );
    };
    let etag = asset.etag();
    let fresh = headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim() == etag))
    });
    let mut resp = match fresh {
        true => respond(StatusCode::NOT_MODIFIED, asset.content_type, &b""[..]),
        false => respond(StatusCode::OK, asset.content_type, asset.body),
    };
    resp.headers_mut()
        .insert(header::ETAG, HeaderValue::from_static(etag));
    resp
}

fn respond(status: StatusCode, content_type: &'static str, body: &'static [u8]) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (k, v) in tracegate_console::HEADERS {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    resp
}
