//! The registration endpoints' caller: a client key must stay within its
//! rate per client address and its app's ceiling ([`crate::rate_limit`]);
//! server keys are not limited.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;

use crate::auth::{Auth, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// The calling client's address (see [`crate::client_addr`]); unspecified
/// when the server runs without connection info (in-process tests).
pub fn client_addr(parts: &Parts, state: &AppState) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| addr.ip());
    crate::client_addr::client_addr(peer, &parts.headers, &state.trusted_proxies)
}

/// Extractor of the registration endpoints: the caller's app (server or
/// client key), once a client key is within its rate.
pub struct Registrant {
    /// The caller's app.
    pub app_id: String,
    /// Whether the caller holds the (public) client key.
    pub client: bool,
}

impl FromRequestParts<AppState> for Registrant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Auth(who) = Auth::from_request_parts(parts, state).await?;
        let app_id = who.app()?.to_string();
        if let Principal::Client { .. } = &who {
            // Per address first, so one abuser spends only its own bucket
            // and not the app's shared ceiling.
            let now = Instant::now();
            let addr = client_addr(parts, state);
            let limited = |retry_after_secs| ApiError::RateLimited { retry_after_secs };
            state.registration_limit.check(&format!("{app_id}:{addr}"), now).map_err(limited)?;
            state.client_app_limit.check(&app_id, now).map_err(limited)?;
        }
        Ok(Self { client: matches!(who, Principal::Client { .. }), app_id })
    }
}
