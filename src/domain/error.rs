//! The one error of domain parsing: which input field was refused, and why.
//! The API turns it into its `invalid_field` / `invalid_token` answers
//! (`src/error.rs`); the socket into an error frame.

/// How a refused value is reported: most are `invalid_field`, malformed
/// device tokens have their own `invalid_token` code (API.md, Errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A field has the wrong type, is missing, or is out of range.
    Value,
    /// A device token is malformed for its platform.
    Token,
}

/// An input value that does not parse, named by its path (e.g. `to.device_ids[2]`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The path of the offending field; empty when the input as a whole is wrong.
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
    /// How the API reports it.
    pub kind: FieldErrorKind,
}

impl FieldError {
    /// A refused field (`invalid_field`).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), kind: FieldErrorKind::Value }
    }

    /// A malformed device token (`invalid_token`).
    pub fn token(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), kind: FieldErrorKind::Token }
    }

    /// The same error under a parent path: `apns` + `key_id` is `apns.key_id`
    /// (an empty field becomes the parent itself).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() { parent.to_string() } else { format!("{parent}.{}", self.field) };
        self
    }
}
