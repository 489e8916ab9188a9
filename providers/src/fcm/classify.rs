//! What an FCM v1 answer means for the device and the notification.

use std::time::Duration;

use serde::Deserialize;

use crate::outcome::Outcome;

#[derive(Deserialize)]
struct Success {
    name: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: GoogleError,
}

/// Google's error body: `{"error": {"code", "message", "status", "details"}}`.
#[derive(Debug, Default, Deserialize)]
pub struct GoogleError {
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Canonical status, e.g. `INVALID_ARGUMENT`, `NOT_FOUND`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Debug, Deserialize)]
struct Detail {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

impl GoogleError {
    /// Parses Google's error body; `None` when it is not one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorEnvelope>(body).ok().map(|e| e.error)
    }

    /// The FCM-specific `errorCode` from `details` (e.g. `UNREGISTERED`).
    pub fn fcm_error_code(&self) -> Option<&str> {
        self.details
            .iter()
            .filter(|d| d.kind == FCM_ERROR_TYPE || d.kind.is_empty())
            .find_map(|d| d.error_code.as_deref())
    }
}

/// Classifies an FCM v1 answer from its status, body and parsed `Retry-After`.
pub fn classify(status: u16, body: &[u8], retry_after: Option<Duration>) -> Outcome {
    if status == 200 {
        let name = serde_json::from_slice::<Success>(body).ok().and_then(|s| s.name);
        return Outcome::Delivered { provider_message_id: name, status };
    }
    let error = GoogleError::parse(body).unwrap_or_default();
    let code = error.fcm_error_code();
    let reason = code
        .or(Some(error.status.as_str()).filter(|s| !s.is_empty()))
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    // Only the UNREGISTERED detail proves the token dead: a bare 404 can be
    // a wrong project or path. SENDER_ID_MISMATCH: the token belongs to
    // another Firebase project, and never will be this one's.
    if matches!(code, Some("UNREGISTERED" | "SENDER_ID_MISMATCH")) {
        return Outcome::InvalidToken { reason, status };
    }
    // The app's credentials, not the device: APNs or Web Push refused the
    // certificate or key uploaded to Firebase, the service account may not
    // send for the project, or the access token is refused.
    if code == Some("THIRD_PARTY_AUTH_ERROR") || error.status == "PERMISSION_DENIED" || status == 401 || status == 403 {
        let reason = if error.message.is_empty() { reason } else { format!("{reason}: {}", error.message) };
        return Outcome::CredentialsFailing { reason, status: Some(status), after: retry_after };
    }
    let invalid_argument = code == Some("INVALID_ARGUMENT") || error.status == "INVALID_ARGUMENT";
    if status == 400 && invalid_argument && error.message.to_ascii_lowercase().contains("registration token") {
        return Outcome::InvalidToken { reason, status };
    }
    match status {
        429 | 500 | 502 | 503 | 504 => Outcome::Retry { after: retry_after, reason, status: Some(status) },
        s if s >= 500 => Outcome::Retry { after: retry_after, reason, status: Some(status) },
        _ => {
            let reason = if error.message.is_empty() { reason } else { format!("{reason}: {}", error.message) };
            Outcome::Rejected { reason, status: Some(status) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn google(code: u16, status: &str, message: &str, error_code: Option<&str>) -> Vec<u8> {
        let details =
            error_code.map(|c| json!([{"@type": FCM_ERROR_TYPE, "errorCode": c}])).unwrap_or_else(|| json!([]));
        serde_json::to_vec(&json!({"error": {"code": code, "message": message, "status": status, "details": details}}))
            .expect("json")
    }

    #[test]
    fn success_carries_the_message_name() {
        assert_eq!(
            classify(200, br#"{"name":"projects/p/messages/0:1"}"#, None),
            Outcome::Delivered { provider_message_id: Some("projects/p/messages/0:1".into()), status: 200 }
        );
    }

    #[test]
    fn unregistered_detail_means_dead_token_at_404_or_400() {
        for status in [404, 400] {
            let body = google(status, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED"));
            assert_eq!(classify(status, &body, None), Outcome::InvalidToken { reason: "UNREGISTERED".into(), status });
        }
    }

    #[test]
    fn invalid_registration_token_is_an_invalid_token() {
        let body = google(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            Some("INVALID_ARGUMENT"),
        );
        assert_eq!(
            classify(400, &body, None),
            Outcome::InvalidToken { reason: "INVALID_ARGUMENT".into(), status: 400 }
        );
    }

    #[test]
    fn other_invalid_arguments_and_bare_404s_are_rejected() {
        let body =
            google(400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'", Some("INVALID_ARGUMENT"));
        assert_eq!(
            classify(400, &body, None),
            Outcome::Rejected {
                reason: "INVALID_ARGUMENT: Invalid value at 'message.data[0].value'".into(),
                status: Some(400)
            }
        );
        let body = google(404, "NOT_FOUND", "Requested entity was not found.", None);
        assert!(matches!(classify(404, &body, None), Outcome::Rejected { status: Some(404), .. }));
        assert!(matches!(classify(404, b"Not Found", None), Outcome::Rejected { status: Some(404), .. }));
    }

    #[test]
    fn sender_id_mismatch_is_a_dead_token() {
        let body = google(403, "PERMISSION_DENIED", "SenderId mismatch", Some("SENDER_ID_MISMATCH"));
        assert_eq!(
            classify(403, &body, None),
            Outcome::InvalidToken { reason: "SENDER_ID_MISMATCH".into(), status: 403 }
        );
    }

    #[test]
    fn credential_errors_mark_the_app_failing() {
        let third_party =
            google(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", Some("THIRD_PARTY_AUTH_ERROR"));
        assert_eq!(
            classify(401, &third_party, None),
            Outcome::CredentialsFailing {
                reason: "THIRD_PARTY_AUTH_ERROR: Auth error from APNS or Web Push Service".into(),
                status: Some(401),
                after: None
            }
        );
        let denied = google(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied", None);
        assert!(matches!(
            classify(403, &denied, None),
            Outcome::CredentialsFailing { status: Some(403), reason, .. } if reason.starts_with("PERMISSION_DENIED")
        ));
        let unauthenticated = google(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None);
        assert!(classify(401, &unauthenticated, None).credentials_failing());
    }

    #[test]
    fn quota_and_outages_are_retried_with_retry_after() {
        let after = Some(Duration::from_secs(30));
        let body = google(429, "RESOURCE_EXHAUSTED", "Quota exceeded", Some("QUOTA_EXCEEDED"));
        assert_eq!(
            classify(429, &body, after),
            Outcome::Retry { after, reason: "QUOTA_EXCEEDED".into(), status: Some(429) }
        );
        let body = google(503, "UNAVAILABLE", "The service is currently unavailable.", Some("UNAVAILABLE"));
        assert_eq!(
            classify(503, &body, None),
            Outcome::Retry { after: None, reason: "UNAVAILABLE".into(), status: Some(503) }
        );
        assert_eq!(
            classify(502, b"<html>bad gateway</html>", None),
            Outcome::Retry { after: None, reason: "HTTP 502".into(), status: Some(502) }
        );
    }
}
