//! pushgate: a push notification gateway. Application servers call its HTTP
//! API; it delivers through APNs, FCM and WebSockets, and logs every delivery.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod batcher;
pub mod client_addr;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod identity;
pub mod metrics;
pub mod rate_limit;
pub mod registrar;
pub mod server;
pub mod socket;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;
