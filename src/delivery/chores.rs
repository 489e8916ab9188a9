//! The pipeline's periodic chores, in a task of their own beside the
//! fan-out and the workers: every poll interval, due scheduled
//! notifications become `queued` and finished ones `completed` (the sweep
//! behind the workers' own completion); every hour, the delivery log's
//! coming days get their partitions (Postgres), and old idempotency keys
//! and (retention) old delivery logs go.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{retention, Signals};
use crate::config::Config;
use crate::domain::time::now_ms;
use crate::store::{Store, StoreResult};

/// How often old idempotency keys and delivery logs are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Does the chores until `cancel`: at once, then every poll interval
/// (counted from the start of the previous round).
pub(super) async fn run(store: Store, config: Arc<Config>, signals: Arc<Signals>, cancel: CancellationToken) {
    let mut rounds = tokio::time::interval(Duration::from_millis(config.poll_interval_ms.max(10)));
    // A long round (retention) is followed by a full interval, not a burst.
    rounds.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let retention_ms = config.retention_days.max(1) * 24 * 3600 * 1000;
    let mut last_prune: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = rounds.tick() => {}
        }
        if let Err(e) = round(&store, &signals, retention_ms, &mut last_prune, &cancel).await {
            tracing::warn!(error = %e, "delivery chores failed; retrying");
        }
    }
}

async fn round(
    store: &Store,
    signals: &Signals,
    retention_ms: i64,
    last_prune: &mut Option<Instant>,
    cancel: &CancellationToken,
) -> StoreResult<()> {
    let now = now_ms();
    if store.promote_scheduled(now).await? > 0 {
        signals.work.notify_one();
    }
    if store.complete_notifications(None, now).await? > 0 {
        signals.done.notify_waiters();
    }
    if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
        *last_prune = Some(Instant::now());
        // Before retention, and not behind it: a failure here must not stop
        // old logs going, nor theirs stop tomorrow's partition being made
        // (inserts never fail without one; they land in the default partition).
        match store.make_delivery_partitions(now).await {
            Ok(made) if made > 0 => tracing::info!(days = made, "delivery log partitions made"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "making delivery log partitions failed; retrying next hour"),
        }
        store.prune_idempotency_keys(now).await?;
        retention::run(store, now - retention_ms, cancel).await?;
    }
    Ok(())
}
