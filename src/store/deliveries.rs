//! Deliveries: the queue (claims with a lease, batch write-back) and the log.

use serde::Serialize;

use super::notifications::complete_sql;
use super::sql::{on_pool, unnest, BeginWrite, Dialect, Pool, Sql};
use super::stats::{self, StatTally};
use super::{DeliveryStatus, Store, StoreResult};

/// A delivery taken by a worker.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedDelivery {
    /// Delivery id.
    pub id: i64,
    /// Its app.
    pub app_id: String,
    /// Its notification.
    pub notification_id: String,
    /// Registered device, if any.
    pub device_id: Option<String>,
    /// `ios` / `android`.
    pub platform: String,
    /// Token to send to.
    pub token: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// APNs environment of its device (`None`: the app's).
    pub environment: Option<String>,
    /// `Pending`; a delivery born `Failed` (no provider) is never sent.
    pub status: DeliveryStatus,
    /// When the row was created (ms): with `id`, its key in the day
    /// partitions of the log, so a result's update touches one partition.
    pub created_at: i64,
}

/// The result of one attempt, written back in batches.
#[derive(Clone, Debug, Serialize)]
pub struct DeliveryUpdate {
    /// Delivery id.
    pub id: i64,
    /// Its row's `created_at` (see [`ClaimedDelivery::created_at`]); 0 for
    /// a row not yet created.
    pub created_at: i64,
    /// New status (`Pending` for a retry).
    #[serde(rename = "next_status")]
    pub status: DeliveryStatus,
    /// 1 when a provider call was made, else 0.
    pub inc: i32,
    /// Next attempt (ms), for a retry.
    pub next_attempt_at: i64,
    /// Provider HTTP status.
    pub provider_status: Option<i32>,
    /// Provider reason.
    pub reason: Option<String>,
    /// `apns-id` / FCM message name.
    pub provider_message_id: Option<String>,
    /// When delivered (ms).
    pub delivered_at: Option<i64>,
    /// This attempt as one JSON object of the `attempts_log`; `None` when
    /// no provider call was made.
    pub attempt: Option<String>,
    /// `ios` / `android`, for metrics (not stored).
    #[serde(skip)]
    pub platform: &'static str,
}

/// The columns of a [`DeliveryUpdate`] as JSON (Postgres types), after its
/// `id`: what every writer of results reads back from its JSON rows.
pub(crate) const RESULT_COLUMNS: &[(&str, &str)] = &[
    ("next_status", "text"),
    ("inc", "int"),
    ("next_attempt_at", "bigint"),
    ("provider_status", "int"),
    ("reason", "text"),
    ("provider_message_id", "text"),
    ("delivered_at", "bigint"),
    ("attempt", "text"),
];

/// Results as one array per column of [`RESULT_COLUMNS`], for Postgres'
/// `UNNEST`: binary arrays cost Postgres less to read than JSON records
/// (500-row inserts of the log, psql: 706-777 ms per 100k rows against
/// 1,058-1,170 ms from `json_to_recordset`). SQLite reads JSON records.
#[derive(Default)]
pub(crate) struct ResultArrays<'a> {
    next_status: Vec<&'static str>,
    inc: Vec<i32>,
    next_attempt_at: Vec<i64>,
    provider_status: Vec<Option<i32>>,
    reason: Vec<Option<&'a str>>,
    provider_message_id: Vec<Option<&'a str>>,
    delivered_at: Vec<Option<i64>>,
    attempt: Vec<Option<&'a str>>,
}

impl<'a> ResultArrays<'a> {
    /// The arrays of `updates`, borrowing their text.
    pub(crate) fn of(updates: impl Iterator<Item = &'a DeliveryUpdate>) -> Self {
        let mut a = Self::default();
        for u in updates {
            a.next_status.push(u.status.as_str());
            a.inc.push(u.inc);
            a.next_attempt_at.push(u.next_attempt_at);
            a.provider_status.push(u.provider_status);
            a.reason.push(u.reason.as_deref());
            a.provider_message_id.push(u.provider_message_id.as_deref());
            a.delivered_at.push(u.delivered_at);
            a.attempt.push(u.attempt.as_deref());
        }
        a
    }

    /// Binds the arrays in [`RESULT_COLUMNS`] order.
    pub(crate) fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.next_status)
            .bind(&self.inc)
            .bind(&self.next_attempt_at)
            .bind(&self.provider_status)
            .bind(&self.reason)
            .bind(&self.provider_message_id)
            .bind(&self.delivered_at)
            .bind(&self.attempt)
    }
}

/// A device whose token a provider declared dead.
#[derive(Clone, Debug, Serialize)]
pub struct DeadToken {
    /// Its app.
    pub app_id: String,
    /// Device id.
    pub device_id: String,
    /// The token that was refused: a device that has refreshed its token since stays active.
    pub token: String,
    /// Provider reason.
    pub reason: String,
    /// APNs' `timestamp` of a 410 (ms): a device whose token was registered
    /// (`updated_at`) after it stays active (the app was reinstalled).
    pub since: Option<i64>,
    /// `ios` / `android`, for metrics (not stored).
    #[serde(skip)]
    pub platform: &'static str,
}

/// A row of the delivery log.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Delivery id.
    pub id: i64,
    /// Its app.
    pub app_id: String,
    /// Its notification.
    pub notification_id: String,
    /// Registered device, if any.
    pub device_id: Option<String>,
    /// `ios` / `android`.
    pub platform: String,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Provider calls made.
    pub attempts: i32,
    /// Next attempt (ms), while pending.
    pub next_attempt_at: i64,
    /// Provider HTTP status of the last answer.
    pub provider_status: Option<i32>,
    /// Provider reason of the last answer.
    pub reason: Option<String>,
    /// `apns-id` / FCM message name.
    pub provider_message_id: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// When delivered (ms).
    pub delivered_at: Option<i64>,
    /// Every attempt, a JSON array (`None`: none).
    pub attempts_log: Option<String>,
}

/// Deliveries waiting (all `pending` in the table), by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// Never tried, and due (or in flight).
    pub pending: i64,
    /// Never tried, not yet due.
    pub scheduled: i64,
    /// Tried before, waiting for a retry.
    pub retrying: i64,
}

/// Filters of `GET /v1/deliveries`.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    /// Only this app (always set for server keys).
    pub app_id: Option<String>,
    /// Only this notification.
    pub notification_id: Option<String>,
    /// Only this device.
    pub device_id: Option<String>,
    /// Only devices of this user.
    pub user_id: Option<String>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this platform.
    pub platform: Option<String>,
    /// Created at or after (ms).
    pub since: Option<i64>,
    /// Created before (ms).
    pub until: Option<i64>,
    /// Ids below this (the cursor).
    pub before_id: Option<i64>,
}

/// `column` (a JSON array as text, or NULL) with `v.attempt` appended when
/// there is one: text operations both dialects share, cheaper than parsing.
pub(crate) fn append_attempt(column: &str) -> String {
    format!(
        "CASE WHEN v.attempt IS NULL THEN {column} \
         ELSE COALESCE(RTRIM({column}, ']') || ',', '[') || v.attempt || ']' END"
    )
}

/// Statements every writer of delivery results shares: counts (tallies in
/// parameter `$tallies`) and dead tokens' devices (`$dead`, at `$now`).
pub(crate) struct ResultSql {
    pub(crate) count: String,
    pub(crate) deactivate: String,
}

impl ResultSql {
    pub(crate) fn new(d: &Dialect, tallies: usize, dead: usize, now: usize) -> Self {
        let tallies = d.json_records(
            tallies,
            &[
                ("notification_id", "text"),
                ("delivered", "bigint"),
                ("failed", "bigint"),
                ("expired", "bigint"),
                ("cancelled", "bigint"),
            ],
        );
        // `WHERE TRUE`: SQLite's upsert after a SELECT needs a WHERE (and
        // the fan-out's commit puts its own condition there).
        let count = format!(
            "INSERT INTO notification_counts (notification_id, delivered, failed, expired, cancelled) \
             SELECT v.notification_id, v.delivered, v.failed, v.expired, v.cancelled FROM {tallies} WHERE TRUE \
             ON CONFLICT (notification_id) DO UPDATE SET delivered = notification_counts.delivered + excluded.delivered, \
             failed = notification_counts.failed + excluded.failed, expired = notification_counts.expired + excluded.expired, \
             cancelled = notification_counts.cancelled + excluded.cancelled"
        );
        let dead_tokens = d.json_records(
            dead,
            &[("app_id", "text"), ("device_id", "text"), ("token", "text"), ("reason", "text"), ("since", "bigint")],
        );
        // Only the device that still has the dead token: it may have
        // registered a fresh one while the push was in flight. And not one
        // registered again after Apple's `timestamp` (whole seconds in
        // practice, hence the second of slack).
        let deactivate = format!(
            "UPDATE devices AS x SET active = FALSE, deactivated_reason = v.reason, updated_at = ${now} \
             FROM {dead_tokens} WHERE x.id = v.device_id AND x.app_id = v.app_id AND x.token = v.token AND x.active \
             AND (v.since IS NULL OR x.updated_at < v.since + 1000)"
        );
        Self { count, deactivate }
    }

    /// The counts statement, counting only when `condition` holds.
    pub(crate) fn count_if(&self, condition: &str) -> String {
        self.count.replacen("WHERE TRUE", &format!("WHERE {condition}"), 1)
    }
}

/// Final deliveries of one notification in a write-back.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Tally {
    notification_id: String,
    delivered: i64,
    failed: i64,
    expired: i64,
    cancelled: i64,
}

impl Tally {
    /// Tallies `(notification_id, new status)` pairs, sorted by id so that
    /// concurrent write-backs lock notifications in one order.
    pub(crate) fn of<'a>(changed: impl IntoIterator<Item = (&'a str, DeliveryStatus)>) -> Vec<Tally> {
        let mut by_id: std::collections::BTreeMap<&str, Tally> = std::collections::BTreeMap::new();
        for (id, status) in changed {
            let t = by_id.entry(id).or_insert_with(|| Tally { notification_id: id.to_string(), ..Tally::default() });
            match status {
                DeliveryStatus::Delivered => t.delivered += 1,
                DeliveryStatus::Failed => t.failed += 1,
                DeliveryStatus::Expired => t.expired += 1,
                DeliveryStatus::Cancelled => t.cancelled += 1,
                DeliveryStatus::Pending => {}
            }
        }
        by_id.into_values().filter(|t| t.delivered + t.failed + t.expired + t.cancelled > 0).collect()
    }
}

impl Store {
    /// Claims up to `limit` due deliveries in one short statement, committed
    /// before any provider call. The lease is `next_attempt_at` moved to
    /// `lease_until`: a claimed row leaves the due range, and comes back by
    /// itself when a crashed worker's lease runs out. Postgres skips rows
    /// another instance is claiming (`FOR UPDATE SKIP LOCKED`); SQLite has
    /// one writer.
    ///
    /// A row whose lease is still set was claimed by an instance that
    /// stopped before recording a result: its push may have reached the
    /// provider, so it counts as an attempt.
    pub async fn claim_deliveries(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<ClaimedDelivery>> {
        let lock = self.dialect().skip_locked();
        let sql = format!(
            "UPDATE deliveries SET lease_until = $2, next_attempt_at = $2, lease_owner = $4, \
             attempts = attempts + CASE WHEN lease_until IS NULL THEN 0 ELSE 1 END \
             WHERE (id, created_at) IN (SELECT id, created_at FROM deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3 {lock}) \
             RETURNING id, app_id, notification_id, device_id, platform, token, attempts, environment, status, created_at"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, ClaimedDelivery>(&sql)
            .bind(now).bind(lease_until).bind(limit).bind(self.owner()).fetch_all(p).await?))
    }

    /// Makes the leases this instance held before a restart due at once
    /// (deliveries) or free (fan-outs): nobody else holds them, so there is
    /// no need to wait for them to run out. Answers how many were taken back.
    pub async fn take_back_leases(&self, now: i64) -> StoreResult<u64> {
        let deliveries = "UPDATE deliveries SET next_attempt_at = $2 WHERE status = 'pending' AND lease_owner = $1 \
             AND lease_until IS NOT NULL AND next_attempt_at > $2";
        let fanouts = "UPDATE notifications SET fanout_lease_until = NULL, fanout_abandoned = TRUE \
             WHERE fanout_owner = $1 AND fanout_done = FALSE AND fanout_lease_until IS NOT NULL";
        Ok(on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let a = sqlx::query(deliveries).bind(self.owner()).bind(now).execute(&mut *tx).await?.rows_affected();
            let b = sqlx::query(fanouts).bind(self.owner()).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            a + b
        }))
    }

    /// Notifications whose deliveries are being sent become `sending`.
    pub async fn mark_sending(&self, ids: &[String], now: i64) -> StoreResult<()> {
        let sql = format!(
            "UPDATE notifications SET status = 'sending', updated_at = $1 WHERE status IN ('scheduled', 'queued') \
             AND {}",
            self.dialect().in_strings("id", 2)
        );
        let ids = serde_json::to_string(ids)?;
        on_pool!(self.pool(), p => sqlx::query(&sql).bind(now).bind(&ids).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Writes a batch of results back, moves the notifications' counts
    /// (completing those with nothing left), and deactivates dead tokens'
    /// devices. Only rows still pending change (a cancel may have finished
    /// them meanwhile), and only those are counted. Returns the
    /// notifications completed.
    ///
    /// On Postgres this is one statement, whose steps pass rows along as
    /// CTEs, so a batch costs one round trip instead of six (`BEGIN`, four
    /// statements, `COMMIT`): the send profile had the gateway's socket work
    /// with Postgres as a large share of its CPU. SQLite, whose statements
    /// cost no round trip and which has no data-modifying CTEs, runs the same
    /// steps as a transaction of up to four statements.
    pub async fn write_back(
        &self,
        updates: &[DeliveryUpdate],
        dead: &[DeadToken],
        now: i64,
    ) -> StoreResult<Vec<String>> {
        let d = self.dialect();
        let append = append_attempt("d.attempts_log");
        // What the update returns: SQLite's RETURNING reads only the updated
        // table, unqualified; Postgres needs `d.` where `v` has the same name.
        let update_deliveries = |results: &str, returning: &str| {
            format!(
                "UPDATE deliveries AS d SET status = v.next_status, attempts = d.attempts + v.inc, \
                 next_attempt_at = v.next_attempt_at, lease_until = NULL, \
                 provider_status = COALESCE(v.provider_status, d.provider_status), reason = v.reason, \
                 provider_message_id = v.provider_message_id, delivered_at = v.delivered_at, updated_at = $2, \
                 attempts_log = {append} \
                 FROM {results} WHERE d.id = v.id AND d.created_at = v.created_at AND d.status = 'pending' \
                 RETURNING {returning}"
            )
        };
        let dead_json = serde_json::to_string(dead)?;
        let completed = match self.pool() {
            Pool::Postgres(p) => {
                let shared = ResultSql::new(&d, 1, 3, 2);
                // `$1` ids, `$2` now, `$3` dead tokens, `$4` created_at, then the results.
                let columns = [&[("id", "bigint"), ("created_at", "bigint")], RESULT_COLUMNS].concat();
                let params: Vec<usize> = [1, 4].into_iter().chain(5..5 + RESULT_COLUMNS.len()).collect();
                let results = unnest(&params, &columns);
                let sql = format!(
                    "WITH changed AS ({update}), \
                     tally AS (SELECT notification_id, COUNT(*) FILTER (WHERE status = 'delivered') AS delivered, \
                     COUNT(*) FILTER (WHERE status = 'failed') AS failed, \
                     COUNT(*) FILTER (WHERE status = 'expired') AS expired, \
                     COUNT(*) FILTER (WHERE status = 'cancelled') AS cancelled FROM changed \
                     WHERE status IN ('delivered', 'failed', 'expired', 'cancelled') GROUP BY notification_id), \
                     counted AS (INSERT INTO notification_counts (notification_id, delivered, failed, expired, cancelled) \
                     SELECT notification_id, delivered, failed, expired, cancelled FROM tally ORDER BY notification_id \
                     ON CONFLICT (notification_id) DO UPDATE SET delivered = notification_counts.delivered + excluded.delivered, \
                     failed = notification_counts.failed + excluded.failed, expired = notification_counts.expired + excluded.expired, \
                     cancelled = notification_counts.cancelled + excluded.cancelled \
                     RETURNING notification_id, delivered + failed + expired + cancelled AS done), \
                     dead AS ({deactivate}), stats AS ({stats}) \
                     UPDATE notifications AS n SET status = 'completed', completed_at = $2, updated_at = $2 FROM counted c \
                     WHERE n.id = c.notification_id AND n.status IN ('queued', 'sending') AND n.fanout_done = TRUE \
                     AND n.delivered + n.failed + n.expired + n.cancelled + c.done >= n.targeted RETURNING n.id",
                    update = update_deliveries(&results, "d.notification_id, d.status, d.app_id, d.reason"),
                    deactivate = shared.deactivate,
                    stats = stats::count_changed_sql(2),
                );
                let ids: Vec<i64> = updates.iter().map(|u| u.id).collect();
                let created: Vec<i64> = updates.iter().map(|u| u.created_at).collect();
                let arrays = ResultArrays::of(updates.iter());
                let query = sqlx::query_scalar(&sql).bind(&ids).bind(now).bind(&dead_json).bind(&created);
                arrays.bind(query).fetch_all(p).await?
            }
            Pool::Sqlite(p) => {
                let shared = ResultSql::new(&d, 1, 1, 2);
                let results =
                    d.json_records(1, &[&[("id", "bigint"), ("created_at", "bigint")], RESULT_COLUMNS].concat());
                let complete = complete_sql(&format!("AND {}", d.in_strings("id", 2)));
                let mut tx = p.begin_write().await?;
                let changed: Vec<(String, DeliveryStatus, String, Option<String>)> =
                    sqlx::query_as(&update_deliveries(&results, "notification_id, status, app_id, reason"))
                        .bind(serde_json::to_string(updates)?)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await?;
                let tallies = Tally::of(changed.iter().map(|(id, status, ..)| (id.as_str(), *status)));
                let counted =
                    StatTally::of(now, changed.iter().map(|(_, s, app, r)| (app.as_str(), *s, r.as_deref(), 1)));
                if !counted.is_empty() {
                    sqlx::query(&stats::count_sql(&d, 1, "TRUE"))
                        .bind(serde_json::to_string(&counted)?)
                        .execute(&mut *tx)
                        .await?;
                }
                let mut completed = Vec::new();
                if !tallies.is_empty() {
                    sqlx::query(&shared.count).bind(serde_json::to_string(&tallies)?).execute(&mut *tx).await?;
                    let ids: Vec<&str> = tallies.iter().map(|t| t.notification_id.as_str()).collect();
                    completed = sqlx::query_scalar(&complete)
                        .bind(now)
                        .bind(serde_json::to_string(&ids)?)
                        .fetch_all(&mut *tx)
                        .await?;
                }
                if !dead.is_empty() {
                    sqlx::query(&shared.deactivate).bind(&dead_json).bind(now).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                completed
            }
        };
        Ok(completed)
    }

    /// Gives claimed deliveries back (shutdown before sending): due at once.
    pub async fn release_deliveries(&self, ids: &[i64], now: i64) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE deliveries SET lease_until = NULL, next_attempt_at = $1 WHERE status = 'pending' AND {}",
            self.dialect().in_ints("id", 2)
        );
        let ids = serde_json::to_string(ids)?;
        on_pool!(self.pool(), p => sqlx::query(&sql).bind(now).bind(&ids).execute(p).await?.rows_affected());
        Ok(())
    }

    /// When the earliest pending delivery is due (ms), if any.
    pub async fn next_due(&self) -> StoreResult<Option<i64>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'"
        ).fetch_one(p).await?))
    }

    /// Deliveries waiting, by kind.
    pub async fn queue_depth(&self, now: i64) -> StoreResult<QueueDepth> {
        let (all, scheduled, retrying): (i64, i64, i64) = on_pool!(self.pool(), p => sqlx::query_as(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN attempts = 0 AND lease_until IS NULL AND next_attempt_at > $1 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0) \
             FROM deliveries WHERE status = 'pending'"
        ).bind(now).fetch_one(p).await?);
        Ok(QueueDepth { pending: all - scheduled - retrying, scheduled, retrying })
    }

    /// `updated_at` of apps, which versions their credentials.
    pub async fn app_versions(&self, ids: &[String]) -> StoreResult<Vec<(String, i64)>> {
        let sql = format!("SELECT id, updated_at FROM apps WHERE {}", self.dialect().in_strings("id", 1));
        let ids = serde_json::to_string(ids)?;
        Ok(on_pool!(self.pool(), p => sqlx::query_as(&sql).bind(&ids).fetch_all(p).await?))
    }

    /// The delivery log, newest first, `limit` rows.
    pub async fn list_deliveries(&self, f: &DeliveryFilter, limit: i64) -> StoreResult<Vec<DeliveryRow>> {
        let mut q = Sql::new(
            "SELECT id, app_id, notification_id, device_id, platform, status, attempts, next_attempt_at, \
             provider_status, reason, provider_message_id, created_at, updated_at, delivered_at, attempts_log \
             FROM deliveries WHERE 1 = 1",
        );
        // Only the filters given become conditions, so each query can use its index.
        if let Some(v) = &f.app_id {
            q.push(" AND app_id = ").push_bind(v);
        }
        if let Some(v) = &f.notification_id {
            q.push(" AND notification_id = ").push_bind(v);
        }
        if let Some(v) = &f.device_id {
            q.push(" AND device_id = ").push_bind(v);
        }
        if let Some(v) = &f.user_id {
            q.push(" AND device_id IN (SELECT u.id FROM devices u WHERE u.user_id = ").push_bind(v).push(")");
        }
        if let Some(v) = f.status {
            q.push(" AND status = ").push_bind(v.as_str());
        }
        if let Some(v) = &f.platform {
            q.push(" AND platform = ").push_bind(v);
        }
        if let Some(v) = f.since {
            q.push(" AND created_at >= ").push_bind(v);
        }
        if let Some(v) = f.until {
            q.push(" AND created_at < ").push_bind(v);
        }
        if let Some(v) = f.before_id {
            q.push(" AND id < ").push_bind(v);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        Ok(on_pool!(self.pool(), p => q.query_as::<_, DeliveryRow>().fetch_all(p).await?))
    }
}
