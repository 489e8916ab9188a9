//! Apps and their keys (admin only): API.md, Keys and apps.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::{Json, Query};
use crate::auth::Auth;
use crate::delivery::credentials;
use crate::domain::cursor::{self, Page, PageOf};
use crate::domain::time::Timestamp;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::identity::{self, ClientRelay, IdentityMode};
use crate::state::AppState;
use crate::store::{AppPatch, AppRow, KeyKind, KeyRow, NewApp};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, update))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(rotate_identity_secret))
}

/// An app's socket settings.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SocketSettings {
    /// Whom a client's `{"type": "send"}` frame may reach (default `same_user`).
    client_relay: ClientRelay,
}

/// `POST /v1/apps` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    name: String,
    /// `{team_id, key_id, private_key, topic, environment}`
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    apns: Option<Value>,
    /// `{service_account: {...}}`
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    fcm: Option<Value>,
    /// `{subject: "mailto:…", private_key?}`: a VAPID key pair for Web Push
    /// (generated unless `private_key`, a PKCS#8 PEM of a P-256 key, is given).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    web_push: Option<Value>,
    /// `verified` (default): a `user_id` given with the client key needs a user token.
    #[serde(default)]
    identity: Option<IdentityMode>,
    #[serde(default)]
    socket: Option<SocketSettings>,
}

/// `PATCH /v1/apps/{app_id}` body: what is given is replaced.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateApp {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    apns: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    fcm: Option<Value>,
    /// `{subject, private_key?}`: without `private_key` the app keeps its
    /// VAPID key (a new one when it has none), so subscriptions stay valid.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    web_push: Option<Value>,
    /// `verified` or `open`.
    #[serde(default)]
    identity: Option<IdentityMode>,
    #[serde(default)]
    socket: Option<SocketSettings>,
}

/// Which providers an app can reach, and whether they accept its
/// credentials; credentials are never echoed.
#[derive(Serialize, ToSchema)]
pub(crate) struct Providers {
    apns: ProviderState,
    fcm: ProviderState,
    web_push: ProviderState,
}

/// An app's Web Push settings (the private key is never shown).
#[derive(Serialize, ToSchema)]
struct WebPushView {
    /// The VAPID contact (`mailto:` or `https:`).
    subject: String,
    /// The VAPID public key, base64url: browsers' `applicationServerKey`.
    public_key: String,
}

impl Providers {
    /// The providers of `row`.
    pub(crate) fn of(row: &AppRow) -> Self {
        Self {
            apns: ProviderState::of(row.apns.is_some(), row.apns_error.clone(), row.apns_failing_since),
            fcm: ProviderState::of(row.fcm.is_some(), row.fcm_error.clone(), row.fcm_failing_since),
            web_push: ProviderState::of(row.web_push.is_some(), row.web_push_error.clone(), row.web_push_failing_since),
        }
    }
}

/// One provider of an app.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProviderState {
    /// Credentials are stored.
    configured: bool,
    /// `ok`, or `failing` while the provider refuses the credentials
    /// (absent when not configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    /// The provider's refusal, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// Since when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<Timestamp>,
}

impl ProviderState {
    fn of(configured: bool, error: Option<String>, since: Option<i64>) -> Self {
        let status = configured.then_some(if error.is_some() { "failing" } else { "ok" });
        Self { configured, status, last_error: error, since: since.map(Timestamp) }
    }
}

/// An app as shown to the admin.
#[derive(Serialize, ToSchema)]
struct AppView {
    id: String,
    name: String,
    providers: Providers,
    /// Whether client keys must prove user ids with user tokens.
    identity: IdentityMode,
    socket: SocketSettings,
    /// Present once `web_push` was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    web_push: Option<WebPushView>,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_key: Option<String>,
    /// The key user tokens are signed with: shown only when the app is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_secret: Option<String>,
}

impl From<AppRow> for AppView {
    fn from(row: AppRow) -> Self {
        Self {
            providers: Providers::of(&row),
            web_push: web_push_view(row.web_push.as_deref(), row.web_push_public_key),
            identity: IdentityMode::parse(&row.identity),
            socket: SocketSettings { client_relay: ClientRelay::parse(&row.client_relay) },
            id: row.id,
            name: row.name,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            server_key: None,
            client_key: None,
            identity_secret: None,
        }
    }
}

fn web_push_view(stored: Option<&str>, public_key: Option<String>) -> Option<WebPushView> {
    let creds: pushgate_providers::WebPushCredentials = serde_json::from_str(stored?).ok()?;
    Some(WebPushView { subject: creds.subject, public_key: public_key? })
}

fn valid_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::field("name", "name must be 1-200 characters"));
    }
    Ok(name.to_string())
}

#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = CreateApp,
    responses((status = 201, description = "created; the keys are shown only here", body = AppView), (status = "4XX", body = ErrorBody)))]
async fn create(
    State(st): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<CreateApp>,
) -> ApiResult<(StatusCode, axum::Json<AppView>)> {
    who.admin()?;
    let app = NewApp {
        name: valid_name(&body.name)?,
        apns: body.apns.map(|v| credentials::apns(v, &st.config)).transpose()?,
        fcm: body.fcm.map(|v| credentials::fcm(v, &st.config)).transpose()?,
        identity: body.identity.unwrap_or(IdentityMode::Verified).as_str().to_string(),
        client_relay: body.socket.map_or(ClientRelay::SameUser, |s| s.client_relay).as_str().to_string(),
        identity_secret: identity::generate_secret(),
        web_push: body.web_push.map(|v| credentials::web_push(v, None)).transpose()?,
    };
    let row = st.store.create_app(app).await?;
    let identity_secret = row.identity_secret.clone();
    let (_, server_key) = st.store.create_key(&row.id, KeyKind::Server).await?;
    let (_, client_key) = st.store.create_key(&row.id, KeyKind::Client).await?;
    let mut view = AppView::from(row);
    view.server_key = Some(server_key);
    view.client_key = Some(client_key);
    view.identity_secret = identity_secret;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/apps", tag = "apps", params(ListQuery),
    responses((status = 200, body = inline(PageOf<AppView>)), (status = "4XX", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    Auth(who): Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<AppView>>> {
    who.admin()?;
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("apps");
    let after = cursors.decode(q.cursor.as_deref())?;
    let rows = st.store.list_apps(after.as_deref(), limit + 1).await?;
    Ok(axum::Json(Page::from_rows(rows, limit, cursors, |r| r.id.clone()).map(AppView::from)))
}

#[utoipa::path(get, path = "/v1/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = AppView), (status = "4XX", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(app_id): Path<String>,
) -> ApiResult<axum::Json<AppView>> {
    who.admin()?;
    let row = st.store.app(&app_id).await?.ok_or_else(|| ApiError::not_found("app"))?;
    Ok(axum::Json(row.into()))
}

#[utoipa::path(patch, path = "/v1/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)), request_body = UpdateApp,
    responses((status = 200, body = AppView), (status = "4XX", body = ErrorBody)))]
async fn update(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(app_id): Path<String>,
    Json(body): Json<UpdateApp>,
) -> ApiResult<axum::Json<AppView>> {
    who.admin()?;
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let apns = body.apns.map(|v| credentials::apns(v, &st.config)).transpose()?;
    let fcm = body.fcm.map(|v| credentials::fcm(v, &st.config)).transpose()?;
    let web_push = match body.web_push {
        Some(v) => {
            let current = st.store.app(&app_id).await?.ok_or_else(|| ApiError::not_found("app"))?;
            Some(credentials::web_push(v, current.web_push.as_deref())?)
        }
        None => None,
    };
    let patch = AppPatch {
        name: name.as_deref(),
        apns: apns.as_deref(),
        fcm: fcm.as_deref(),
        identity: body.identity.map(IdentityMode::as_str),
        client_relay: body.socket.map(|s| s.client_relay.as_str()),
        web_push: web_push.as_ref().map(|(json, public)| (json.as_str(), public.as_str())),
    };
    let row = st.store.update_app(&app_id, &patch).await?.ok_or_else(|| ApiError::not_found("app"))?;
    st.identities.refresh(&row);
    Ok(axum::Json(row.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    kind: KeyKind,
}

/// A key as shown: the plain `key` only in the answer that created it.
#[derive(Serialize, ToSchema)]
struct KeyView {
    id: String,
    kind: String,
    prefix: String,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl From<KeyRow> for KeyView {
    fn from(row: KeyRow) -> Self {
        Self { id: row.id, kind: row.kind, prefix: row.prefix, created_at: Timestamp(row.created_at), key: None }
    }
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/keys", tag = "apps", params(("app_id" = String, Path)), request_body = CreateKey,
    responses((status = 201, body = KeyView), (status = "4XX", body = ErrorBody)))]
async fn create_key(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(app_id): Path<String>,
    Json(body): Json<CreateKey>,
) -> ApiResult<(StatusCode, axum::Json<KeyView>)> {
    who.admin()?;
    st.store.app(&app_id).await?.ok_or_else(|| ApiError::not_found("app"))?;
    let (row, plain) = st.store.create_key(&app_id, body.kind).await?;
    let mut view = KeyView::from(row);
    view.key = Some(plain);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(get, path = "/v1/apps/{app_id}/keys", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = inline(PageOf<KeyView>)), (status = "4XX", body = ErrorBody)))]
async fn list_keys(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(app_id): Path<String>,
) -> ApiResult<axum::Json<Page<KeyView>>> {
    who.admin()?;
    st.store.app(&app_id).await?.ok_or_else(|| ApiError::not_found("app"))?;
    let rows = st.store.list_keys(&app_id).await?;
    Ok(axum::Json(Page { items: rows.into_iter().map(KeyView::from).collect(), next_cursor: None }))
}

#[utoipa::path(delete, path = "/v1/apps/{app_id}/keys/{key_id}", tag = "apps", params(("app_id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = "4XX", body = ErrorBody)))]
async fn revoke_key(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path((app_id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    let hash = st.store.revoke_key(&app_id, &key_id).await?.ok_or_else(|| ApiError::not_found("key"))?;
    st.auth.forget(&hash);
    Ok(StatusCode::NO_CONTENT)
}

/// Answer of an identity secret rotation.
#[derive(Serialize, ToSchema)]
struct RotatedSecret {
    /// The new key user tokens are signed with (shown only here).
    identity_secret: String,
    /// Until when tokens signed with the previous secret still verify.
    previous_valid_until: Timestamp,
}

#[utoipa::path(post, path = "/v1/apps/{app_id}/identity-secret", tag = "apps", params(("app_id" = String, Path)),
    description = "Rotates the app's identity secret (admin key, or the app's server key). Tokens signed with \
        the previous secret keep verifying for `PUSHGATE_IDENTITY_GRACE_SECONDS` (24 h by default).",
    responses((status = 200, body = RotatedSecret), (status = "4XX", body = ErrorBody)))]
async fn rotate_identity_secret(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(app_id): Path<String>,
) -> ApiResult<axum::Json<RotatedSecret>> {
    if who.admin().is_err() && who.server_app()? != app_id {
        return Err(ApiError::not_found("app"));
    }
    let until = crate::domain::time::now_ms().saturating_add(st.config.identity_grace_seconds.saturating_mul(1000));
    let secret = identity::generate_secret();
    let row =
        st.store.rotate_identity_secret(&app_id, &secret, until).await?.ok_or_else(|| ApiError::not_found("app"))?;
    st.identities.refresh(&row);
    Ok(axum::Json(RotatedSecret { identity_secret: secret, previous_valid_until: Timestamp(until) }))
}
