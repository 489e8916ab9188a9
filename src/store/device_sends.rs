//! Single-device sends created in batches: many concurrent
//! `POST /v1/devices/{id}/notifications` become one transaction of two
//! multi-row inserts (group commit), instead of a transaction each.

use std::collections::HashMap;

use serde::Serialize;

use super::notifications::{Accepted, Dialect};
use super::{on_pool, BeginWrite, ClaimedDelivery, Store, StoreResult};
use crate::delivery::target::Target;

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
    /// Stored and committed, with its delivery when born claimed, and the
    /// app's credentials version (`updated_at`) to send it with.
    Accepted(Accepted, Option<ClaimedDelivery>, i64),
    /// No such device in the app.
    NotFound,
    /// The app has no credentials for the device's platform.
    NoProvider(String),
}

/// An app's providers: id, APNs configured, FCM configured, `updated_at`.
type AppProviders = (String, bool, bool, i64);

#[derive(sqlx::FromRow)]
struct DeviceLookup {
    id: String,
    app_id: String,
    platform: String,
    token: String,
    active: bool,
}

#[derive(Serialize)]
struct NotificationRecord<'a> {
    id: &'a str,
    app_id: &'a str,
    status: &'static str,
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
    next_attempt_at: i64,
    lease_until: Option<i64>,
}

impl Store {
    /// Creates a batch of single-device sends in one transaction; answers
    /// in the order of `sends`. Two reads before it (the apps' providers,
    /// the devices), two inserts in it.
    pub async fn create_device_sends(&self, sends: &[NewDeviceSend], now: i64) -> StoreResult<Vec<DeviceSendResult>> {
        let d = Dialect::of(self.pool());
        let app_ids: Vec<&str> = sends.iter().map(|s| s.app_id.as_str()).collect();
        let device_ids: Vec<&str> = sends.iter().map(|s| s.device_id.as_str()).collect();
        let apps_sql = format!(
            "SELECT id, apns IS NOT NULL, fcm IS NOT NULL, updated_at FROM apps WHERE {}",
            d.in_strings("id", 1)
        );
        let devices_sql =
            format!("SELECT id, app_id, platform, token, active FROM devices WHERE {}", d.in_strings("id", 1));
        let notifications = d.json_records(
            1,
            &[
                ("id", "text"),
                ("app_id", "text"),
                ("status", "text"),
                ("target", "text"),
                ("info", "text"),
                ("options", "text"),
                ("targeted", "bigint"),
                ("expires_at", "bigint"),
                ("completed_at", "bigint"),
            ],
        );
        let insert_notifications = format!(
            "INSERT INTO notifications (id, app_id, status, target, info, options, targeted, send_at, expires_at, \
             fanout_done, fanned_out, created_at, updated_at, completed_at) \
             SELECT v.id, v.app_id, v.status, v.target, v.info, v.options, v.targeted, $2, v.expires_at, TRUE, 0, \
             $2, $2, v.completed_at FROM {notifications}"
        );
        let deliveries = d.json_records(
            1,
            &[
                ("app_id", "text"),
                ("notification_id", "text"),
                ("device_id", "text"),
                ("platform", "text"),
                ("token", "text"),
                ("next_attempt_at", "bigint"),
                ("lease_until", "bigint"),
            ],
        );
        let insert_deliveries = format!(
            "INSERT INTO deliveries (app_id, notification_id, device_id, platform, token, status, attempts, \
             next_attempt_at, lease_until, created_at, updated_at) \
             SELECT v.app_id, v.notification_id, v.device_id, v.platform, v.token, 'pending', 0, v.next_attempt_at, \
             v.lease_until, $2, $2 FROM {deliveries} \
             RETURNING id, app_id, notification_id, device_id, platform, token, attempts, status"
        );

        let app_ids = serde_json::to_string(&app_ids)?;
        let device_ids = serde_json::to_string(&device_ids)?;
        let (apps, devices): (Vec<AppProviders>, Vec<DeviceLookup>) = on_pool!(self.pool(), p => (
            sqlx::query_as(&apps_sql).bind(&app_ids).fetch_all(p).await?,
            sqlx::query_as(&devices_sql).bind(&device_ids).fetch_all(p).await?,
        ));
        let providers: HashMap<&str, (bool, bool, i64)> =
            apps.iter().map(|(id, apns, fcm, version)| (id.as_str(), (*apns, *fcm, *version))).collect();
        let devices: HashMap<&str, &DeviceLookup> = devices.iter().map(|x| (x.id.as_str(), x)).collect();

        let mut results = Vec::with_capacity(sends.len());
        let mut notification_rows = Vec::new();
        let mut delivery_rows = Vec::new();
        for s in sends {
            let Some(device) = devices.get(s.device_id.as_str()).filter(|x| x.app_id == s.app_id) else {
                results.push(DeviceSendResult::NotFound);
                continue;
            };
            let (apns, fcm, app_version) = providers.get(s.app_id.as_str()).copied().unwrap_or_default();
            let has_provider = match device.platform.as_str() {
                "ios" => apns,
                "android" => fcm,
                _ => false,
            };
            if device.active && !has_provider {
                results.push(DeviceSendResult::NoProvider(device.platform.clone()));
                continue;
            }
            let targeted = i64::from(device.active);
            let status = if device.active { "queued" } else { "completed" };
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
                    next_attempt_at: s.lease_until.unwrap_or(now),
                    lease_until: s.lease_until,
                });
            }
            let accepted = Accepted { id: s.id.clone(), status: status.to_string(), targeted };
            results.push(DeviceSendResult::Accepted(accepted, None, app_version));
        }
        if notification_rows.is_empty() {
            return Ok(results);
        }
        let notifications_json = serde_json::to_string(&notification_rows)?;
        let deliveries_json = serde_json::to_string(&delivery_rows)?;
        let born: Vec<ClaimedDelivery> = on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(&insert_notifications).bind(&notifications_json).bind(now).execute(&mut *tx).await?;
            let born: Vec<ClaimedDelivery> = if delivery_rows.is_empty() {
                Vec::new()
            } else {
                sqlx::query_as(&insert_deliveries).bind(&deliveries_json).bind(now).fetch_all(&mut *tx).await?
            };
            tx.commit().await?;
            born
        });
        let mut born: HashMap<String, ClaimedDelivery> =
            born.into_iter().map(|r| (r.notification_id.clone(), r)).collect();
        for (r, s) in results.iter_mut().zip(sends) {
            if let DeviceSendResult::Accepted(_, delivery, _) = r {
                if s.lease_until.is_some() {
                    *delivery = born.remove(&s.id);
                }
            }
        }
        Ok(results)
    }
}
