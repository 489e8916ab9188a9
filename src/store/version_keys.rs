//! The sortable version keys of devices registered before they existed
//! (migration 0009): computed here, as SQL cannot parse versions alike in
//! both stores, and written back in batches. Registrations and PATCHes
//! keep them current from then on.

use serde::Serialize;

use super::sql::on_pool;
use super::{Store, StoreResult};
use crate::domain::version;

/// Devices read and written per statement.
const BATCH: i64 = 1000;

/// A device's key as a JSON row.
#[derive(Serialize)]
struct Key<'a> {
    id: &'a str,
    version_key: String,
}

impl Store {
    /// Gives every device with an `app_version` and no key its key; returns
    /// how many. Versions without a leading number have none and stay so.
    pub async fn backfill_version_keys(&self) -> StoreResult<u64> {
        let d = self.dialect();
        let read = "SELECT id, app_version FROM devices WHERE version_key IS NULL AND app_version IS NOT NULL \
             AND id > $1 ORDER BY id LIMIT $2";
        let write = format!(
            "UPDATE devices SET version_key = v.version_key FROM {} WHERE devices.id = v.id",
            d.json_records(1, &[("id", "text"), ("version_key", "text")])
        );
        let mut after = String::new();
        let mut written = 0;
        loop {
            let rows: Vec<(String, String)> =
                on_pool!(self.pool(), p => sqlx::query_as(read).bind(&after).bind(BATCH).fetch_all(p).await?);
            let keys: Vec<Key<'_>> = rows
                .iter()
                .filter_map(|(id, v)| version::device_key(v).map(|version_key| Key { id, version_key }))
                .collect();
            if !keys.is_empty() {
                let json = serde_json::to_string(&keys)?;
                written +=
                    on_pool!(self.pool(), p => sqlx::query(&write).bind(&json).execute(p).await?.rows_affected());
            }
            match rows.last() {
                Some((id, _)) if rows.len() as i64 == BATCH => after.clone_from(id),
                _ => return Ok(written),
            }
        }
    }
}
