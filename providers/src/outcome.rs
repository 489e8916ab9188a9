//! The one answer the service acts on, whatever the provider said.

use std::time::{Duration, SystemTime};

use crate::transport::TransportError;

/// What became of one send attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The provider accepted the notification.
    Delivered {
        /// `apns-id` for APNs, the message `name` for FCM.
        provider_message_id: Option<String>,
        /// HTTP status of the answer (200).
        status: u16,
    },
    /// The device token is dead or malformed: deactivate the device.
    InvalidToken {
        /// Provider reason, e.g. `Unregistered`, `BadDeviceToken`, `UNREGISTERED`.
        reason: String,
        /// HTTP status of the answer.
        status: u16,
    },
    /// APNs 410: the token stopped being valid for the topic at `since`
    /// (Apple's `timestamp`). Deactivate the device unless its token was
    /// registered after `since` (the app was reinstalled meanwhile).
    Unregistered {
        /// `Unregistered` or `ExpiredToken`.
        reason: String,
        /// HTTP status of the answer (410).
        status: u16,
        /// When Apple last knew the token valid; `None` when not given.
        since: Option<SystemTime>,
    },
    /// The app's credentials are refused (APNs `InvalidProviderToken`,
    /// `BadCertificate…`, `BadTopic`; FCM `THIRD_PARTY_AUTH_ERROR`,
    /// `PERMISSION_DENIED`, 401; an OAuth token endpoint refusing the service
    /// account). Not the device's fault: leave it active, mark the app's
    /// provider failing with `reason`, and retry later with backoff.
    CredentialsFailing {
        /// Provider reason, e.g. `InvalidProviderToken`, `THIRD_PARTY_AUTH_ERROR`.
        reason: String,
        /// HTTP status, `None` when the refusal came before the push (OAuth).
        status: Option<u16>,
        /// How long before trying again, when known (an OAuth backoff).
        after: Option<Duration>,
    },
    /// A transient failure: try again later, after `after` if the provider said.
    Retry {
        /// The provider's `Retry-After`, when given.
        after: Option<Duration>,
        /// Provider reason or transport error.
        reason: String,
        /// HTTP status, `None` when no answer came (connection error, timeout).
        status: Option<u16>,
    },
    /// A permanent failure that is not the token's fault (payload, topic,
    /// credentials): do not retry as is.
    Rejected {
        /// Provider reason or local refusal.
        reason: String,
        /// HTTP status, `None` when refused before sending.
        status: Option<u16>,
    },
}

impl Outcome {
    /// The provider's reason, or `None` for a delivery.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::InvalidToken { reason, .. }
            | Outcome::Unregistered { reason, .. }
            | Outcome::CredentialsFailing { reason, .. }
            | Outcome::Retry { reason, .. }
            | Outcome::Rejected { reason, .. } => Some(reason),
        }
    }

    /// The HTTP status of the provider's answer, if one came.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status, .. }
            | Outcome::InvalidToken { status, .. }
            | Outcome::Unregistered { status, .. } => Some(*status),
            Outcome::CredentialsFailing { status, .. }
            | Outcome::Retry { status, .. }
            | Outcome::Rejected { status, .. } => *status,
        }
    }

    /// Whether the notification reached the provider.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }

    /// Whether the provider said the device token is dead. For
    /// [`Outcome::Unregistered`] the caller still compares `since` with when
    /// the token was registered.
    pub fn token_is_dead(&self) -> bool {
        matches!(self, Outcome::InvalidToken { .. } | Outcome::Unregistered { .. })
    }

    /// Whether the app's credentials are at fault (its provider is failing).
    pub fn credentials_failing(&self) -> bool {
        matches!(self, Outcome::CredentialsFailing { .. })
    }

    /// A push that got no answer (connection refused, reset, timeout):
    /// retry; a request that cannot be written: rejected.
    pub(crate) fn from_transport(err: TransportError) -> Outcome {
        match err {
            TransportError::Request(_) => Outcome::Rejected { reason: err.to_string(), status: None },
            other => Outcome::Retry { after: None, reason: other.to_string(), status: None },
        }
    }

    /// An OAuth token request (reqwest) that got no answer: retry.
    pub(crate) fn from_http(err: reqwest::Error) -> Outcome {
        let kind = if err.is_timeout() {
            "timeout"
        } else if err.is_connect() {
            "connection error"
        } else {
            "transport error"
        };
        if err.is_builder() {
            return Outcome::Rejected { reason: format!("invalid request: {}", err.without_url()), status: None };
        }
        // reqwest's own message ("error sending request") says nothing of
        // the cause; the chain under it (hyper, h2, the socket) does.
        let err = err.without_url();
        let mut reason = format!("{kind}: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Outcome::Retry { after: None, reason, status: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_name_their_cause() {
        let err = reqwest::Client::new().get("http://127.0.0.1:1/").send().await.expect_err("nothing on port 1");
        let Outcome::Retry { reason, status: None, .. } = Outcome::from_http(err) else { panic!("retried") };
        assert!(reason.starts_with("connection error: "), "{reason}");
        assert!(reason.len() > "connection error: error sending request for url".len(), "the cause is named: {reason}");
    }

    #[test]
    fn accessors_expose_reason_and_status() {
        let delivered = Outcome::Delivered { provider_message_id: Some("x".into()), status: 200 };
        assert_eq!((delivered.reason(), delivered.status()), (None, Some(200)));
        let retry = Outcome::Retry { after: None, reason: "timeout".into(), status: None };
        assert_eq!((retry.reason(), retry.status()), (Some("timeout"), None));
        let dead = Outcome::InvalidToken { reason: "Unregistered".into(), status: 410 };
        assert_eq!((dead.reason(), dead.status()), (Some("Unregistered"), Some(410)));
        assert!(!dead.is_delivered() && delivered.is_delivered());
    }
}
