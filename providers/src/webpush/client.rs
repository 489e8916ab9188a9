//! Sending to a browser's push service and classifying its answer
//! (RFC 8030 §5, §8).

use std::time::SystemTime;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, LOCATION};

use super::encrypt::{self, Subscription};
use super::vapid::{VapidKey, VapidSigner};
use super::WebPushCredentials;
use crate::error::{PayloadError, ProviderError};
use crate::info::{DeliveryOptions, NotificationInfo, Priority};
use crate::outcome::Outcome;
use crate::push::Expiry;
use crate::retry_after;

/// How long a push service keeps a notification when no TTL is given: four
/// weeks, as APNs and FCM do.
const DEFAULT_TTL_SECS: u64 = 28 * 24 * 3600;
/// A `Topic` is at most 32 characters of the base64url alphabet (RFC 8030 §5.4).
const MAX_TOPIC: usize = 32;

/// A Web Push sender for one app (its VAPID key), over a shared HTTP client.
#[derive(Debug)]
pub struct WebPushClient {
    signer: VapidSigner,
    http: reqwest::Client,
}

impl WebPushClient {
    /// Checks the credentials (the key must read, the subject be a URL) and
    /// builds the client on `http` (built by [`crate::ProviderConfig::web_push_client`]).
    pub fn new(creds: &WebPushCredentials, http: reqwest::Client) -> Result<Self, ProviderError> {
        let key = VapidKey::from_pem(&creds.private_key)?;
        Ok(Self { signer: VapidSigner::new(&key, &creds.subject)?, http })
    }

    /// Sends one notification to `to` and classifies the answer.
    pub async fn send(
        &self,
        to: &Subscription,
        expiry: Expiry,
        info: &NotificationInfo,
        opts: &DeliveryOptions,
    ) -> Outcome {
        let body = match payload(info).and_then(|p| encrypt::encrypt(&p, to)) {
            Ok(body) => body,
            Err(e) => return Outcome::Rejected { reason: e.reason().to_owned(), status: None },
        };
        let Some(origin) = origin(&to.endpoint) else {
            return Outcome::InvalidToken { reason: "BadEndpoint".into(), status: 400 };
        };
        let now = SystemTime::now();
        let authorization = match self.signer.authorization(&origin, now) {
            Ok(value) => value,
            Err(e) => return Outcome::Rejected { reason: format!("cannot sign VAPID token: {e}"), status: None },
        };
        let mut request = self
            .http
            .post(&to.endpoint)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
            .header("ttl", ttl(expiry, now))
            .header("urgency", urgency(opts.priority));
        if let Some(topic) = topic(opts.collapse_key.as_deref(), info.id.as_deref()) {
            request = request.header("topic", topic);
        }
        match request.body(body).send().await {
            Ok(answer) => classify(
                answer.status().as_u16(),
                answer.headers().get(LOCATION).and_then(|v| v.to_str().ok()),
                retry_after::from_headers(answer.headers()),
            ),
            Err(e) => Outcome::from_http(e),
        }
    }
}

/// What the browser's service worker receives: the NotificationInfo as
/// JSON, without the raw fields meant for APNs and FCM.
pub fn payload(info: &NotificationInfo) -> Result<Vec<u8>, PayloadError> {
    let info = NotificationInfo { apns: None, fcm: None, ..info.clone() };
    let json = serde_json::to_vec(&info).map_err(|e| PayloadError::InvalidRaw(e.to_string()))?;
    if json.len() > encrypt::MAX_PAYLOAD {
        return Err(PayloadError::TooLarge { size: json.len(), limit: encrypt::MAX_PAYLOAD });
    }
    Ok(json)
}

/// `https://host[:port]` of an endpoint: the VAPID `aud`.
fn origin(endpoint: &str) -> Option<String> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    (url.scheme() == "https").then(|| url.origin().ascii_serialization())
}

/// `TTL` in seconds: what remains of the notification's absolute life.
fn ttl(expiry: Expiry, now: SystemTime) -> u64 {
    match expiry {
        Expiry::ProviderDefault => DEFAULT_TTL_SECS,
        Expiry::NowOrNever => 0,
        Expiry::At(at) => at.duration_since(now).unwrap_or_default().as_secs(),
    }
}

fn urgency(priority: Priority) -> &'static str {
    match priority {
        Priority::High => "high",
        Priority::Normal => "normal",
        Priority::Low => "low",
    }
}

/// `Topic`: the collapse key, else the notification id without its dashes
/// (a retry then replaces a copy the push service still holds); `None`
/// when neither fits the header's alphabet and length.
fn topic(collapse_key: Option<&str>, id: Option<&str>) -> Option<String> {
    let fits = |t: &str| {
        !t.is_empty() && t.len() <= MAX_TOPIC && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    collapse_key.map(str::to_owned).or_else(|| id.map(|id| id.replace('-', ""))).filter(|t| fits(t))
}

/// The outcome of a push service's answer.
fn classify(status: u16, location: Option<&str>, after: Option<std::time::Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered { provider_message_id: location.map(str::to_owned), status },
        // The subscription expired or the user revoked it.
        404 => Outcome::InvalidToken { reason: "NotFound".into(), status },
        410 => Outcome::InvalidToken { reason: "Gone".into(), status },
        413 => Outcome::Rejected { reason: "PayloadTooLarge".into(), status: Some(status) },
        // The VAPID token itself is refused: the app's key or subject.
        401 => Outcome::CredentialsFailing { reason: "VapidUnauthorized".into(), status: Some(status), after: None },
        429 => Outcome::Retry { after, reason: "TooManyRequests".into(), status: Some(status) },
        500..=599 => Outcome::Retry { after, reason: format!("PushService{status}"), status: Some(status) },
        // 400, and 403 (a subscription made for another VAPID key).
        _ => Outcome::Rejected { reason: format!("PushService{status}"), status: Some(status) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn headers_follow_the_options() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(ttl(Expiry::At(now + Duration::from_secs(60)), now), 60);
        assert_eq!(ttl(Expiry::At(now), now + Duration::from_secs(5)), 0);
        assert_eq!((ttl(Expiry::NowOrNever, now), ttl(Expiry::ProviderDefault, now)), (0, DEFAULT_TTL_SECS));
        assert_eq!(
            [urgency(Priority::High), urgency(Priority::Normal), urgency(Priority::Low)],
            ["high", "normal", "low"]
        );
        let id = "0190f8a4-5b7c-7d3e-8f00-112233445566";
        assert_eq!(topic(Some("movies"), Some(id)).as_deref(), Some("movies"));
        assert_eq!(topic(None, Some(id)).as_deref(), Some("0190f8a45b7c7d3e8f00112233445566"));
        assert_eq!(topic(Some("has space"), Some(id)), None);
        assert_eq!(origin("https://push.example:8443/wp/abc").as_deref(), Some("https://push.example:8443"));
        assert_eq!(origin("http://push.example/x"), None);
    }

    #[test]
    fn answers_classify_as_rfc_8030_says() {
        let after = Some(Duration::from_secs(3));
        assert!(classify(201, Some("https://p/m/1"), None).is_delivered());
        assert!(classify(410, None, None).token_is_dead() && classify(404, None, None).token_is_dead());
        assert_eq!(
            classify(413, None, None),
            Outcome::Rejected { reason: "PayloadTooLarge".into(), status: Some(413) }
        );
        assert_eq!(
            classify(429, None, after),
            Outcome::Retry { after, reason: "TooManyRequests".into(), status: Some(429) }
        );
        assert!(matches!(classify(503, None, after), Outcome::Retry { after: Some(_), .. }));
        assert!(classify(401, None, None).credentials_failing());
        assert!(matches!(classify(400, None, None), Outcome::Rejected { .. }));
    }

    #[test]
    fn payload_is_the_notification_without_raw_provider_fields() {
        let info = NotificationInfo {
            id: Some("n1".into()),
            title: Some("Hi".into()),
            apns: Some(serde_json::Map::new()),
            ..Default::default()
        };
        assert_eq!(payload(&info).expect("fits"), br#"{"id":"n1","title":"Hi"}"#.to_vec());
        let big = NotificationInfo { body: Some("x".repeat(encrypt::MAX_PAYLOAD)), ..Default::default() };
        assert!(matches!(payload(&big), Err(PayloadError::TooLarge { .. })));
    }
}
