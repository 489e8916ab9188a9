//! The device registry: one row per (app, platform, token), optionally keyed
//! by the app's own installation id, with group memberships in
//! `device_groups` (see `groups.rs`).

use std::fmt::Write as _;

use super::deliveries::{ResultSql, Tally};
use super::filters;
use super::notifications::complete_sql;
use super::sql::{on_pool, BeginWrite, Dialect, Sql};
use super::{DeliveryStatus, Store, StoreError, StoreResult};
use crate::domain::filter::Filter;
use crate::domain::{ids::new_id, time::now_ms, version, Platform};

/// A stored device, with its group names (what the API shows, and what
/// delivery reads: platform, token, environment, active).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeviceRow {
    /// Device id (UUIDv7).
    pub id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// `ios` or `android`.
    pub platform: String,
    /// The provider token, normalised for its platform.
    pub token: String,
    /// The app's own stable id for the install, if it gave one.
    pub installation_id: Option<String>,
    /// The app's user, if any.
    pub user_id: Option<String>,
    /// BCP 47 locale, e.g. `es-UY`.
    pub locale: Option<String>,
    /// IANA time zone, e.g. `America/Montevideo`.
    pub timezone: Option<String>,
    /// The app's version on the device.
    pub app_version: Option<String>,
    /// APNs environment (`production` | `sandbox`) of iOS devices.
    pub environment: Option<String>,
    /// JSON object text.
    pub metadata: Option<String>,
    /// False once a provider said the token is dead.
    pub active: bool,
    /// Why it was deactivated (provider reason).
    pub deactivated_reason: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// Last registration or token refresh (ms).
    pub last_seen_at: i64,
    /// Group names joined by `,`, sorted (names cannot contain `,`).
    pub(super) group_names: Option<String>,
    /// SHA-256 of the device secret given to the client that registered it.
    pub secret_hash: Option<String>,
    /// Tags: JSON object text.
    pub tags: Option<String>,
}

impl DeviceRow {
    /// The device's groups, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.group_names.as_deref().map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default()
    }

    /// The platform, parsed; a stored name no longer known is corrupt data.
    pub fn parsed_platform(&self) -> StoreResult<Platform> {
        Ok(serde_json::from_value(serde_json::Value::String(self.platform.clone()))?)
    }
}

/// A registered device, and whether the registration created it.
#[derive(Clone, Debug)]
pub struct RegisteredDevice {
    /// The device as the registration left it.
    pub device: DeviceRow,
    /// True when new; false when an existing device was refreshed.
    pub created: bool,
}

/// A validated registration (`POST /v1/devices`). `None` fields keep what an
/// existing device has; `groups: Some` replaces its memberships.
#[derive(Clone, Debug)]
pub struct NewDevice {
    /// The platform.
    pub platform: Platform,
    /// The token, normalised for `platform`.
    pub token: String,
    /// Upsert on (app, installation_id) instead of (app, platform, token).
    pub installation_id: Option<String>,
    /// The app's user.
    pub user_id: Option<String>,
    /// Group names, deduplicated.
    pub groups: Option<Vec<String>>,
    /// Locale.
    pub locale: Option<String>,
    /// Time zone.
    pub timezone: Option<String>,
    /// App version.
    pub app_version: Option<String>,
    /// APNs environment; always set (it has a default) for iOS.
    pub environment: Option<String>,
    /// JSON object text.
    pub metadata: Option<String>,
    /// Hash of a new device secret: stored on a device that has none yet.
    pub secret_hash: Option<String>,
    /// Tags (JSON object text); replace the stored ones when given.
    pub tags: Option<String>,
}

/// A validated `PATCH /v1/devices/{id}`: `None` leaves a field alone,
/// `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct DevicePatch {
    /// A refreshed token, already normalised for the device's platform.
    pub token: Option<String>,
    /// The app's user.
    pub user_id: Option<Option<String>>,
    /// Replaces every membership when given.
    pub groups: Option<Vec<String>>,
    /// Locale.
    pub locale: Option<Option<String>>,
    /// Time zone.
    pub timezone: Option<Option<String>>,
    /// App version.
    pub app_version: Option<Option<String>>,
    /// JSON object text.
    pub metadata: Option<Option<String>>,
    /// Tags, JSON object text; replaced as a whole.
    pub tags: Option<Option<String>>,
}

/// Filters of a device list; `None` does not filter.
#[derive(Debug, Default)]
pub struct DeviceFilter<'a> {
    /// Devices of this user.
    pub user_id: Option<&'a str>,
    /// Members of this group.
    pub group: Option<&'a str>,
    /// Devices of this platform.
    pub platform: Option<Platform>,
    /// Active (or deactivated) devices only.
    pub active: Option<bool>,
    /// The device with this token (a lookup).
    pub token: Option<&'a str>,
    /// Devices the filter selects.
    pub filters: Option<&'a Filter>,
}

/// Every column of a device plus its sorted group names, aliased `d`.
pub(super) const DEVICE_SELECT: &str = "SELECT d.id, d.app_id, d.platform, d.token, d.installation_id, d.user_id, \
     d.locale, d.timezone, d.app_version, d.environment, d.metadata, d.active, d.deactivated_reason, \
     d.created_at, d.updated_at, d.last_seen_at, \
     (SELECT string_agg(g.name, ',' ORDER BY g.name) FROM device_groups g WHERE g.device_id = d.id) AS group_names, \
     d.secret_hash, d.tags FROM devices d";

/// The columns of [`DEVICE_SELECT`], as an upsert of `devices` returns them.
pub(super) const DEVICE_RETURNING: &str = "RETURNING id, app_id, platform, token, installation_id, user_id, \
     locale, timezone, app_version, environment, metadata, active, deactivated_reason, \
     created_at, updated_at, last_seen_at, \
     (SELECT string_agg(g.name, ',' ORDER BY g.name) FROM device_groups g WHERE g.device_id = devices.id) AS group_names, \
     secret_hash, tags";

const INSERT_DEVICE: &str = "INSERT INTO devices (id, app_id, platform, token, installation_id, user_id, locale, \
     timezone, app_version, environment, metadata, active, deactivated_reason, created_at, updated_at, last_seen_at, \
     secret_hash, tags, version_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE, NULL, $12, $12, $12, $13, $14, $15)";

/// What an existing device takes from a registration: it is active again,
/// and every field given replaces the stored one.
pub(super) const REFRESH_DEVICE: &str = "DO UPDATE SET platform = excluded.platform, token = excluded.token, \
     installation_id = COALESCE(excluded.installation_id, devices.installation_id), \
     user_id = COALESCE(excluded.user_id, devices.user_id), locale = COALESCE(excluded.locale, devices.locale), \
     timezone = COALESCE(excluded.timezone, devices.timezone), \
     app_version = COALESCE(excluded.app_version, devices.app_version), \
     environment = COALESCE(excluded.environment, devices.environment), \
     metadata = COALESCE(excluded.metadata, devices.metadata), tags = COALESCE(excluded.tags, devices.tags), \
     version_key = CASE WHEN excluded.app_version IS NULL THEN devices.version_key ELSE excluded.version_key END, \
     active = TRUE, deactivated_reason = NULL, updated_at = excluded.updated_at, last_seen_at = excluded.last_seen_at, \
     secret_hash = COALESCE(devices.secret_hash, excluded.secret_hash)";

/// Conflict target of a registration with an installation id.
pub(super) const BY_INSTALLATION: &str = "(app_id, installation_id) WHERE installation_id IS NOT NULL";
/// Conflict target of a registration without one.
pub(super) const BY_TOKEN: &str = "(app_id, platform, token)";

/// The token is now the installation's: a row of the same installation-less
/// token is adopted by the installation when it has no row yet…
const ADOPT_TOKEN: &str = "UPDATE devices SET installation_id = $4 \
     WHERE app_id = $1 AND platform = $2 AND token = $3 AND installation_id IS NULL \
     AND NOT EXISTS (SELECT 1 FROM devices o WHERE o.app_id = $1 AND o.installation_id = $4)";

/// …and any other row still holding it is stale (the token moved): removed,
/// with its memberships, so the upsert below breaks no unique index.
const EVICT_TOKEN: &str = "DELETE FROM devices \
     WHERE app_id = $1 AND platform = $2 AND token = $3 AND (installation_id IS NULL OR installation_id <> $4)";

/// How many times a registration is retried when a concurrent one for the
/// same token or installation wins a unique index first.
const REGISTER_ATTEMPTS: usize = 3;

/// Replaces a device's memberships inside transaction `$tx` (a macro because
/// the statements run on either driver's transaction).
macro_rules! replace_groups {
    ($tx:ident, $app_id:expr, $device_id:expr, $groups:expr) => {{
        sqlx::query("DELETE FROM device_groups WHERE app_id = $1 AND device_id = $2")
            .bind($app_id)
            .bind($device_id)
            .execute(&mut *$tx)
            .await?;
        if !$groups.is_empty() {
            let sql = insert_groups_sql($groups.len());
            let mut query = sqlx::query(&sql).bind($app_id).bind($device_id);
            for name in $groups {
                query = query.bind(name);
            }
            query.execute(&mut *$tx).await?;
        }
    }};
}

/// `INSERT` of `n` memberships of device `$2` of app `$1`, names `$3…`.
fn insert_groups_sql(n: usize) -> String {
    let mut sql = String::from("INSERT INTO device_groups (app_id, name, device_id) VALUES ");
    for i in 0..n {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}($1, ${}, $2)", i + 3);
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// A device list query: the filters given, newest first, after the cursor.
fn list_sql(d: &Dialect, app_id: &str, filter: &DeviceFilter<'_>, after: Option<&str>, limit: i64, now: i64) -> Sql {
    let mut q = Sql::new(DEVICE_SELECT);
    q.push(" WHERE d.app_id = ").push_bind(app_id);
    // Only the filters given become conditions, so each query can use its index.
    if let Some(id) = after {
        q.push(" AND d.id < ").push_bind(id);
    }
    if let Some(user_id) = filter.user_id {
        q.push(" AND d.user_id = ").push_bind(user_id);
    }
    if let Some(platform) = filter.platform {
        q.push(" AND d.platform = ").push_bind(platform.as_str());
    }
    if let Some(group) = filter.group {
        q.push(" AND EXISTS (SELECT 1 FROM device_groups m WHERE m.app_id = d.app_id AND m.name = ")
            .push_bind(group)
            .push(" AND m.device_id = d.id)");
    }
    if let Some(active) = filter.active {
        q.push(if active { " AND d.active" } else { " AND NOT d.active" });
    }
    if let Some(token) = filter.token {
        q.push(" AND d.token = ").push_bind(token);
    }
    if let Some(filters) = filter.filters {
        q.push(" AND ");
        filters::push(&mut q, d, filters, now);
    }
    q.push(" ORDER BY d.id DESC LIMIT ").push_bind(limit);
    q
}

/// `Some(v)` → `(true, v)`: a field a PATCH sets (possibly to null).
fn set<T>(field: &Option<Option<T>>) -> (bool, Option<&T>) {
    (field.is_some(), field.as_ref().and_then(Option::as_ref))
}

impl Store {
    /// Registers a device or refreshes the one with the same installation id
    /// (when given) or the same (platform, token); returns the device and
    /// whether it is new. A refreshed device is active again.
    pub async fn register_device(&self, app_id: &str, device: &NewDevice) -> StoreResult<RegisteredDevice> {
        let mut attempt = 1;
        loop {
            match self.try_register_device(app_id, device).await {
                Err(StoreError::Conflict(_)) if attempt < REGISTER_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    async fn try_register_device(&self, app_id: &str, d: &NewDevice) -> StoreResult<RegisteredDevice> {
        let new_id = new_id();
        let now = now_ms();
        let platform = d.platform.as_str();
        let upsert = match d.installation_id {
            Some(_) => format!("{INSERT_DEVICE} ON CONFLICT {BY_INSTALLATION} {REFRESH_DEVICE} RETURNING id"),
            None => format!("{INSERT_DEVICE} ON CONFLICT {BY_TOKEN} {REFRESH_DEVICE} RETURNING id"),
        };
        let select = format!("{DEVICE_SELECT} WHERE d.id = $1");
        let version_key = d.app_version.as_deref().and_then(version::device_key);
        // Every transaction starts with a write, so SQLite takes its write
        // lock first (waiting on busy_timeout) and never has to upgrade.
        Ok(on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            if let Some(installation_id) = &d.installation_id {
                for sql in [ADOPT_TOKEN, EVICT_TOKEN] {
                    sqlx::query(sql).bind(app_id).bind(platform).bind(&d.token).bind(installation_id)
                        .execute(&mut *tx).await?;
                }
            }
            let id: String = sqlx::query_scalar(&upsert)
                .bind(&new_id).bind(app_id).bind(platform).bind(&d.token).bind(&d.installation_id)
                .bind(&d.user_id).bind(&d.locale).bind(&d.timezone).bind(&d.app_version)
                .bind(&d.environment).bind(&d.metadata).bind(now).bind(&d.secret_hash)
                .bind(&d.tags).bind(version_key.as_deref())
                .fetch_one(&mut *tx).await?;
            if let Some(groups) = &d.groups {
                replace_groups!(tx, app_id, &id, groups);
            }
            let row = sqlx::query_as::<_, DeviceRow>(&select).bind(&id).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            RegisteredDevice { device: row, created: id == new_id }
        }))
    }

    /// The secret hash of the device of installation `installation_id`:
    /// None when there is no such device, `Some(None)` when it has no secret.
    pub async fn installation_secret(
        &self,
        app_id: &str,
        installation_id: &str,
    ) -> StoreResult<Option<Option<String>>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar::<_, Option<String>>(
            "SELECT secret_hash FROM devices WHERE app_id = $1 AND installation_id = $2"
        ).bind(app_id).bind(installation_id).fetch_optional(p).await?))
    }

    /// Reads a device of an app (None for another app's device).
    pub async fn device_by_id(&self, app_id: &str, id: &str) -> StoreResult<Option<DeviceRow>> {
        let sql = format!("{DEVICE_SELECT} WHERE d.app_id = $1 AND d.id = $2");
        Ok(
            on_pool!(self.pool(), p => sqlx::query_as::<_, DeviceRow>(&sql).bind(app_id).bind(id).fetch_optional(p).await?),
        )
    }

    /// Lists an app's devices, newest first, with ids below `after`; fetch
    /// `limit + 1` to know whether another page exists.
    pub async fn list_devices(
        &self,
        app_id: &str,
        filter: &DeviceFilter<'_>,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<DeviceRow>> {
        let q = list_sql(&self.dialect(), app_id, filter, after, limit, now_ms());
        Ok(on_pool!(self.pool(), p => q.query_as::<_, DeviceRow>().fetch_all(p).await?))
    }

    /// Applies a PATCH; None when the app has no such device. A new token
    /// makes the device active again; one held by another device of the app
    /// is a conflict.
    pub async fn update_device(&self, app_id: &str, id: &str, patch: &DevicePatch) -> StoreResult<Option<DeviceRow>> {
        self.try_update_device(app_id, id, patch).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("another device of this app has this token".into()),
            other => other,
        })
    }

    async fn try_update_device(&self, app_id: &str, id: &str, patch: &DevicePatch) -> StoreResult<Option<DeviceRow>> {
        const UPDATE: &str = "UPDATE devices SET token = COALESCE($3, token), \
             active = CASE WHEN $3 IS NULL THEN active ELSE TRUE END, \
             deactivated_reason = CASE WHEN $3 IS NULL THEN deactivated_reason ELSE NULL END, \
             last_seen_at = CASE WHEN $3 IS NULL THEN last_seen_at ELSE $4 END, updated_at = $4, \
             user_id = CASE WHEN $5 THEN $6 ELSE user_id END, locale = CASE WHEN $7 THEN $8 ELSE locale END, \
             timezone = CASE WHEN $9 THEN $10 ELSE timezone END, \
             app_version = CASE WHEN $11 THEN $12 ELSE app_version END, \
             metadata = CASE WHEN $13 THEN $14 ELSE metadata END, \
             tags = CASE WHEN $15 THEN $16 ELSE tags END, version_key = CASE WHEN $11 THEN $17 ELSE version_key END \
             WHERE app_id = $1 AND id = $2";
        let select = format!("{DEVICE_SELECT} WHERE d.id = $1");
        let [user_id, locale, timezone, app_version, metadata, tags] =
            [&patch.user_id, &patch.locale, &patch.timezone, &patch.app_version, &patch.metadata, &patch.tags].map(set);
        let version_key = app_version.1.and_then(|v| version::device_key(v));
        Ok(on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let changed = sqlx::query(UPDATE)
                .bind(app_id).bind(id).bind(&patch.token).bind(now_ms())
                .bind(user_id.0).bind(user_id.1).bind(locale.0).bind(locale.1)
                .bind(timezone.0).bind(timezone.1).bind(app_version.0).bind(app_version.1)
                .bind(metadata.0).bind(metadata.1).bind(tags.0).bind(tags.1).bind(version_key.as_deref())
                .execute(&mut *tx).await?.rows_affected();
            if changed == 0 {
                return Ok(None);
            }
            if let Some(groups) = &patch.groups {
                replace_groups!(tx, app_id, id, groups);
            }
            let row = sqlx::query_as::<_, DeviceRow>(&select).bind(id).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Some(row)
        }))
    }

    /// Unregisters a device and its memberships; false when the app has no
    /// such device.
    /// Its queued deliveries are `cancelled` in the same transaction
    /// (counted, completing notifications left with nothing to send); one
    /// in flight keeps whatever its write-back finds: only pending rows change.
    pub async fn delete_device(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let d = self.dialect();
        let cancel = "UPDATE deliveries SET status = 'cancelled', lease_until = NULL, updated_at = $3 \
             WHERE app_id = $1 AND device_id = $2 AND status = 'pending' RETURNING notification_id, status";
        let count = ResultSql::new(&d, 1, 2, 3).count;
        let complete = complete_sql(&format!("AND {}", d.in_strings("id", 2)));
        let now = now_ms();
        let deleted = on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let cancelled: Vec<(String, DeliveryStatus)> =
                sqlx::query_as(cancel).bind(app_id).bind(id).bind(now).fetch_all(&mut *tx).await?;
            let tallies = Tally::of(cancelled.iter().map(|(n, status)| (n.as_str(), *status)));
            if !tallies.is_empty() {
                sqlx::query(&count).bind(serde_json::to_string(&tallies)?).execute(&mut *tx).await?;
                let ids: Vec<&str> = cancelled.iter().map(|(n, _)| n.as_str()).collect();
                sqlx::query(&complete).bind(now).bind(serde_json::to_string(&ids)?).execute(&mut *tx).await?;
            }
            let deleted = sqlx::query("DELETE FROM devices WHERE app_id = $1 AND id = $2")
                .bind(app_id).bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            deleted
        });
        Ok(deleted == 1)
    }

    /// Deactivates devices a provider reported dead: `(device_id, reason)`
    /// pairs, in one transaction. Devices already inactive keep their first
    /// reason; ids of other apps are ignored. Returns how many devices were
    /// deactivated by this call. They stay registered (and listed) but are
    /// not targeted again until they register anew.
    pub async fn deactivate_devices(&self, app_id: &str, updates: &[(String, String)]) -> StoreResult<u64> {
        const DEACTIVATE: &str = "UPDATE devices SET active = FALSE, deactivated_reason = $3, updated_at = $4 \
             WHERE app_id = $1 AND id = $2 AND active";
        if updates.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        Ok(on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let mut changed = 0;
            for (id, reason) in updates {
                changed += sqlx::query(DEACTIVATE).bind(app_id).bind(id).bind(reason).bind(now)
                    .execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            changed
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::sql::Arg;
    use super::*;

    #[test]
    fn group_inserts_number_their_placeholders() {
        assert_eq!(
            insert_groups_sql(2),
            "INSERT INTO device_groups (app_id, name, device_id) VALUES ($1, $3, $2), ($1, $4, $2) ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn list_queries_only_filter_what_is_given() {
        let d = Dialect::sqlite();
        let q = list_sql(&d, "app", &DeviceFilter::default(), None, 50, 0);
        let sql = q.text();
        assert!(sql.ends_with("WHERE d.app_id = $1 ORDER BY d.id DESC LIMIT $2"), "{sql}");
        assert_eq!(q.args(), [Arg::from("app"), Arg::Int(50)]);

        let filter = DeviceFilter {
            user_id: Some("u"),
            platform: Some(Platform::Ios),
            active: Some(false),
            ..DeviceFilter::default()
        };
        let q = list_sql(&d, "app", &filter, Some("c"), 50, 0);
        let sql = q.text();
        assert!(
            sql.ends_with(
                "d.app_id = $1 AND d.id < $2 AND d.user_id = $3 AND d.platform = $4 AND NOT d.active ORDER BY d.id DESC LIMIT $5"
            ),
            "{sql}"
        );
        assert_eq!(
            q.args(),
            ["app", "c", "u", "ios"].map(Arg::from).into_iter().chain([Arg::Int(50)]).collect::<Vec<_>>()
        );
    }
}
