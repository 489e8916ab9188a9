//! The one error type of the HTTP API, and its mapping to API.md's error body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::delivery::DeliveryError;
use crate::domain::{FieldError, FieldErrorKind};
use crate::identity::IdentityError;
use crate::socket::SocketError;
use crate::store::StoreError;

/// Every failure a request can meet; `IntoResponse` turns it into
/// `{"error": {"code", "message", "field"?}}` with the status of API.md.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not a JSON object.
    #[error("{0}")]
    InvalidJson(String),
    /// A field has the wrong type, is missing, or is out of range.
    #[error("{message}")]
    InvalidField { field: String, message: String },
    /// A device token is malformed for its platform.
    #[error("{message}")]
    InvalidToken { field: String, message: String },
    /// No key, or an unknown or revoked one.
    #[error("missing or unknown API key")]
    Unauthorized,
    /// A client key named a user without a valid user token for it.
    #[error(transparent)]
    UserToken(#[from] IdentityError),
    /// The key is valid but its kind may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or an unknown route).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the state (e.g. idempotency key reuse).
    #[error("{0}")]
    Conflict(String),
    /// The request's URI is over [`crate::api::middleware::MAX_URI`] bytes.
    #[error("the URI is over {0} bytes")]
    UriTooLong(usize),
    /// The body is not declared as JSON (`Content-Type`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body or a provider payload is over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The app has no credentials for the platform asked for.
    #[error("{0}")]
    NoProvider(String),
    /// Too many requests; retry after the given seconds.
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// The HTTP method is not allowed on this route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Too many API requests in progress on this instance.
    #[error("too many requests in progress, retry later")]
    Overloaded,
    /// The store is unreachable.
    #[error("the store is unavailable, retry later")]
    Unavailable(#[source] StoreError),
    /// A bug or an unexpected store failure; details go to the log only.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl ApiError {
    /// Shorthand for an `invalid_field` error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), message: message.into() }
    }

    /// Shorthand for a `not_found` error.
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("no such {what}"))
    }

    /// The `error` object of API.md's error body: `{"code", "message", "field"?}`.
    pub fn body(&self) -> serde_json::Value {
        json!(self.error_body().error)
    }

    /// The error body of API.md, typed: `{"error": {"code", "message", "field"?}}`.
    pub fn error_body(&self) -> ErrorBody {
        let field = match self {
            Self::InvalidField { field, .. } | Self::InvalidToken { field, .. } => Some(field.clone()),
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail { code: self.status_and_code().1.to_string(), message: self.to_string(), field },
        }
    }

    /// Logs what the operator must see (the store down, a bug); a caller's
    /// mistake is the caller's to read in the answer.
    pub fn log(&self) {
        match self {
            Self::Unavailable(e) => tracing::warn!(error = %e, "store unavailable"),
            Self::Internal(e) => tracing::error!(error = ?e, "internal error"),
            _ => {}
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            Self::InvalidToken { .. } => (StatusCode::BAD_REQUEST, "invalid_token"),
            Self::Unauthorized | Self::UserToken(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::NoProvider(_) => (StatusCode::UNPROCESSABLE_ENTITY, "no_provider"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) | Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Dropped(_) => Self::Unavailable(e),
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(msg) => Self::Conflict(msg),
            other => Self::Internal(other),
        }
    }
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::InvalidField { field, message } => Self::field(field, message),
            DeliveryError::PayloadTooLarge(message) => Self::PayloadTooLarge(message),
            DeliveryError::NotFound(what) => Self::not_found(what),
            DeliveryError::NoProvider(_) => Self::NoProvider(e.to_string()),
            DeliveryError::KeyReused => Self::Conflict(e.to_string()),
            DeliveryError::Store(e) => e.into(),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let FieldError { field, message, kind } = e;
        match kind {
            FieldErrorKind::Value => Self::InvalidField { field, message },
            FieldErrorKind::Token => Self::InvalidToken { field, message },
        }
    }
}

impl From<SocketError> for ApiError {
    fn from(e: SocketError) -> Self {
        match e {
            SocketError::InvalidJson(message) => Self::InvalidJson(message),
            SocketError::Field(e) => e.into(),
            SocketError::NotFound(message) => Self::NotFound(message),
            SocketError::Forbidden(message) => Self::Forbidden(message),
            SocketError::RateLimited => Self::RateLimited { retry_after_secs: 1 },
            SocketError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        self.log();
        let mut res = (status, axum::Json(json!({ "error": self.body() }))).into_response();
        if let Self::RateLimited { retry_after_secs } = self {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if matches!(self, Self::Unavailable(_) | Self::Overloaded) {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// The OpenAPI shape of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The `error` object of [`ErrorBody`].
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `invalid_field`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket error frame and the HTTP answer to the same error say the same.
    #[test]
    fn socket_frames_and_http_bodies_agree() {
        let cases = || {
            vec![
                SocketError::InvalidJson("frame is not valid JSON".into()),
                SocketError::field("to", "to must be an object"),
                SocketError::Field(FieldError::token("token", "APNs device tokens are hex")),
                SocketError::NotFound("no such connected client".into()),
                SocketError::Forbidden("relays are off".into()),
                SocketError::RateLimited,
                SocketError::Store(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
                SocketError::Store(StoreError::NotFound("device")),
                SocketError::Store(StoreError::Conflict("taken".into())),
                SocketError::Store(StoreError::Database(sqlx::Error::RowNotFound)),
            ]
        };
        for (socket, http) in cases().into_iter().zip(cases().into_iter().map(ApiError::from)) {
            assert_eq!(socket.body(), http.body(), "{socket:?}");
        }
    }

    #[test]
    fn field_errors_keep_their_code_and_path() {
        let body = ApiError::from(FieldError::new("to.device_ids[1]", "must be a string")).body();
        assert_eq!(body, json!({"code": "invalid_field", "message": "must be a string", "field": "to.device_ids[1]"}));
        let body = ApiError::from(FieldError::token("token", "bad token")).body();
        assert_eq!(body["code"], "invalid_token");
        assert_eq!(body["field"], "token");
    }
}
