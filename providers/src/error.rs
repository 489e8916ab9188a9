//! Errors raised before anything is sent.

use thiserror::Error;

/// The credentials or configuration cannot be used; fix them, retrying will
/// not help.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The private key is not a PEM the provider's algorithm can sign with.
    #[error("invalid {what} private key: {source}")]
    InvalidKey {
        /// Which key: "APNs .p8" or "service account".
        what: &'static str,
        /// Why it was refused.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A required credential field is empty.
    #[error("credentials field `{0}` is empty")]
    MissingField(&'static str),
    /// A credential field cannot be sent as it is (e.g. a topic that is not
    /// a valid header value).
    #[error("credentials field `{field}` is invalid: {reason}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// An extra root certificate could not be read.
    #[error("invalid extra root certificate PEM: {0}")]
    InvalidRootCertificate(String),
    /// The TLS settings could not be built.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The HTTP client could not be built (TLS setup).
    #[error("invalid provider URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    #[error("cannot build HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// The notification cannot be turned into a payload the provider accepts.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload (APNs) or its `data` (FCM) is over the provider's limit.
    #[error("payload is {size} bytes, over the provider's limit of {limit} bytes")]
    TooLarge {
        /// Size of what would be sent, in bytes.
        size: usize,
        /// The provider's limit, in bytes.
        limit: usize,
    },
    /// The APNs collapse id (`collapse_key`) is over Apple's 64-byte limit.
    #[error("collapse key is {len} bytes, over APNs' limit of {limit} bytes")]
    CollapseIdTooLong {
        /// Length of the collapse key, in bytes.
        len: usize,
        /// APNs' limit, in bytes.
        limit: usize,
    },
    /// The Web Push payload could not be encrypted (a subscription key
    /// that is not a point on the curve).
    #[error("cannot encrypt the payload for this subscription")]
    Encryption,
    /// A raw provider field does not have the shape the provider needs.
    #[error("invalid raw provider field: {0}")]
    InvalidRaw(String),
    /// A raw provider field asks for what pushgate does not allow (a topic
    /// or condition instead of the device, an alert in a background push).
    #[error("`{field}` is not allowed: {reason}")]
    RawFieldRefused {
        /// The field, as the API names it (e.g. `notification.fcm.topic`).
        field: String,
        /// Why.
        reason: &'static str,
    },
}

impl PayloadError {
    /// A short provider-style reason for delivery logs.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::TooLarge { .. } => "PayloadTooLarge",
            PayloadError::CollapseIdTooLong { .. } => "BadCollapseId",
            PayloadError::InvalidRaw(_) | PayloadError::RawFieldRefused { .. } => "BadPayload",
            PayloadError::Encryption => "BadSubscriptionKeys",
        }
    }

    /// The request field at fault, as the API names it, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            PayloadError::RawFieldRefused { field, .. } => Some(field),
            PayloadError::CollapseIdTooLong { .. } => Some("options.collapse_key"),
            PayloadError::TooLarge { .. } | PayloadError::InvalidRaw(_) | PayloadError::Encryption => None,
        }
    }
}
