//! The web console's static assets, compiled into the binary with `include_bytes!`: plain HTML,
//! ES modules and CSS, no framework, no bundler and no Node.js at serve time. The console is a
//! client of the gateway's HTTP API like any other; nothing here reads traces, policy or audit
//! records, and nothing here knows HTTP (the server crate turns an [`Asset`] into a response
//! with [`HEADERS`]).
//!
//! Why no templating: every page is the same bytes for everyone, so an asset can never carry
//! data of one principal to another, and trace content (hostile) only ever reaches the page
//! through `fetch` + `textContent` in the modules.

use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

/// One file of the console.
#[derive(Debug)]
pub struct Asset {
    /// Path under `/console/`, e.g. `app.js`; the index is `""`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    /// A strong entity tag: the SHA-256 of the body, quoted. Assets are served `no-cache`, so
    /// a browser revalidates every load and gets `304` when nothing changed — a new binary can
    /// never leave a page running yesterday's module beside today's API.
    pub fn etag(&self) -> &'static str {
        static TAGS: OnceLock<Vec<String>> = OnceLock::new();
        let tags = TAGS.get_or_init(|| {
            ASSETS
                .iter()
                .map(|a| format!("\"{}\"", hex::encode(Sha256::digest(a.body))))
                .collect()
        });
        ASSETS
            .iter()
            .position(|a| std::ptr::eq(a, self))
            .and_then(|i| tags.get(i))
            .map_or("\"\"", String::as_str)
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($path:literal, $file:literal, $ty:expr) => {
        Asset {
            path: $path,
            content_type: $ty,
            body: include_bytes!(concat!("../assets/", $file)),
        }
    };
}

/// Every file the console serves; anything else under `/console/` is a 404.
pub static ASSETS: [Asset; 10] = [
    asset!("", "index.html", HTML),
    asset!("dev-login", "dev-login.html", HTML),
    asset!("style.css", "style.css", CSS),
    asset!("app.js", "app.js", JS),
    asset!("api.js", "api.js", JS),
    asset!("dom.js", "dom.js", JS),
    asset!("inbox.js", "inbox.js", JS),
    asset!("viewer.js", "viewer.js", JS),
    asset!("audit.js", "audit.js", JS),
    asset!("dev-login.js", "dev-login.js", JS),
];

/// The asset at `path` (relative to `/console/`), if there is one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The Content-Security-Policy of every console response: only the console's own scripts,
/// styles and API; no inline script or style, no framing, no `<base>`, forms post only here.
/// Trace content is hostile: if a rendering bug ever let markup through, this still keeps it
/// from running or loading anything.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Headers every console response carries (besides `Content-Type`, `ETag`).
pub const HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-cache"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_path_and_etag() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(
                ASSETS.iter().skip(i + 1).all(|b| b.path != a.path),
                "duplicate `{}`",
                a.path
            );
            assert_eq!(a.etag().len(), 66, "{}", a.path);
            assert!(asset(a.path).is_some_and(|b| std::ptr::eq(a, b)));
        }
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("nope.js").is_none());
    }

    /// ` onclick=`-like text: ` on`, letters, `=`.
    fn has_handler_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            letters > 0 && rest.as_bytes().get(letters) == Some(&b'=')
        })
    }

    /// The rules the CSP enforces in the browser, checked in the source too, so a violation is
    /// caught before a page silently breaks: no inline script or style, no handler attributes,
    /// no `innerHTML`-family sinks, no `eval`.
    #[test]
    fn assets_have_no_inline_code_and_no_html_sinks() {
        for a in &ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                " style=\"",
                "javascript:",
            ] {
                assert!(!text.contains(banned), "`{}` contains `{banned}`", a.path);
            }
            if a.content_type == HTML {
                assert!(!text.contains("<style"), "`{}` has an inline style", a.path);
                for (i, _) in text.match_indices("<script") {
                    let tag = &text[i..text[i..].find('>').map_or(text.len(), |e| i + e)];
                    assert!(
                        tag.contains("src="),
                        "`{}` has an inline script: {tag}",
                        a.path
                    );
                }
                assert!(
                    !has_handler_attribute(text),
                    "`{}` has an event-handler attribute",
                    a.path
                );
            }
        }
    }
}
