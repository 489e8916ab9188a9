//! What a logged delivery costs on disk, read from the store after a
//! scenario: the delivery log's rows, and their share of the notifications
//! and of the tables kept beside them (counts, stats).
//!
//! Sizes are the whole tables', as the store reports them: a row's bytes
//! are the log's average (every delivery row has the same shape), while a
//! notification's are shared by its deliveries, which is where a fan-out
//! (one notification, N deliveries) and single sends (one each) differ.

use sqlx::{PgPool, SqlitePool};

use crate::report::Line;
use crate::seed::Database;
use crate::{BenchResult, Context, StoreKind};

/// The store's time for "now": milliseconds since the epoch, as the
/// gateway writes `created_at` (same machine, same clock).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Sizes and rows of the log's tables, and the rows a scenario wrote.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    /// `deliveries`' heap (main fork).
    deliveries_table: i64,
    /// `deliveries`' indexes.
    deliveries_indexes: i64,
    /// `deliveries` with indexes, TOAST and maps.
    deliveries_total: i64,
    notifications_total: i64,
    counts_total: i64,
    stats_total: i64,
    deliveries: i64,
    notifications: i64,
    counts: i64,
    /// Rows written since the scenario started.
    new_deliveries: i64,
    new_notifications: i64,
    new_counts: i64,
}

/// Per-delivery tables besides `deliveries` and `notifications`: rows per
/// notification, and rows per app, minute and outcome.
const PG_VACUUM: &str = "VACUUM (ANALYZE) deliveries, notifications, notification_counts, delivery_stats";
/// The log's sizes are summed over its partitions (a partitioned table has
/// no storage of its own; an unpartitioned one has no tree).
const PG_USAGE: &str = "SELECT \
     COALESCE((SELECT SUM(pg_relation_size(relid))::bigint FROM pg_partition_tree('deliveries')), pg_relation_size('deliveries')), \
     COALESCE((SELECT SUM(pg_indexes_size(relid))::bigint FROM pg_partition_tree('deliveries')), pg_indexes_size('deliveries')), \
     COALESCE((SELECT SUM(pg_total_relation_size(relid))::bigint FROM pg_partition_tree('deliveries')), pg_total_relation_size('deliveries')), \
     pg_total_relation_size('notifications'), \
     pg_total_relation_size('notification_counts'), pg_total_relation_size('delivery_stats'), \
     (SELECT count(*) FROM deliveries), (SELECT count(*) FROM notifications), \
     (SELECT count(*) FROM notification_counts), \
     (SELECT count(*) FROM deliveries WHERE created_at >= $1), \
     (SELECT count(*) FROM notifications WHERE created_at >= $1), \
     (SELECT count(*) FROM notification_counts c JOIN notifications n ON n.id = c.notification_id \
       WHERE n.created_at >= $1)";

/// Bytes per table or index, from SQLite's `dbstat` (compiled into the
/// bundled SQLite): `(table, is_index, bytes)`. Free pages belong to no table.
const LITE_SIZES: &str = "SELECT m.tbl_name, m.type = 'index', SUM(s.pgsize) FROM dbstat s \
     JOIN sqlite_master m ON m.name = s.name \
     WHERE m.tbl_name IN ('deliveries', 'notifications', 'notification_counts', 'delivery_stats') \
     GROUP BY m.tbl_name, m.type = 'index'";
const LITE_ROWS: &str = "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM notifications), \
     (SELECT count(*) FROM notification_counts), \
     (SELECT count(*) FROM deliveries WHERE created_at >= $1), \
     (SELECT count(*) FROM notifications WHERE created_at >= $1), \
     (SELECT count(*) FROM notification_counts c JOIN notifications n ON n.id = c.notification_id \
       WHERE n.created_at >= $1)";

/// Adds the disk fields to `line` for the rows written since `since_ms`
/// (see BENCHMARKS.md): on Postgres after `VACUUM (ANALYZE)` of the log's
/// tables; on SQLite from `dbstat`. When the store cannot say (no
/// `dbstat`, no rows), the fields are left out and stderr says why.
pub async fn add(db: &Database, since_ms: i64, line: Line) -> Line {
    let usage = match (db.kind, db.postgres(), db.sqlite()) {
        (StoreKind::Postgres, Some(pool), _) => postgres(pool, since_ms).await,
        (StoreKind::Sqlite, _, Some(pool)) => sqlite(pool, since_ms).await,
        _ => return line,
    };
    match usage {
        Ok(usage) => usage.fields(line),
        Err(e) => {
            crate::progress::note(Some(db.kind), &format!("disk use left out: {e}"));
            line
        }
    }
}

async fn postgres(pool: &PgPool, since_ms: i64) -> BenchResult<Usage> {
    sqlx::query(PG_VACUUM).execute(pool).await.context("VACUUM (ANALYZE) of the delivery log")?;
    let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(PG_USAGE).bind(since_ms).fetch_one(pool).await.context("reading table sizes")?;
    Ok(Usage {
        deliveries_table: row.0,
        deliveries_indexes: row.1,
        deliveries_total: row.2,
        notifications_total: row.3,
        counts_total: row.4,
        stats_total: row.5,
        deliveries: row.6,
        notifications: row.7,
        counts: row.8,
        new_deliveries: row.9,
        new_notifications: row.10,
        new_counts: row.11,
    })
}

async fn sqlite(pool: &SqlitePool, since_ms: i64) -> BenchResult<Usage> {
    let sizes: Vec<(String, bool, i64)> = sqlx::query_as(LITE_SIZES).fetch_all(pool).await.context("reading dbstat")?;
    let rows: (i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(LITE_ROWS).bind(since_ms).fetch_one(pool).await.context("counting rows")?;
    let mut usage = Usage {
        deliveries: rows.0,
        notifications: rows.1,
        counts: rows.2,
        new_deliveries: rows.3,
        new_notifications: rows.4,
        new_counts: rows.5,
        ..Usage::default()
    };
    for (table, is_index, bytes) in sizes {
        match (table.as_str(), is_index) {
            ("deliveries", false) => usage.deliveries_table = bytes,
            ("deliveries", true) => usage.deliveries_indexes = bytes,
            ("notifications", _) => usage.notifications_total += bytes,
            ("notification_counts", _) => usage.counts_total += bytes,
            ("delivery_stats", _) => usage.stats_total += bytes,
            _ => {}
        }
    }
    usage.deliveries_total = usage.deliveries_table + usage.deliveries_indexes;
    if usage.deliveries_table == 0 {
        return Err(crate::BenchError::msg("dbstat reports no pages for deliveries"));
    }
    Ok(usage)
}

impl Usage {
    /// Bytes on disk per delivery the scenario logged: the log's average
    /// row (heap, indexes, TOAST), plus this scenario's notifications and
    /// their counts rows at their tables' average, spread over its
    /// deliveries, plus the stats table over the whole log.
    fn per_delivery(&self) -> Option<f64> {
        if self.new_deliveries == 0 || self.deliveries == 0 {
            return None;
        }
        let avg = |bytes: i64, rows: i64| if rows == 0 { 0.0 } else { bytes as f64 / rows as f64 };
        let new = self.new_deliveries as f64;
        Some(
            avg(self.deliveries_total, self.deliveries)
                + avg(self.notifications_total, self.notifications) * self.new_notifications as f64 / new
                + avg(self.counts_total, self.counts) * self.new_counts as f64 / new
                + avg(self.stats_total, self.deliveries),
        )
    }

    fn fields(&self, line: Line) -> Line {
        let line = match self.per_delivery() {
            Some(bytes) => line.num("disk_bytes_per_delivery", bytes, 0),
            None => line,
        };
        line.set("deliveries_table_bytes", self.deliveries_table)
            .set("deliveries_index_bytes", self.deliveries_indexes)
            .set("deliveries_rows", self.deliveries)
            .set("notifications_bytes", self.notifications_total)
            .set("notifications_rows", self.notifications)
            .set("scenario_deliveries", self.new_deliveries)
            .set("scenario_notifications", self.new_notifications)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_shared_by_its_deliveries() {
        let usage = Usage {
            deliveries_total: 1_000_000,
            notifications_total: 2_000,
            deliveries: 1_000,
            notifications: 2,
            new_deliveries: 1_000,
            new_notifications: 1,
            ..Usage::default()
        };
        // 1,000 per row, and half the notifications table over 1,000 deliveries.
        assert_eq!(usage.per_delivery(), Some(1_001.0));
        let singles = Usage { new_deliveries: 10, new_notifications: 10, ..usage };
        assert_eq!(singles.per_delivery(), Some(2_000.0));
        assert_eq!(Usage { new_deliveries: 0, ..usage }.per_delivery(), None);
    }
}
