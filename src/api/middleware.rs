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
