//! Web Push for browsers: API.md, Web Push. The app's VAPID public key, for
//! `pushManager.subscribe({applicationServerKey})`; the key pair is set
//! with `PATCH /v1/apps/{app_id}` `web_push`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::rate_limit::Registrant;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(public_key))
}

/// The app's VAPID public key.
#[derive(Serialize, ToSchema)]
struct PublicKey {
    /// Uncompressed P-256 point, base64url: the `applicationServerKey`.
    public_key: String,
}

#[utoipa::path(get, path = "/v1/web-push/public-key", tag = "web-push",
    description = "The VAPID public key of the key's app (client or server key). `404 not_found` until the app \
        has one (`PATCH /v1/apps/{app_id}` `{\"web_push\": {\"subject\": \"mailto:…\"}}`). A browser reads it \
        before registering: client keys share the registrations' rate limits.",
    responses((status = 200, body = PublicKey), (status = "4XX", body = ErrorBody)))]
async fn public_key(
    State(st): State<AppState>,
    Registrant { app_id, .. }: Registrant,
) -> ApiResult<axum::Json<PublicKey>> {
    let public_key = st.store.web_push_public_key(&app_id).await?.ok_or_else(|| ApiError::not_found("web push key"))?;
    Ok(axum::Json(PublicKey { public_key }))
}
