//! The app a read is about: a server key reads its own app; the admin key
//! reads any app, named by `?app_id=` (API.md: the admin key reads everything).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::{Auth, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// Extractor of read endpoints: the app read, for a server key or the admin.
pub struct Reader(pub String);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Auth(who) = Auth::from_request_parts(parts, state).await?;
        let named = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "app_id").map(|(_, v)| v.into_owned())
        });
        match (who, named) {
            (Principal::Server { app_id }, None) => Ok(Self(app_id)),
            (Principal::Server { app_id }, Some(named)) if named == app_id => Ok(Self(app_id)),
            (Principal::Server { .. }, Some(_)) => {
                Err(ApiError::Forbidden("a server key reads its own app only".into()))
            }
            (Principal::Admin, Some(named)) => {
                state.store.app(&named).await?.ok_or_else(|| ApiError::not_found("app"))?;
                Ok(Self(named))
            }
            (Principal::Admin, None) => {
                Err(ApiError::Forbidden("the admin key names the app to read: ?app_id=".into()))
            }
            (Principal::Client { .. }, _) => Err(ApiError::Forbidden("this needs an app's server key".into())),
        }
    }
}
