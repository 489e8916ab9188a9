//! Layers every route shares: request ids, a tracing span per request with
//! the matched route, and HTTP metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::ApiError;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The header carrying the request id (set when the client sent none).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` in the shared layers; at most `api_concurrency` API
/// requests are handled at once.
pub fn wrap(router: Router, api_concurrency: usize) -> Router {
    let slots = Arc::new(Semaphore::new(api_concurrency));
    router
        .layer(axum::middleware::from_fn(refuse_odd_bytes))
        .layer(axum::middleware::from_fn(move |req, next| shed_load(slots.clone(), req, next)))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            let id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), route, request_id = id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Refuses an API request at once (`503`, `Retry-After`) when too many are
/// in progress: queued requests would only hold memory and pool waiters
/// while the store is saturated. Probes and metrics are never refused.
async fn shed_load(slots: Arc<Semaphore>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    match slots.try_acquire_owned() {
        Ok(_slot) => next.run(req).await,
        Err(_) => {
            crate::metrics::shed("requests");
            ApiError::Overloaded.into_response()
        }
    }
}

/// The longest URI served (path and query), in bytes. Longer ones up to
/// hyper's own limit (64 KiB) get a JSON `414`; beyond it hyper answers alone.
pub const MAX_URI: usize = 8192;

/// Refuses control characters and invalid UTF-8 in the path and the query
/// before any handler or store sees them: a path segment is an id, so such
/// a path names nothing (`404`); a query parameter is `400 invalid_field`.
async fn refuse_odd_bytes(req: Request, next: Next) -> Response {
    if let Some(error) = odd_bytes(req.uri()) {
        return error.into_response();
    }
    next.run(req).await
}

fn odd_bytes(uri: &axum::http::Uri) -> Option<ApiError> {
    let length = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if length > MAX_URI {
        return Some(ApiError::UriTooLong(MAX_URI));
    }
    let path_ok = uri.path().split('/').all(|segment| {
        let decoded: Vec<u8> = percent_decode(segment.as_bytes());
        std::str::from_utf8(&decoded).is_ok_and(|s| !s.chars().any(char::is_control))
    });
    if !path_ok {
        return Some(ApiError::NotFound("no such route or resource".into()));
    }
    let query = uri.query()?;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = String::from_utf8_lossy(&percent_decode(name.as_bytes())).into_owned();
        let value = percent_decode(&value.replace('+', " ").into_bytes());
        match std::str::from_utf8(&value) {
            Ok(v) if !v.chars().any(char::is_control) => {}
            Ok(_) => return Some(ApiError::field(name.clone(), format!("{name} must not contain control characters"))),
            Err(_) => return Some(ApiError::field(name.clone(), format!("{name} is not valid UTF-8"))),
        }
    }
    None
}

/// `%XX` sequences decoded; a malformed one is kept as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (input[i], input.get(i + 1).copied().and_then(hex), input.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    // The matched route, not the raw path: ids in paths would explode label cardinality.
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let route = route.as_deref().unwrap_or("unmatched");
    crate::metrics::http_request(route, &method, res.status().as_u16(), start.elapsed());
    res
}
