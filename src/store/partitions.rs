//! The delivery log's day partitions (Postgres, migration 0013): made ahead
//! of the days they hold, and dropped whole by retention. SQLite keeps one
//! table, whose retention deletes rows.

use chrono::NaiveDate;

use super::sql::Pool;
use super::{Store, StoreResult};

/// A day in ms: the span of one partition.
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Days of partitions made from today on: inserts of a day find its partition
/// made a day or two before, whatever a round of chores missed.
const DAYS_AHEAD: i32 = 3;
/// How long a partition's creation or drop waits for the log's lock: it
/// takes the whole log's, and every query of the log queues behind it
/// while it waits. The next round tries again.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '1s'";

/// Start (ms) of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// End (ms, exclusive) of the day partition named `name`
/// (`deliveries_YYYYMMDD`); `None` for any other table.
fn partition_end(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("deliveries_").filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))?;
    let day = NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() + DAY_MS)
}

impl Store {
    /// True when the delivery log is partitioned by day (Postgres):
    /// retention then drops days instead of deleting rows.
    pub fn delivery_log_by_day(&self) -> bool {
        matches!(self.pool(), Pool::Postgres(_))
    }

    /// Makes the delivery log's partitions of today and the next days (of
    /// `now`, ms) that do not exist yet; answers how many were made. None on
    /// SQLite.
    pub async fn make_delivery_partitions(&self, now: i64) -> StoreResult<i32> {
        let Pool::Postgres(p) = self.pool() else { return Ok(0) };
        let mut tx = p.begin().await?;
        sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
        let made: i32 = sqlx::query_scalar("SELECT pushgate_delivery_partitions($1, $2)")
            .bind(now)
            .bind(DAYS_AHEAD)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(made)
    }

    /// Drops the delivery log's day partitions that end at or before
    /// `before` (ms) and hold no pending delivery; answers their names. None
    /// on SQLite.
    pub async fn drop_delivery_partitions(&self, before: i64) -> StoreResult<Vec<String>> {
        let Pool::Postgres(p) = self.pool() else { return Ok(Vec::new()) };
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'deliveries'::regclass ORDER BY c.relname",
        )
        .fetch_all(p)
        .await?;
        let mut dropped = Vec::new();
        for name in names {
            if partition_end(&name).is_none_or(|end| end > before) {
                continue;
            }
            // A row of a past day never becomes pending again (nothing moves
            // `created_at`), so no lock need span the check and the drop.
            let pending: bool =
                sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM \"{name}\" WHERE status = 'pending')"))
                    .fetch_one(p)
                    .await?;
            if pending {
                tracing::warn!(partition = %name, "delivery log day past retention still has pending deliveries; kept");
                continue;
            }
            let mut tx = p.begin().await?;
            sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
            sqlx::query(&format!("DROP TABLE IF EXISTS \"{name}\"")).execute(&mut *tx).await?;
            tx.commit().await?;
            dropped.push(name);
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::{day_start, partition_end, DAY_MS};

    #[test]
    fn a_partition_ends_at_the_next_utc_midnight() {
        // 2026-11-30T00:00:00Z
        let day = 1_795_996_800_000;
        assert_eq!(partition_end("deliveries_20261129"), Some(day));
        assert_eq!(day_start(day + 5), day);
        assert_eq!(day_start(day), day);
        assert_eq!(day_start(day - 1), day - DAY_MS);
        assert_eq!(partition_end("deliveries_default"), None);
        assert_eq!(partition_end("deliveries_2026113"), None);
        assert_eq!(partition_end("deliveries_20261340"), None);
    }
}
