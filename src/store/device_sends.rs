//! Single-device sends created in batches: many concurrent
//! `POST /v1/devices/{id}/notifications` become one transaction of two
//! multi-row inserts (group commit), instead of a transaction each.

use std::collections::HashMap;

use serde::Serialize;

use super::notifications::{Accepted, Providers};
use super::sql::{on_pool, unnest, BeginWrite, Pool};
use super::{ClaimedDelivery, NotificationStatus, Store, StoreResult};
use crate::domain::Target;

/// One single-device send, due now.
#[derive(Clone, Debug)]
pub struct NewDeviceSend {
    /// New notification id.
    pub id: String,
    /// Owning app.
    pub app_id: String,
    /// The device.
    pub device_id: String,
    /// JSON NotificationInfo.
    pub info: String,
    /// JSON DeliveryOptions.
    pub options: String,
    /// End of the TTL (ms).
    pub expires_at: Option<i64>,
    /// Its delivery is born claimed until then, for the caller to send.
    pub lease_until: Option<i64>,
}

/// What became of one send of a batch.
#[derive(Debug)]
pub enum DeviceSendResult {
    /// Stored and committed.
    Accepted(AcceptedSend),
    /// No such device in the app.
    NotFound,
    /// The app has no credentials for the device's platform.
    NoProvider(String),
}

/// A single-device send stored and committed.
#[derive(Debug)]
pub struct AcceptedSend {
    /// The first answer to the send.
    pub accepted: Accepted,
    /// Its delivery, when born claimed (see [`NewDeviceSend::lease_until`]).
    pub delivery: Option<ClaimedDelivery>,
    /// The app's credentials version (`updated_at`) to send it with.
    pub app_version: i64,
}

/// A targeted device with what its app can send to it.
#[derive(sqlx::FromRow)]
struct DeviceLookup {
    id: String,
    app_id: String,
    platform: String,
    token: String,
    environment: Option<String>,
    active: bool,
    /// The app has APNs credentials.
    apns: bool,
    /// The app has FCM credentials.
    fcm: bool,
    /// The app has a VAPID key.
    web_push: bool,
    /// The app's `updated_at`: its credentials' version.
    app_version: i64,
}

#[derive(Serialize)]
struct NotificationRecord<'a> {
    id: &'a str,
    app_id: &'a str,
    status: NotificationStatus,
    target: String,
    info: &'a str,
    options: &'a str,
    targeted: i64,
    expires_at: Option<i64>,
    completed_at: Option<i64>,
}

#[derive(Serialize)]
struct DeliveryRecord<'a> {
    app_id: &'a str,
    notification_id: &'a str,
    device_id: &'a str,
    platform: &'a str,
    token: &'a str,
    environment: Option<&'a str>,
    next_attempt_at: i64,
    lease_until: Option<i64>,
    /// This instance, when born leased.
    lease_owner: Option<&'a str>,
}

impl Store {
    /// Creates a batch of single-device sends in one transaction; answers
    /// in the order of `sends`. One read before it (the devices with their
    /// apps' providers), then the two inserts: on Postgres one statement
    /// (so no `BEGIN`/`COMMIT` round trips: the profile showed the batch's
    /// socket work as a tenth of the gateway's CPU), on SQLite, whose
    /// statements cost no round trip, a transaction of two.
    pub async fn create_device_sends(&self, sends: &[NewDeviceSend], now: i64) -> StoreResult<Vec<DeviceSendResult>> {
        let d = self.dialect();
        let device_ids: Vec<&str> = sends.iter().map(|s| s.device_id.as_str()).collect();
        let devices_sql = format!(
            "SELECT d.id, d.app_id, d.platform, d.token, d.environment, d.active, a.apns IS NOT NULL AS apns, \
             a.fcm IS NOT NULL AS fcm, a.web_push IS NOT NULL AS web_push, a.updated_at AS app_version FROM devices d JOIN apps a ON a.id = d.app_id \
             WHERE {}",
            d.in_strings("d.id", 1)
        );
        let notification_columns = [
            ("id", "text"),
            ("app_id", "text"),
            ("status", "text"),
            ("target", "text"),
            ("info", "text"),
            ("options", "text"),
            ("targeted", "bigint"),
            ("expires_at", "bigint"),
            ("completed_at", "bigint"),
        ];
        let delivery_columns = [
            ("app_id", "text"),
            ("notification_id", "text"),
            ("device_id", "text"),
            ("platform", "text"),
            ("token", "text"),
            ("environment", "text"),
            ("next_attempt_at", "bigint"),
            ("lease_until", "bigint"),
            ("lease_owner", "text"),
        ];
        // The rows' tables: Postgres reads one array per column (the
        // notifications' first at `$1`, the deliveries' at `$3`, the rest
        // from `$4`), SQLite JSON records (`$1` each, two statements).
        let (notifications, deliveries) = if matches!(self.pool(), Pool::Postgres(_)) {
            let n = [1].into_iter().chain(4..12);
            let dl = [3].into_iter().chain(12..20);
            (unnest(&n.collect::<Vec<_>>(), &notification_columns), unnest(&dl.collect::<Vec<_>>(), &delivery_columns))
        } else {
            (d.json_records(1, &notification_columns), d.json_records(1, &delivery_columns))
        };
        let notifications_sql = format!(
            "INSERT INTO notifications (id, app_id, status, target, info, options, targeted, send_at, expires_at, \
             fanout_done, fanned_out, created_at, updated_at, completed_at) \
             SELECT v.id, v.app_id, v.status, v.target, v.info, v.options, v.targeted, $2, v.expires_at, TRUE, 0, \
             $2, $2, v.completed_at FROM {notifications}"
        );
        let deliveries_sql = format!(
            "INSERT INTO deliveries (app_id, notification_id, device_id, platform, token, environment, status, \
             attempts, next_attempt_at, lease_until, lease_owner, created_at, updated_at) \
             SELECT v.app_id, v.notification_id, v.device_id, v.platform, v.token, v.environment, 'pending', 0, \
             v.next_attempt_at, v.lease_until, v.lease_owner, $2, $2 FROM {deliveries} \
             RETURNING id, app_id, notification_id, device_id, platform, token, attempts, environment, status, created_at"
        );

        let device_ids = serde_json::to_string(&device_ids)?;
        let devices: Vec<DeviceLookup> =
            on_pool!(self.pool(), p => sqlx::query_as(&devices_sql).bind(&device_ids).fetch_all(p).await?);
        let devices: HashMap<&str, &DeviceLookup> = devices.iter().map(|x| (x.id.as_str(), x)).collect();

        let mut results = Vec::with_capacity(sends.len());
        let mut notification_rows = Vec::new();
        let mut delivery_rows = Vec::new();
        for s in sends {
            let Some(device) = devices.get(s.device_id.as_str()).filter(|x| x.app_id == s.app_id) else {
                results.push(DeviceSendResult::NotFound);
                continue;
            };
            let app_version = device.app_version;
            let has_provider =
                Providers { apns: device.apns, fcm: device.fcm, web_push: device.web_push }.reach(&device.platform);
            if device.active && !has_provider {
                results.push(DeviceSendResult::NoProvider(device.platform.clone()));
                continue;
            }
            let targeted = i64::from(device.active);
            let status = if device.active { NotificationStatus::Queued } else { NotificationStatus::Completed };
            notification_rows.push(NotificationRecord {
                id: &s.id,
                app_id: &s.app_id,
                status,
                target: serde_json::to_string(&Target::DeviceIds(vec![s.device_id.clone()]))?,
                info: &s.info,
                options: &s.options,
                targeted,
                expires_at: s.expires_at,
                completed_at: (!device.active).then_some(now),
            });
            if device.active {
                delivery_rows.push(DeliveryRecord {
                    app_id: &s.app_id,
                    notification_id: &s.id,
                    device_id: &device.id,
                    platform: &device.platform,
                    token: &device.token,
                    environment: device.environment.as_deref(),
                    next_attempt_at: s.lease_until.unwrap_or(now),
                    lease_until: s.lease_until,
                    lease_owner: s.lease_until.map(|_| self.owner()),
                });
            }
            let accepted = Accepted { id: s.id.clone(), status, targeted };
            results.push(DeviceSendResult::Accepted(AcceptedSend { accepted, delivery: None, app_version }));
        }
        if notification_rows.is_empty() {
            return Ok(results);
        }
        let born: Vec<ClaimedDelivery> = match self.pool() {
            Pool::Postgres(p) => {
                // A data-modifying CTE runs to completion even unreferenced,
                // and the deliveries' foreign keys are checked at the end of
                // the statement, when their notifications exist.
                let both = format!("WITH n AS ({notifications_sql}) {deliveries_sql}");
                let ns = &notification_rows;
                let ds = &delivery_rows;
                sqlx::query_as(&both)
                    .bind(ns.iter().map(|r| r.id).collect::<Vec<_>>())
                    .bind(now)
                    .bind(ds.iter().map(|r| r.app_id).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.app_id).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.target.as_str()).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.info).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.options).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.targeted).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.expires_at).collect::<Vec<_>>())
                    .bind(ns.iter().map(|r| r.completed_at).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.notification_id).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.device_id).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.platform).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.token).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.environment).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.lease_until).collect::<Vec<_>>())
                    .bind(ds.iter().map(|r| r.lease_owner).collect::<Vec<_>>())
                    .fetch_all(p)
                    .await?
            }
            Pool::Sqlite(p) => {
                let notifications_json = serde_json::to_string(&notification_rows)?;
                let deliveries_json = serde_json::to_string(&delivery_rows)?;
                let mut tx = p.begin_write().await?;
                sqlx::query(&notifications_sql).bind(&notifications_json).bind(now).execute(&mut *tx).await?;
                let born = if delivery_rows.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query_as(&deliveries_sql).bind(&deliveries_json).bind(now).fetch_all(&mut *tx).await?
                };
                tx.commit().await?;
                born
            }
        };
        let mut born: HashMap<String, ClaimedDelivery> =
            born.into_iter().map(|r| (r.notification_id.clone(), r)).collect();
        for (r, s) in results.iter_mut().zip(sends) {
            if let DeviceSendResult::Accepted(sent) = r {
                if s.lease_until.is_some() {
                    sent.delivery = born.remove(&s.id);
                }
            }
        }
        Ok(results)
    }
}
