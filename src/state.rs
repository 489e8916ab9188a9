//! Shared state of the HTTP handlers and background tasks.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::rate_limit::RateLimiter;
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
    /// Device registrations per client key.
    pub registration_limit: RateLimiter,
    /// Client-key calls per app, whatever the address: the ceiling behind the per-address limit.
    pub client_app_limit: RateLimiter,
    /// Sends per app.
    pub send_limit: RateLimiter,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<crate::client_addr::Cidr>>,
    /// Open sockets per client address on this instance.
    pub sockets_per_address: crate::rate_limit::Counter,
    /// Apps' identity settings (user tokens, socket relay), cached.
    pub identities: crate::identity::Identities,
    /// Device registrations, committed in batches.
    pub registrar: crate::registrar::Registrar,
    /// WebSocket connections of this instance, and sends to them.
    pub hub: crate::socket::Hub,
    /// The delivery pipeline: the one door sends go through.
    pub delivery: crate::delivery::Delivery,
    /// Events to the apps' servers.
    pub webhooks: crate::webhooks::Webhooks,
    /// Signs and checks list cursors.
    pub cursors: Arc<crate::domain::cursor::CursorKey>,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
