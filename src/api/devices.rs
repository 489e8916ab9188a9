//! The device registry: API.md, Devices. Clients register, refresh and
//! unregister their own device; servers also list and read devices.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::{Json, Query};
use super::rate_limit::Registrant;
use super::reader::Reader;
use crate::domain::cursor::{self, ListCursors, Page, PageOf};
use crate::domain::filter::Filter;
use crate::domain::{
    host_allowed, local_time, names, tags, time::Timestamp, web_push_host, DeviceToken, FieldError, Platform,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::identity;
use crate::state::AppState;
use crate::store::{DeviceFilter, DevicePatch, DeviceRow, NewDevice, RegisteredDevice};

/// The header by which a client key proves a device is its own.
const DEVICE_SECRET: HeaderName = HeaderName::from_static("x-device-secret");
/// Largest serialized `metadata` object, in bytes.
const MAX_METADATA_BYTES: usize = 4096;
/// Most groups one device may be in.
const MAX_GROUPS: usize = 100;
/// Longest `locale`, `timezone` and `app_version`.
const MAX_SHORT_TEXT: usize = 64;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register, list)).routes(routes!(read, update, unregister))
}

/// APNs environment of an iOS device.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Environment {
    /// Apps from the App Store or TestFlight.
    Production,
    /// Development builds.
    Sandbox,
}

impl Environment {
    fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Sandbox => "sandbox",
        }
    }
}

/// `POST /v1/devices` body. Fields left out keep what a registered device
/// has; `groups` replaces its memberships when given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterDevice {
    platform: Platform,
    /// APNs token (hex; spaces and `<>` are removed, letters lower-cased) or FCM registration token;
    /// for `web`, the subscription's endpoint (may be left out).
    token: Option<String>,
    /// `web` only: the browser's `PushSubscription` (`subscription.toJSON()`); its endpoint's
    /// host must be one of `PUSHGATE_WEBPUSH_HOSTS`.
    subscription: Option<WebSubscription>,
    /// The app's own stable id for the install: registration then upserts on it,
    /// so a rotated token replaces the old one.
    installation_id: Option<String>,
    user_id: Option<String>,
    groups: Option<Vec<String>>,
    /// BCP 47, e.g. `es-UY`.
    locale: Option<String>,
    /// IANA, e.g. `America/Montevideo`.
    timezone: Option<String>,
    app_version: Option<String>,
    /// iOS only; `production` when left out.
    environment: Option<Environment>,
    /// A JSON object of at most 4096 bytes.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// With a client key of a `verified` app: the app server's signed proof of
    /// `user_id` (HS256 JWT whose `sub` is the user); alone, it sets `user_id`.
    user_token: Option<String>,
    /// Up to 50 tags for targeting: names of `A-Z a-z 0-9 _ . : -` (1-64),
    /// values strings (up to 256 bytes), numbers or booleans. Replace the stored tags.
    #[schema(value_type = Option<Object>)]
    tags: Option<Map<String, Value>>,
}

/// A browser's `PushSubscription`, as `subscription.toJSON()` gives it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WebSubscription {
    /// The push service URL: the device's token.
    endpoint: String,
    keys: WebSubscriptionKeys,
    /// Given by browsers (usually null); not used.
    #[serde(rename = "expirationTime")]
    #[schema(value_type = Option<i64>)]
    _expiration_time: Option<Value>,
}

/// The keys a push is encrypted for, base64url.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WebSubscriptionKeys {
    /// The browser's P-256 public key.
    p256dh: String,
    /// Its 16-byte authentication secret.
    auth: String,
}

/// `PATCH /v1/devices/{device_id}` body: what is given is replaced; `null`
/// clears a field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateDevice {
    /// A refreshed token for the device's platform; makes the device active again.
    token: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    user_id: Option<Option<String>>,
    /// Replaces every membership of the device.
    groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    locale: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    app_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Option<Map<String, Value>>>,
    /// With a client key of a `verified` app, needed to set `user_id`.
    user_token: Option<String>,
    /// Replaces every tag (`null` removes them).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    tags: Option<Option<Map<String, Value>>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A device as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeviceView {
    id: String,
    platform: String,
    token: String,
    installation_id: Option<String>,
    user_id: Option<String>,
    /// Sorted.
    groups: Vec<String>,
    locale: Option<String>,
    timezone: Option<String>,
    app_version: Option<String>,
    environment: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Tags for targeting.
    #[schema(value_type = Option<Object>)]
    tags: Option<Value>,
    /// False once a provider said the token is dead; registering again reactivates it.
    active: bool,
    /// The provider's reason, e.g. `Unregistered`.
    deactivated_reason: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// Last registration or token refresh.
    last_seen_at: Timestamp,
    /// Proves this device to the client key on PATCH and DELETE
    /// (`X-Device-Secret`); shown only to the client key that registered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_secret: Option<String>,
}

impl DeviceView {
    /// The view of a stored device.
    pub(crate) fn new(row: DeviceRow) -> ApiResult<Self> {
        let metadata =
            row.metadata.as_deref().map(serde_json::from_str).transpose().map_err(|e| ApiError::Internal(e.into()))?;
        let groups = row.groups();
        // A web device's `environment` holds its subscription keys: kept in.
        let environment = if row.platform == Platform::Web.as_str() { None } else { row.environment };
        let tags =
            row.tags.as_deref().map(serde_json::from_str).transpose().map_err(|e| ApiError::Internal(e.into()))?;
        Ok(Self {
            groups,
            id: row.id,
            platform: row.platform,
            token: row.token,
            installation_id: row.installation_id,
            user_id: row.user_id,
            locale: row.locale,
            timezone: row.timezone,
            app_version: row.app_version,
            environment,
            metadata,
            tags,
            active: row.active,
            deactivated_reason: row.deactivated_reason,
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            last_seen_at: Timestamp(row.last_seen_at),
            device_secret: None,
        })
    }

    /// The answer to a client that re-registered a device it has not proved
    /// its own: the stored device with only what the caller sent, so a known
    /// token does not reveal its owner's user id, groups or metadata.
    fn echo(row: DeviceRow, sent: &NewDevice) -> ApiResult<Self> {
        let mut view = Self::new(row)?;
        view.installation_id.clone_from(&sent.installation_id);
        view.user_id.clone_from(&sent.user_id);
        view.groups = sent.groups.clone().unwrap_or_default();
        view.locale.clone_from(&sent.locale);
        view.timezone.clone_from(&sent.timezone);
        view.app_version.clone_from(&sent.app_version);
        if sent.platform != Platform::Web {
            view.environment.clone_from(&sent.environment);
        }
        view.metadata =
            sent.metadata.as_deref().map(serde_json::from_str).transpose().map_err(|e| ApiError::Internal(e.into()))?;
        view.tags =
            sent.tags.as_deref().map(serde_json::from_str).transpose().map_err(|e| ApiError::Internal(e.into()))?;
        Ok(view)
    }

    /// The views of a page of stored devices.
    pub(crate) fn page(rows: Vec<DeviceRow>, limit: i64, cursors: ListCursors<'_>) -> ApiResult<Page<Self>> {
        let page = Page::from_rows(rows, limit, cursors, |r| r.id.clone());
        let items = page.items.into_iter().map(Self::new).collect::<ApiResult<_>>()?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

/// Checks a client-given text field: 1 to `max` bytes.
fn text(field: &str, value: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.is_empty() || v.len() > max => {
            Err(ApiError::field(field, format!("{field} must be 1-{max} characters")))
        }
        Some(v) => {
            names::printable(field, &v)?;
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

/// Checks an opaque id (user id, installation id).
fn opaque(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    if let Some(v) = &value {
        names::opaque(field, v)?;
    }
    Ok(value)
}

/// Checks group names; returns them sorted without duplicates.
fn groups(value: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
    let Some(mut names) = value else { return Ok(None) };
    for (i, name) in names.iter().enumerate() {
        names::group(&format!("groups[{i}]"), name)?;
    }
    names.sort_unstable();
    names.dedup();
    if names.len() > MAX_GROUPS {
        return Err(ApiError::field("groups", format!("a device may be in at most {MAX_GROUPS} groups")));
    }
    Ok(Some(names))
}

/// Serializes `metadata` for the store, within its size limit.
fn metadata(value: Option<Map<String, Value>>) -> ApiResult<Option<String>> {
    let Some(map) = value else { return Ok(None) };
    let text = Value::Object(map).to_string();
    if text.len() > MAX_METADATA_BYTES {
        return Err(ApiError::field(
            "metadata",
            format!("metadata must be at most {MAX_METADATA_BYTES} bytes as JSON"),
        ));
    }
    Ok(Some(text))
}

/// Validates an IANA time zone name.
fn timezone(value: Option<String>) -> ApiResult<Option<String>> {
    if let Some(name) = &value {
        local_time::timezone("timezone", name)?;
    }
    Ok(value)
}

/// Validates `tags`; returns them as stored JSON text.
fn tags(value: Option<Map<String, Value>>) -> ApiResult<Option<String>> {
    Ok(value.map(|map| tags::parse("tags", &map)).transpose()?)
}

/// Applies `check` to a PATCH field that may be left out or null.
fn patched<T, U>(
    value: Option<Option<T>>,
    check: impl FnOnce(Option<T>) -> ApiResult<Option<U>>,
) -> ApiResult<Option<Option<U>>> {
    value.map(check).transpose()
}

impl RegisterDevice {
    /// Checks the body; a web subscription must point at one of `webpush_hosts`.
    fn validate(self, webpush_hosts: &[String]) -> ApiResult<NewDevice> {
        let (token, environment) = match (self.platform, self.subscription) {
            (Platform::Web, Some(sub)) => web_subscription(sub, self.token, self.environment, webpush_hosts)?,
            (Platform::Web, None) => {
                return Err(ApiError::field("subscription", "a web device registers its PushSubscription"))
            }
            (_, Some(_)) => return Err(ApiError::field("subscription", "only web devices have a subscription")),
            (platform, None) => {
                let raw = self.token.ok_or_else(|| ApiError::field("token", "token is required"))?;
                let token = DeviceToken::parse(platform, &raw, "token")?.into_string();
                // The environment only steers APNs. Absent, it stays absent:
                // the app's `apns.environment` then picks the host at send time.
                (token, self.environment.map(|e| e.as_str().to_string()))
            }
        };
        Ok(NewDevice {
            platform: self.platform,
            token,
            installation_id: opaque("installation_id", self.installation_id)?,
            user_id: opaque("user_id", self.user_id)?,
            groups: groups(self.groups)?,
            locale: text("locale", self.locale, MAX_SHORT_TEXT)?,
            timezone: timezone(text("timezone", self.timezone, MAX_SHORT_TEXT)?)?,
            app_version: text("app_version", self.app_version, MAX_SHORT_TEXT)?,
            environment,
            metadata: metadata(self.metadata)?,
            secret_hash: None,
            tags: tags(self.tags)?,
        })
    }
}

/// A web device's token (the endpoint, on an allowed host) and what is
/// stored as its `environment`: the subscription keys, `p256dh.auth`.
fn web_subscription(
    sub: WebSubscription,
    token: Option<String>,
    environment: Option<Environment>,
    webpush_hosts: &[String],
) -> ApiResult<(String, Option<String>)> {
    if token.is_some_and(|t| t != sub.endpoint) {
        return Err(ApiError::field("token", "a web device's token is its subscription's endpoint"));
    }
    if environment.is_some() {
        return Err(ApiError::field("environment", "environment is for iOS devices"));
    }
    let field = "subscription.endpoint";
    let endpoint = DeviceToken::parse(Platform::Web, &sub.endpoint, field)?.into_string();
    // What stops the gateway being told to POST to any address.
    if !web_push_host(&endpoint).is_some_and(|host| host_allowed(&host, webpush_hosts)) {
        return Err(FieldError::token(field, "the endpoint's host is not a push service this gateway sends to").into());
    }
    let keys = pushgate_providers::webpush::Subscription::from_keys(&endpoint, &sub.keys.p256dh, &sub.keys.auth)
        .map_err(|(key, message)| ApiError::field(format!("subscription.{key}"), message))?;
    let (p256dh, auth) = keys.keys_base64();
    Ok((endpoint, Some(format!("{p256dh}.{auth}"))))
}

impl UpdateDevice {
    fn validate(self, platform: Platform) -> ApiResult<DevicePatch> {
        if platform == Platform::Web && self.token.is_some() {
            return Err(ApiError::field(
                "token",
                "a web device's new subscription is registered with POST /v1/devices",
            ));
        }
        Ok(DevicePatch {
            token: self
                .token
                .map(|t| DeviceToken::parse(platform, &t, "token"))
                .transpose()?
                .map(DeviceToken::into_string),
            user_id: patched(self.user_id, |v| opaque("user_id", v))?,
            groups: groups(self.groups)?,
            locale: patched(self.locale, |v| text("locale", v, MAX_SHORT_TEXT))?,
            timezone: patched(self.timezone, |v| timezone(text("timezone", v, MAX_SHORT_TEXT)?))?,
            app_version: patched(self.app_version, |v| text("app_version", v, MAX_SHORT_TEXT))?,
            metadata: patched(self.metadata, metadata)?,
            tags: patched(self.tags, tags)?,
        })
    }
}

#[utoipa::path(post, path = "/v1/devices", tag = "devices", request_body = RegisterDevice,
    description = "Registers a device, or refreshes the one with the same `installation_id` (when given) or the same \
        (platform, token). A refreshed device is active again. Client keys are rate-limited per client address; \
        with a client key, a `user_id` needs a `user_token` (verified apps), the answer carries a `device_secret` \
        for a device it created, and taking over a registered `installation_id` needs its `X-Device-Secret` (409).",
    responses((status = 201, description = "a new device", body = DeviceView),
        (status = 200, description = "an existing device, refreshed", body = DeviceView),
        (status = "4XX", body = ErrorBody)))]
async fn register(
    State(st): State<AppState>,
    Registrant { app_id, client }: Registrant,
    headers: HeaderMap,
    Json(mut body): Json<RegisterDevice>,
) -> ApiResult<(StatusCode, axum::Json<DeviceView>)> {
    let user_token = body.user_token.take();
    let mut device = body.validate(&st.config.webpush_hosts)?;
    if !client {
        let RegisteredDevice { device: row, created } = st.registrar.register(app_id, device).await?;
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        return Ok((status, axum::Json(DeviceView::new(row)?)));
    }
    let policy = st.identities.policy(&app_id).await?.ok_or(ApiError::Unauthorized)?;
    device.user_id = policy.client_user(device.user_id.as_deref(), user_token.as_deref())?;
    let presented = presented_secret(&headers);
    // Taking over an installation's device would redirect its pushes: only
    // the client holding that device's secret may.
    if let Some(installation_id) = &device.installation_id {
        if let Some(Some(stored)) = st.store.installation_secret(&app_id, installation_id).await? {
            if !presented.as_deref().is_some_and(|p| identity::constant_time_eq(p, &stored)) {
                return Err(ApiError::Conflict(
                    "this installation_id is registered: send its device's X-Device-Secret".into(),
                ));
            }
        }
    }
    let (secret, hash) = identity::device_secret();
    device.secret_hash = Some(hash.clone());
    let sent = device.clone();
    let RegisteredDevice { device: row, created } = st.registrar.register(app_id, device).await?;
    let stored = row.secret_hash.clone().unwrap_or_default();
    // Ours when it was created now, or had no secret yet (registered before
    // secrets existed, or by a server key): then this client holds it.
    let ours = identity::constant_time_eq(&stored, &hash);
    let owner = created || presented.as_deref().is_some_and(|p| identity::constant_time_eq(p, &stored));
    let mut view = if owner { DeviceView::new(row)? } else { DeviceView::echo(row, &sent)? };
    if ours {
        view.device_secret = Some(secret);
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(view)))
}

/// The hash of the `X-Device-Secret` the caller sent, if any.
fn presented_secret(headers: &HeaderMap) -> Option<String> {
    headers.get(DEVICE_SECRET).and_then(|v| v.to_str().ok()).map(identity::hash_secret)
}

/// Reads a device for a client key, which must prove it with the device's
/// secret; without it the device is `not_found`, so ids cannot be probed.
async fn find_own(st: &AppState, app_id: &str, id: &str, headers: &HeaderMap) -> ApiResult<DeviceRow> {
    let row = find(st, app_id, id).await?;
    let proved = match (presented_secret(headers), &row.secret_hash) {
        (Some(p), Some(stored)) => identity::constant_time_eq(&p, stored),
        _ => false,
    };
    if proved {
        Ok(row)
    } else {
        Err(ApiError::not_found("device"))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    user_id: Option<String>,
    /// Members of this group.
    group: Option<String>,
    platform: Option<Platform>,
    /// `true`: active devices only; `false`: deactivated ones only.
    active: Option<bool>,
    /// The device with this token (with `platform`, found by its index).
    token: Option<String>,
    /// Devices a targeting filter selects, as JSON (see `to.filters` of a send).
    filters: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/devices", tag = "devices", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), ListQuery),
    description = "Newest first. Needs the app's server key.",
    responses((status = 200, body = inline(PageOf<DeviceView>)), (status = "4XX", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<DeviceView>>> {
    let app_id = app_id.as_str();
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("devices");
    let after = cursors.decode(q.cursor.as_deref())?;
    let filters = q.filters.as_deref().map(parse_filters).transpose()?;
    let filter = DeviceFilter {
        user_id: q.user_id.as_deref(),
        group: q.group.as_deref(),
        platform: q.platform,
        active: q.active,
        token: q.token.as_deref(),
        filters: filters.as_ref(),
    };
    let rows = st.store.list_devices(app_id, &filter, after.as_deref(), limit + 1).await?;
    Ok(axum::Json(DeviceView::page(rows, limit, cursors)?))
}

/// Parses the `filters` query parameter: a filter as JSON.
fn parse_filters(text: &str) -> ApiResult<Filter> {
    let value: Value = serde_json::from_str(text).map_err(|_| ApiError::field("filters", "filters must be JSON"))?;
    Ok(Filter::parse(&value, "filters")?)
}

/// Reads a device of the caller's app, or `not_found`.
async fn find(st: &AppState, app_id: &str, id: &str) -> ApiResult<DeviceRow> {
    st.store.device_by_id(app_id, id).await?.ok_or_else(|| ApiError::not_found("device"))
}

#[utoipa::path(get, path = "/v1/devices/{device_id}", tag = "devices", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), ("device_id" = String, Path)),
    description = "Needs the app's server key.",
    responses((status = 200, body = DeviceView), (status = "4XX", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeviceView>> {
    let row = find(&st, &app_id, &id).await?;
    Ok(axum::Json(DeviceView::new(row)?))
}

#[utoipa::path(patch, path = "/v1/devices/{device_id}", tag = "devices", params(("device_id" = String, Path)),
    request_body = UpdateDevice,
    description = "A `token` held by another device of the app is a `conflict`. A client key needs the device's \
        `X-Device-Secret` (404 otherwise), and a `user_token` to set `user_id` in a verified app.",
    responses((status = 200, body = DeviceView), (status = "4XX", body = ErrorBody)))]
async fn update(
    State(st): State<AppState>,
    Registrant { app_id, client }: Registrant,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(mut body): Json<UpdateDevice>,
) -> ApiResult<axum::Json<DeviceView>> {
    let user_token = body.user_token.take();
    let current = if client { find_own(&st, &app_id, &id, &headers).await? } else { find(&st, &app_id, &id).await? };
    let mut patch = body.validate(current.parsed_platform()?)?;
    if client {
        if let Some(Some(user_id)) = &patch.user_id {
            let policy = st.identities.policy(&app_id).await?.ok_or(ApiError::Unauthorized)?;
            let proved = policy.client_user(Some(user_id), user_token.as_deref())?;
            patch.user_id = Some(proved);
        }
    }
    let row = st.store.update_device(&app_id, &id, &patch).await?.ok_or_else(|| ApiError::not_found("device"))?;
    Ok(axum::Json(DeviceView::new(row)?))
}

#[utoipa::path(delete, path = "/v1/devices/{device_id}", tag = "devices", params(("device_id" = String, Path)),
    description = "Unregisters the device (e.g. at logout) and removes it from its groups. A client key needs the \
        device's `X-Device-Secret` (404 otherwise).",
    responses((status = 204, description = "unregistered"), (status = "4XX", body = ErrorBody)))]
async fn unregister(
    State(st): State<AppState>,
    Registrant { app_id, client }: Registrant,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if client {
        find_own(&st, &app_id, &id, &headers).await?;
    }
    if st.store.delete_device(&app_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("device"))
    }
}
