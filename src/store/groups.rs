//! Groups: named sets of an app's devices. A group exists while it has
//! members; membership rows are shared with the device's `groups` field.
//! Members are listed with [`Store::list_devices`] and a group filter.

use super::sql::{on_pool, BeginWrite};
use super::{Store, StoreResult};
use crate::domain::time::now_ms;

/// A group and its member counts.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct GroupRow {
    /// Group name.
    pub name: String,
    /// Member devices.
    pub devices: i64,
    /// Member devices that are active.
    pub active_devices: i64,
}

/// Marks the device changed (its `groups` changed); touches nothing when the
/// app has no such device, which the caller reads from `rows_affected`.
const TOUCH_DEVICE: &str = "UPDATE devices SET updated_at = $3 WHERE app_id = $1 AND id = $2";

impl Store {
    /// An app's groups by name, after the cursor name, with member counts.
    pub async fn list_groups(&self, app_id: &str, after: Option<&str>, limit: i64) -> StoreResult<Vec<GroupRow>> {
        const SQL: &str = "SELECT m.name, COUNT(*) AS devices, COUNT(*) FILTER (WHERE d.active) AS active_devices \
             FROM device_groups m JOIN devices d ON d.id = m.device_id \
             WHERE m.app_id = $1 AND ($2 IS NULL OR m.name > $2) GROUP BY m.name ORDER BY m.name LIMIT $3";
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, GroupRow>(SQL)
            .bind(app_id).bind(after).bind(limit).fetch_all(p).await?))
    }

    /// Adds a device to a group (a no-op for a member); false when the app
    /// has no such device.
    pub async fn add_to_group(&self, app_id: &str, name: &str, device_id: &str) -> StoreResult<bool> {
        const ADD: &str =
            "INSERT INTO device_groups (app_id, name, device_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        self.change_membership(app_id, name, device_id, ADD).await
    }

    /// Removes a device from a group (a no-op for a non-member); false when
    /// the app has no such device.
    pub async fn remove_from_group(&self, app_id: &str, name: &str, device_id: &str) -> StoreResult<bool> {
        const REMOVE: &str = "DELETE FROM device_groups WHERE app_id = $1 AND name = $2 AND device_id = $3";
        self.change_membership(app_id, name, device_id, REMOVE).await
    }

    /// Runs `sql` (binds: app, group name, device) when the device exists.
    async fn change_membership(&self, app_id: &str, name: &str, device_id: &str, sql: &str) -> StoreResult<bool> {
        Ok(on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            let found = sqlx::query(TOUCH_DEVICE).bind(app_id).bind(device_id).bind(now_ms())
                .execute(&mut *tx).await?.rows_affected() == 1;
            if found {
                sqlx::query(sql).bind(app_id).bind(name).bind(device_id).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            found
        }))
    }
}
