//! Operations endpoints: liveness and readiness.

use axum::extract::State;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
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
async fn readyz(State(st): State<AppState>) -> Response {
    // A probe must answer at once: a hung database is "not ready", not a hung probe.
    let check = tokio::time::timeout(READY_TIMEOUT, st.store.ready()).await;
    let message = match check {
        Ok(Ok(true)) => return (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Ok(Ok(false)) => "migrations are not applied",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            "the store is unreachable"
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            "the store is unreachable"
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        Json(json!({"error": {"code": "unavailable", "message": message}})),
    )
        .into_response()
}

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_millis(500);

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
