//! Notifications: created durably with their target (and, for explicit
//! targets, their deliveries) in one transaction; read, cancelled, completed.

use super::filters;
use super::sql::{bind_args, on_pool, Arg, BeginWrite, Dialect, Sql};
use super::stats::{self, StatTally};
use super::{ClaimedDelivery, DeliveryStatus, NotificationStatus, Store, StoreError, StoreResult};
use crate::domain::Target;

/// A stored notification.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct NotificationRow {
    /// Notification id.
    pub id: String,
    /// Owning app.
    pub app_id: String,
    /// Where it is.
    pub status: NotificationStatus,
    /// JSON of the target.
    pub target: String,
    /// JSON NotificationInfo.
    pub info: String,
    /// JSON DeliveryOptions.
    pub options: String,
    /// Devices targeted (exact once fan-out is done).
    pub targeted: i64,
    /// When sending starts (ms).
    pub send_at: i64,
    /// End of the TTL (ms).
    pub expires_at: Option<i64>,
    /// Whether every delivery row exists.
    pub fanout_done: bool,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// When the last delivery reached a final state (ms).
    pub completed_at: Option<i64>,
    /// Deliveries delivered.
    pub delivered: i64,
    /// Deliveries failed.
    pub failed: i64,
    /// Deliveries expired.
    pub expired: i64,
    /// Deliveries cancelled.
    pub cancelled: i64,
    /// `options.local_time` (`HH:MM`), kept apart from the providers' options.
    pub local_time: Option<String>,
}

/// Notifications `n` with their counts: the owner's (on the row) plus the
/// workers' (`notification_counts`).
const SELECT: &str = "SELECT n.id, n.app_id, n.status, n.target, n.info, n.options, n.targeted, n.send_at, \
     n.expires_at, n.fanout_done, n.created_at, n.updated_at, n.completed_at, \
     n.delivered + COALESCE(c.delivered, 0) AS delivered, n.failed + COALESCE(c.failed, 0) AS failed, \
     n.expired + COALESCE(c.expired, 0) AS expired, n.cancelled + COALESCE(c.cancelled, 0) AS cancelled, \
     n.local_time FROM notifications n LEFT JOIN notification_counts c ON c.notification_id = n.id";

/// Completes the unfinished notifications (`$1` now) that are fanned out
/// and have every delivery final, among those `only` selects. A row that
/// does not qualify is not locked (an update of it would wait on the fan-out).
pub(crate) fn complete_sql(only: &str) -> String {
    format!(
        "UPDATE notifications SET status = 'completed', completed_at = $1, updated_at = $1 \
         WHERE status IN ('queued', 'sending') AND fanout_done = TRUE {only} \
         AND delivered + failed + expired + cancelled + COALESCE((SELECT c.delivered + c.failed + c.expired + c.cancelled \
         FROM notification_counts c WHERE c.notification_id = notifications.id), 0) >= targeted \
         RETURNING id"
    )
}

/// What creating a notification takes.
#[derive(Debug)]
pub struct NewNotification<'a> {
    /// New id.
    pub id: &'a str,
    /// Owning app.
    pub app_id: &'a str,
    /// The target.
    pub target: &'a Target,
    /// JSON NotificationInfo.
    pub info: &'a str,
    /// JSON DeliveryOptions.
    pub options: &'a str,
    /// When sending starts (ms).
    pub send_at: i64,
    /// End of the TTL (ms).
    pub expires_at: Option<i64>,
    /// Which providers the app has credentials for.
    pub providers: Providers,
    /// `Idempotency-Key` and the hash of the request.
    pub idempotency: Option<(&'a str, &'a str)>,
    /// Deliveries of an explicit target due now are born claimed until then.
    pub lease_until: Option<i64>,
    /// `HH:MM`: a fan-out target's devices are each sent at that local time.
    pub local_time: Option<&'a str>,
    /// Now (ms).
    pub now: i64,
}

/// The first answer to a send.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    /// Notification id.
    pub id: String,
    /// `queued`, `scheduled` or (nothing to send) `completed`.
    pub status: NotificationStatus,
    /// Devices targeted.
    pub targeted: i64,
}

/// Which providers an app has credentials for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Providers {
    /// APNs (iOS).
    pub apns: bool,
    /// FCM (Android).
    pub fcm: bool,
    /// Web Push (browsers): a VAPID key.
    pub web_push: bool,
}

impl Providers {
    /// The providers of `app`.
    pub fn of(app: &super::AppRow) -> Self {
        Self { apns: app.apns.is_some(), fcm: app.fcm.is_some(), web_push: app.web_push.is_some() }
    }

    /// Whether a device of `platform` can be sent to.
    pub fn has(self, platform: crate::domain::Platform) -> bool {
        match platform {
            crate::domain::Platform::Ios => self.apns,
            crate::domain::Platform::Android => self.fcm,
            crate::domain::Platform::Web => self.web_push,
        }
    }

    /// Whether a device of `platform` (its stored name) can be sent to.
    pub fn reach(self, platform: &str) -> bool {
        match platform {
            "ios" => self.apns,
            "android" => self.fcm,
            "web" => self.web_push,
            _ => false,
        }
    }
}

/// What became of a create.
#[derive(Debug)]
pub enum Created {
    /// Stored and committed, with the deliveries born claimed (see
    /// [`NewNotification::lease_until`]).
    New(Accepted, Vec<ClaimedDelivery>),
    /// The idempotency key was used before with the same request.
    Replayed(Accepted),
    /// The idempotency key was used before with another request.
    KeyReused,
    /// A device id or group of the target does not exist.
    NotFound(&'static str),
    /// None of the targeted devices' platforms has credentials.
    NoProvider(Vec<String>),
}

/// Whether group `$2` of app `$1` has a member (an unknown group is a 404).
pub(super) const GROUP_EXISTS: &str = "SELECT 1 FROM device_groups WHERE app_id = $1 AND name = $2 LIMIT 1";

/// Idempotency keys are remembered this long.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// `status, reason` of a new delivery of platform `col`: failed with
/// `no_provider` when the app has no credentials for it (`$a`, `$f`, `$w`
/// are the APNs, FCM and Web Push flags).
pub(crate) fn initial_status(col: &str, a: usize, f: usize, w: usize) -> String {
    let ok = format!("(({col} = 'ios' AND ${a}) OR ({col} = 'android' AND ${f}) OR ({col} = 'web' AND ${w}))");
    format!("CASE WHEN {ok} THEN 'pending' ELSE 'failed' END, CASE WHEN {ok} THEN NULL ELSE 'no_provider' END")
}

/// Where and how the fan-out of a group, user, filter or `all` target reads
/// the registry: `FROM … WHERE …` over active devices `d`, ordered by `key`.
/// `$1` is the app id; the target's own values are `args`, bound from `$p` on.
pub(crate) struct FanoutSource {
    /// `FROM … WHERE …`.
    pub(crate) sql: String,
    /// The column the fan-out's cursor walks.
    pub(crate) key: &'static str,
    /// The target's values, for `$p`….
    pub(crate) args: Vec<Arg>,
}

/// The [`FanoutSource`] of `target`; filter ages count back from `now`.
pub(crate) fn fanout_source(target: &Target, d: &Dialect, p: usize, now: i64) -> StoreResult<FanoutSource> {
    let active = "FROM devices d WHERE d.app_id = $1 AND d.active = TRUE";
    Ok(match target {
        Target::Group(name) => FanoutSource {
            sql: format!(
                "FROM device_groups g JOIN devices d ON d.id = g.device_id \
                 WHERE g.app_id = $1 AND g.name = ${p} AND d.active = TRUE"
            ),
            key: "g.device_id",
            args: vec![Arg::from(name)],
        },
        Target::UserIds(ids) => FanoutSource {
            sql: format!("{active} AND {}", d.in_strings("d.user_id", p)),
            key: "d.id",
            args: vec![Arg::Text(serde_json::to_string(ids)?)],
        },
        Target::Groups(names) => FanoutSource {
            sql: format!(
                "{active} AND EXISTS (SELECT 1 FROM device_groups m WHERE m.app_id = d.app_id \
                 AND m.device_id = d.id AND {})",
                d.in_strings("m.name", p)
            ),
            key: "d.id",
            args: vec![Arg::Text(serde_json::to_string(names)?)],
        },
        Target::Filters(filter) => {
            let mut q = Sql::after(p - 1);
            filters::push(&mut q, d, filter, now);
            FanoutSource { sql: format!("{active} AND {}", q.text()), key: "d.id", args: q.args().to_vec() }
        }
        Target::All(_) | Target::DeviceIds(_) | Target::Tokens(_) => {
            FanoutSource { sql: active.to_string(), key: "d.id", args: Vec::new() }
        }
    })
}

/// The statements of an explicit target (`device_ids`, `tokens`): the
/// notification inserted with its counts and status computed from the
/// target, then its deliveries. Both take `$1` app, `$2` id, `$3`/`$4` the
/// APNs/FCM flags and `$7` the JSON list; the notification `$5` now, `$6`
/// target, `$8` info, `$9` options, `$10` send_at, `$11` expires_at, `$12`
/// the Web Push flag; the deliveries `$5` next attempt, `$6` now, `$8`
/// lease, `$9` the Web Push flag.
struct ExplicitSql {
    list: String,
    insert_notification: String,
    insert_deliveries: String,
    count_devices: String,
}

impl ExplicitSql {
    fn new(target: &Target, d: &Dialect) -> StoreResult<Option<Self>> {
        let (list, from, active, device_id, environment) = match target {
            Target::DeviceIds(ids) => (
                serde_json::to_string(ids)?,
                format!("FROM devices d WHERE d.app_id = $1 AND {}", d.in_strings("d.id", 7)),
                "d.active",
                "d.id",
                "d.environment",
            ),
            Target::Tokens(tokens) => (
                serde_json::to_string(tokens)?,
                format!("FROM {} WHERE TRUE", d.json_records_as(7, &[("platform", "text"), ("token", "text")], "d")),
                "TRUE",
                "(SELECT x.id FROM devices x WHERE x.app_id = $1 AND x.platform = d.platform AND x.token = d.token)",
                // A raw token of a registered device goes to its device's host.
                "(SELECT x.environment FROM devices x WHERE x.app_id = $1 AND x.platform = d.platform \
                 AND x.token = d.token)",
            ),
            _ => return Ok(None),
        };
        let ok = "((d.platform = 'ios' AND $3) OR (d.platform = 'android' AND $4) OR (d.platform = 'web' AND $12))";
        let insert_notification = format!(
            "INSERT INTO notifications (id, app_id, status, target, info, options, targeted, failed, send_at, \
             expires_at, fanout_done, fanned_out, created_at, updated_at, completed_at) \
             SELECT $2, $1, CASE WHEN $10 > $5 THEN 'scheduled' WHEN t.targeted = 0 THEN 'completed' ELSE 'queued' END, \
             $6, $8, $9, t.targeted, t.targeted - t.sendable, $10, $11, TRUE, 0, $5, $5, \
             CASE WHEN t.targeted = 0 AND $10 <= $5 THEN $5 ELSE NULL END \
             FROM (SELECT COALESCE(SUM(CASE WHEN {active} THEN 1 ELSE 0 END), 0) AS targeted, \
             COALESCE(SUM(CASE WHEN {active} AND {ok} THEN 1 ELSE 0 END), 0) AS sendable {from}) t \
             RETURNING targeted, failed, status"
        );
        let insert_deliveries = format!(
            "INSERT INTO deliveries (app_id, notification_id, device_id, platform, token, environment, status, reason, \
             attempts, next_attempt_at, lease_until, lease_owner, created_at, updated_at) \
             SELECT $1, $2, {device_id}, d.platform, d.token, {environment}, {}, 0, $5, $8, \
             CASE WHEN $8 IS NULL THEN NULL ELSE $10 END, $6, $6 {from} AND {active} \
             RETURNING id, app_id, notification_id, device_id, platform, token, attempts, environment, status, created_at",
            initial_status("d.platform", 3, 4, 9),
        );
        let count_devices = format!("SELECT COUNT(*) FROM devices WHERE app_id = $1 AND {}", d.in_strings("id", 2));
        Ok(Some(Self { list, insert_notification, insert_deliveries, count_devices }))
    }
}

impl Store {
    /// Stores a notification, its idempotency key, and for explicit targets
    /// its deliveries, in one transaction: nothing is acknowledged that is
    /// not committed. With `lease_until`, the deliveries of an explicit target
    /// are born claimed by the caller, who sends them without a claim.
    pub async fn create_notification(&self, n: &NewNotification<'_>) -> StoreResult<Created> {
        let d = self.dialect();
        let target_json = serde_json::to_string(n.target)?;
        let status = if n.send_at > n.now { NotificationStatus::Scheduled } else { NotificationStatus::Queued };
        let claim_key = "INSERT INTO idempotency_keys (app_id, key, request_hash, notification_id, response, created_at) \
             VALUES ($1, $2, $3, $4, '', $5) ON CONFLICT (app_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             notification_id = excluded.notification_id, response = excluded.response, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < $6";
        let explicit = ExplicitSql::new(n.target, &d)?;
        let source = fanout_source(n.target, &d, 2, n.send_at.max(n.now))?;
        let insert_notification =
            "INSERT INTO notifications (id, app_id, status, target, info, options, targeted, send_at, \
             expires_at, fanout_done, fanned_out, created_at, updated_at, local_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $10, $7, $8, FALSE, 0, $9, $9, $11)";
        let count_source = format!("SELECT d.platform, COUNT(*) {} GROUP BY d.platform", source.sql);
        let lease = n.lease_until.filter(|_| status == NotificationStatus::Queued);

        let result: Result<(Accepted, Vec<ClaimedDelivery>), Created> = on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let decided: Result<(Accepted, Vec<ClaimedDelivery>), Created> = 'tx: {
                if let Some((key, hash)) = n.idempotency {
                    let claimed = sqlx::query(claim_key).bind(n.app_id).bind(key).bind(hash).bind(n.id).bind(n.now)
                        .bind(n.now - IDEMPOTENCY_WINDOW_MS).execute(&mut *tx).await?.rows_affected();
                    if claimed == 0 {
                        break 'tx Err(Created::KeyReused);
                    }
                }
                let (accepted, born) = if let Some(x) = &explicit {
                    // Counts and status computed by the insert itself: no
                    // count query, no update afterwards.
                    let (targeted, failed, stored_status): (i64, i64, NotificationStatus) = sqlx::query_as(&x.insert_notification)
                        .bind(n.app_id).bind(n.id).bind(n.providers.apns).bind(n.providers.fcm).bind(n.now)
                        .bind(&target_json).bind(x.list.as_str()).bind(n.info).bind(n.options).bind(n.send_at)
                        .bind(n.expires_at).bind(n.providers.web_push)
                        .fetch_one(&mut *tx).await?;
                    let wanted = n.target.explicit_len();
                    if matches!(n.target, Target::DeviceIds(_)) && (targeted as usize) < wanted {
                        // Some are inactive, or unknown: only unknown is an error.
                        let found: i64 = sqlx::query_scalar(&x.count_devices).bind(n.app_id).bind(x.list.as_str())
                            .fetch_one(&mut *tx).await?;
                        if (found as usize) < wanted {
                            break 'tx Err(Created::NotFound("device"));
                        }
                    }
                    let rows: Vec<ClaimedDelivery> = sqlx::query_as(&x.insert_deliveries)
                        .bind(n.app_id).bind(n.id).bind(n.providers.apns).bind(n.providers.fcm)
                        .bind(lease.unwrap_or(n.send_at.max(n.now))).bind(n.now).bind(x.list.as_str()).bind(lease)
                        .bind(n.providers.web_push).bind(self.owner()).fetch_all(&mut *tx).await?;
                    if targeted > 0 && failed == targeted {
                        let mut platforms: Vec<String> = rows.iter().map(|r| r.platform.clone()).collect();
                        platforms.sort();
                        platforms.dedup();
                        break 'tx Err(Created::NoProvider(platforms));
                    }
                    // Deliveries born failed (no provider) count in the stats as they are recorded.
                    let unsent = rows.iter().filter(|r| r.status == DeliveryStatus::Failed).count() as i64;
                    if unsent > 0 {
                        let counted = StatTally::of(n.now, [(n.app_id, DeliveryStatus::Failed, Some("no_provider"), unsent)]);
                        sqlx::query(&stats::count_sql(&d, 1, "TRUE")).bind(serde_json::to_string(&counted)?).execute(&mut *tx).await?;
                    }
                    let born = if lease.is_some() { rows.into_iter().filter(|r| r.status == DeliveryStatus::Pending).collect() }
                        else { Vec::new() };
                    (Accepted { id: n.id.to_string(), status: stored_status, targeted }, born)
                } else {
                    if let Target::Group(name) = n.target {
                        let exists: Option<i32> = sqlx::query_scalar(GROUP_EXISTS)
                            .bind(n.app_id).bind(name).fetch_optional(&mut *tx).await?;
                        if exists.is_none() {
                            break 'tx Err(Created::NotFound("group"));
                        }
                    }
                    // An estimate until the fan-out is done.
                    let per_platform: Vec<(String, i64)> =
                        bind_args(sqlx::query_as(&count_source).bind(n.app_id), &source.args).fetch_all(&mut *tx).await?;
                    let targeted: i64 = per_platform.iter().map(|(_, c)| c).sum();
                    if targeted > 0 && !per_platform.iter().any(|(pl, _)| n.providers.reach(pl)) {
                        break 'tx Err(Created::NoProvider(per_platform.into_iter().map(|(pl, _)| pl).collect()));
                    }
                    sqlx::query(insert_notification).bind(n.id).bind(n.app_id).bind(status).bind(&target_json)
                        .bind(n.info).bind(n.options).bind(n.send_at).bind(n.expires_at).bind(n.now)
                        .bind(targeted).bind(n.local_time).execute(&mut *tx).await?;
                    (Accepted { id: n.id.to_string(), status, targeted }, Vec::new())
                };
                if let Some((key, _)) = n.idempotency {
                    sqlx::query("UPDATE idempotency_keys SET response = $3 WHERE app_id = $1 AND key = $2")
                        .bind(n.app_id).bind(key).bind(serde_json::to_string(&accepted)?)
                        .execute(&mut *tx).await?;
                }
                Ok((accepted, born))
            };
            if decided.is_ok() {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            decided
        });
        match result {
            Ok((accepted, born)) => Ok(Created::New(accepted, born)),
            Err(Created::KeyReused) => self.replay(n.app_id, n.idempotency).await,
            Err(other) => Ok(other),
        }
    }

    /// The answer to a retried request whose idempotency key is known.
    async fn replay(&self, app_id: &str, idempotency: Option<(&str, &str)>) -> StoreResult<Created> {
        let Some((key, hash)) = idempotency else { return Ok(Created::KeyReused) };
        let row: Option<(String, String)> = on_pool!(self.pool(), p => sqlx::query_as(
            "SELECT request_hash, response FROM idempotency_keys WHERE app_id = $1 AND key = $2"
        ).bind(app_id).bind(key).fetch_optional(p).await?);
        match row {
            Some((stored, response)) if stored == hash && !response.is_empty() => {
                Ok(Created::Replayed(serde_json::from_str(&response)?))
            }
            _ => Ok(Created::KeyReused),
        }
    }

    /// `app_id`'s notifications, newest first (ids are UUIDv7), those
    /// with an id below `before`, `limit` rows.
    pub async fn list_notifications(
        &self,
        app_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<NotificationRow>> {
        let sql = format!("{SELECT} WHERE n.app_id = $1 AND ($2 IS NULL OR n.id < $2) ORDER BY n.id DESC LIMIT $3");
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, NotificationRow>(&sql).bind(app_id).bind(before)
            .bind(limit).fetch_all(p).await?))
    }

    /// Reads a notification of `app_id`.
    pub async fn notification(&self, app_id: &str, id: &str) -> StoreResult<Option<NotificationRow>> {
        let sql = format!("{SELECT} WHERE n.id = $1 AND n.app_id = $2");
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, NotificationRow>(&sql).bind(id).bind(app_id)
            .fetch_optional(p).await?))
    }

    /// Notifications by id (any app), for the workers.
    pub async fn notifications_by_ids(&self, ids: &[String]) -> StoreResult<Vec<NotificationRow>> {
        let d = self.dialect();
        let sql = format!("{SELECT} WHERE {}", d.in_strings("n.id", 1));
        let ids = serde_json::to_string(ids)?;
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, NotificationRow>(&sql).bind(&ids).fetch_all(p).await?))
    }

    /// Per-device results of a notification (`wait=true`), oldest first.
    pub async fn delivery_results(&self, notification_id: &str, limit: i64) -> StoreResult<Vec<DeliveryResult>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, DeliveryResult>(
            "SELECT device_id, platform, token, status, reason FROM deliveries WHERE notification_id = $1 ORDER BY id LIMIT $2"
        ).bind(notification_id).bind(limit).fetch_all(p).await?))
    }

    /// Cancels what has not been sent: the notification, its fan-out, and its
    /// pending deliveries that no worker holds (held ones finish as they
    /// are). `Err(Conflict)` once completed; `Ok(None)` when unknown.
    pub async fn cancel_notification(&self, app_id: &str, id: &str, now: i64) -> StoreResult<Option<()>> {
        let outcome: Result<(), Option<NotificationStatus>> = on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE notifications SET status = 'cancelled', updated_at = $3, completed_at = $3, \
                 targeted = CASE WHEN fanout_done THEN targeted ELSE fanned_out END, fanout_done = TRUE \
                 WHERE id = $1 AND app_id = $2 AND status IN ('scheduled', 'queued', 'sending')"
            ).bind(id).bind(app_id).bind(now).execute(&mut *tx).await?.rows_affected();
            if changed == 1 {
                let cancelled = sqlx::query(
                    "UPDATE deliveries SET status = 'cancelled', updated_at = $2, next_attempt_at = $2 \
                     WHERE notification_id = $1 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $2)"
                ).bind(id).bind(now).execute(&mut *tx).await?.rows_affected();
                sqlx::query("UPDATE notifications SET cancelled = cancelled + $2 WHERE id = $1")
                    .bind(id).bind(cancelled as i64).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            } else {
                let status: Option<NotificationStatus> = sqlx::query_scalar(
                    "SELECT status FROM notifications WHERE id = $1 AND app_id = $2"
                ).bind(id).bind(app_id).fetch_optional(&mut *tx).await?;
                tx.rollback().await?;
                Err(status)
            }
        });
        match outcome {
            Ok(()) => Ok(Some(())),
            Err(None) => Ok(None),
            Err(Some(NotificationStatus::Cancelled)) => Ok(Some(())),
            Err(Some(status)) => Err(StoreError::Conflict(format!("the notification is already {status}"))),
        }
    }

    /// Marks notifications completed once fanned out with nothing pending.
    /// The write-back completes notifications as it counts; this serves a
    /// fan-out that ends with nothing left to send, and (`ids = None`) sweeps
    /// every unfinished one as a safety net.
    pub async fn complete_notifications(&self, ids: Option<&[String]>, now: i64) -> StoreResult<u64> {
        let d = self.dialect();
        let only = if ids.is_some() { format!("AND {}", d.in_strings("id", 2)) } else { String::new() };
        let sql = complete_sql(&only);
        let ids = ids.map(serde_json::to_string).transpose()?;
        Ok(on_pool!(self.pool(), p => {
            let mut q = sqlx::query(&sql).bind(now);
            if let Some(ids) = &ids {
                q = q.bind(ids);
            }
            q.fetch_all(p).await?.len() as u64
        }))
    }

    /// Scheduled notifications whose time has come become `queued`.
    pub async fn promote_scheduled(&self, now: i64) -> StoreResult<u64> {
        Ok(on_pool!(self.pool(), p => sqlx::query(
            "UPDATE notifications SET status = 'queued', updated_at = $1 WHERE status = 'scheduled' AND send_at <= $1"
        ).bind(now).execute(p).await?.rows_affected()))
    }

    /// Forgets idempotency keys older than the 24 h window.
    pub async fn prune_idempotency_keys(&self, now: i64) -> StoreResult<u64> {
        Ok(on_pool!(self.pool(), p => sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(now - IDEMPOTENCY_WINDOW_MS).execute(p).await?.rows_affected()))
    }

    /// Up to `limit` notifications finished (completed or cancelled) before
    /// `before`, oldest first: what retention removes.
    pub async fn expired_notifications(&self, before: i64, limit: i64) -> StoreResult<Vec<String>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT id FROM notifications WHERE completed_at IS NOT NULL AND completed_at < $1 \
             AND status IN ('completed', 'cancelled') ORDER BY completed_at LIMIT $2"
        ).bind(before).bind(limit).fetch_all(p).await?))
    }

    /// Removes up to `batch` delivery log rows of notification `id`, and the
    /// notification itself once none are left; true when it is gone. Small
    /// statements keep locks and the SQLite writer short.
    pub async fn prune_notification(&self, id: &str, batch: i64) -> StoreResult<bool> {
        let removed = on_pool!(self.pool(), p => sqlx::query(
            // With `created_at` the partitioned log (Postgres) finds each row in its day's partition only.
            "DELETE FROM deliveries WHERE (id, created_at) IN \
             (SELECT id, created_at FROM deliveries WHERE notification_id = $1 LIMIT $2)"
        ).bind(id).bind(batch).execute(p).await?.rows_affected());
        if removed as i64 >= batch {
            return Ok(false);
        }
        on_pool!(self.pool(), p => sqlx::query("DELETE FROM notifications WHERE id = $1")
            .bind(id).execute(p).await?.rows_affected());
        Ok(true)
    }
}

/// One device's result (`wait=true`).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryResult {
    /// Registered device, if any.
    pub device_id: Option<String>,
    /// `ios` / `android`.
    pub platform: String,
    /// The token sent to.
    pub token: String,
    /// Final (or current) status.
    pub status: DeliveryStatus,
    /// Provider reason.
    pub reason: Option<String>,
}
