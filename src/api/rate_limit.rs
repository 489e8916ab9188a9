//! The registration endpoints' caller: a client key must stay within its
//! rate ([`crate::rate_limit`]); server keys are not limited.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::{bearer, Auth, Principal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::hash_key;

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
        if let (Principal::Client { .. }, Some(key)) = (&who, bearer(parts)) {
            let bucket = format!("{app_id}:{}", hash_key(key));
            state
                .registration_limit
                .check(&bucket, Instant::now())
                .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
        }
        Ok(Self { client: matches!(who, Principal::Client { .. }), app_id })
    }
}
