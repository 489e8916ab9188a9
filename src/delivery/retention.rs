//! Delivery log retention: finished notifications older than the retention
//! age go, with their delivery rows, in small batches.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreResult};

/// Delivery rows removed per statement.
const BATCH: i64 = 2_000;
/// Notifications looked at per round.
const NOTIFICATIONS_PER_ROUND: i64 = 100;
/// Breathing room between statements for the rest of the gateway's writes.
const PAUSE: Duration = Duration::from_millis(10);

/// Removes what finished before `before` (ms); returns the notifications
/// removed. Stops early, leaving the rest for the next run, on `cancel`.
pub async fn run(store: &Store, before: i64, cancel: &CancellationToken) -> StoreResult<u64> {
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
