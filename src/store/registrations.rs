//! Device registrations in batches: many `POST /v1/devices` in one
//! transaction of a few multi-row statements over a JSON row source, so a
//! burst of registrations costs one commit instead of one each.
//!
//! A batch applies its registrations as if one after another, those sharing
//! a token or an installation id in arrival order (the others are concurrent
//! requests: any order is theirs). They are split into rounds in which no two
//! share a token or an installation id (the second registration of a token
//! goes to the next round and refreshes what the first created), and each
//! round runs its token-keyed registrations, then its installation-keyed
//! ones, each as one upsert that returns whole devices. Each registration is
//! answered with its device as of its own upsert. A batch that fails
//! as a whole (e.g. a unique index broken by two of its installations trading
//! tokens) is rolled back; the caller then registers its items one by one.

use std::collections::HashMap;

use serde::Serialize;

use super::devices::{BY_INSTALLATION, BY_TOKEN, DEVICE_RETURNING, REFRESH_DEVICE};
use super::sql::{on_pool, BeginWrite, Dialect};
use super::{DeviceRow, NewDevice, RegisteredDevice, Store, StoreError, StoreResult};
use crate::domain::{ids::new_id, time::now_ms, version};

/// One registration of a batch.
#[derive(Debug)]
pub struct Registration {
    /// The registering app.
    pub app_id: String,
    /// The validated device.
    pub device: NewDevice,
}

/// The columns of a registration row, with their Postgres types.
const ROW_COLUMNS: &[(&str, &str)] = &[
    ("id", "text"),
    ("app_id", "text"),
    ("platform", "text"),
    ("token", "text"),
    ("installation_id", "text"),
    ("user_id", "text"),
    ("locale", "text"),
    ("timezone", "text"),
    ("app_version", "text"),
    ("environment", "text"),
    ("metadata", "text"),
    ("secret_hash", "text"),
    ("tags", "text"),
    ("version_key", "text"),
];

/// A registration as a JSON row (see [`ROW_COLUMNS`]).
#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    app_id: &'a str,
    platform: &'a str,
    token: &'a str,
    installation_id: Option<&'a str>,
    user_id: Option<&'a str>,
    locale: Option<&'a str>,
    timezone: Option<&'a str>,
    app_version: Option<&'a str>,
    environment: Option<&'a str>,
    /// JSON object text, carried as a string.
    metadata: Option<&'a str>,
    secret_hash: Option<&'a str>,
    /// JSON object text, carried as a string.
    tags: Option<&'a str>,
    version_key: Option<String>,
}

/// A membership as a JSON row.
#[derive(Serialize)]
struct Member<'a> {
    app_id: &'a str,
    name: &'a str,
    device_id: &'a str,
}

/// A device id as a JSON row.
#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

/// The device a registration names: by installation id when it has one.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Token(&'a str, &'a str, &'a str),
    Installation(&'a str, &'a str),
}

impl<'a> Key<'a> {
    /// The key the upsert of `r` resolves on.
    fn of(r: &'a Registration) -> Self {
        match &r.device.installation_id {
            Some(inst) => Self::Installation(&r.app_id, inst),
            None => Self::Token(&r.app_id, r.device.platform.as_str(), &r.device.token),
        }
    }

    /// The key of a stored device, as an upsert by installation id (or not) names it.
    fn of_row(row: &'a DeviceRow, by_installation: bool) -> Self {
        match (&row.installation_id, by_installation) {
            (Some(inst), true) => Self::Installation(&row.app_id, inst),
            _ => Self::Token(&row.app_id, &row.platform, &row.token),
        }
    }
}

/// The statements of a batch, for one dialect.
struct Statements {
    /// Upsert on (app, platform, token); `$1` rows, `$2` now.
    by_token: String,
    /// Upsert on (app, installation id); `$1` rows, `$2` now.
    by_installation: String,
    /// A token reported with an installation id is adopted by that
    /// installation when the token's row has none and the installation has
    /// no row yet (`$1` rows).
    adopt: String,
    /// Other rows holding such a token are stale (the token moved) and go,
    /// except rows of installations in the same upsert: theirs moves on to
    /// their new token in it (`$1` rows).
    evict: String,
    /// Drops the memberships of the devices in `$1` (id rows).
    clear_groups: String,
    /// Adds memberships (`$1` rows).
    add_groups: String,
    /// The group names of the devices in `$1` (id rows), as in [`DEVICE_RETURNING`]:
    /// one index lookup per device, whatever the planner knows of the tables.
    group_names: String,
}

impl Statements {
    fn new(d: &Dialect) -> Self {
        let rows = d.json_records(1, ROW_COLUMNS);
        let insert = format!(
            "INSERT INTO devices (id, app_id, platform, token, installation_id, user_id, locale, timezone, \
             app_version, environment, metadata, active, deactivated_reason, created_at, updated_at, last_seen_at, \
             secret_hash, tags, version_key) \
             SELECT v.id, v.app_id, v.platform, v.token, v.installation_id, v.user_id, v.locale, v.timezone, \
             v.app_version, v.environment, v.metadata, TRUE, NULL, $2, $2, $2, v.secret_hash, v.tags, v.version_key \
             FROM {rows} \
             WHERE TRUE ON CONFLICT" // SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT.
        );
        // The upsert returns whole devices: reading them back by id would be a
        // join the planner may cost on stale statistics (a seq scan per batch
        // while the table grows).
        Self {
            by_token: format!("{insert} {BY_TOKEN} {REFRESH_DEVICE} {DEVICE_RETURNING}"),
            by_installation: format!("{insert} {BY_INSTALLATION} {REFRESH_DEVICE} {DEVICE_RETURNING}"),
            adopt: format!(
                "UPDATE devices AS x SET installation_id = v.installation_id FROM {rows} \
                 WHERE x.app_id = v.app_id AND x.platform = v.platform AND x.token = v.token \
                 AND x.installation_id IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM devices o WHERE o.app_id = v.app_id AND o.installation_id = v.installation_id)"
            ),
            evict: format!(
                "DELETE FROM devices WHERE id IN (SELECT x.id FROM devices x JOIN {rows} \
                 ON x.app_id = v.app_id AND x.platform = v.platform AND x.token = v.token \
                 WHERE NOT EXISTS (SELECT 1 FROM {rows} WHERE v.app_id = x.app_id AND v.installation_id = x.installation_id))"
            ),
            clear_groups: format!(
                "DELETE FROM device_groups WHERE device_id IN (SELECT v.id FROM {})",
                d.json_records(1, &[("id", "text")])
            ),
            add_groups: format!(
                "INSERT INTO device_groups (app_id, name, device_id) SELECT v.app_id, v.name, v.device_id FROM {} \
                 WHERE TRUE ON CONFLICT DO NOTHING",
                d.json_records(1, &[("app_id", "text"), ("name", "text"), ("device_id", "text")])
            ),
            group_names: format!(
                "SELECT v.id, (SELECT string_agg(g.name, ',' ORDER BY g.name) FROM device_groups g \
                 WHERE g.device_id = v.id) FROM {}",
                d.json_records(1, &[("id", "text")])
            ),
        }
    }
}

/// Splits a batch into rounds (indexes in arrival order) in which no two
/// registrations share a token or an installation id: each goes to the
/// round after the last one that shares a key with it.
fn rounds(batch: &[Registration]) -> Vec<Vec<usize>> {
    let mut last_round: HashMap<Key<'_>, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        let d = &r.device;
        let keys = [
            Some(Key::Token(&r.app_id, d.platform.as_str(), &d.token)),
            d.installation_id.as_deref().map(|inst| Key::Installation(&r.app_id, inst)),
        ];
        let round = keys.iter().flatten().filter_map(|k| last_round.get(k)).map(|n| n + 1).max().unwrap_or(0);
        for key in keys.into_iter().flatten() {
            last_round.insert(key, round);
        }
        if round == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[round].push(i);
    }
    rounds
}

/// One upsert's worth of a round: its registrations of one kind, as JSON.
struct Step<'a> {
    items: Vec<usize>,
    by_installation: bool,
    rows: String,
    batch: &'a [Registration],
}

impl<'a> Step<'a> {
    fn new(batch: &'a [Registration], ids: &[String], round: &[usize], by_installation: bool) -> StoreResult<Self> {
        let items: Vec<usize> =
            round.iter().copied().filter(|&i| batch[i].device.installation_id.is_some() == by_installation).collect();
        let rows: Vec<Row<'_>> = items
            .iter()
            .map(|&i| {
                let (r, d) = (&batch[i], &batch[i].device);
                Row {
                    id: &ids[i],
                    app_id: &r.app_id,
                    platform: d.platform.as_str(),
                    token: &d.token,
                    installation_id: d.installation_id.as_deref(),
                    user_id: d.user_id.as_deref(),
                    locale: d.locale.as_deref(),
                    timezone: d.timezone.as_deref(),
                    app_version: d.app_version.as_deref(),
                    environment: d.environment.as_deref(),
                    metadata: d.metadata.as_deref(),
                    secret_hash: d.secret_hash.as_deref(),
                    tags: d.tags.as_deref(),
                    version_key: d.app_version.as_deref().and_then(version::device_key),
                }
            })
            .collect();
        Ok(Self { rows: serde_json::to_string(&rows)?, items, by_installation, batch })
    }

    /// The device of each item (in order), from the upsert's returned rows.
    fn devices(&self, upserted: Vec<DeviceRow>) -> StoreResult<Vec<DeviceRow>> {
        let index: HashMap<Key<'_>, usize> =
            upserted.iter().enumerate().map(|(n, row)| (Key::of_row(row, self.by_installation), n)).collect();
        let order = self
            .items
            .iter()
            .map(|&i| index.get(&Key::of(&self.batch[i])).copied().ok_or(StoreError::NotFound("registered device")))
            .collect::<StoreResult<Vec<usize>>>()?;
        let mut rows: Vec<Option<DeviceRow>> = upserted.into_iter().map(Some).collect();
        order.into_iter().map(|n| rows[n].take().ok_or(StoreError::NotFound("registered device"))).collect()
    }

    /// Memberships to write (the items that gave `groups`), as JSON: the
    /// devices whose groups are replaced (id rows), and their new memberships.
    fn memberships(&self, devices: &[DeviceRow]) -> StoreResult<Option<(String, String)>> {
        let mut replaced = Vec::new();
        let mut members = Vec::new();
        for (&i, device) in self.items.iter().zip(devices) {
            if let Some(groups) = &self.batch[i].device.groups {
                let (app_id, device_id) = (self.batch[i].app_id.as_str(), device.id.as_str());
                replaced.push(Id { id: device_id });
                members.extend(groups.iter().map(|name| Member { app_id, name, device_id }));
            }
        }
        if replaced.is_empty() {
            return Ok(None);
        }
        Ok(Some((serde_json::to_string(&replaced)?, serde_json::to_string(&members)?)))
    }
}

impl Store {
    /// Registers a batch of devices in one transaction, as if one after
    /// another (see the module doc); returns each one's device and whether it
    /// is new, in order. On an error nothing is written.
    pub async fn register_devices(&self, batch: &[Registration]) -> StoreResult<Vec<RegisteredDevice>> {
        let sql = Statements::new(&self.dialect());
        let new_ids: Vec<String> = batch.iter().map(|_| new_id()).collect();
        let now = now_ms();
        let mut answers: Vec<Option<RegisteredDevice>> = vec![None; batch.len()];
        let mut steps = Vec::new();
        for round in rounds(batch) {
            for by_installation in [false, true] {
                let step = Step::new(batch, &new_ids, &round, by_installation)?;
                if !step.items.is_empty() {
                    steps.push(step);
                }
            }
        }
        on_pool!(self.pool(), p => {
            let mut tx = p.begin_write().await?;
            for step in &steps {
                let upsert = if step.by_installation {
                    for stmt in [&sql.adopt, &sql.evict] {
                        sqlx::query(stmt).bind(&step.rows).execute(&mut *tx).await?;
                    }
                    &sql.by_installation
                } else {
                    &sql.by_token
                };
                let upserted: Vec<DeviceRow> =
                    sqlx::query_as(upsert).bind(&step.rows).bind(now).fetch_all(&mut *tx).await?;
                let mut devices = step.devices(upserted)?;
                if let Some((replaced, members)) = step.memberships(&devices)? {
                    sqlx::query(&sql.clear_groups).bind(&replaced).execute(&mut *tx).await?;
                    sqlx::query(&sql.add_groups).bind(&members).execute(&mut *tx).await?;
                    let names: HashMap<String, Option<String>> =
                        sqlx::query_as(&sql.group_names).bind(&replaced).fetch_all(&mut *tx).await?.into_iter().collect();
                    for device in &mut devices {
                        if let Some(names) = names.get(&device.id) {
                            device.group_names.clone_from(names);
                        }
                    }
                }
                for (&i, device) in step.items.iter().zip(devices) {
                    let created = device.id == new_ids[i];
                    answers[i] = Some(RegisteredDevice { device, created });
                }
            }
            tx.commit().await?;
        });
        answers.into_iter().map(|a| a.ok_or(StoreError::NotFound("registered device"))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;

    fn registration(token: &str, installation_id: Option<&str>) -> Registration {
        Registration {
            app_id: "app".into(),
            device: NewDevice {
                platform: Platform::Android,
                token: token.into(),
                installation_id: installation_id.map(Into::into),
                user_id: None,
                groups: None,
                locale: None,
                timezone: None,
                app_version: None,
                environment: None,
                metadata: None,
                secret_hash: None,
                tags: None,
            },
        }
    }

    #[test]
    fn registrations_sharing_a_key_go_to_later_rounds() {
        let batch = [
            registration("a", None),
            registration("b", Some("i1")),
            registration("a", None),
            registration("c", Some("i1")),
            registration("a", Some("i2")),
            registration("d", None),
        ];
        assert_eq!(rounds(&batch), [vec![0, 1, 5], vec![2, 3], vec![4]]);
    }
}
