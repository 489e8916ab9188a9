//! Apps, their provider credentials and their identity settings.

use super::sql::on_pool;
use super::{Store, StoreResult};
use crate::domain::{ids::new_id, time::now_ms, Platform};

/// A stored app. Credentials and identity secrets are JSON text or plain
/// text that never leave the server (only create and rotate answers show a
/// new identity secret); `Debug` leaves them out so a logged row shows none.
#[derive(Clone, sqlx::FromRow)]
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
    /// `verified` (client keys need user tokens for user ids) or `open`.
    pub identity: String,
    /// Who a client's socket relay may reach: `none`, `same_user` or `all`.
    pub client_relay: String,
    /// The key user tokens are signed with (HS256).
    pub identity_secret: Option<String>,
    /// The key before the last rotation, still verifying until `previous_identity_secret_until`.
    pub previous_identity_secret: Option<String>,
    /// End of the previous key's grace period (ms).
    pub previous_identity_secret_until: Option<i64>,
    /// Why APNs refuses the app's credentials, while it does.
    pub apns_error: Option<String>,
    /// Since when APNs refuses them (ms).
    pub apns_failing_since: Option<i64>,
    /// Why FCM refuses the app's credentials, while it does.
    pub fcm_error: Option<String>,
    /// Since when FCM refuses them (ms).
    pub fcm_failing_since: Option<i64>,
    /// Web Push (VAPID) credentials (JSON), if configured.
    pub web_push: Option<String>,
    /// The VAPID public key (base64url), for browsers' `applicationServerKey`.
    pub web_push_public_key: Option<String>,
    /// Why push services refuse the app's VAPID token, while they do.
    pub web_push_error: Option<String>,
    /// Since when they refuse it (ms).
    pub web_push_failing_since: Option<i64>,
}

impl std::fmt::Debug for AppRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("apns", &self.apns.as_ref().map(|_| "<redacted>"))
            .field("fcm", &self.fcm.as_ref().map(|_| "<redacted>"))
            .field("web_push", &self.web_push.as_ref().map(|_| "<redacted>"))
            .field("identity", &self.identity)
            .field("client_relay", &self.client_relay)
            .finish_non_exhaustive()
    }
}

/// What creating an app takes.
pub struct NewApp {
    /// Display name.
    pub name: String,
    /// APNs credentials as JSON text.
    pub apns: Option<String>,
    /// FCM credentials as JSON text.
    pub fcm: Option<String>,
    /// `verified` or `open`.
    pub identity: String,
    /// `none`, `same_user` or `all`.
    pub client_relay: String,
    /// The first identity secret.
    pub identity_secret: String,
    /// Web Push credentials as JSON text, with their public key.
    pub web_push: Option<(String, String)>,
}

/// A change to an app; `None` leaves a column as it is.
#[derive(Default)]
pub struct AppPatch<'a> {
    /// Display name.
    pub name: Option<&'a str>,
    /// APNs credentials as JSON text.
    pub apns: Option<&'a str>,
    /// FCM credentials as JSON text.
    pub fcm: Option<&'a str>,
    /// `verified` or `open`.
    pub identity: Option<&'a str>,
    /// `none`, `same_user` or `all`.
    pub client_relay: Option<&'a str>,
    /// Web Push credentials as JSON text, with their public key.
    pub web_push: Option<(&'a str, &'a str)>,
}

const APP_COLUMNS: &str = "id, name, apns, fcm, created_at, updated_at, identity, client_relay, identity_secret, \
     previous_identity_secret, previous_identity_secret_until, apns_error, apns_failing_since, fcm_error, fcm_failing_since, web_push, \
     web_push_public_key, web_push_error, web_push_failing_since";

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
            identity: app.identity,
            client_relay: app.client_relay,
            identity_secret: Some(app.identity_secret),
            previous_identity_secret: None,
            previous_identity_secret_until: None,
            apns_error: None,
            apns_failing_since: None,
            fcm_error: None,
            fcm_failing_since: None,
            web_push_public_key: app.web_push.as_ref().map(|(_, public)| public.clone()),
            web_push: app.web_push.map(|(json, _)| json),
            web_push_error: None,
            web_push_failing_since: None,
        };
        on_pool!(self.pool(), p => sqlx::query(
            "INSERT INTO apps (id, name, apns, fcm, created_at, updated_at, identity, client_relay, identity_secret, \
             web_push, web_push_public_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
        .bind(&row.id).bind(&row.name).bind(&row.apns).bind(&row.fcm).bind(row.created_at).bind(row.updated_at)
        .bind(&row.identity).bind(&row.client_relay).bind(&row.identity_secret).bind(&row.web_push)
        .bind(&row.web_push_public_key)
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

    /// Applies `patch` to an app; None when there is no such app. New
    /// credentials of a provider make it `ok` again until refused.
    pub async fn update_app(&self, id: &str, patch: &AppPatch<'_>) -> StoreResult<Option<AppRow>> {
        let sql = format!(
            "UPDATE apps SET name = COALESCE($2, name), apns = COALESCE($3, apns), fcm = COALESCE($4, fcm), \
             identity = COALESCE($6, identity), client_relay = COALESCE($7, client_relay), updated_at = $5, \
             apns_error = CASE WHEN $3 IS NULL THEN apns_error END, \
             apns_failing_since = CASE WHEN $3 IS NULL THEN apns_failing_since END, \
             fcm_error = CASE WHEN $4 IS NULL THEN fcm_error END, \
             fcm_failing_since = CASE WHEN $4 IS NULL THEN fcm_failing_since END, \
             web_push = COALESCE($8, web_push), web_push_public_key = COALESCE($9, web_push_public_key), \
             web_push_error = CASE WHEN $8 IS NULL THEN web_push_error END, \
             web_push_failing_since = CASE WHEN $8 IS NULL THEN web_push_failing_since END \
             WHERE id = $1 RETURNING {APP_COLUMNS}"
        );
        let (web_push, web_push_public_key) = patch.web_push.unzip();
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, AppRow>(&sql)
            .bind(id).bind(patch.name).bind(patch.apns).bind(patch.fcm).bind(now_ms())
            .bind(patch.identity).bind(patch.client_relay).bind(web_push).bind(web_push_public_key)
            .fetch_optional(p).await?))
    }

    /// Replaces an app's identity secret with `secret`; the one it had keeps
    /// verifying until `grace_until` (ms). None when there is no such app.
    pub async fn rotate_identity_secret(
        &self,
        id: &str,
        secret: &str,
        grace_until: i64,
    ) -> StoreResult<Option<AppRow>> {
        let sql = format!(
            "UPDATE apps SET previous_identity_secret = identity_secret, previous_identity_secret_until = $3, \
             identity_secret = $2, updated_at = $4 WHERE id = $1 RETURNING {APP_COLUMNS}"
        );
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, AppRow>(&sql)
            .bind(id).bind(secret).bind(grace_until).bind(now_ms())
            .fetch_optional(p).await?))
    }

    /// Reads the VAPID public key of an app, `None` when it has none.
    pub async fn web_push_public_key(&self, id: &str) -> StoreResult<Option<String>> {
        let key: Option<Option<String>> = on_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT web_push_public_key FROM apps WHERE id = $1").bind(id).fetch_optional(p).await?);
        Ok(key.flatten())
    }

    /// Marks the app's `provider` (`apns` | `fcm` | `web_push`) failing with `error`
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
            Platform::Web => "web_push",
        };
        let sql = format!(
            "UPDATE apps SET {p}_error = $2, \
             {p}_failing_since = CASE WHEN $2 IS NULL THEN NULL ELSE COALESCE({p}_failing_since, $3) END WHERE id = $1"
        );
        on_pool!(self.pool(), pool => sqlx::query(&sql).bind(id).bind(error).bind(now).execute(pool).await?.rows_affected());
        Ok(())
    }
}
