//! Webhooks: events to the applications' servers (API.md, Webhooks),
//! beside the delivery pipeline and the socket hub. Events are written to
//! an outbox in the store with the change that caused them (triggers of the
//! store, or [`Store::webhook_event`](crate::store::Store::webhook_event)
//! for socket events); the [`worker`] seals them into messages, batching
//! the high-volume types, and sends them signed as the Standard Webhooks
//! specification asks, retried by [`RetrySchedule`]. [`address`] keeps
//! them off internal addresses.

pub mod address;
pub mod config;
pub mod events;
pub mod signature;
mod worker;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{RetrySchedule, WebhookConfig};

use crate::store::Store;

/// The webhook side of this instance; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    config: Arc<WebhookConfig>,
    worker: Arc<worker::Worker>,
    tasks: TaskTracker,
    /// Whether this instance runs workers (`workers` in the configuration).
    run_worker: bool,
}

impl Webhooks {
    /// Webhooks over `store` with `settings`; sent events and attempts are
    /// kept `retention_days`; `run_worker` is false on an instance that
    /// runs no workers.
    pub fn new(
        store: Store,
        settings: &WebhookConfig,
        retention_days: i64,
        run_worker: bool,
    ) -> Result<Self, reqwest::Error> {
        let settings = Arc::new(settings.clone());
        let mut client = reqwest::Client::builder()
            .timeout(settings.timeout())
            // A redirect could lead anywhere, internal addresses included.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pushgate-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private {
            client = client.dns_resolver(Arc::new(address::PublicResolver));
        }
        let retention_ms = retention_days.max(1).saturating_mul(24 * 3600 * 1000);
        let worker = Arc::new(worker::Worker::new(store, settings.clone(), client.build()?, retention_ms));
        Ok(Self { config: settings, worker, tasks: TaskTracker::new(), run_worker })
    }

    /// Starts the worker (unless this instance runs none) until `cancel`.
    pub fn start(&self, cancel: CancellationToken) {
        if self.run_worker {
            self.tasks.spawn(self.worker.clone().run(cancel));
        }
    }

    /// Waits for the worker to finish its attempts in flight.
    pub async fn stop(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The settings in force.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Tells this instance's worker that messages were queued.
    pub fn wake(&self) {
        self.worker.wake.notify_one();
    }

    /// A webhook URL as given, checked: `http(s)`, and where it leads now
    /// (unless private addresses are allowed).
    pub async fn check_url(&self, url: &str) -> Result<String, address::AddressError> {
        let parsed = address::parse(url)?;
        address::check(&parsed, self.config.allow_private).await?;
        Ok(parsed.to_string())
    }
}
