//! Delivery: the one door sends come in by ([`Delivery::submit`]), fan-out
//! of a send into per-device deliveries, workers that claim them with a
//! lease and call the providers, retries, the periodic chores, and the
//! wake-ups that connect them (`LISTEN/NOTIFY` across instances,
//! in-process notifies, and polling as the fallback).

mod chores;
mod completion;
pub mod credentials;
mod fanout;
mod intake;
mod record;
pub mod retention;
pub mod retry;
pub mod sender;
mod submit;
pub mod token_cache;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::store::Store;
use sender::{ProviderSender, Sender};
pub use submit::{DeliveryError, Idempotency, NewSend, Results, Submitted};

/// The `LISTEN/NOTIFY` channel of new work.
pub const CHANNEL: &str = "pushgate_deliveries";
/// Payload of a notification that needs fan-out (others mean deliveries).
const FANOUT: &str = "fanout";

/// In-process wake-ups.
#[derive(Default)]
struct Signals {
    /// Deliveries are due.
    work: Notify,
    /// A notification needs fan-out.
    fanout: Notify,
    /// Some deliveries reached a final state (`wait=true` callers).
    done: Notify,
    /// The results of waited notifications, handed over as they are written.
    completions: Arc<completion::Completions>,
    /// Other instances should look for deliveries (Postgres `NOTIFY`).
    announce_work: Notify,
    /// Other instances should look for fan-out (Postgres `NOTIFY`).
    announce_fanout: Notify,
}

/// The delivery pipeline of this instance: sends come in by
/// [`submit`](Self::submit), workers run in it.
#[derive(Clone)]
pub struct Delivery {
    store: Store,
    config: Arc<Config>,
    signals: Arc<Signals>,
    worker: Arc<worker::Worker>,
    intake: intake::Intake,
    tasks: TaskTracker,
}

impl Delivery {
    /// The pipeline sending through the real providers (settings from `config`).
    pub fn new(store: Store, config: Arc<Config>) -> Result<Self, std::io::Error> {
        let provider_config = credentials::provider_config(&config)?;
        let sender = Arc::new(ProviderSender::new(store.clone(), provider_config, config.webpush_hosts.clone()));
        Ok(Self::with_sender(store, config, sender))
    }

    /// The pipeline sending through `sender` (tests, benchmarks).
    pub fn with_sender(store: Store, config: Arc<Config>, sender: Arc<dyn Sender>) -> Self {
        let signals: Arc<Signals> = Arc::default();
        let worker = Arc::new(worker::Worker::new(store.clone(), &config, sender, signals.clone()));
        let intake = intake::Intake::start(store.clone());
        Self { store, config, signals, worker, intake, tasks: TaskTracker::new() }
    }

    /// Starts the fan-out task, the delivery workers, the chores and
    /// (Postgres) the listener, unless `config.workers` is off. They stop when `cancel`
    /// fires: provider calls in flight finish and are written back, claimed
    /// work not yet started is given back.
    pub fn start(&self, cancel: CancellationToken) {
        if self.store.shared_by_instances() {
            // API-only instances announce work too: others do it.
            self.tasks.spawn(announce(self.store.clone(), self.signals.clone(), cancel.clone()));
        }
        if !self.config.workers {
            return;
        }
        self.worker.arm(cancel.clone());
        self.tasks.spawn(self.worker.clone().run(cancel.clone()));
        self.tasks.spawn(fanout::run(self.clone(), cancel.clone()));
        self.tasks.spawn(chores::run(self.store.clone(), self.config.clone(), self.signals.clone(), cancel.clone()));
        if self.store.shared_by_instances() {
            self.tasks.spawn(listen(self.store.clone(), self.signals.clone(), cancel));
        }
    }

    /// Waits for the tasks started by [`start`](Self::start) to finish.
    pub async fn stop(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Wakes the workers of every instance after a commit: new deliveries
    /// (`fanout = false`) or a notification to expand (`fanout = true`).
    fn wake(&self, fanout: bool) {
        if fanout {
            self.signals.fanout.notify_one();
            self.signals.announce_fanout.notify_one();
        } else {
            self.signals.work.notify_one();
            self.signals.announce_work.notify_one();
        }
    }
}

/// Sends `NOTIFY` for the wake-ups of this instance, one at a time: every
/// wake-up that comes while one is being sent is folded into the next. A
/// `NOTIFY` per send would serialize on Postgres' notify queue lock at commit
/// and cap sends at one commit (an fsync) each.
async fn announce(store: Store, signals: Arc<Signals>, cancel: CancellationToken) {
    loop {
        let payload = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = signals.announce_work.notified() => "",
            _ = signals.announce_fanout.notified() => FANOUT,
        };
        if let Err(e) = store.notify(CHANNEL, payload).await {
            // Polling picks the work up anyway.
            tracing::warn!(error = %e, "cannot NOTIFY other instances");
            pause(&cancel, Duration::from_millis(200)).await;
        }
    }
}

/// Turns `NOTIFY pushgate_deliveries` from any instance into local wake-ups.
/// A lost connection is retried after a pause; polling covers the gap.
async fn listen(store: Store, signals: Arc<Signals>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let mut listener = match store.listen(CHANNEL).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN; retrying");
                pause(&cancel, Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                msg = listener.recv() => match msg {
                    Ok(payload) if payload == FANOUT => signals.fanout.notify_one(),
                    Ok(_) => signals.work.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        break;
                    }
                },
            }
        }
        pause(&cancel, Duration::from_millis(200)).await;
    }
}

/// Sleeps for `d`, or less if `cancel` fires.
async fn pause(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}
