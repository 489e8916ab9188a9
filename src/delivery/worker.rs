//! The delivery worker: claims due deliveries in batches (a short statement
//! committed before any provider call), sends them with bounded concurrency,
//! and writes the results back in one statement per batch.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use pushgate_providers::{DeliveryOptions, NotificationInfo};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::retry::{self, Decision, RetryPolicy};
use super::sender::{Job, Prepared, Sender};
use super::{pause, Delivery, Signals};
use crate::domain::{time::now_ms, Platform};
use crate::store::{ClaimedDelivery, DeadToken, DeliveryUpdate, NotificationRow, Store, StoreResult};

/// Parsed notifications kept across batches (a notification's deliveries
/// span many batches); cleared when it grows past this.
const PREPARED_CACHE: usize = 10_000;

pub(super) struct Worker {
    store: Store,
    sender: Arc<dyn Sender>,
    signals: Arc<Signals>,
    policy: RetryPolicy,
    batch: usize,
    lease_ms: i64,
    poll: Duration,
    concurrency: usize,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
}

impl Worker {
    pub(super) fn new(d: &Delivery) -> Self {
        Self {
            store: d.store.clone(),
            sender: d.sender.clone(),
            signals: d.signals.clone(),
            policy: RetryPolicy::from_config(&d.config),
            batch: d.config.claim_batch.max(1) as usize,
            // A lease must outlive a batch's slowest provider call plus its
            // write-back, or another worker could take the batch back and
            // send it twice.
            lease_ms: (d.config.lease_seconds.max(1) * 1000).max(d.config.provider_timeout_ms as i64 + 15_000),
            poll: Duration::from_millis(d.config.poll_interval_ms.max(10)),
            concurrency: d.config.send_concurrency.max(1),
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Claims and sends until `cancel`; then waits for the batches in flight.
    pub(super) async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let batches = TaskTracker::new();
        while !cancel.is_cancelled() {
            // One permit per delivery in flight: claim only what can be sent now.
            let mut permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = cancel.cancelled() => break,
            };
            let more = (self.batch - 1).min(permits.available_permits()) as u32;
            if more > 0 {
                if let Ok(extra) = permits.clone().try_acquire_many_owned(more) {
                    permit.merge(extra);
                }
            }
            let now = now_ms();
            match self.store.claim_deliveries(now, now + self.lease_ms, permit.num_permits() as i64).await {
                Ok(rows) if !rows.is_empty() => {
                    batches.spawn(self.clone().process(rows, permit, cancel.clone()));
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
        batches.close();
        batches.wait().await;
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

    /// Sends one claimed batch and writes the results back.
    async fn process(
        self: Arc<Self>,
        rows: Vec<ClaimedDelivery>,
        mut permit: OwnedSemaphorePermit,
        cancel: CancellationToken,
    ) {
        let now = now_ms();
        let (jobs, mut updates) = match self.prepare(&rows, now).await {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prepare a claimed batch; giving it back");
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                if let Err(e) = self.store.release_deliveries(&ids, now).await {
                    tracing::warn!(error = %e, "cannot give the batch back; its lease will expire");
                }
                return;
            }
        };
        let claimed: HashMap<i64, &ClaimedDelivery> = rows.iter().map(|r| (r.id, r)).collect();
        let mut dead = Vec::new();
        let mut released = Vec::new();
        let sender = self.sender.clone();
        let mut results = futures_util::stream::iter(jobs)
            .map(|job| {
                let sender = sender.clone();
                let cancel = cancel.clone();
                async move {
                    // Shutting down: what has not started is given back.
                    let outcome = if cancel.is_cancelled() { None } else { Some(sender.send(&job).await) };
                    (job, outcome)
                }
            })
            .buffer_unordered(rows.len().max(1));
        while let Some((job, outcome)) = results.next().await {
            // Free this delivery's slot for the next claim.
            drop(permit.split(1));
            let Some(outcome) = outcome else {
                released.push(job.delivery_id);
                continue;
            };
            let attempts = claimed.get(&job.delivery_id).map_or(0, |r| r.attempts) + 1;
            let decision = retry::decide(
                outcome,
                attempts,
                now_ms(),
                job.notification.expires_at,
                &self.policy,
                rand::thread_rng().gen(),
            );
            log_outcome(&job, &decision);
            if let Decision::Failed { deactivate: true, reason, .. } = &decision {
                if let Some(device_id) = claimed.get(&job.delivery_id).and_then(|r| r.device_id.clone()) {
                    dead.push(DeadToken {
                        app_id: job.app_id.clone(),
                        device_id,
                        token: job.token.clone(),
                        reason: reason.clone(),
                    });
                }
            }
            updates.push(update_for(job.delivery_id, decision, now_ms()));
        }
        drop(results);
        self.finish(&rows, &updates, &dead, &released).await;
    }

    /// Turns claimed rows into jobs, and into immediate updates those that
    /// need no provider call (cancelled, expired, unknown).
    async fn prepare(&self, rows: &[ClaimedDelivery], now: i64) -> StoreResult<(Vec<Job>, Vec<DeliveryUpdate>)> {
        let notification_ids: Vec<String> =
            rows.iter().map(|r| r.notification_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let app_ids: Vec<String> = rows.iter().map(|r| r.app_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let notifications = self.store.notifications_by_ids(&notification_ids).await?;
        let versions: HashMap<String, i64> = self.store.app_versions(&app_ids).await?.into_iter().collect();
        let to_mark: Vec<String> = notifications
            .iter()
            .filter(|n| n.status == "queued" || n.status == "scheduled")
            .map(|n| n.id.clone())
            .collect();
        if !to_mark.is_empty() {
            self.store.mark_sending(&to_mark, now).await?;
        }
        let mut live: HashMap<String, Arc<Prepared>> = HashMap::new();
        for n in &notifications {
            if n.status != "cancelled" {
                if let Some(p) = self.prepared(n) {
                    live.insert(n.id.clone(), p);
                }
            }
        }
        let mut jobs = Vec::with_capacity(rows.len());
        let mut updates = Vec::new();
        for row in rows {
            let Some(notification) = live.get(&row.notification_id) else {
                updates.push(final_update(row.id, "cancelled", None, now));
                continue;
            };
            let Some(platform) = Platform::parse(&row.platform) else {
                updates.push(final_update(row.id, "failed", Some("unknown platform".into()), now));
                continue;
            };
            let Some(&app_version) = versions.get(&row.app_id) else {
                updates.push(final_update(row.id, "failed", Some("the app no longer exists".into()), now));
                continue;
            };
            if retry::expired_before_sending(now, notification.expires_at, notification.ttl_zero, row.attempts) {
                updates.push(final_update(row.id, "expired", None, now));
                continue;
            }
            jobs.push(Job {
                delivery_id: row.id,
                app_id: row.app_id.clone(),
                app_version,
                platform,
                token: row.token.clone(),
                notification: notification.clone(),
            });
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
        let info: NotificationInfo = serde_json::from_str(&n.info)
            .map_err(|e| tracing::error!(notification = %n.id, error = %e, "stored notification is unreadable"))
            .ok()?;
        let options: DeliveryOptions = serde_json::from_str(&n.options)
            .map_err(|e| tracing::error!(notification = %n.id, error = %e, "stored options are unreadable"))
            .ok()?;
        if cache.len() >= PREPARED_CACHE {
            cache.clear();
        }
        let ttl_zero = options.ttl_seconds == Some(0);
        let p = Arc::new(Prepared { id: n.id.clone(), info, options, expires_at: n.expires_at, ttl_zero });
        cache.insert(n.id.clone(), p.clone());
        Some(p)
    }

    /// Writes a batch's results back (retrying a failing store for a while:
    /// the provider calls are done and should not be repeated), gives back
    /// what was not sent, and completes finished notifications.
    async fn finish(&self, rows: &[ClaimedDelivery], updates: &[DeliveryUpdate], dead: &[DeadToken], released: &[i64]) {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=8 {
            match self.store.write_back(updates, dead, now_ms()).await {
                Ok(()) => break,
                Err(e) if attempt == 8 => {
                    tracing::error!(error = %e, "cannot write delivery results back; their leases will expire and they will be retried");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "writing delivery results back failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let platforms: HashMap<i64, &str> = rows.iter().map(|r| (r.id, r.platform.as_str())).collect();
        for u in updates {
            let platform = platforms.get(&u.id).copied().unwrap_or("unknown");
            let reason = if u.status == "delivered" { None } else { u.reason.as_deref() };
            crate::metrics::delivery(platform, if u.status == "pending" { "retry" } else { u.status }, reason);
        }
        if !dead.is_empty() {
            let by_device: HashMap<&str, &str> =
                rows.iter().filter_map(|r| Some((r.device_id.as_deref()?, r.platform.as_str()))).collect();
            for d in dead {
                crate::metrics::tokens_deactivated(
                    by_device.get(d.device_id.as_str()).copied().unwrap_or("unknown"),
                    1,
                );
            }
        }
        if let Err(e) = self.store.release_deliveries(released, now_ms()).await {
            tracing::warn!(error = %e, "cannot give unsent deliveries back; their leases will expire");
        }
        let ids: Vec<String> =
            rows.iter().map(|r| r.notification_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        if let Err(e) = self.store.complete_notifications(Some(&ids), now_ms()).await {
            tracing::warn!(error = %e, "cannot complete notifications; the sweep will");
        }
        self.signals.done.notify_waiters();
        if updates.iter().any(|u| u.status == "pending") {
            // A retry may be due before the idle worker's next poll.
            self.signals.work.notify_one();
        }
    }
}

/// Logs a provider's refusal with app, platform and reason; tokens are
/// shortened, keys never appear.
fn log_outcome(job: &Job, decision: &Decision) {
    let token = job.token.get(..8).unwrap_or(&job.token);
    let platform = job.platform.as_str();
    match decision {
        Decision::Delivered { .. } => {}
        Decision::Failed { reason, status, deactivate: true } => {
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

fn final_update(id: i64, status: &'static str, reason: Option<String>, now: i64) -> DeliveryUpdate {
    DeliveryUpdate {
        id,
        status,
        inc: 0,
        next_attempt_at: now,
        provider_status: None,
        reason,
        provider_message_id: None,
        delivered_at: None,
    }
}

fn update_for(id: i64, decision: Decision, now: i64) -> DeliveryUpdate {
    let status_of = |s: Option<u16>| s.map(i32::from);
    let base = DeliveryUpdate {
        id,
        status: "failed",
        inc: 1,
        next_attempt_at: now,
        provider_status: None,
        reason: None,
        provider_message_id: None,
        delivered_at: None,
    };
    match decision {
        Decision::Delivered { provider_message_id, status } => DeliveryUpdate {
            status: "delivered",
            provider_status: Some(i32::from(status)),
            provider_message_id,
            delivered_at: Some(now),
            ..base
        },
        Decision::Failed { reason, status, .. } => {
            DeliveryUpdate { provider_status: status_of(status), reason: Some(reason), ..base }
        }
        Decision::Expired { reason, status } => {
            DeliveryUpdate { status: "expired", provider_status: status_of(status), reason, ..base }
        }
        Decision::Retry { at, reason, status } => DeliveryUpdate {
            status: "pending",
            next_attempt_at: at,
            provider_status: status_of(status),
            reason: Some(reason),
            ..base
        },
    }
}
