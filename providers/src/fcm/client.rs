//! Sending to FCM HTTP v1 with a cached OAuth2 access token.

use reqwest::header::AUTHORIZATION;

use super::classify;
use super::message;
use super::oauth::{AccessToken, OAuthError, TokenSource};
use super::FcmCredentials;
use crate::config::{parse_url, trim_base, ProviderConfig, FCM_URL};
use crate::error::ProviderError;
use crate::info::{DeliveryOptions, NotificationInfo};
use crate::outcome::Outcome;
use crate::retry_after;

/// An FCM client for one Firebase project: its service account, access
/// token and connection pool. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FcmClient {
    http: reqwest::Client,
    send_url: reqwest::Url,
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
        let http = cfg.http_client(false)?;
        let base = trim_base(cfg.fcm_base_url.as_deref().unwrap_or(FCM_URL));
        let send_url = parse_url(&format!("{base}/v1/projects/{}/messages:send", account.project_id))?;
        let tokens = TokenSource::new(&account, http.clone())?;
        Ok(Self { http, send_url, tokens })
    }

    /// Sends one notification to one registration token and classifies the answer.
    pub async fn send(&self, token: &str, info: &NotificationInfo, opts: &DeliveryOptions) -> Outcome {
        let body = match message::build(token, info, opts) {
            Ok(body) => body,
            Err(e) => return Outcome::Rejected { reason: e.reason().to_owned(), status: None },
        };
        let mut access = match self.tokens.token().await {
            Ok(access) => access,
            Err(e) => return oauth_outcome(e),
        };
        let mut renewed = false;
        loop {
            let resp = match self.post(&access, &body).await {
                Ok(resp) => resp,
                Err(e) => return Outcome::from_transport(e),
            };
            let status = resp.status().as_u16();
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
            let retry_after = retry_after::from_headers(resp.headers());
            let body = resp.bytes().await.unwrap_or_default();
            return classify::classify(status, &body, retry_after);
        }
    }

    async fn post(&self, access: &AccessToken, body: &serde_json::Value) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .post(self.send_url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", access.token))
            .json(body)
            .send()
            .await
    }
}

/// No access token: the send did not happen. Bad credentials are permanent,
/// an unreachable or failing token endpoint is not.
fn oauth_outcome(err: OAuthError) -> Outcome {
    tracing::warn!(error = %err, "FCM access token unavailable");
    match err {
        OAuthError::Transport(e) => Outcome::from_transport(e),
        OAuthError::Refused { status, .. } if status == 429 || status >= 500 => {
            Outcome::Retry { after: None, reason: format!("OAuth token endpoint: {err}"), status: None }
        }
        other => Outcome::Rejected { reason: format!("OAuth token: {other}"), status: None },
    }
}
