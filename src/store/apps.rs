//! Apps and their provider credentials.

use super::sql::on_pool;
use super::{Store, StoreResult};
use crate::domain::{ids::new_id, time::now_ms, Platform};

/// A stored app. Credentials are JSON text and never leave the server.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AppRow {
    /// App id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// APNs credentials (JSON), if configured.
    pub apns: Option<String>,
    /// FCM credentials (JSON), if configured.
    pub fcm: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// Why APNs refuses the app's credentials, while it does.
    pub apns_error: Option<String>,
    /// Since when APNs refuses them (ms).
    pub apns_failing_since: Option<i64>,
    /// Why FCM refuses the app's credentials, while it does.
    pub fcm_error: Option<String>,
    /// Since when FCM refuses them (ms).
    pub fcm_failing_since: Option<i64>,
}

/// What creating an app takes.
#[derive(Debug)]
pub struct NewApp {
    /// Display name.
    pub name: String,
    /// APNs credentials as JSON text.
    pub apns: Option<String>,
    /// FCM credentials as JSON text.
    pub fcm: Option<String>,
}

const APP_COLUMNS: &str =
    "id, name, apns, fcm, created_at, updated_at, apns_error, apns_failing_since, fcm_error, fcm_failing_since";

impl Store {
    /// Creates an app.
    pub async fn create_app(&self, app: NewApp) -> StoreResult<AppRow> {
        let now = now_ms();
        let row = AppRow {
            id: new_id(),
            name: app.name,
            apns: app.apns,
            fcm: app.fcm,
            created_at: now,
            updated_at: now,
            apns_error: None,
            apns_failing_since: None,
            fcm_error: None,
            fcm_failing_since: None,
        };
        on_pool!(self.pool(), p => sqlx::query(
            "INSERT INTO apps (id, name, apns, fcm, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&row.id).bind(&row.name).bind(&row.apns).bind(&row.fcm).bind(row.created_at).bind(row.updated_at)
        .execute(p).await?.rows_affected());
        Ok(row)
    }

    /// Reads an app.
    pub async fn app(&self, id: &str) -> StoreResult<Option<AppRow>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1");
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, AppRow>(&sql).bind(id).fetch_optional(p).await?))
    }

    /// Lists apps, oldest first, after the cursor id.
    pub async fn list_apps(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<AppRow>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2");
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, AppRow>(&sql).bind(after).bind(limit).fetch_all(p).await?))
    }

    /// Updates name and/or credentials; `None` leaves a column as it is.
    /// New credentials of a provider make it `ok` again until refused.
    pub async fn update_app(
        &self,
        id: &str,
        name: Option<&str>,
        apns: Option<&str>,
        fcm: Option<&str>,
    ) -> StoreResult<Option<AppRow>> {
        let sql = format!(
            "UPDATE apps SET name = COALESCE($2, name), apns = COALESCE($3, apns), fcm = COALESCE($4, fcm), updated_at = $5, \
             apns_error = CASE WHEN $3 IS NULL THEN apns_error END, \
             apns_failing_since = CASE WHEN $3 IS NULL THEN apns_failing_since END, \
             fcm_error = CASE WHEN $4 IS NULL THEN fcm_error END, \
             fcm_failing_since = CASE WHEN $4 IS NULL THEN fcm_failing_since END \
             WHERE id = $1 RETURNING {APP_COLUMNS}"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, AppRow>(&sql)
            .bind(id).bind(name).bind(apns).bind(fcm).bind(now_ms())
            .fetch_optional(p).await?))
    }

    /// Marks the app's `provider` (`apns` | `fcm`) failing with `error`
    /// (keeping since when it fails), or `ok` with `None`. Leaves
    /// `updated_at` alone: the credentials did not change.
    pub async fn set_provider_error(
        &self,
        id: &str,
        provider: Platform,
        error: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let p = match provider {
            Platform::Ios => "apns",
            Platform::Android => "fcm",
        };
        let sql = format!(
            "UPDATE apps SET {p}_error = $2, \
             {p}_failing_since = CASE WHEN $2 IS NULL THEN NULL ELSE COALESCE({p}_failing_since, $3) END WHERE id = $1"
        );
        on_pool!(self.pool(), pool => sqlx::query(&sql).bind(id).bind(error).bind(now).execute(pool).await?.rows_affected());
        Ok(())
    }
}
