//! The fan-out task: expands group, user and `all` targets into deliveries
//! in batches (see `store/fanout.rs`), and does the periodic chores: due
//! scheduled notifications become `queued`, finished ones `completed`, old
//! idempotency keys and (retention) old logs go.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::target::Target;
use super::{pause, Delivery};
use crate::domain::time::now_ms;
use crate::store::{FanoutJob, FanoutStep, StoreResult};

/// How often old idempotency keys and delivery logs are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub(super) async fn run(d: Delivery, cancel: CancellationToken) {
    let poll = Duration::from_millis(d.config.poll_interval_ms.max(10));
    let lease_ms = d.config.lease_seconds.max(1) * 1000;
    let mut last_chores: Option<Instant> = None;
    let mut last_prune: Option<Instant> = None;
    while !cancel.is_cancelled() {
        if last_chores.is_none_or(|t| t.elapsed() >= poll) {
            last_chores = Some(Instant::now());
            if let Err(e) = chores(&d, &mut last_prune, &cancel).await {
                tracing::warn!(error = %e, "delivery chores failed; retrying");
            }
        }
        let now = now_ms();
        match d.store.claim_fanout(now, now + lease_ms).await {
            Ok(Some(job)) => expand(&d, job, lease_ms, &cancel).await,
            Ok(None) => {
                tokio::select! {
                    _ = d.signals.fanout.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming a fan-out failed; retrying");
                pause(&cancel, Duration::from_secs(1)).await;
            }
        }
    }
}

async fn chores(d: &Delivery, last_prune: &mut Option<Instant>, cancel: &CancellationToken) -> StoreResult<()> {
    let now = now_ms();
    if d.store.promote_scheduled(now).await? > 0 {
        d.signals.work.notify_one();
    }
    if d.store.complete_notifications(None, now).await? > 0 {
        d.signals.done.notify_waiters();
    }
    if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
        *last_prune = Some(Instant::now());
        d.store.prune_idempotency_keys(now).await?;
        let before = now - d.config.retention_days.max(1) * 24 * 3600 * 1000;
        super::retention::run(&d.store, before, cancel).await?;
    }
    Ok(())
}

/// Expands one notification batch by batch until done, cancelled, or shutdown.
async fn expand(d: &Delivery, job: FanoutJob, lease_ms: i64, cancel: &CancellationToken) {
    let target: Target = match serde_json::from_str(&job.target) {
        Ok(t) => t,
        Err(e) => {
            // Left leased: retried after the lease, and loud in the log.
            tracing::error!(notification = %job.id, error = %e, "stored target is unreadable");
            return;
        }
    };
    let Some(notification) = super::sender::Prepared::parse(&job.id, &job.info, &job.options, job.expires_at) else {
        // Left leased, like an unreadable target.
        return;
    };
    let notification = std::sync::Arc::new(notification);
    let (providers, app_version) = match d.store.app(&job.app_id).await {
        Ok(Some(app)) => ((app.apns.is_some(), app.fcm.is_some()), app.updated_at),
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the app of a fan-out; retrying later");
            let _ = d.store.release_fanout(&job.id).await;
            return;
        }
    };
    // Half the worker's room per batch, so one batch is inserted while the
    // one before is still being sent.
    let batch = d.config.fanout_batch.clamp(1, (d.config.send_concurrency as i64 / 2).max(1));
    loop {
        // Room for the batch first: the fan-out runs as fast as the
        // providers take it, never ahead of the worker.
        let reservation = match d.worker.reserve(batch as usize).await {
            Some(r) if !cancel.is_cancelled() => r,
            _ => {
                if let Err(e) = d.store.release_fanout(&job.id).await {
                    tracing::warn!(error = %e, "cannot release a fan-out lease; it will expire");
                }
                return;
            }
        };
        let now = now_ms();
        let born = Some(reservation.lease_until);
        let step = d.store.fanout_batch(&job, &target, providers, batch, now, now + lease_ms, born).await;
        let step = step.map(|(step, rows)| {
            if !rows.is_empty() {
                d.worker.dispatch(reservation, rows, notification.clone(), app_version);
            }
            step
        });
        match step {
            Ok(FanoutStep::More(_)) => {}
            Ok(FanoutStep::Done(_)) => {
                // Nothing to send (or all failed at once): complete now.
                if let Err(e) = d.store.complete_notifications(Some(std::slice::from_ref(&job.id)), now).await {
                    tracing::warn!(error = %e, "cannot complete a notification; the sweep will");
                }
                d.signals.done.notify_waiters();
                return;
            }
            Ok(FanoutStep::Stopped) => return,
            Err(e) => {
                tracing::warn!(notification = %job.id, error = %e, "fan-out batch failed; retrying");
                pause(cancel, Duration::from_secs(1)).await;
            }
        }
    }
}
