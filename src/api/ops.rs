//! Operations endpoints: liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "process alive")))]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "store reachable, migrations applied"), (status = 503, description = "not ready")))]
async fn readyz(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    match st.store.ready().await {
        Ok(true) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": "unavailable", "message": "migrations are not applied"}})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {"code": "unavailable", "message": "the store is unreachable"}})),
            )
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(st): State<AppState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    // Gauges of shared state are read at scrape time, so they are as fresh as
    // the scrape and cost nothing between scrapes.
    match st.store.queue_depth(crate::domain::time::now_ms()).await {
        Ok(depth) => {
            crate::metrics::queue_depth("pending", depth.pending);
            crate::metrics::queue_depth("scheduled", depth.scheduled);
            crate::metrics::queue_depth("retrying", depth.retrying);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the queue depth for metrics"),
    }
    crate::metrics::socket_connections(st.hub.connections());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render())
}
