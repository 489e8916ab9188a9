//! The webhook worker, beside the delivery workers and apart from them (its
//! own HTTP client, its own concurrency), so a slow or dead endpoint never
//! slows push delivery. Each round it seals the outbox into messages (see
//! [`events::seal`]), claims due messages with a lease, as the delivery
//! workers claim deliveries (several instances, no double sends in normal
//! operation), POSTs them signed and records every attempt. At least once:
//! a crash between a send and its record sends again after the lease.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{address, events, signature, WebhookConfig};
use crate::domain::time::now_ms;
use crate::store::{AttemptRecord, ClaimedMessage, Store, StoreResult, WebhookRow};

/// Outbox events read per seal.
const SEAL_LIMIT: i64 = 20_000;
/// How often the pending-events gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// How often old messages and attempts are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Tries at recording an attempt before leaving it to the lease.
const RECORD_TRIES: u32 = 5;

pub(super) struct Worker {
    store: Store,
    config: Arc<WebhookConfig>,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    /// Sent and given-up messages, and attempts, are kept this long (ms).
    retention_ms: i64,
    /// Messages were queued on this instance (a test event).
    pub(super) wake: Notify,
}

impl Worker {
    pub(super) fn new(store: Store, config: Arc<WebhookConfig>, client: reqwest::Client, retention_ms: i64) -> Self {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Self { store, config, client, permits, retention_ms, wake: Notify::new() }
    }

    /// Seals, claims and sends until `cancel`; attempts in flight finish
    /// (each is bounded by the timeout) and are recorded.
    pub(super) async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let attempts = TaskTracker::new();
        // A lease outlives an attempt and its record (retried for a few seconds).
        let lease_ms = self.config.timeout_ms as i64 + 10_000;
        let (mut gauge_at, mut pruned_at): (Option<Instant>, Option<Instant>) = (None, None);
        while !cancel.is_cancelled() {
            let now = now_ms();
            if let Err(e) = self.seal(now).await {
                tracing::warn!(error = %e, "sealing webhook events failed; retrying");
            }
            if gauge_at.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
                gauge_at = Some(Instant::now());
                if let Ok(n) = self.store.webhook_backlog().await {
                    crate::metrics::webhook_events_pending(n);
                }
            }
            if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(Instant::now());
                if let Err(e) = self.store.prune_webhooks(now - self.retention_ms).await {
                    tracing::warn!(error = %e, "removing old webhook messages failed");
                }
            }
            let mut permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = cancel.cancelled() => break,
            };
            let more = self.permits.available_permits() as u32;
            if more > 0 {
                if let Ok(extra) = self.permits.clone().try_acquire_many_owned(more) {
                    permit.merge(extra);
                }
            }
            // After the wait for a permit, so the lease is whole.
            let now = now_ms();
            match self.claim(now, now + lease_ms, permit.num_permits() as i64).await {
                Ok(claimed) if !claimed.is_empty() => {
                    for (message, hook) in claimed {
                        // One permit per message: no more were claimed than held.
                        attempts.spawn(self.clone().attempt(message, hook, permit.split(1)));
                    }
                }
                Ok(_) => {
                    drop(permit);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval()) => {}
                        _ = cancel.cancelled() => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "claiming webhook messages failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = cancel.cancelled() => {}
                    }
                }
            }
        }
        attempts.close();
        attempts.wait().await;
    }

    /// Turns outbox events into messages by the batch rule.
    async fn seal(&self, now: i64) -> StoreResult<usize> {
        let (wait, max) = (self.config.batch_wait_ms as i64, self.config.batch_max);
        self.store.seal_webhook_outbox(SEAL_LIMIT, now, |items| events::seal(items, now, wait, max)).await
    }

    /// Due messages with their endpoints.
    async fn claim(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<(ClaimedMessage, WebhookRow)>> {
        if !self.store.webhook_messages_due(now).await? {
            return Ok(Vec::new());
        }
        let messages = self.store.claim_webhook_messages(now, lease_until, limit).await?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> =
            messages.iter().map(|m| m.webhook_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let hooks: HashMap<String, WebhookRow> =
            self.store.webhooks_by_ids(&ids).await?.into_iter().map(|w| (w.id.clone(), w)).collect();
        // A message whose endpoint was deleted meanwhile went with it.
        Ok(messages.into_iter().filter_map(|m| hooks.get(&m.webhook_id).cloned().map(|h| (m, h))).collect())
    }

    /// One attempt at `message`, recorded.
    async fn attempt(
        self: Arc<Self>,
        message: ClaimedMessage,
        hook: WebhookRow,
        _permit: Option<OwnedSemaphorePermit>,
    ) {
        let now = now_ms();
        let started = Instant::now();
        let sent = self.send(&hook, &message, now).await;
        let elapsed = started.elapsed();
        let (succeeded, http_status, error) = match sent {
            Ok(status) if (200..300).contains(&status) => (true, Some(status), None),
            Ok(status) => (false, Some(status), Some(format!("HTTP {status}"))),
            Err(e) => (false, None, Some(e)),
        };
        crate::metrics::webhook_attempt(if succeeded { "succeeded" } else { "failed" }, elapsed);
        let retry_at = match succeeded {
            true => None,
            false => self.config.retry_schedule.after(message.attempts + 1).map(|d| now_ms() + d.as_millis() as i64),
        };
        let record = AttemptRecord {
            message,
            succeeded,
            http_status: http_status.map(i32::from),
            latency_ms: elapsed.as_millis() as i64,
            error,
            retry_at,
            disable_if_failing_since: now_ms() - self.config.disable_after_seconds.saturating_mul(1000),
        };
        for tries in 1..=RECORD_TRIES {
            match self.store.record_webhook_attempt(&record, now_ms()).await {
                Ok(disabled) => {
                    if disabled {
                        tracing::warn!(webhook_id = %hook.id, app_id = %hook.app_id, "webhook disabled: failing for too long");
                    }
                    return;
                }
                Err(e) if tries == RECORD_TRIES => {
                    tracing::error!(error = %e, "cannot record a webhook attempt; its lease will bring it back");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording a webhook attempt failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
            }
        }
    }

    /// POSTs `message` to `hook`, signed with every secret in force: the
    /// answer's status, or why none came.
    async fn send(&self, hook: &WebhookRow, message: &ClaimedMessage, now: i64) -> Result<u16, String> {
        let url = address::parse(&hook.url).map_err(|e| e.to_string())?;
        // Names are checked by the client's resolver; literal addresses here.
        if let Some(ip) = address::literal(&url).filter(|ip| !self.config.allow_private && !address::is_public(*ip)) {
            return Err(address::AddressError::Private(ip).to_string());
        }
        let previous = hook.previous_secret.as_deref().filter(|_| hook.previous_secret_until.is_some_and(|t| t > now));
        let timestamp = now / 1000;
        let signature = signature::header(
            [hook.secret.as_str()].into_iter().chain(previous),
            &message.msg_id,
            timestamp,
            &message.body,
        );
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &message.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.clone())
            .send()
            .await;
        match sent {
            Ok(res) => Ok(res.status().as_u16()),
            Err(e) if e.is_timeout() => Err(format!("timeout after {} ms", self.config.timeout_ms)),
            Err(e) => Err(describe(&e.without_url())),
        }
    }
}

/// An error with its causes, `: `-separated (reqwest's own text is only
/// "error sending request").
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
