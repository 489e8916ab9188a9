//! Delivery stats (API.md, Stats): counters per app, UTC minute, final
//! status and reason, moved by the statements that record results, so a
//! read sums a few rows per minute instead of scanning the delivery log.
//! Each write of results adds one upsert per (app, minute, status, reason)
//! of its batch, never one per delivery.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sql::{on_pool, Dialect, Sql};
use super::{DeliveryStatus, Store, StoreResult};

/// A bucket of the counters: one UTC minute, in ms.
pub const MINUTE_MS: i64 = 60_000;

/// What a write of results adds to one counter.
#[derive(Debug, Serialize)]
pub(crate) struct StatTally {
    app_id: String,
    minute: i64,
    status: &'static str,
    reason: String,
    count: i64,
}

impl StatTally {
    /// Tallies final results `(app_id, status, reason, n)` recorded at
    /// `now`; pending and cancelled ones are not counted. Sorted by key, so
    /// concurrent writes lock the counters in one order.
    pub(crate) fn of<'a>(
        now: i64,
        results: impl IntoIterator<Item = (&'a str, DeliveryStatus, Option<&'a str>, i64)>,
    ) -> Vec<StatTally> {
        let minute = now - now.rem_euclid(MINUTE_MS);
        let mut by_key: BTreeMap<(&str, &'static str, &str), i64> = BTreeMap::new();
        for (app_id, status, reason, n) in results {
            let (status, reason) = match status {
                DeliveryStatus::Delivered => ("delivered", ""),
                DeliveryStatus::Failed => ("failed", reason.unwrap_or_default()),
                DeliveryStatus::Expired => ("expired", reason.unwrap_or_default()),
                DeliveryStatus::Pending | DeliveryStatus::Cancelled => continue,
            };
            *by_key.entry((app_id, status, reason)).or_default() += n;
        }
        by_key
            .into_iter()
            .map(|((app_id, status, reason), count)| StatTally {
                app_id: app_id.to_string(),
                minute,
                status,
                reason: reason.to_string(),
                count,
            })
            .collect()
    }
}

/// `reason` as counted: none for a delivery, `''` when the provider gave none.
const REASON: &str = "CASE WHEN status = 'delivered' THEN '' ELSE COALESCE(reason, '') END";

/// The upsert adding `source`'s `(app_id, minute, status, reason, count)`
/// rows to the counters. `WHERE TRUE`: SQLite's upsert after a SELECT needs a WHERE.
fn upsert(source: &str) -> String {
    format!(
        "INSERT INTO delivery_stats (app_id, minute, status, reason, count) {source} \
         ON CONFLICT (app_id, minute, status, reason) DO UPDATE SET count = delivery_stats.count + excluded.count"
    )
}

/// Adds the [`StatTally`] rows of the JSON array in parameter `$n`, when
/// `condition` holds (`TRUE`: always).
pub(crate) fn count_sql(d: &Dialect, n: usize, condition: &str) -> String {
    let v = d.json_records(
        n,
        &[("app_id", "text"), ("minute", "bigint"), ("status", "text"), ("reason", "text"), ("count", "bigint")],
    );
    upsert(&format!("SELECT v.app_id, v.minute, v.status, v.reason, v.count FROM {v} WHERE {condition}"))
}

/// Adds the rows of CTE `changed` (`app_id, status, reason` of deliveries
/// just written, at `$now`), for Postgres' one-statement write-back.
pub(crate) fn count_changed_sql(now: usize) -> String {
    upsert(&format!(
        "SELECT app_id, (${now} / {MINUTE_MS}) * {MINUTE_MS}, status, {REASON}, COUNT(*) FROM changed \
         WHERE status IN ('delivered', 'failed', 'expired') GROUP BY app_id, status, {REASON} ORDER BY 1, 3, 4"
    ))
}

/// What a stats read covers.
#[derive(Clone, Debug)]
pub struct StatsWindow<'a> {
    /// The app.
    pub app_id: &'a str,
    /// Start (ms), a bucket boundary.
    pub since: i64,
    /// End (ms, excluded), a bucket boundary.
    pub until: i64,
    /// Bucket width (ms): a whole number of minutes.
    pub bucket_ms: i64,
    /// Only this notification's deliveries (read from the log).
    pub notification_id: Option<&'a str>,
}

/// A count of final deliveries in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StatRow {
    /// The bucket's start (ms).
    pub start: i64,
    /// `delivered` | `failed` | `expired`.
    pub status: String,
    /// Provider reason, `''` when none.
    pub reason: String,
    /// Deliveries.
    pub count: i64,
}

/// Devices of one platform and state.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceCount {
    /// `ios`, `android`…
    pub platform: String,
    /// Whether they are active.
    pub active: bool,
    /// How many.
    pub count: i64,
}

impl Store {
    /// Final deliveries of `w` by bucket, status and reason: from the
    /// counters; for one notification, from its rows of the log (found by
    /// its index), where the counters do not go.
    pub async fn delivery_stats(&self, w: &StatsWindow<'_>) -> StoreResult<Vec<StatRow>> {
        let mut q = match w.notification_id {
            None => {
                let mut q = Sql::new("SELECT (minute / ");
                q.push_bind(w.bucket_ms).push(") * ").push_bind(w.bucket_ms);
                q.push(" AS start, status, reason, CAST(SUM(count) AS BIGINT) AS count FROM delivery_stats WHERE app_id = ");
                q.push_bind(w.app_id).push(" AND minute >= ").push_bind(w.since);
                q.push(" AND minute < ").push_bind(w.until);
                q
            }
            Some(id) => {
                let mut q = Sql::new("SELECT (updated_at / ");
                q.push_bind(w.bucket_ms).push(") * ").push_bind(w.bucket_ms);
                q.push(&format!(
                    " AS start, status, {REASON} AS reason, COUNT(*) AS count FROM deliveries WHERE notification_id = "
                ));
                q.push_bind(id).push(" AND app_id = ").push_bind(w.app_id);
                q.push(" AND status IN ('delivered', 'failed', 'expired') AND updated_at >= ").push_bind(w.since);
                q.push(" AND updated_at < ").push_bind(w.until);
                q
            }
        };
        q.push(" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
        Ok(on_pool!(self.pool(), p => q.query_as::<_, StatRow>().fetch_all(p).await?))
    }

    /// The app's devices by platform and state (an index-only count).
    pub async fn device_counts(&self, app_id: &str) -> StoreResult<Vec<DeviceCount>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, DeviceCount>(
            "SELECT platform, active, COUNT(*) AS count FROM devices WHERE app_id = $1 \
             GROUP BY platform, active ORDER BY platform, active"
        ).bind(app_id).fetch_all(p).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_count_final_results_per_minute_and_reason() {
        let t = StatTally::of(
            125_000,
            [
                ("a", DeliveryStatus::Failed, Some("Unregistered"), 1),
                ("a", DeliveryStatus::Delivered, Some("ignored"), 2),
                ("a", DeliveryStatus::Failed, Some("Unregistered"), 3),
                ("a", DeliveryStatus::Pending, Some("retry"), 1),
                ("a", DeliveryStatus::Cancelled, None, 1),
                ("a", DeliveryStatus::Expired, None, 1),
            ],
        );
        let keys: Vec<_> = t.iter().map(|t| (t.minute, t.status, t.reason.as_str(), t.count)).collect();
        assert_eq!(
            keys,
            [(120_000, "delivered", "", 2), (120_000, "expired", "", 1), (120_000, "failed", "Unregistered", 4)]
        );
    }
}
