//! OAuth2 access tokens for FCM from a service account (JWT bearer grant).
//!
//! One access token is shared by every send of a client and renewed a few
//! minutes before it expires. Renewal is single-flight: however many sends
//! find the token stale at once, one request goes to the token endpoint.
//! A failed request is remembered with a backoff (1 s doubling to 1 min):
//! until it passes, sends fail at once with the same reason instead of each
//! waiting on a token endpoint that is down or refusing the account.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::ServiceAccount;
use crate::error::ProviderError;

/// The scope FCM sends need.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// How long before its expiry a token is renewed.
pub const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long the first failure of the token endpoint is remembered; it
/// doubles with each failure in a row, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest a failure is remembered.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    3600
}

/// An access token and when to stop using it.
#[derive(Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token.
    pub token: String,
    /// When to renew it (expiry minus [`RENEW_MARGIN`]).
    pub renew_at: Instant,
    /// `Bearer <token>`, made once for every push that sends it.
    pub authorization: http::HeaderValue,
}

/// Why no access token could be had.
#[derive(Debug, Error)]
pub enum OAuthError {
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    /// The token endpoint refused (bad key, revoked account, outage).
    #[error("token endpoint answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The answer body, for the log.
        body: String,
    },
    /// The token endpoint answered something that is not a token.
    #[error("token endpoint answer unreadable: {0}")]
    BadAnswer(String),
    /// The assertion could not be signed.
    #[error("cannot sign assertion: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The last request failed moments ago; not asking again before `retry_in`.
    #[error("{reason} (not retried for {retry_in:?})")]
    Backoff {
        /// The last failure.
        reason: String,
        /// Whether it was the account that was refused (not an outage).
        credentials: bool,
        /// What remains of the backoff.
        retry_in: Duration,
    },
}

impl OAuthError {
    /// Whether the token endpoint refused the service account itself (a
    /// revoked key, a deleted account): the app's credentials are failing.
    /// An outage (unreachable, 429, 5xx) is not the credentials' fault.
    pub fn is_credentials(&self) -> bool {
        match self {
            OAuthError::Refused { status, .. } => *status != 429 && *status < 500,
            OAuthError::Sign(_) => true,
            OAuthError::Backoff { credentials, .. } => *credentials,
            OAuthError::Transport(_) | OAuthError::BadAnswer(_) => false,
        }
    }
}

/// The last failure of the token endpoint, remembered for a while.
#[derive(Debug)]
struct Failure {
    reason: String,
    credentials: bool,
    until: Instant,
    in_a_row: u32,
}

/// Mints and caches access tokens for one service account.
pub struct TokenSource {
    key: EncodingKey,
    client_email: String,
    token_uri: String,
    http: reqwest::Client,
    cached: RwLock<Option<Arc<AccessToken>>>,
    refresh: tokio::sync::Mutex<()>,
    failure: std::sync::Mutex<Option<Failure>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("client_email", &self.client_email).finish()
    }
}

impl TokenSource {
    /// Reads the key and signs one assertion to prove it works.
    pub fn new(account: &ServiceAccount, http: reqwest::Client) -> Result<Self, ProviderError> {
        let invalid = |source| ProviderError::InvalidKey { what: "service account", source };
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(invalid)?;
        let source = Self {
            key,
            client_email: account.client_email.clone(),
            token_uri: account.token_uri.clone(),
            http,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            failure: std::sync::Mutex::new(None),
        };
        source.assertion(SystemTime::now()).map_err(invalid)?;
        Ok(source)
    }

    /// The signed JWT exchanged for an access token.
    pub fn assertion(&self, now: SystemTime) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims { iss: &self.client_email, scope: SCOPE, aud: &self.token_uri, iat, exp: iat + 3600 };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
    }

    fn fresh(&self) -> Option<Arc<AccessToken>> {
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().filter(|t| Instant::now() < t.renew_at).cloned()
    }

    /// The access token to use now, fetched if missing or about to expire.
    pub async fn token(&self) -> Result<Arc<AccessToken>, OAuthError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _flight = self.refresh.lock().await;
        // Whoever held the lock before may have fetched it already.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        self.fetch_and_store().await
    }

    /// FCM refused `rejected` (401): fetch a new token unless another send
    /// already replaced it.
    pub async fn renew_rejected(&self, rejected: &AccessToken) -> Result<Arc<AccessToken>, OAuthError> {
        let _flight = self.refresh.lock().await;
        {
            let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if let Some(current) = cached.as_ref().filter(|t| t.token != rejected.token) {
                return Ok(Arc::clone(current));
            }
        }
        self.fetch_and_store().await
    }

    /// Fetches a token unless a recent failure is still remembered; a
    /// failure is remembered, a success forgets it.
    async fn fetch_and_store(&self) -> Result<Arc<AccessToken>, OAuthError> {
        let now = Instant::now();
        let in_a_row = {
            let failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
            match failure.as_ref() {
                Some(f) if now < f.until => {
                    return Err(OAuthError::Backoff {
                        reason: f.reason.clone(),
                        credentials: f.credentials,
                        retry_in: f.until - now,
                    })
                }
                Some(f) => f.in_a_row,
                None => 0,
            }
        };
        let result = self.fetch().await;
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => *failure = None,
            Err(e) => {
                let backoff = FIRST_BACKOFF.saturating_mul(1 << in_a_row.min(16)).min(MAX_BACKOFF);
                *failure = Some(Failure {
                    reason: e.to_string(),
                    credentials: e.is_credentials(),
                    until: Instant::now() + backoff,
                    in_a_row: in_a_row.saturating_add(1),
                });
            }
        }
        result
    }

    async fn fetch(&self) -> Result<Arc<AccessToken>, OAuthError> {
        let assertion = self.assertion(SystemTime::now()).map_err(OAuthError::Sign)?;
        let started = Instant::now();
        let resp = self
            .http
            .post(&self.token_uri)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
            .send()
            .await
            .map_err(OAuthError::Transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(OAuthError::Transport)?;
        if status != 200 {
            let body = String::from_utf8_lossy(&body).chars().take(500).collect();
            return Err(OAuthError::Refused { status, body });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| OAuthError::BadAnswer(e.to_string()))?;
        // Short-lived tokens are renewed halfway rather than never cached.
        let expires_in = Duration::from_secs(parsed.expires_in);
        let lifetime = expires_in.saturating_sub(RENEW_MARGIN.min(expires_in / 2));
        let authorization = http::HeaderValue::try_from(format!("Bearer {}", parsed.access_token))
            .map_err(|e| OAuthError::BadAnswer(format!("access token is not a header value: {e}")))?;
        let token = Arc::new(AccessToken { token: parsed.access_token, renew_at: started + lifetime, authorization });
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&token));
        Ok(token)
    }
}
