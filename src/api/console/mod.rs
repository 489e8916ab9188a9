//! `GET /console`: the ops console, a static page on the JSON API.
//!
//! Why a static page rather than server-rendered templates: the console
//! then reads exactly what every API client reads (one auth path, no
//! sessions or CSRF tokens to add), the key stays in the browser's session
//! storage and is never kept by the gateway, and there is no template
//! crate to compile. The three files are compiled into the binary: no CDN,
//! no build step.

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const HTML: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Scripts and styles from this origin only, nothing inline, no framing:
/// a device's metadata shown in the page cannot become script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Routes of the console.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { page(HTML, "text/html; charset=utf-8") }))
        .route("/console/console.js", get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }))
        .route("/console/console.css", get(|| async { page(STYLE, "text/css; charset=utf-8") }))
}

fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
}
