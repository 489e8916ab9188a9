//! The fan-out task: expands group, user and `all` targets into deliveries
//! in batches (see `store/fanout.rs`), sent through the worker's capacity
//! and recorded with their results (see `record.rs`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use super::record;
use super::sender::{Job, Prepared};
use super::worker::Reservation;
use super::{pause, Delivery};
use crate::domain::local_time::LocalTime;
use crate::domain::time::now_ms;
use crate::domain::Target;
use crate::store::{DeadToken, FanoutCommit, FanoutDevice, FanoutJob, NewDeliveryRow, Providers};

/// Claims notifications to fan out, one at a time, until `cancel`.
pub(super) async fn run(d: Delivery, cancel: CancellationToken) {
    let poll = Duration::from_millis(d.config.poll_interval_ms.max(10));
    let lease_ms = d.config.lease_seconds.max(1) * 1000;
    while !cancel.is_cancelled() {
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

/// Batches of one fan-out in flight at once: while one is written, the next
/// ones are read and sent.
const WINDOW: usize = 3;

/// A batch sent, waiting to be recorded in cursor order.
struct SentBatch {
    from: String,
    to: String,
    count: i64,
    last: bool,
    rows: Vec<NewDeliveryRow>,
    dead: Vec<DeadToken>,
}

impl SentBatch {
    /// Extends this batch with the one right after it in cursor order.
    fn append(&mut self, next: SentBatch) {
        self.to = next.to;
        self.count += next.count;
        self.last = next.last;
        self.rows.extend(next.rows);
        self.dead.extend(next.dead);
    }
}

/// Expands one notification batch by batch until done, cancelled, or
/// shutdown. Batches are read ahead (up to [`WINDOW`]) and sent at once;
/// each is recorded with its results, and the cursor moved past it, in
/// order. On shutdown the batches in flight finish and are recorded.
async fn expand(d: &Delivery, job: FanoutJob, lease_ms: i64, cancel: &CancellationToken) {
    let target: Target = match serde_json::from_str(&job.target) {
        Ok(t) => t,
        Err(e) => {
            // Left leased: retried after the lease, and loud in the log.
            tracing::error!(notification = %job.id, error = %e, "stored target is unreadable");
            return;
        }
    };
    let Some(notification) = Prepared::parse(&job.id, &job.info, &job.options, job.expires_at) else {
        // Left leased, like an unreadable target.
        return;
    };
    let local_time = match job.local_time.as_deref().map(|t| LocalTime::parse("local_time", t)).transpose() {
        Ok(t) => t,
        Err(e) => {
            // Left leased, like an unreadable target.
            tracing::error!(notification = %job.id, error = %e, "stored local_time is unreadable");
            return;
        }
    };
    let notification = Arc::new(notification);
    let (providers, app_version) = match d.store.app(&job.app_id).await {
        Ok(Some(app)) => (Providers::of(&app), app.updated_at),
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the app of a fan-out; retrying later");
            let _ = d.store.release_fanout(&job.id).await;
            return;
        }
    };
    let batch = d.config.fanout_batch.clamp(1, (d.config.send_concurrency / WINDOW).max(1) as i64);
    let mut cursor = job.fanout_cursor.clone().unwrap_or_default();
    let mut exhausted = false;
    let mut stopped = false;
    let mut finished = false;
    let mut in_flight = FuturesOrdered::new();
    // The next batch is read while this loop records the one before: a read
    // needs only the cursor of the previous read, and reads and commits run
    // on different connections. Read in turn, they left the machine a
    // quarter idle during a fan-out (BENCHMARKS.md).
    let read_from = |from: &str| {
        let (store, job, target, from) = (d.store.clone(), job.clone(), target.clone(), from.to_owned());
        tokio::spawn(async move { store.fanout_window(&job, &target, &from, batch).await })
    };
    let mut ahead = Some(read_from(&cursor));
    // After a crash the batches that were in flight (at most WINDOW, all past
    // the recorded cursor) may have reached the provider: their devices'
    // pushes count as a second attempt.
    let mut repeats_left = if job.abandoned { WINDOW as i64 * batch } else { 0 };
    loop {
        while !exhausted && !stopped && in_flight.len() < WINDOW && !cancel.is_cancelled() {
            // Room first: the fan-out runs as fast as the providers take it.
            let Some(reservation) = d.worker.reserve(batch as usize).await else { break };
            let Some(read) = ahead.take() else { break };
            let devices = match read.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                Ok(devices) => devices,
                Err(error) => {
                    tracing::warn!(notification = %job.id, %error, "reading a fan-out batch failed; retrying");
                    if in_flight.is_empty() {
                        pause(cancel, Duration::from_secs(1)).await;
                    }
                    ahead = Some(read_from(&cursor));
                    break;
                }
            };
            exhausted = (devices.len() as i64) < batch;
            let from = cursor.clone();
            if let Some(last) = devices.last() {
                cursor = last.id.clone();
            }
            if !exhausted {
                ahead = Some(read_from(&cursor));
            }
            let prior_attempts = i32::from(repeats_left > 0);
            repeats_left -= devices.len() as i64;
            let ctx = BatchContext {
                app_id: job.app_id.clone(),
                notification: notification.clone(),
                app_version,
                providers,
                prior_attempts,
                local_time,
            };
            // A task of its own: it keeps sending while this loop records
            // the batch before it.
            let task = send_batch(d.clone(), ctx, reservation, devices, from, cursor.clone(), exhausted);
            in_flight.push_back(tokio::spawn(task));
        }
        let mut sent = match in_flight.next().await {
            Some(Ok(sent)) => sent,
            Some(Err(e)) => {
                // A batch task panicked: its devices' results are unknown, so
                // the cursor stays before them and the lease brings them back.
                tracing::error!(notification = %job.id, error = %e, "a fan-out batch failed");
                stopped = true;
                continue;
            }
            None if finished || stopped || cancel.is_cancelled() || exhausted => break,
            None => continue,
        };
        // Batches that finished while the last one was recorded go in the
        // same transaction: commits never fall behind the sends.
        while let Some(Some(next)) = in_flight.next().now_or_never() {
            match next {
                Ok(next) => sent.append(next),
                Err(e) => {
                    // Recorded up to here; the cursor stops before this one.
                    tracing::error!(notification = %job.id, error = %e, "a fan-out batch failed");
                    stopped = true;
                    break;
                }
            }
        }
        let now = now_ms();
        let step = FanoutCommit {
            from: &sent.from,
            to: &sent.to,
            count: sent.count,
            done: sent.last,
            lease_until: now + lease_ms,
        };
        match commit(d, &job, &step, &sent).await {
            Some(true) => finished = sent.last,
            // Cancelled, or another instance took over after this one's
            // lease ran out: record what is in flight, read no further.
            Some(false) => stopped = true,
            // Sent but not recorded: the cursor stays, the lease runs out,
            // and the batch is sent again. Loud in the log.
            None => stopped = true,
        }
    }
    if finished {
        if let Err(e) = d.store.complete_notifications(Some(std::slice::from_ref(&job.id)), now_ms()).await {
            tracing::warn!(error = %e, "cannot complete a notification; the sweep will");
        }
        d.signals.done.notify_waiters();
    } else if cancel.is_cancelled() && !stopped {
        if let Err(e) = d.store.release_fanout(&job.id).await {
            tracing::warn!(error = %e, "cannot release a fan-out lease; it will expire");
        }
    }
}

/// What every batch of one fan-out shares.
struct BatchContext {
    app_id: String,
    notification: Arc<Prepared>,
    app_version: i64,
    providers: Providers,
    /// 1 when this batch may have been sent before a crash, else 0.
    prior_attempts: i32,
    local_time: Option<LocalTime>,
}

/// Sends one batch and turns its outcomes into delivery rows. Devices that
/// cannot be sent to (see [`record::sendable`]) get their final row without
/// a provider call; with a local time, devices whose time has not come get
/// a pending row due then, which the workers send (see [`record::scheduled`]).
async fn send_batch(
    d: Delivery,
    ctx: BatchContext,
    reservation: Reservation,
    devices: Vec<FanoutDevice>,
    from: String,
    to: String,
    last: bool,
) -> SentBatch {
    let now = now_ms();
    let count = devices.len() as i64;
    let mut rows = Vec::with_capacity(devices.len());
    let mut jobs = Vec::with_capacity(devices.len());
    let n = &ctx.notification;
    for device in devices {
        let due = ctx.local_time.map_or(now, |t| t.next_at(device.timezone.as_deref(), now));
        match record::sendable(&device.platform, Some(ctx.providers), n, ctx.prior_attempts, now) {
            Ok(platform) if due > now => rows.push(NewDeliveryRow {
                update: record::scheduled(platform, due),
                device_id: device.id,
                platform_name: device.platform,
                token: device.token,
                environment: device.environment,
            }),
            Ok(platform) => jobs.push(Job {
                delivery_id: 0,
                created_at: 0,
                app_id: ctx.app_id.clone(),
                app_version: ctx.app_version,
                platform,
                token: device.token,
                environment: device.environment,
                device_id: Some(device.id),
                attempts: ctx.prior_attempts,
                notification: n.clone(),
            }),
            Err(unsent) => rows.push(NewDeliveryRow {
                update: unsent.update((0, 0), &device.platform, now),
                device_id: device.id,
                platform_name: device.platform,
                token: device.token,
                environment: device.environment,
            }),
        }
    }
    let mut dead = Vec::new();
    for (job, sent) in d.worker.send_reserved(reservation, jobs).await {
        let Some(sent) = sent else { continue };
        let (mut update, dead_token) = record::decided(&job, sent.decision, sent.latency_ms);
        // A new row's attempts are its `inc`: the repeated push counts too.
        update.inc += ctx.prior_attempts;
        dead.extend(dead_token);
        rows.push(NewDeliveryRow {
            device_id: job.device_id.unwrap_or_default(),
            platform_name: job.platform.as_str().to_string(),
            token: job.token,
            environment: job.environment,
            update,
        });
    }
    SentBatch { from, to, count, last, rows, dead }
}

/// Records a sent batch (see [`record::write`]); `None` when it could not.
async fn commit(d: &Delivery, job: &FanoutJob, step: &FanoutCommit<'_>, sent: &SentBatch) -> Option<bool> {
    let updates = sent.rows.iter().map(|r| &r.update);
    let written = record::write(&d.signals, updates, &sent.dead, || {
        d.store.fanout_commit(job, step, &sent.rows, &sent.dead, now_ms())
    })
    .await;
    written
        .map_err(|e| {
            tracing::error!(notification = %job.id, error = %e, "cannot record a sent fan-out batch; it will be sent again");
        })
        .ok()
}
