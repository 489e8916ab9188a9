//! What an APNs answer means for the device and the notification.

use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;

use crate::outcome::Outcome;

/// The `reason` Apple gives when the provider token is too old.
pub const EXPIRED_PROVIDER_TOKEN: &str = "ExpiredProviderToken";

/// Apple's reasons that say the app's credentials or topic are wrong: every
/// push of the app would get the same answer until they are fixed.
pub const CREDENTIAL_REASONS: &[&str] = &[
    "InvalidProviderToken",
    "MissingProviderToken",
    "BadCertificate",
    "BadCertificateEnvironment",
    "BadTopic",
    "TopicDisallowed",
];

#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
    /// With 410: milliseconds since the epoch when the token stopped being valid.
    timestamp: Option<u64>,
}

/// Reads Apple's `{"reason": "..."}` error body; `None` when absent or not JSON.
pub fn reason(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body).ok()?.reason
}

/// Classifies an APNs answer.
///
/// `apns_id` is the response's `apns-id` header, `retry_after` its parsed
/// `Retry-After` header.
pub fn classify(status: u16, body: &[u8], apns_id: Option<&str>, retry_after: Option<Duration>) -> Outcome {
    if status == 200 {
        return Outcome::Delivered { provider_message_id: apns_id.map(str::to_owned), status };
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let since = parsed.as_ref().and_then(|b| b.timestamp).map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let reason = parsed.and_then(|b| b.reason).unwrap_or_else(|| format!("HTTP {status}"));
    match (status, reason.as_str()) {
        // 410: the token is no longer active for the topic (app removed) since `timestamp`.
        (410, _) => Outcome::Unregistered { reason, status, since },
        (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => Outcome::InvalidToken { reason, status },
        // A token older than an hour (or a clock skew): a newer one fixes it.
        (403, EXPIRED_PROVIDER_TOKEN) => Outcome::Retry { after: retry_after, reason, status: Some(status) },
        (400 | 403, r) if CREDENTIAL_REASONS.contains(&r) => {
            Outcome::CredentialsFailing { reason, status: Some(status), after: retry_after }
        }
        (429 | 500 | 502 | 503 | 504, _) => Outcome::Retry { after: retry_after, reason, status: Some(status) },
        (s, _) if s >= 500 => Outcome::Retry { after: retry_after, reason, status: Some(status) },
        _ => Outcome::Rejected { reason, status: Some(status) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reason: &str) -> Vec<u8> {
        format!(r#"{{"reason":"{reason}"}}"#).into_bytes()
    }

    fn dead(reason: &str, status: u16) -> Outcome {
        Outcome::InvalidToken { reason: reason.into(), status }
    }

    #[test]
    fn success_carries_the_apns_id() {
        assert_eq!(
            classify(200, b"", Some("abc"), None),
            Outcome::Delivered { provider_message_id: Some("abc".into()), status: 200 }
        );
    }

    #[test]
    fn dead_and_malformed_tokens() {
        let unregistered = br#"{"reason":"Unregistered","timestamp":1700000000123}"#;
        assert_eq!(
            classify(410, unregistered, None, None),
            Outcome::Unregistered {
                reason: "Unregistered".into(),
                status: 410,
                since: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
            }
        );
        assert_eq!(
            classify(410, &body("ExpiredToken"), None, None),
            Outcome::Unregistered { reason: "ExpiredToken".into(), status: 410, since: None }
        );
        assert_eq!(classify(400, &body("BadDeviceToken"), None, None), dead("BadDeviceToken", 400));
        assert_eq!(classify(400, &body("DeviceTokenNotForTopic"), None, None), dead("DeviceTokenNotForTopic", 400));
    }

    #[test]
    fn throttling_and_outages_are_retried_with_retry_after() {
        let after = Some(Duration::from_secs(7));
        for (status, reason) in [
            (429, "TooManyRequests"),
            (429, "TooManyProviderTokenUpdates"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (503, "Shutdown"),
        ] {
            assert_eq!(
                classify(status, &body(reason), None, after),
                Outcome::Retry { after, reason: reason.into(), status: Some(status) }
            );
        }
        assert_eq!(
            classify(502, b"<html>", None, None),
            Outcome::Retry { after: None, reason: "HTTP 502".into(), status: Some(502) }
        );
    }

    #[test]
    fn credential_and_topic_errors_mark_the_app_failing() {
        for (status, reason) in [
            (400, "TopicDisallowed"),
            (400, "BadTopic"),
            (403, "BadCertificate"),
            (403, "BadCertificateEnvironment"),
            (403, "InvalidProviderToken"),
            (403, "MissingProviderToken"),
        ] {
            let outcome = classify(status, &body(reason), None, None);
            assert_eq!(
                outcome,
                Outcome::CredentialsFailing { reason: reason.into(), status: Some(status), after: None }
            );
            assert!(outcome.credentials_failing() && !outcome.token_is_dead());
        }
    }

    #[test]
    fn payload_errors_are_rejected() {
        for (status, reason) in [
            (400, "BadCollapseId"),
            (400, "PayloadEmpty"),
            (400, "BadExpirationDate"),
            (404, "BadPath"),
            (413, "PayloadTooLarge"),
        ] {
            assert_eq!(
                classify(status, &body(reason), None, None),
                Outcome::Rejected { reason: reason.into(), status: Some(status) }
            );
        }
    }

    #[test]
    fn expired_provider_token_is_retryable() {
        assert!(matches!(classify(403, &body(EXPIRED_PROVIDER_TOKEN), None, None), Outcome::Retry { .. }));
    }
}
