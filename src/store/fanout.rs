//! Fan-out: a group, user or `all` target expanded in batches, streaming
//! through the registry in the database (never loading a target into
//! memory). A batch is read, sent, and then written once: its deliveries
//! with their results and the notification's `fanout_cursor` in one
//! transaction, in cursor order. A gateway that stops resumes where the
//! cursor is; after a crash, only the batches in flight are sent again.

use serde::Serialize;

use super::deliveries::{append_attempt, ResultArrays, ResultSql, Tally, RESULT_COLUMNS};
use super::notifications::fanout_source;
use super::sql::{bind_args, on_pool, unnest, BeginWrite, Pool};
use super::stats::{self, StatTally};
use super::{DeadToken, DeliveryUpdate, Store, StoreResult};
use crate::domain::Target;

/// A notification whose target still needs expanding.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FanoutJob {
    /// Notification id.
    pub id: String,
    /// Its app.
    pub app_id: String,
    /// JSON of the target.
    pub target: String,
    /// JSON NotificationInfo.
    pub info: String,
    /// JSON DeliveryOptions.
    pub options: String,
    /// End of the TTL (ms).
    pub expires_at: Option<i64>,
    /// Last device expanded, if any.
    pub fanout_cursor: Option<String>,
    /// Whether an instance stopped while expanding it (its lease ran out or
    /// was taken back): the batches after the cursor may have been sent.
    pub abandoned: bool,
    /// When sending starts (ms): filter ages count back from it.
    pub send_at: i64,
    /// `HH:MM`: each device is sent at that time in its time zone.
    pub local_time: Option<String>,
}

/// A device of a fan-out window.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FanoutDevice {
    /// Device id (the cursor).
    pub id: String,
    /// `ios` / `android`.
    pub platform: String,
    /// Its token.
    pub token: String,
    /// Its APNs environment (`None`: the app's).
    pub environment: Option<String>,
    /// Its IANA time zone, if known.
    pub timezone: Option<String>,
}

/// Where one committed fan-out batch moves the cursor.
#[derive(Clone, Copy, Debug)]
pub struct FanoutCommit<'a> {
    /// The cursor before the batch (`""` at the start).
    pub from: &'a str,
    /// The last device of the batch.
    pub to: &'a str,
    /// Devices in the batch.
    pub count: i64,
    /// The last batch: the target is fully expanded.
    pub done: bool,
    /// The fan-out lease, renewed.
    pub lease_until: i64,
}

/// A delivery row written with its first result (fan-out).
#[derive(Clone, Debug, Serialize)]
pub struct NewDeliveryRow {
    /// Device id.
    pub device_id: String,
    /// `ios` / `android`.
    #[serde(rename = "platform")]
    pub platform_name: String,
    /// The token sent to.
    pub token: String,
    /// The device's APNs environment, kept for retries.
    pub environment: Option<String>,
    /// The result, as a write-back would record it (`id` unused).
    #[serde(flatten)]
    pub update: DeliveryUpdate,
}

impl Store {
    /// Takes one due notification to fan out, leased until `lease_until`.
    pub async fn claim_fanout(&self, now: i64, lease_until: i64) -> StoreResult<Option<FanoutJob>> {
        let lock = self.dialect().skip_locked();
        let sql = format!(
            "UPDATE notifications SET fanout_lease_until = $2, fanout_owner = $3, \
             fanout_abandoned = (fanout_abandoned OR fanout_lease_until IS NOT NULL) \
             WHERE id = (SELECT id FROM notifications \
             WHERE fanout_done = FALSE AND status IN ('scheduled', 'queued', 'sending') AND send_at <= $1 \
             AND (fanout_lease_until IS NULL OR fanout_lease_until < $1) ORDER BY send_at LIMIT 1 {lock}) \
             RETURNING id, app_id, target, info, options, expires_at, fanout_cursor, fanout_abandoned AS abandoned, \
             send_at, local_time"
        );
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, FanoutJob>(&sql).bind(now).bind(lease_until).bind(self.owner())
            .fetch_optional(p).await?),
        )
    }

    /// The next `batch` devices of `job` after `cursor`, in cursor order:
    /// a read, nothing is written until their results are known.
    pub async fn fanout_window(
        &self,
        job: &FanoutJob,
        target: &Target,
        cursor: &str,
        batch: i64,
    ) -> StoreResult<Vec<FanoutDevice>> {
        let d = self.dialect();
        let source = fanout_source(target, &d, 5, job.send_at)?;
        let (from, key) = (&source.sql, source.key);
        // A group's cursor also bounds the devices side of its join: Postgres
        // does not carry `>` across `d.id = g.device_id`, and its merge join
        // read the registry from the start in every window (660 ms per window
        // halfway through a 100k group of 1M devices; 20 ms bounded).
        let after = if key == "d.id" { "d.id > $2".to_owned() } else { format!("{key} > $2 AND d.id > $2") };
        // Nothing more once the notification is cancelled.
        let sql = format!(
            "SELECT d.id, d.platform, d.token, d.environment, d.timezone {from} AND {after} \
             AND EXISTS (SELECT 1 FROM notifications x WHERE x.id = $4 AND x.status <> 'cancelled') \
             ORDER BY {key} LIMIT $3"
        );
        Ok(on_pool!(self.pool(), p => bind_args(sqlx::query_as::<_, FanoutDevice>(&sql).bind(&job.app_id).bind(cursor)
            .bind(batch).bind(&job.id), &source.args).fetch_all(p).await?))
    }

    /// Records one sent fan-out batch in one transaction: its deliveries
    /// (final, or pending for a retry), their counts, dead tokens' devices,
    /// and the cursor moved from `step.from` to `step.to` with the lease
    /// renewed. The cursor only moves if it is still at `from` and the
    /// notification is neither done nor cancelled. Its rows are recorded
    /// when the cursor moved, or when a cancel stopped this instance's job
    /// (they were sent); not when another instance took the job over after
    /// this one's lease ran out (it records these devices itself), so a
    /// device keeps one delivery per notification. Returns whether the
    /// cursor moved.
    pub async fn fanout_commit(
        &self,
        job: &FanoutJob,
        step: &FanoutCommit<'_>,
        rows: &[NewDeliveryRow],
        dead: &[DeadToken],
        now: i64,
    ) -> StoreResult<bool> {
        let d = self.dialect();
        // `$1` id, `$2` to, `$3` count, `$4` done, `$5` now, `$6` from, `$7` lease.
        let advance = "UPDATE notifications SET fanout_cursor = $2, fanned_out = fanned_out + $3, fanout_done = $4, \
             targeted = CASE WHEN $4 THEN fanned_out + $3 ELSE targeted END, updated_at = $5, \
             fanout_lease_until = $7, fanout_abandoned = FALSE, status = CASE WHEN status = 'queued' THEN 'sending' ELSE status END \
             WHERE id = $1 AND COALESCE(fanout_cursor, '') = $6 AND fanout_done = FALSE AND status <> 'cancelled'";
        // `$1`–`$7` of `advance`, which both dialects' statements start with.
        macro_rules! bind_advance {
            ($query:expr) => {
                $query
                    .bind(&job.id)
                    .bind(step.to)
                    .bind(step.count)
                    .bind(step.done)
                    .bind(now)
                    .bind(step.from)
                    .bind(step.lease_until)
            };
        }
        // The rows: `$app` app, `$id` notification, `records` (the rows'
        // table), `$now`.
        let insert = |app: usize, id: usize, records: &str, now: usize| {
            format!(
                "INSERT INTO deliveries (app_id, notification_id, device_id, platform, token, environment, status, \
                 attempts, next_attempt_at, provider_status, reason, provider_message_id, created_at, updated_at, \
                 delivered_at, attempts_log) \
                 SELECT ${app}, ${id}, v.device_id, v.platform, v.token, v.environment, v.next_status, v.inc, \
                 v.next_attempt_at, \
                 v.provider_status, v.reason, v.provider_message_id, ${now}, ${now}, v.delivered_at, {log} FROM {records}",
                log = append_attempt("CAST(NULL AS TEXT)")
            )
        };
        let tallies = serde_json::to_string(&Tally::of(rows.iter().map(|r| (job.id.as_str(), r.update.status))))?;
        let counted = StatTally::of(
            now,
            rows.iter().map(|r| (job.app_id.as_str(), r.update.status, r.update.reason.as_deref(), 1)),
        );
        let counted = serde_json::to_string(&counted)?;
        let dead_json = serde_json::to_string(dead)?;
        Ok(match self.pool() {
            Pool::Postgres(p) => {
                // One statement, as the write-back: the commits of a fan-out
                // run one after another, and sampling showed its connection
                // idle in transaction a fifth of the time, waiting for the
                // next statement of the five.
                let shared = ResultSql::new(&d, 10, 11, 5);
                // Every part of the statement reads the same snapshot, so
                // `moved` (the advance's own answer) decides, not a re-read.
                let keep = "(EXISTS (SELECT 1 FROM moved) OR EXISTS (SELECT 1 FROM notifications \
                     WHERE id = $1 AND status = 'cancelled' AND fanout_owner = $12))";
                let sql = format!(
                    "WITH moved AS ({advance} RETURNING 1), rows AS ({rows} WHERE {keep}), counted AS ({count}), \
                     dead AS ({deactivate}), stats AS ({stats}) SELECT COUNT(*) FROM moved",
                    rows = insert(8, 1, &RowArrays::table(), 5),
                    count = shared.count_if(keep),
                    deactivate = shared.deactivate,
                    stats = stats::count_sql(&d, 13, keep),
                );
                let arrays = RowArrays::of(rows);
                let query = bind_advance!(sqlx::query_scalar(&sql))
                    .bind(&job.app_id)
                    .bind(&arrays.device_id)
                    .bind(&tallies)
                    .bind(&dead_json)
                    .bind(self.owner())
                    .bind(&counted)
                    .bind(&arrays.platform)
                    .bind(&arrays.token)
                    .bind(&arrays.environment);
                let moved: i64 = arrays.results.bind(query).fetch_one(p).await?;
                moved == 1
            }
            Pool::Sqlite(p) => {
                let shared = ResultSql::new(&d, 1, 1, 2);
                let mut tx = p.begin_write().await?;
                let moved = bind_advance!(sqlx::query(advance)).execute(&mut *tx).await?.rows_affected() == 1;
                let keep = moved
                    || sqlx::query_scalar::<_, bool>(
                        "SELECT status = 'cancelled' AND fanout_owner = $2 FROM notifications WHERE id = $1",
                    )
                    .bind(&job.id)
                    .bind(self.owner())
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(false);
                if keep && !rows.is_empty() {
                    let records = d.json_records(3, &[DEVICE_COLUMNS, RESULT_COLUMNS].concat());
                    sqlx::query(&insert(1, 2, &records, 4))
                        .bind(&job.app_id)
                        .bind(&job.id)
                        .bind(serde_json::to_string(rows)?)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(&shared.count).bind(&tallies).execute(&mut *tx).await?;
                    sqlx::query(&stats::count_sql(&d, 1, "TRUE")).bind(&counted).execute(&mut *tx).await?;
                }
                if !dead.is_empty() {
                    sqlx::query(&shared.deactivate).bind(&dead_json).bind(now).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                moved
            }
        })
    }

    /// Gives a fan-out lease back (shutdown), so another instance resumes at once.
    pub async fn release_fanout(&self, id: &str) -> StoreResult<()> {
        on_pool!(self.pool(), p => sqlx::query("UPDATE notifications SET fanout_lease_until = NULL WHERE id = $1")
            .bind(id).execute(p).await?.rows_affected());
        Ok(())
    }
}

/// The device columns of a fan-out row, before its result's
/// ([`RESULT_COLUMNS`]), as both dialects read them.
const DEVICE_COLUMNS: &[(&str, &str)] =
    &[("device_id", "text"), ("platform", "text"), ("token", "text"), ("environment", "text")];

/// A fan-out batch's device columns as arrays, beside their results'
/// (see [`ResultArrays`]), for Postgres' `UNNEST`; borrowed from the rows.
struct RowArrays<'a> {
    device_id: Vec<&'a str>,
    platform: Vec<&'a str>,
    token: Vec<&'a str>,
    environment: Vec<Option<&'a str>>,
    results: ResultArrays<'a>,
}

impl<'a> RowArrays<'a> {
    /// The rows' table in the fan-out commit: `device_id` is `$9`, the
    /// other columns follow the commit's own parameters from `$14`.
    fn table() -> String {
        let params: Vec<usize> = [9].into_iter().chain(14..17 + RESULT_COLUMNS.len()).collect();
        unnest(&params, &[DEVICE_COLUMNS, RESULT_COLUMNS].concat())
    }

    fn of(rows: &'a [NewDeliveryRow]) -> Self {
        Self {
            device_id: rows.iter().map(|r| r.device_id.as_str()).collect(),
            platform: rows.iter().map(|r| r.platform_name.as_str()).collect(),
            token: rows.iter().map(|r| r.token.as_str()).collect(),
            environment: rows.iter().map(|r| r.environment.as_deref()).collect(),
            results: ResultArrays::of(rows.iter().map(|r| &r.update)),
        }
    }
}
