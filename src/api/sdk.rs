//! The browser client served by the gateway: `GET /sdk/pushgate.js`, its
//! service worker `GET /sdk/pushgate-sw.js`, and the chat room on them,
//! `GET /demo`. Plain files compiled into the binary: no build step, no CDN.
//! They hold no key: the demo page is given a client key by whoever opens it.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

const PUSHGATE_JS: &str = include_str!("static/pushgate.js");
const SERVICE_WORKER_JS: &str = include_str!("static/pushgate-sw.js");
const DEMO_HTML: &str = include_str!("static/demo.html");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
/// Lets the service worker, served under `/sdk/`, control a whole site.
const SERVICE_WORKER_ALLOWED: HeaderName = HeaderName::from_static("service-worker-allowed");
/// Short: a new gateway version's script reaches browsers within minutes.
const CACHE: &str = "public, max-age=300";

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(script)).routes(routes!(service_worker)).routes(routes!(demo))
}

type Static = ([(HeaderName, &'static str); 2], &'static str);

#[utoipa::path(get, path = "/sdk/pushgate.js", tag = "sdk",
    description = "The browser client: registers the browser for Web Push and keeps a socket open (reconnect, backoff, `since`).",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
async fn script() -> Static {
    ([(CONTENT_TYPE, JAVASCRIPT), (CACHE_CONTROL, CACHE)], PUSHGATE_JS)
}

#[utoipa::path(get, path = "/sdk/pushgate-sw.js", tag = "sdk",
    description = "The service worker that shows a Web Push notification and opens its `action` URL on click; \
        served with `Service-Worker-Allowed: /`.",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
async fn service_worker() -> ([(HeaderName, &'static str); 3], &'static str) {
    ([(CONTENT_TYPE, JAVASCRIPT), (CACHE_CONTROL, CACHE), (SERVICE_WORKER_ALLOWED, "/")], SERVICE_WORKER_JS)
}

#[utoipa::path(get, path = "/demo", tag = "sdk",
    description = "A chat room on the browser client: open it as `/demo?key=CLIENT_KEY` in two tabs. It needs an \
        app whose `socket.client_relay` is `all`.",
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String)))]
async fn demo() -> Static {
    ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, CACHE)], DEMO_HTML)
}
