//! What can go wrong with a frame or a socket send. Over HTTP the API answers
//! it (`src/error.rs`); on a connection it becomes an error frame with the
//! same `{"code", "message", "field"?}` object.

use serde_json::{json, Value};

use crate::domain::{FieldError, FieldErrorKind};
use crate::store::StoreError;

/// A refused frame or send.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A frame is not JSON, or not a JSON object.
    #[error("{0}")]
    InvalidJson(String),
    /// A field of a frame or of its notification is refused.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// Nobody to send to, or a replay point no longer kept.
    #[error("{0}")]
    NotFound(String),
    /// The app's settings do not allow this (e.g. a client relay).
    #[error("{0}")]
    Forbidden(String),
    /// The connection sends frames faster than its rate.
    #[error("too many frames: slow down")]
    RateLimited,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SocketError {
    /// Shorthand for a refused field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Field(FieldError::new(field, message))
    }

    /// The `error` object of an error frame, coded and worded as the HTTP
    /// API answers the same error (a test in `src/error.rs` holds them equal).
    pub fn body(&self) -> Value {
        let (code, message) = match self {
            Self::InvalidJson(message) => ("invalid_json", message.clone()),
            Self::Field(e) => match e.kind {
                FieldErrorKind::Value => ("invalid_field", e.message.clone()),
                FieldErrorKind::Token => ("invalid_token", e.message.clone()),
            },
            Self::NotFound(message) => ("not_found", message.clone()),
            Self::Forbidden(message) => ("forbidden", message.clone()),
            Self::RateLimited => ("rate_limited", "too many requests".to_string()),
            Self::Store(StoreError::Unavailable(_) | StoreError::Dropped(_)) => {
                ("unavailable", "the store is unavailable, retry later".to_string())
            }
            Self::Store(e @ StoreError::NotFound(_)) => ("not_found", e.to_string()),
            Self::Store(e @ StoreError::Conflict(_)) => ("conflict", e.to_string()),
            Self::Store(_) => ("internal", "internal error".to_string()),
        };
        let mut error = json!({"code": code, "message": message});
        if let Self::Field(e) = self {
            error["field"] = json!(e.field);
        }
        error
    }
}
