//! Sending to FCM HTTP v1 with a cached OAuth2 access token.

use std::time::SystemTime;

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
use crate::push::Push;
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
        let transport = Transport::new(&send_url, cfg.tls_config()?, cfg)?;
        Ok(Self { transport, send_path: send_url.path().to_owned(), tokens })
    }

    /// Sends one notification to one registration token and classifies the
    /// answer. `android.ttl` is what remains of `push.expiry` now.
    pub async fn send(&self, push: Push<'_>, info: &NotificationInfo, opts: &DeliveryOptions) -> Outcome {
        let body = match message::build_at(&push, info, opts, SystemTime::now()).and_then(|message| {
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
            let third_party = || {
                classify::GoogleError::parse(&answer.body)
                    .is_some_and(|e| e.fcm_error_code() == Some("THIRD_PARTY_AUTH_ERROR"))
            };
            if status == 401 && !renewed && !third_party() {
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

/// No access token: the send did not happen. A refused service account is
/// the app's credentials failing; an unreachable or failing token endpoint
/// is an outage. Both are tried again after the remembered backoff.
fn oauth_outcome(err: OAuthError) -> Outcome {
    tracing::warn!(error = %err, "FCM access token unavailable");
    let after = match &err {
        OAuthError::Backoff { retry_in, .. } => Some(*retry_in),
        _ => None,
    };
    let reason = format!("OAuth token: {err}");
    match err {
        e if e.is_credentials() => Outcome::CredentialsFailing { reason, status: None, after },
        OAuthError::Transport(e) => Outcome::from_http(e),
        _ => Outcome::Retry { after, reason, status: None },
    }
}
