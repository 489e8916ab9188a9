//! Sending to FCM HTTP v1 with a cached OAuth2 access token.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::classify;
use super::message;
use super::oauth::{AccessToken, OAuthError, TokenSource};
use super::FcmCredentials;
use crate::config::{parse_url, trim_base, ProviderConfig, FCM_URL};
use crate::error::ProviderError;
use crate::info::{DeliveryOptions, NotificationInfo};
use crate::outcome::Outcome;
use crate::retry_after;
use crate::transport::{Answer, Transport, TransportError};

/// An FCM client for one Firebase project: its service account, access
/// token and connection pool. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FcmClient {
    transport: Transport,
    /// `/v1/projects/{id}/messages:send` under the base URL's path.
    send_path: String,
    tokens: TokenSource,
}

impl FcmClient {
    /// Checks the service account (the key must sign) and builds the client.
    pub fn new(creds: FcmCredentials, cfg: &ProviderConfig) -> Result<Self, ProviderError> {
        let account = creds.service_account;
        for (name, value) in [
            ("project_id", &account.project_id),
            ("client_email", &account.client_email),
            ("token_uri", &account.token_uri),
        ] {
            if value.trim().is_empty() {
                return Err(ProviderError::MissingField(name));
            }
        }
        let base = trim_base(cfg.fcm_base_url.as_deref().unwrap_or(FCM_URL));
        let send_url = parse_url(&format!("{base}/v1/projects/{}/messages:send", account.project_id))?;
        let tokens = TokenSource::new(&account, cfg.http_client()?)?;
        let transport = Transport::new(&send_url, cfg.tls_config()?, cfg.request_timeout)?;
        Ok(Self { transport, send_path: send_url.path().to_owned(), tokens })
    }

    /// Sends one notification to one registration token and classifies the answer.
    pub async fn send(&self, token: &str, info: &NotificationInfo, opts: &DeliveryOptions) -> Outcome {
        let body = match message::build(token, info, opts).and_then(|message| {
            serde_json::to_vec(&message).map_err(|e| crate::PayloadError::InvalidRaw(e.to_string()))
        }) {
            Ok(body) => Bytes::from(body),
            Err(e) => return Outcome::Rejected { reason: e.reason().to_owned(), status: None },
        };
        let mut access = match self.tokens.token().await {
            Ok(access) => access,
            Err(e) => return oauth_outcome(e),
        };
        let mut renewed = false;
        loop {
            let answer = match self.post(&access, body.clone()).await {
                Ok(answer) => answer,
                Err(e) => return Outcome::from_transport(e),
            };
            let status = answer.status;
            if status == 401 && !renewed {
                // Revoked or expired early: one new token, one more try.
                renewed = true;
                match self.tokens.renew_rejected(&access).await {
                    Ok(next) => {
                        access = next;
                        continue;
                    }
                    Err(e) => return oauth_outcome(e),
                }
            }
            let retry_after = retry_after::from_headers(&answer.headers);
            return classify::classify(status, &answer.body, retry_after);
        }
    }

    async fn post(&self, access: &AccessToken, body: Bytes) -> Result<Answer, TransportError> {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(AUTHORIZATION, access.authorization.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.transport.post(&self.send_path, headers, body).await
    }
}

/// No access token: the send did not happen. Bad credentials are permanent,
/// an unreachable or failing token endpoint is not.
fn oauth_outcome(err: OAuthError) -> Outcome {
    tracing::warn!(error = %err, "FCM access token unavailable");
    match err {
        OAuthError::Transport(e) => Outcome::from_http(e),
        OAuthError::Refused { status, .. } if status == 429 || status >= 500 => {
            Outcome::Retry { after: None, reason: format!("OAuth token endpoint: {err}"), status: None }
        }
        other => Outcome::Rejected { reason: format!("OAuth token: {other}"), status: None },
    }
}
