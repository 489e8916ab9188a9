//! Delivery log retention: finished notifications older than the retention
//! age go, with their delivery rows. On Postgres the log is partitioned by
//! day and whole days past the age are dropped first; what is left (rows of
//! a kept day, or of the default partition) goes in small batches, as on
//! SQLite.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{day_start, Store, StoreResult};

/// Delivery rows removed per statement.
const BATCH: i64 = 2_000;
/// Notifications looked at per round.
const NOTIFICATIONS_PER_ROUND: i64 = 100;
/// Breathing room between statements for the rest of the gateway's writes.
const PAUSE: Duration = Duration::from_millis(10);

/// Removes what finished before `before` (ms); returns the notifications
/// removed. Stops early, leaving the rest for the next run, on `cancel`.
///
/// On a log partitioned by day, `before` is taken back to its day's start:
/// the deliveries of a notification finished before then are in dropped
/// days, while one finished later in that day would have its rows deleted
/// one by one, hour after hour, before its day could be dropped whole.
pub async fn run(store: &Store, before: i64, cancel: &CancellationToken) -> StoreResult<u64> {
    let before = if store.delivery_log_by_day() { day_start(before) } else { before };
    // Nothing to drop on SQLite, whose log is one table.
    let dropped = store.drop_delivery_partitions(before).await?;
    if !dropped.is_empty() {
        tracing::info!(days = ?dropped, "delivery log days past retention dropped");
    }
    let mut removed = 0;
    loop {
        let ids = store.expired_notifications(before, NOTIFICATIONS_PER_ROUND).await?;
        if ids.is_empty() {
            break;
        }
        for id in &ids {
            while !store.prune_notification(id, BATCH).await? {
                if cancel.is_cancelled() {
                    return Ok(removed);
                }
                tokio::time::sleep(PAUSE).await;
            }
            removed += 1;
        }
        if cancel.is_cancelled() || (ids.len() as i64) < NOTIFICATIONS_PER_ROUND {
            break;
        }
    }
    if removed > 0 {
        tracing::info!(notifications = removed, "delivery logs past retention removed");
    }
    Ok(removed)
}
