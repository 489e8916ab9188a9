//! Sending to APNs over HTTP/2 connections of each app and environment.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::classify::{self, EXPIRED_PROVIDER_TOKEN};
use super::payload::{self, Headers};
use super::token::{MemoryTokenCache, ProviderToken, ProviderTokenCache, TokenSigner};
use super::{ApnsCredentials, ApnsEnvironment};
use crate::config::{parse_url, trim_base, ProviderConfig};
use crate::error::ProviderError;
use crate::info::{DeliveryOptions, NotificationInfo};
use crate::outcome::Outcome;
use crate::push::Push;
use crate::retry_after;
use crate::transport::{Answer, Transport, TransportError};

static APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
static APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
static APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
static APNS_ID: HeaderName = HeaderName::from_static("apns-id");
static APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
static APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");

/// One APNs host: its connection and the base URL's path.
#[derive(Debug)]
struct Host {
    transport: Transport,
    /// The base URL's path, before `/3/device/{token}`.
    path_prefix: String,
}

impl Host {
    fn new(url: &str, cfg: &ProviderConfig, tls: &Arc<rustls::ClientConfig>) -> Result<Self, ProviderError> {
        let base_url = parse_url(&trim_base(url))?;
        Ok(Self {
            transport: Transport::new(&base_url, Arc::clone(tls), cfg)?,
            path_prefix: base_url.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// An APNs client for one app: its key, topic and connections to each
/// environment's host (opened as pushes need them).
///
/// Cheap to share behind an `Arc`; every `send` multiplexes on the HTTP/2
/// connections of its environment. One provider token serves both.
#[derive(Debug)]
pub struct ApnsClient {
    production: Host,
    sandbox: Host,
    environment: ApnsEnvironment,
    topic: String,
    topic_header: HeaderValue,
    signer: TokenSigner,
}

impl ApnsClient {
    /// Checks the credentials (the key must sign) and builds the client,
    /// sharing provider tokens through the process-wide in-memory cache.
    pub fn new(creds: ApnsCredentials, cfg: &ProviderConfig) -> Result<Self, ProviderError> {
        Self::with_token_cache(creds, cfg, MemoryTokenCache::shared())
    }

    /// [`new`](Self::new), with provider tokens kept in `cache` (e.g. the
    /// gateway's store, shared by its instances).
    pub fn with_token_cache(
        creds: ApnsCredentials,
        cfg: &ProviderConfig,
        cache: Arc<dyn ProviderTokenCache>,
    ) -> Result<Self, ProviderError> {
        for (name, value) in [("team_id", &creds.team_id), ("key_id", &creds.key_id), ("topic", &creds.topic)] {
            if value.trim().is_empty() {
                return Err(ProviderError::MissingField(name));
            }
        }
        let signer = TokenSigner::new(&creds.private_key, &creds.key_id, &creds.team_id, cache)?;
        let topic_header = HeaderValue::try_from(creds.topic.as_str())
            .map_err(|e| ProviderError::InvalidField { field: "topic", reason: e.to_string() })?;
        let tls = cfg.tls_config()?;
        let url = |configured: &Option<String>, env: ApnsEnvironment| {
            configured.clone().unwrap_or_else(|| env.default_base_url().to_owned())
        };
        Ok(Self {
            production: Host::new(&url(&cfg.apns_base_url, ApnsEnvironment::Production), cfg, &tls)?,
            sandbox: Host::new(&url(&cfg.apns_sandbox_base_url, ApnsEnvironment::Sandbox), cfg, &tls)?,
            environment: creds.environment,
            topic: creds.topic,
            topic_header,
            signer,
        })
    }

    /// The app's bundle id, sent as `apns-topic`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The app's environment (its credentials'): the one of devices that
    /// name none.
    pub fn environment(&self) -> ApnsEnvironment {
        self.environment
    }

    /// Sends one notification and classifies the answer.
    pub async fn send(&self, push: Push<'_>, info: &NotificationInfo, opts: &DeliveryOptions) -> Outcome {
        match payload::build(info, opts) {
            Ok(body) => self.send_payload(push, Bytes::from(body), info, opts).await,
            Err(e) => Outcome::Rejected { reason: e.reason().to_owned(), status: None },
        }
    }

    /// [`send`](Self::send) with the payload already built by
    /// [`payload::build`]: it is the same for every device of a
    /// notification, so a fan-out builds it once.
    pub async fn send_payload(
        &self,
        push: Push<'_>,
        body: Bytes,
        info: &NotificationInfo,
        opts: &DeliveryOptions,
    ) -> Outcome {
        let headers = payload::headers(info, opts, push.expiry);
        let apns_id = uuid::Uuid::new_v4().to_string();
        let host = match push.environment {
            ApnsEnvironment::Production => &self.production,
            ApnsEnvironment::Sandbox => &self.sandbox,
        };
        let path = format!("{}/3/device/{}", host.path_prefix, push.token);
        let mut jwt = match self.signer.current(SystemTime::now()).await {
            Ok(jwt) => jwt,
            Err(e) => return Outcome::Rejected { reason: format!("cannot sign provider token: {e}"), status: None },
        };
        let mut renewed = false;
        loop {
            let answer = match self.post(host, &path, &jwt, &headers, &apns_id, body.clone()).await {
                Ok(answer) => answer,
                Err(e) => return Outcome::from_transport(e),
            };
            let expired =
                answer.status == 403 && classify::reason(&answer.body).as_deref() == Some(EXPIRED_PROVIDER_TOKEN);
            if expired && !renewed {
                renewed = true;
                match self.signer.renew_rejected(&jwt, SystemTime::now()).await {
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
        host: &Host,
        path: &str,
        jwt: &ProviderToken,
        h: &Headers,
        apns_id: &str,
        body: Bytes,
    ) -> Result<Answer, TransportError> {
        let value = |v: &str| HeaderValue::try_from(v).map_err(|e| TransportError::Request(e.to_string()));
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(AUTHORIZATION, jwt.authorization.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(APNS_TOPIC.clone(), self.topic_header.clone());
        headers.insert(APNS_PUSH_TYPE.clone(), HeaderValue::from_static(h.push_type));
        headers.insert(APNS_PRIORITY.clone(), HeaderValue::from(u16::from(h.priority)));
        headers.insert(APNS_ID.clone(), value(apns_id)?);
        if let Some(expiration) = h.expiration {
            headers.insert(APNS_EXPIRATION.clone(), HeaderValue::from(expiration));
        }
        if let Some(collapse_id) = &h.collapse_id {
            headers.insert(APNS_COLLAPSE_ID.clone(), value(collapse_id)?);
        }
        // A 200 has an empty body; an error body classifies by its reason.
        host.transport.post(path, headers, body).await
    }
}
