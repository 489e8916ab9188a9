//! Sending to APNs over one HTTP/2 connection pool per app and environment.

use std::time::SystemTime;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::classify::{self, EXPIRED_PROVIDER_TOKEN};
use super::payload::{self, Headers};
use super::token::{ProviderToken, TokenSigner};
use super::ApnsCredentials;
use crate::config::{parse_url, trim_base, ProviderConfig};
use crate::error::ProviderError;
use crate::info::{DeliveryOptions, NotificationInfo};
use crate::outcome::Outcome;
use crate::retry_after;

/// An APNs client for one app: its key, topic and connection pool.
///
/// Cheap to share behind an `Arc`; every `send` multiplexes on the same
/// HTTP/2 connection.
#[derive(Debug)]
pub struct ApnsClient {
    http: reqwest::Client,
    base_url: reqwest::Url,
    topic: String,
    signer: TokenSigner,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl ApnsClient {
    /// Checks the credentials (the key must sign) and builds the client.
    pub fn new(creds: ApnsCredentials, cfg: &ProviderConfig) -> Result<Self, ProviderError> {
        for (name, value) in [("team_id", &creds.team_id), ("key_id", &creds.key_id), ("topic", &creds.topic)] {
            if value.trim().is_empty() {
                return Err(ProviderError::MissingField(name));
            }
        }
        let signer = TokenSigner::new(&creds.private_key, &creds.key_id, &creds.team_id)?;
        let base_url =
            parse_url(&trim_base(cfg.apns_base_url.as_deref().unwrap_or(creds.environment.default_base_url())))?;
        Ok(Self { http: cfg.http_client(true)?, base_url, topic: creds.topic, signer })
    }

    /// The app's bundle id, sent as `apns-topic`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends one notification to one device token and classifies the answer.
    pub async fn send(&self, token: &str, info: &NotificationInfo, opts: &DeliveryOptions) -> Outcome {
        let body = match payload::build(info, opts) {
            Ok(body) => body,
            Err(e) => return Outcome::Rejected { reason: e.reason().to_owned(), status: None },
        };
        let headers = payload::headers(info, opts, SystemTime::now());
        let apns_id = uuid::Uuid::new_v4().to_string();
        let mut jwt = match self.signer.current(SystemTime::now()) {
            Ok(jwt) => jwt,
            Err(e) => return Outcome::Rejected { reason: format!("cannot sign provider token: {e}"), status: None },
        };
        let mut renewed = false;
        loop {
            let answer = match self.post(token, &jwt, &headers, &apns_id, body.clone()).await {
                Ok(answer) => answer,
                Err(e) => return Outcome::from_transport(e),
            };
            let expired =
                answer.status == 403 && classify::reason(&answer.body).as_deref() == Some(EXPIRED_PROVIDER_TOKEN);
            if expired && !renewed {
                renewed = true;
                match self.signer.renew_rejected(&jwt, SystemTime::now()) {
                    Ok(Some(next)) => {
                        tracing::info!(topic = %self.topic, "APNs provider token expired; renewed it");
                        jwt = next;
                        continue;
                    }
                    Ok(None) => {
                        tracing::warn!(topic = %self.topic, "APNs provider token rejected again; not renewing yet")
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew APNs provider token"),
                }
            }
            let id = answer.headers.get("apns-id").and_then(|v| v.to_str().ok()).unwrap_or(&apns_id);
            return classify::classify(
                answer.status,
                &answer.body,
                Some(id),
                retry_after::from_headers(&answer.headers),
            );
        }
    }

    async fn post(
        &self,
        token: &str,
        jwt: &ProviderToken,
        h: &Headers,
        apns_id: &str,
        body: Vec<u8>,
    ) -> Result<Answer, reqwest::Error> {
        let mut url = self.base_url.clone();
        url.set_path(&format!("{}/3/device/{token}", self.base_url.path().trim_end_matches('/')));
        let mut req = self
            .http
            .post(url)
            .header(AUTHORIZATION, format!("bearer {}", jwt.jwt))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", h.push_type)
            .header("apns-priority", h.priority.to_string())
            .header("apns-id", apns_id);
        if let Some(expiration) = h.expiration {
            req = req.header("apns-expiration", expiration.to_string());
        }
        if let Some(collapse_id) = &h.collapse_id {
            req = req.header("apns-collapse-id", collapse_id);
        }
        let resp = req.body(body).send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // A 200 has an empty body; an unreadable error body still classifies by status.
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Ok(Answer { status, headers, body })
    }
}
