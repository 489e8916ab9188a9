//! The delivery worker: sends deliveries with bounded concurrency and writes
//! their results back. Deliveries reach it two ways: born claimed by the
//! fan-out or a send (handed over in memory, no claim), or claimed in
//! batches from the queue (retries, scheduled sends, a crashed instance's
//! leases; a short statement committed before any provider call). Results
//! of all batches go to one writer that commits them together.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::record::{self, Unsent};
use super::retry::{self, Decision, RetryPolicy};
use super::sender::{Job, Prepared, Sender};
use super::{pause, Signals};
use crate::config::Config;
use crate::domain::time::now_ms;
use crate::store::{
    ClaimedDelivery, DeadToken, DeliveryResult, DeliveryStatus, DeliveryUpdate, NotificationRow, NotificationStatus,
    Store, StoreResult,
};

/// Parsed notifications kept across batches (a notification's deliveries
/// span many batches); cleared when it grows past this.
const PREPARED_CACHE: usize = 10_000;
/// Most results committed in one write-back transaction.
const WRITE_BATCH: usize = 5_000;

/// Room for deliveries in flight, taken before they are created or claimed.
pub struct Reservation {
    permit: OwnedSemaphorePermit,
    /// Deliveries created under this reservation are leased until then.
    pub lease_until: i64,
}

/// What became of one job sent: the decision on the provider's answer and
/// how long the provider took.
pub(super) struct Sent {
    /// What follows.
    pub(super) decision: Decision,
    /// The provider call's duration.
    pub(super) latency_ms: u64,
}

/// Results of one batch, for the writer.
#[derive(Default)]
struct Finished {
    updates: Vec<DeliveryUpdate>,
    dead: Vec<DeadToken>,
    released: Vec<i64>,
    /// Final results of notifications a request waits on (see `completion.rs`).
    waited: Vec<(String, i64, DeliveryResult)>,
}

pub(super) struct Worker {
    store: Store,
    sender: Arc<dyn Sender>,
    signals: Arc<Signals>,
    policy: RetryPolicy,
    batch: usize,
    lease_ms: i64,
    poll: Duration,
    concurrency: usize,
    permits: Arc<Semaphore>,
    batches: TaskTracker,
    /// Set when the worker runs: born-claimed work is only handed to a running worker.
    cancel: OnceLock<CancellationToken>,
    results: mpsc::UnboundedSender<Finished>,
    results_rx: Mutex<Option<mpsc::UnboundedReceiver<Finished>>>,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
}

impl Worker {
    pub(super) fn new(store: Store, config: &Config, sender: Arc<dyn Sender>, signals: Arc<Signals>) -> Self {
        let concurrency = config.send_concurrency.max(1);
        let (results, results_rx) = mpsc::unbounded_channel();
        Self {
            store,
            sender,
            signals,
            policy: RetryPolicy::from_config(config),
            batch: config.claim_batch.max(1) as usize,
            // A lease must outlive a batch's slowest provider call plus its
            // write-back, or another worker could take the batch back and
            // send it twice.
            lease_ms: (config.lease_seconds.max(1) * 1000).max(config.provider_timeout_ms as i64 + 15_000),
            poll: Duration::from_millis(config.poll_interval_ms.max(10)),
            concurrency,
            permits: Arc::new(Semaphore::new(concurrency)),
            batches: TaskTracker::new(),
            cancel: OnceLock::new(),
            results,
            results_rx: Mutex::new(Some(results_rx)),
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Marks the worker as running until `cancel`, before its tasks start.
    pub(super) fn arm(&self, cancel: CancellationToken) {
        let _ = self.cancel.set(cancel);
    }

    /// Room for `n` deliveries (at most the concurrency), waiting for it;
    /// `None` when the worker is not running or shuts down meanwhile.
    pub(super) async fn reserve(&self, n: usize) -> Option<Reservation> {
        let cancel = self.cancel.get()?;
        let n = n.clamp(1, self.concurrency) as u32;
        let permit = tokio::select! {
            p = self.permits.clone().acquire_many_owned(n) => p.ok()?,
            _ = cancel.cancelled() => return None,
        };
        Some(Reservation { permit, lease_until: now_ms() + self.lease_ms })
    }

    /// Room for `n` deliveries if there is some now.
    pub(super) fn try_reserve(&self, n: usize) -> Option<Reservation> {
        let cancel = self.cancel.get()?;
        if cancel.is_cancelled() || n == 0 || n > self.concurrency {
            return None;
        }
        let permit = self.permits.clone().try_acquire_many_owned(n as u32).ok()?;
        Some(Reservation { permit, lease_until: now_ms() + self.lease_ms })
    }

    /// Sends `jobs` under `reservation` to the end, shutdown or not (the
    /// fan-out records every batch it started), and decides each outcome.
    pub(super) async fn send_reserved(&self, reservation: Reservation, jobs: Vec<Job>) -> Vec<(Job, Option<Sent>)> {
        self.send_jobs(jobs, reservation.permit, &CancellationToken::new()).await
    }

    /// Sends deliveries born claimed under `reservation`, all of `notification`.
    pub(super) fn dispatch(
        self: &Arc<Self>,
        reservation: Reservation,
        rows: Vec<ClaimedDelivery>,
        notification: Arc<Prepared>,
        app_version: i64,
    ) {
        let Some(cancel) = self.cancel.get().cloned() else { return };
        let now = now_ms();
        let mut jobs = Vec::with_capacity(rows.len());
        let mut updates = Vec::new();
        for row in rows {
            if let Some(job) = job_for(row, &notification, app_version, now, &mut updates) {
                jobs.push(job);
            }
        }
        self.batches.spawn(self.clone().send_all(jobs, updates, reservation.permit, cancel));
    }

    /// Claims and sends until `cancel`; then waits for the batches in
    /// flight and their write-back.
    pub(super) async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let Some(rx) = self.results_rx.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let drained = CancellationToken::new();
        let writer = tokio::spawn(self.clone().write_results(rx, drained.clone()));
        while !cancel.is_cancelled() {
            // One permit per delivery in flight: claim only what can be sent now.
            let mut permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = cancel.cancelled() => break,
            };
            let more = (self.batch - 1).min(self.permits.available_permits()) as u32;
            if more > 0 {
                if let Ok(extra) = self.permits.clone().try_acquire_many_owned(more) {
                    permit.merge(extra);
                }
            }
            let now = now_ms();
            match self.store.claim_deliveries(now, now + self.lease_ms, permit.num_permits() as i64).await {
                Ok(rows) if !rows.is_empty() => {
                    self.batches.spawn(self.clone().process(rows, permit, cancel.clone()));
                }
                Ok(_) => {
                    drop(permit);
                    self.idle(&cancel).await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    pause(&cancel, Duration::from_secs(1)).await;
                }
            }
        }
        self.batches.close();
        self.batches.wait().await;
        drained.cancel();
        let _ = writer.await;
    }

    /// Waits for a wake-up, the next due delivery, or the poll interval.
    async fn idle(&self, cancel: &CancellationToken) {
        let wait = match self.store.next_due().await {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(5, self.poll.as_millis() as i64) as u64),
            _ => self.poll,
        };
        tokio::select! {
            _ = self.signals.work.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => {}
        }
    }

    /// Sends one claimed batch.
    async fn process(
        self: Arc<Self>,
        rows: Vec<ClaimedDelivery>,
        permit: OwnedSemaphorePermit,
        cancel: CancellationToken,
    ) {
        let now = now_ms();
        match self.prepare(rows.clone(), now).await {
            Ok((jobs, updates)) => self.send_all(jobs, updates, permit, cancel).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare a claimed batch; giving it back");
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                if let Err(e) = self.store.release_deliveries(&ids, now).await {
                    tracing::warn!(error = %e, "cannot give the batch back; its lease will expire");
                }
            }
        }
    }

    /// Sends `jobs` (one permit each), then hands their results, with the
    /// `updates` decided without a provider call, to the writer.
    async fn send_all(
        self: Arc<Self>,
        jobs: Vec<Job>,
        updates: Vec<DeliveryUpdate>,
        permit: OwnedSemaphorePermit,
        cancel: CancellationToken,
    ) {
        let mut done = Finished { updates, ..Finished::default() };
        for (job, decision) in self.send_jobs(jobs, permit, &cancel).await {
            let Some(sent) = decision else {
                done.released.push(job.delivery_id);
                continue;
            };
            let (update, dead) = record::decided(&job, sent.decision, sent.latency_ms);
            if update.status != DeliveryStatus::Pending && self.signals.completions.is_watched(&job.notification.id) {
                let result = DeliveryResult {
                    device_id: job.device_id.clone(),
                    platform: job.platform.as_str().to_owned(),
                    token: job.token.clone(),
                    status: update.status,
                    reason: update.reason.clone(),
                };
                done.waited.push((job.notification.id.clone(), job.delivery_id, result));
            }
            done.updates.push(update);
            done.dead.extend(dead);
        }
        // The writer outlives every batch (see `run`); a send error means it
        // is gone, and the leases bring these deliveries back.
        let _ = self.results.send(done);
    }

    /// Sends `jobs` with one permit each (freed as each finishes) and
    /// decides what became of each; `None` for a job not started because
    /// `cancel` fired first.
    pub(super) async fn send_jobs(
        &self,
        jobs: Vec<Job>,
        mut permit: OwnedSemaphorePermit,
        cancel: &CancellationToken,
    ) -> Vec<(Job, Option<Sent>)> {
        let sender = self.sender.clone();
        let width = jobs.len().max(1);
        let mut decided = Vec::with_capacity(jobs.len());
        let mut results = futures_util::stream::iter(jobs)
            .map(|job| {
                let sender = sender.clone();
                async move {
                    // Shutting down: what has not started is given back.
                    let started = std::time::Instant::now();
                    let outcome = if cancel.is_cancelled() { None } else { Some(sender.send(&job).await) };
                    (job, outcome, started.elapsed().as_millis() as u64)
                }
            })
            .buffer_unordered(width);
        while let Some((job, outcome, latency_ms)) = results.next().await {
            // Free this delivery's slot for the next claim.
            if permit.num_permits() > 0 {
                drop(permit.split(1));
            }
            let decision = outcome.map(|outcome| {
                retry::decide(
                    outcome,
                    job.attempts + 1,
                    now_ms(),
                    job.notification.expires_at,
                    &self.policy,
                    rand::thread_rng().gen(),
                )
            });
            if let Some(decision) = &decision {
                log_outcome(&job, decision);
            }
            decided.push((job, decision.map(|decision| Sent { decision, latency_ms })));
        }
        decided
    }

    /// Turns claimed rows into jobs, and into immediate updates those that
    /// need no provider call (cancelled, expired, unknown).
    async fn prepare(&self, rows: Vec<ClaimedDelivery>, now: i64) -> StoreResult<(Vec<Job>, Vec<DeliveryUpdate>)> {
        let notification_ids: Vec<String> =
            rows.iter().map(|r| r.notification_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let app_ids: Vec<String> = rows.iter().map(|r| r.app_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let notifications = self.store.notifications_by_ids(&notification_ids).await?;
        let versions: HashMap<String, i64> = self.store.app_versions(&app_ids).await?.into_iter().collect();
        let to_mark: Vec<String> = notifications
            .iter()
            .filter(|n| matches!(n.status, NotificationStatus::Queued | NotificationStatus::Scheduled))
            .map(|n| n.id.clone())
            .collect();
        if !to_mark.is_empty() {
            self.store.mark_sending(&to_mark, now).await?;
        }
        let mut live: HashMap<String, Arc<Prepared>> = HashMap::new();
        for n in &notifications {
            if n.status != NotificationStatus::Cancelled {
                if let Some(p) = self.prepared(n) {
                    live.insert(n.id.clone(), p);
                }
            }
        }
        let mut jobs = Vec::with_capacity(rows.len());
        let mut updates = Vec::new();
        for row in rows {
            let Some(notification) = live.get(&row.notification_id) else {
                updates.push(Unsent::Cancelled.update((row.id, row.created_at), &row.platform, now));
                continue;
            };
            let Some(&app_version) = versions.get(&row.app_id) else {
                updates.push(Unsent::AppGone.update((row.id, row.created_at), &row.platform, now));
                continue;
            };
            if let Some(job) = job_for(row, notification, app_version, now, &mut updates) {
                jobs.push(job);
            }
        }
        Ok((jobs, updates))
    }

    /// The parsed notification, from the cache or parsed once now; `None`
    /// (its deliveries are cancelled) when the stored JSON is unreadable.
    fn prepared(&self, n: &NotificationRow) -> Option<Arc<Prepared>> {
        let mut cache = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&n.id) {
            return Some(p.clone());
        }
        let p = Arc::new(Prepared::parse(&n.id, &n.info, &n.options, n.expires_at)?);
        if cache.len() >= PREPARED_CACHE {
            cache.clear();
        }
        cache.insert(n.id.clone(), p.clone());
        Some(p)
    }

    /// Commits the results of every batch that finished meanwhile in one
    /// transaction (group commit), until `drained` fires and nothing is left.
    async fn write_results(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Finished>, drained: CancellationToken) {
        loop {
            let first = tokio::select! {
                biased;
                f = rx.recv() => f,
                _ = drained.cancelled() => rx.try_recv().ok(),
            };
            let Some(mut all) = first else { return };
            while all.updates.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(more) => {
                        all.updates.extend(more.updates);
                        all.dead.extend(more.dead);
                        all.released.extend(more.released);
                        all.waited.extend(more.waited);
                    }
                    Err(_) => break,
                }
            }
            self.finish(all).await;
        }
    }

    /// Writes results back (see [`record::write`]), and gives back what
    /// was not sent.
    async fn finish(&self, done: Finished) {
        let written = record::write(&self.signals, done.updates.iter(), &done.dead, || {
            self.store.write_back(&done.updates, &done.dead, now_ms())
        })
        .await;
        match written {
            Ok(completed) => {
                if !completed.is_empty() {
                    tracing::debug!(count = completed.len(), "notifications completed");
                }
                self.signals.completions.record(done.waited, &completed);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write delivery results back; their leases will expire and they will be retried");
                return;
            }
        }
        if let Err(e) = self.store.release_deliveries(&done.released, now_ms()).await {
            tracing::warn!(error = %e, "cannot give unsent deliveries back; their leases will expire");
        }
        self.signals.done.notify_waiters();
    }
}

/// The job of a delivery of `notification`, or (pushed to `updates`) its
/// final state when it cannot be sent (see [`record::sendable`]).
fn job_for(
    row: ClaimedDelivery,
    notification: &Arc<Prepared>,
    app_version: i64,
    now: i64,
    updates: &mut Vec<DeliveryUpdate>,
) -> Option<Job> {
    let platform = match record::sendable(&row.platform, None, notification, row.attempts, now) {
        Ok(platform) => platform,
        Err(unsent) => {
            updates.push(unsent.update((row.id, row.created_at), &row.platform, now));
            return None;
        }
    };
    Some(Job {
        delivery_id: row.id,
        created_at: row.created_at,
        app_id: row.app_id,
        app_version,
        platform,
        token: row.token,
        environment: row.environment,
        device_id: row.device_id,
        attempts: row.attempts,
        notification: notification.clone(),
    })
}

/// Logs a provider's refusal with app, platform and reason; tokens are
/// shortened, keys never appear.
fn log_outcome(job: &Job, decision: &Decision) {
    let token = job.token.get(..8).unwrap_or(&job.token);
    let platform = job.platform.as_str();
    match decision {
        Decision::Delivered { .. } => {}
        Decision::Failed { reason, status, deactivate: true, .. } => {
            tracing::info!(app_id = %job.app_id, platform, token = %format!("{token}…"), ?status, reason, "device token is dead");
        }
        Decision::Failed { reason, status, .. } => {
            tracing::warn!(app_id = %job.app_id, platform, token = %format!("{token}…"), ?status, reason, "delivery failed");
        }
        Decision::Expired { reason, status } => {
            tracing::info!(app_id = %job.app_id, platform, token = %format!("{token}…"), ?status, ?reason, "delivery expired");
        }
        Decision::Retry { reason, status, .. } => {
            tracing::debug!(app_id = %job.app_id, platform, token = %format!("{token}…"), ?status, reason, "delivery will be retried");
        }
    }
}
