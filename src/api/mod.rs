//! The HTTP API: one module per resource, each with its own `router()`,
//! merged here under the layers every route shares. Routes are declared
//! through `utoipa_axum`, so the OpenAPI document is built from the same
//! declarations and cannot drift from what is served.

pub mod apps;
pub mod batch;
pub mod console;
pub mod deliveries;
pub mod devices;
pub mod groups;
pub mod json;
pub mod middleware;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
pub mod reader;
pub mod sdk;
pub mod socket;
pub mod stats;
pub mod web_push;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// Every documented route, with its OpenAPI description.
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(apps::router())
        .merge(notifications::router())
        .merge(batch::router())
        .merge(deliveries::router())
        .merge(devices::router())
        .merge(groups::router())
        .merge(ops::router())
        .merge(socket::router())
        .merge(web_push::router())
        .merge(sdk::router())
        .merge(stats::router())
        .merge(webhooks::router())
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let api_concurrency = state.config.api_concurrency;
    let (routes, doc) = documented().split_for_parts();
    let router = routes
        .merge(openapi::router(doc))
        .merge(console::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    middleware::wrap(router, api_concurrency)
}
