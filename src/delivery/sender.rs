//! Sending one delivery: the [`Sender`] seam the workers call, and its real
//! implementation over the providers' clients (APNs, FCM, Web Push), cached
//! per app.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use dashmap::DashMap;
use futures_util::future::BoxFuture;
use pushgate_providers::apns::ProviderTokenCache;
use pushgate_providers::webpush::Subscription;
use pushgate_providers::{
    ApnsClient, ApnsCredentials, ApnsEnvironment, DeliveryOptions, Expiry, FcmClient, FcmCredentials, NotificationInfo,
    Outcome, ProviderConfig, Push, WebPushClient, WebPushCredentials,
};

use super::token_cache::StoreTokenCache;
use crate::domain::{host_allowed, time::now_ms, web_push_host, Platform};
use crate::store::{Store, StoreResult};

/// The reason of deliveries to a platform the app has no credentials for.
pub const NO_PROVIDER: &str = "no_provider";

/// A notification as the workers keep it: parsed once, shared by all its
/// deliveries.
#[derive(Debug)]
pub struct Prepared {
    /// Notification id.
    pub id: String,
    /// What it says (with `id` set).
    pub info: NotificationInfo,
    /// How to deliver it.
    pub options: DeliveryOptions,
    /// End of the TTL (ms).
    pub expires_at: Option<i64>,
    /// `ttl_seconds: 0`: one attempt, no retries.
    pub ttl_zero: bool,
    /// The APNs payload, built on first use: the same for every device.
    apns_body: OnceLock<Result<Bytes, &'static str>>,
}

impl Prepared {
    /// A notification ready to send.
    pub fn new(id: String, info: NotificationInfo, options: DeliveryOptions, expires_at: Option<i64>) -> Self {
        let ttl_zero = options.ttl_seconds == Some(0);
        Self { id, info, options, expires_at, ttl_zero, apns_body: OnceLock::new() }
    }

    /// The absolute expiry the providers are told on every attempt.
    fn expiry(&self) -> Expiry {
        match self.expires_at {
            _ if self.ttl_zero => Expiry::NowOrNever,
            Some(ms) => Expiry::At(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)),
            None => Expiry::ProviderDefault,
        }
    }

    /// The APNs payload, or why it cannot be built (the delivery's reason).
    fn apns_body(&self) -> &Result<Bytes, &'static str> {
        self.apns_body.get_or_init(|| {
            pushgate_providers::apns::payload::build(&self.info, &self.options).map(Bytes::from).map_err(|e| e.reason())
        })
    }

    /// Parses the stored JSON of a notification; `None` (its deliveries are
    /// cancelled) when it is unreadable, which is logged.
    pub fn parse(id: &str, info: &str, options: &str, expires_at: Option<i64>) -> Option<Self> {
        let info: NotificationInfo = serde_json::from_str(info)
            .map_err(|e| tracing::error!(notification = %id, error = %e, "stored notification is unreadable"))
            .ok()?;
        let options: DeliveryOptions = serde_json::from_str(options)
            .map_err(|e| tracing::error!(notification = %id, error = %e, "stored options are unreadable"))
            .ok()?;
        Some(Self::new(id.to_string(), info, options, expires_at))
    }
}

/// One delivery to send.
#[derive(Debug)]
pub struct Job {
    /// Delivery id.
    pub delivery_id: i64,
    /// Its row's `created_at`: with the id, its key in the log (0 before the row exists).
    pub created_at: i64,
    /// Its app.
    pub app_id: String,
    /// The app's `updated_at`: its credentials' version.
    pub app_version: i64,
    /// Which provider.
    pub platform: Platform,
    /// Device token.
    pub token: String,
    /// The device's APNs environment as stored (`None`: the app's); for a
    /// web device, its subscription keys (`p256dh.auth`).
    pub environment: Option<String>,
    /// Registered device, if any (deactivated when the token is dead).
    pub device_id: Option<String>,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The notification.
    pub notification: Arc<Prepared>,
}

/// Sends one delivery and says what became of it. Never fails: every
/// problem is an [`Outcome`].
pub trait Sender: Send + Sync + 'static {
    /// Sends `job`.
    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome>;
}

/// Provider clients of one app at one credentials version.
struct AppClients {
    version: i64,
    apns: Option<Result<Arc<ApnsClient>, String>>,
    fcm: Option<Result<Arc<FcmClient>, String>>,
    web_push: Option<Result<Arc<WebPushClient>, String>>,
    /// Whether each provider (APNs, FCM, Web Push) is known to refuse the
    /// credentials: the store is written only when this changes.
    failing: [AtomicBool; 3],
}

impl AppClients {
    fn failing(&self, platform: Platform) -> &AtomicBool {
        let index = match platform {
            Platform::Ios => 0,
            Platform::Android => 1,
            Platform::Web => 2,
        };
        &self.failing[index]
    }
}

/// Sends through APNs, FCM and Web Push. Clients are created once per app
/// from its stored credentials and replaced when the app's `updated_at` changes.
pub struct ProviderSender {
    store: Store,
    config: ProviderConfig,
    /// The HTTP client of every app's Web Push (push services are many
    /// hosts: reqwest keeps a pool per host), or why it cannot be built.
    web_http: Result<reqwest::Client, String>,
    /// `PUSHGATE_WEBPUSH_HOSTS`, checked again at send time: a raw `tokens`
    /// target or a list narrowed since registration never reaches another host.
    webpush_hosts: Vec<String>,
    clients: DashMap<String, Arc<AppClients>>,
    // APNs provider tokens, shared with the other instances through the store.
    tokens: Arc<dyn ProviderTokenCache>,
    // Builds clients one at a time, so a burst of first sends to a new app
    // creates its connections once.
    building: tokio::sync::Mutex<()>,
}

impl ProviderSender {
    /// A sender reading credentials from `store`, posting Web Push only to `webpush_hosts`.
    pub fn new(store: Store, config: ProviderConfig, webpush_hosts: Vec<String>) -> Self {
        let tokens = Arc::new(StoreTokenCache::new(store.clone()));
        let web_http = config.web_push_client().map_err(|e| e.to_string());
        Self {
            store,
            config,
            web_http,
            webpush_hosts,
            clients: DashMap::new(),
            tokens,
            building: tokio::sync::Mutex::new(()),
        }
    }

    async fn clients(&self, app_id: &str, version: i64) -> StoreResult<Option<Arc<AppClients>>> {
        if let Some(hit) = self.clients.get(app_id).filter(|c| c.version == version) {
            return Ok(Some(hit.clone()));
        }
        let _building = self.building.lock().await;
        if let Some(hit) = self.clients.get(app_id).filter(|c| c.version == version) {
            return Ok(Some(hit.clone()));
        }
        let Some(app) = self.store.app(app_id).await? else { return Ok(None) };
        let apns = app.apns.as_deref().map(|json| {
            serde_json::from_str::<ApnsCredentials>(json)
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    ApnsClient::with_token_cache(c, &self.config, self.tokens.clone()).map_err(|e| e.to_string())
                })
                .map(Arc::new)
        });
        let fcm = app.fcm.as_deref().map(|json| {
            serde_json::from_str::<FcmCredentials>(json)
                .map_err(|e| e.to_string())
                .and_then(|c| FcmClient::new(c, &self.config).map_err(|e| e.to_string()))
                .map(Arc::new)
        });
        let web_push = app.web_push.as_deref().map(|json| {
            let http = self.web_http.clone()?;
            serde_json::from_str::<WebPushCredentials>(json)
                .map_err(|e| e.to_string())
                .and_then(|c| WebPushClient::new(&c, http).map_err(|e| e.to_string()))
                .map(Arc::new)
        });
        let errors = [
            apns.as_ref().and_then(|r| r.as_ref().err()),
            fcm.as_ref().and_then(|r| r.as_ref().err()),
            web_push.as_ref().and_then(|r| r.as_ref().err()),
        ];
        for err in errors.into_iter().flatten() {
            tracing::error!(app_id, error = %err, "stored provider credentials are unusable");
        }
        let failing = [
            AtomicBool::new(app.apns_error.is_some()),
            AtomicBool::new(app.fcm_error.is_some()),
            AtomicBool::new(app.web_push_error.is_some()),
        ];
        let clients = Arc::new(AppClients { version: app.updated_at, apns, fcm, web_push, failing });
        self.clients.insert(app_id.to_string(), clients.clone());
        Ok(Some(clients))
    }
}

impl Sender for ProviderSender {
    fn send<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let clients = match self.clients(&job.app_id, job.app_version).await {
                Ok(Some(c)) => c,
                Ok(None) => return Outcome::Rejected { reason: "the app no longer exists".into(), status: None },
                Err(e) => return Outcome::Retry { after: None, reason: format!("store: {e}"), status: None },
            };
            let info = &job.notification.info;
            let opts = &job.notification.options;
            let unusable = |e: &String| Outcome::Rejected { reason: format!("invalid credentials: {e}"), status: None };
            let push = Push::to(&job.token).expiry(job.notification.expiry());
            let started = std::time::Instant::now();
            crate::metrics::provider_in_flight(1.0);
            let outcome = match job.platform {
                Platform::Ios => match (&clients.apns, job.notification.apns_body()) {
                    (Some(Ok(client)), Ok(body)) => {
                        let push = push.environment(apns_environment(job.environment.as_deref(), client));
                        client.send_payload(push, body.clone(), info, opts).await
                    }
                    (Some(Ok(_)), Err(reason)) => Outcome::Rejected { reason: (*reason).to_owned(), status: None },
                    (Some(Err(e)), _) => unusable(e),
                    (None, _) => Outcome::Rejected { reason: NO_PROVIDER.into(), status: None },
                },
                Platform::Android => match &clients.fcm {
                    Some(Ok(client)) => client.send(push, info, opts).await,
                    Some(Err(e)) => unusable(e),
                    None => Outcome::Rejected { reason: NO_PROVIDER.into(), status: None },
                },
                Platform::Web => match (&clients.web_push, self.subscription(job)) {
                    (Some(Ok(client)), Ok(to)) => client.send(&to, push.expiry, info, opts).await,
                    (Some(Ok(_)), Err(refused)) => refused,
                    (Some(Err(e)), _) => unusable(e),
                    (None, _) => Outcome::Rejected { reason: NO_PROVIDER.into(), status: None },
                },
            };
            crate::metrics::provider_in_flight(-1.0);
            crate::metrics::provider_latency(job.platform.as_str(), started.elapsed());
            self.track_credentials(job, &clients, &outcome).await;
            outcome
        })
    }
}

impl ProviderSender {
    /// The subscription of a web delivery: its endpoint, on an allowed host,
    /// and the keys kept with it; a dead token otherwise.
    fn subscription(&self, job: &Job) -> Result<Subscription, Outcome> {
        let dead = |reason: &str| Outcome::InvalidToken { reason: reason.to_owned(), status: 400 };
        if !web_push_host(&job.token).is_some_and(|host| host_allowed(&host, &self.webpush_hosts)) {
            return Err(dead("EndpointHostNotAllowed"));
        }
        let keys = job.environment.as_deref().and_then(|keys| keys.split_once('.'));
        let (p256dh, auth) = keys.ok_or_else(|| dead("NoSubscriptionKeys"))?;
        Subscription::from_keys(&job.token, p256dh, auth).map_err(|_| dead("BadSubscriptionKeys"))
    }

    /// Marks the app's provider `failing` when it refuses the credentials,
    /// and `ok` again when a push goes through: written only on a change.
    async fn track_credentials(&self, job: &Job, clients: &AppClients, outcome: &Outcome) {
        let flag = clients.failing(job.platform);
        let error = match outcome {
            Outcome::CredentialsFailing { reason, .. } if !flag.swap(true, Ordering::AcqRel) => Some(reason.as_str()),
            Outcome::Delivered { .. } if flag.swap(false, Ordering::AcqRel) => None,
            _ => return,
        };
        if let Err(e) = self.store.set_provider_error(&job.app_id, job.platform, error, now_ms()).await {
            // Told again on the next change; the deliveries wait either way.
            tracing::warn!(app_id = %job.app_id, error = %e, "cannot record the provider's credentials status");
            flag.store(error.is_none(), Ordering::Release);
        }
        match error {
            Some(reason) => {
                tracing::error!(app_id = %job.app_id, platform = job.platform.as_str(), reason, "provider refuses the app's credentials")
            }
            None => {
                tracing::info!(app_id = %job.app_id, platform = job.platform.as_str(), "provider accepts the app's credentials again")
            }
        }
    }
}

/// The APNs host of a device: its stored environment, or the app's when
/// it has none (a raw token of no registered device, or an unknown value).
fn apns_environment(stored: Option<&str>, client: &ApnsClient) -> ApnsEnvironment {
    match stored {
        Some("sandbox") => ApnsEnvironment::Sandbox,
        Some("production") => ApnsEnvironment::Production,
        _ => client.environment(),
    }
}
