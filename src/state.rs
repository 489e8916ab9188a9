//! Shared state of the HTTP handlers and background tasks.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Settings in force.
    pub config: Arc<Config>,
    /// Key resolution.
    pub auth: Authenticator,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}
