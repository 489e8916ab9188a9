//! Sending: API.md, Sending. A send is answered 202 only once the
//! notification and its target are committed; workers deliver it.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pushgate_providers::{DeliveryOptions, NotificationInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::{Json, Query};
use super::reader::Reader;
use crate::auth::Auth;
use crate::delivery::{Idempotency, NewSend, Submitted};
use crate::domain::cursor::{self, Page, PageOf};
use crate::domain::local_time::LocalTime;
use crate::domain::{json, names, time, time::Timestamp, Target};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::store::{NotificationRow, NotificationStatus};
/// Longest `timeout_ms`.
const MAX_WAIT_MS: u64 = 60_000;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send))
        .routes(routes!(read, cancel))
        .routes(routes!(send_to_device))
        .routes(routes!(send_to_group))
        .routes(routes!(list))
}

/// Body of the device and group send endpoints.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// NotificationInfo: title, body (or message), data, action, object, sound, badge, image,
    /// category, thread_id, channel_id, silent, apns, fcm.
    #[schema(value_type = Object)]
    notification: Value,
    /// `{priority: high|normal|low, ttl_seconds: 0…2419200, collapse_key, send_at, local_time: "HH:MM"}`;
    /// `local_time` sends each device of a fan-out target at that time in its `timezone` (UTC when unknown).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    options: Option<Value>,
}

/// Body of `POST /v1/notifications`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SendToBody {
    /// One of `{device_ids: [..]}`, `{user_ids: [..]}`, `{group: ".."}`, `{groups: [..]}` (any of them),
    /// `{filters: EXPR}`, `{tokens: [{platform, token}]}`, `{all: true}`. EXPR is a condition
    /// `{field, relation, value?, key?}`, `{all: [EXPR..]}` or `{any: [EXPR..]}` (API.md, Targeting by filters).
    #[schema(value_type = Object)]
    to: Value,
    /// As in the device and group sends.
    #[schema(value_type = Object)]
    notification: Value,
    /// `{priority: high|normal|low, ttl_seconds: 0…2419200, collapse_key, send_at, local_time: "HH:MM"}`;
    /// `local_time` sends each device of a fan-out target at that time in its `timezone` (UTC when unknown).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    options: Option<Value>,
}

/// `?wait=true&timeout_ms=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WaitQuery {
    /// Answer 200 with per-device results once every delivery is final.
    wait: Option<bool>,
    /// How long to wait (default 10000, at most 60000); then 202 as without `wait`.
    timeout_ms: Option<u64>,
    /// Validate and count the devices targeted, send nothing: 200 `{"targeted": n}`.
    dry_run: Option<bool>,
}

/// The answer of `dry_run=true`.
#[derive(Serialize, ToSchema)]
struct DryRunView {
    /// Devices a send would target now.
    targeted: i64,
}

/// The 202 answer.
#[derive(Serialize, ToSchema)]
pub(super) struct AcceptedView {
    pub(super) id: String,
    /// `queued`, `scheduled`, or `completed` when nothing was targeted.
    pub(super) status: String,
    pub(super) targeted: i64,
}

impl AcceptedView {
    pub(super) fn of(a: crate::store::Accepted) -> Self {
        Self { id: a.id, status: a.status.to_string(), targeted: a.targeted }
    }
}

/// One device's result (`wait=true`).
#[derive(Serialize, ToSchema)]
struct ResultView {
    device_id: Option<String>,
    platform: String,
    /// Set for `tokens` targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    status: String,
    reason: Option<String>,
}

/// The 200 answer of `wait=true`.
#[derive(Serialize, ToSchema)]
struct ResultsView {
    id: String,
    /// `completed` (or `cancelled`).
    status: String,
    targeted: i64,
    results: Vec<ResultView>,
}

/// Deliveries of a notification by state.
#[derive(Serialize, ToSchema)]
struct Counts {
    targeted: i64,
    pending: i64,
    delivered: i64,
    failed: i64,
    expired: i64,
    cancelled: i64,
}

/// A notification with its status and counts.
#[derive(Serialize, ToSchema)]
struct NotificationView {
    id: String,
    /// scheduled | queued | sending | completed | cancelled
    status: String,
    targeted: i64,
    counts: Counts,
    #[schema(value_type = Object)]
    to: Value,
    #[schema(value_type = Object)]
    notification: Value,
    #[schema(value_type = Object)]
    options: Value,
    send_at: Timestamp,
    expires_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    completed_at: Option<Timestamp>,
}

#[utoipa::path(post, path = "/v1/notifications", tag = "sending", request_body = SendToBody,
    params(WaitQuery, ("Idempotency-Key" = Option<String>, Header, description = "retries with the same key and body get the first answer; 24 h")),
    responses((status = 202, body = AcceptedView), (status = 200, description = "wait=true: every delivery is final; \
        dry_run=true: the count, nothing sent (DryRunView)", body = ResultsView),
        (status = "4XX", body = ErrorBody)))]
async fn send(
    State(st): State<AppState>,
    Auth(who): Auth,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let app_id = who.server_app()?.to_string();
    let hash = idempotent(&headers).then(|| request_hash("/v1/notifications", &body));
    let req: SendToBody = crate::domain::json::from_value(body)?;
    let target = Target::parse(&req.to)?;
    accept(&st, &app_id, target, req.notification, req.options, &headers, hash, wait).await
}

#[utoipa::path(post, path = "/v1/devices/{device_id}/notifications", tag = "sending", request_body = SendBody,
    params(("device_id" = String, Path), WaitQuery, ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = AcceptedView), (status = 200, body = ResultsView), (status = "4XX", body = ErrorBody)))]
async fn send_to_device(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let app_id = who.server_app()?.to_string();
    names::opaque("device_id", &device_id)?;
    let hash = idempotent(&headers).then(|| request_hash(&format!("/v1/devices/{device_id}/notifications"), &body));
    let req: SendBody = crate::domain::json::from_value(body)?;
    accept(&st, &app_id, Target::DeviceIds(vec![device_id]), req.notification, req.options, &headers, hash, wait).await
}

#[utoipa::path(post, path = "/v1/groups/{name}/notifications", tag = "sending", request_body = SendBody,
    params(("name" = String, Path), WaitQuery, ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = AcceptedView), (status = 200, body = ResultsView), (status = "4XX", body = ErrorBody)))]
async fn send_to_group(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(wait): Query<WaitQuery>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let app_id = who.server_app()?.to_string();
    names::group("name", &name)?;
    let hash = idempotent(&headers).then(|| request_hash(&format!("/v1/groups/{name}/notifications"), &body));
    let req: SendBody = crate::domain::json::from_value(body)?;
    accept(&st, &app_id, Target::Group(name), req.notification, req.options, &headers, hash, wait).await
}

/// The fields of a `notification` (`message` is `body`'s other name; `id` is the gateway's).
const NOTIFICATION_FIELDS: &[&str] = &[
    "title",
    "body",
    "message",
    "data",
    "action",
    "object",
    "sound",
    "badge",
    "image",
    "category",
    "thread_id",
    "channel_id",
    "silent",
    "apns",
    "fcm",
];
/// The fields of `options`.
const OPTION_FIELDS: &[&str] = &["priority", "ttl_seconds", "collapse_key", "send_at"];
/// FCM's longest TTL (28 days), the longest any provider keeps a push.
const MAX_TTL_SECONDS: u32 = 2_419_200;

/// Parses `value` as `T` with unknown fields refused by name (a misspelt
/// `ttl` must not be silently ignored): the providers' types accept unknown
/// fields, stored notifications being read back by newer versions.
fn strict<T: serde::de::DeserializeOwned>(value: Value, prefix: &str, known: &[&str]) -> ApiResult<T> {
    let Some(fields) = value.as_object() else {
        return Err(ApiError::field(prefix, format!("{prefix} must be an object")));
    };
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::field(format!("{prefix}.{unknown}"), format!("unknown field `{unknown}`")));
    }
    Ok(json::from_value(value).map_err(|e| e.within(prefix))?)
}

/// Hands a parsed send to the pipeline and answers: 202 once committed,
/// or with `wait=true` 200 and the results once every delivery is final.
#[allow(clippy::too_many_arguments)]
async fn accept(
    st: &AppState,
    app_id: &str,
    target: Target,
    info: Value,
    options: Option<Value>,
    headers: &HeaderMap,
    hash: Option<String>,
    wait: WaitQuery,
) -> ApiResult<Response> {
    if wait.timeout_ms.is_some_and(|t| t > MAX_WAIT_MS) {
        return Err(ApiError::field("timeout_ms", format!("timeout_ms is at most {MAX_WAIT_MS}")));
    }
    let timeout = Duration::from_millis(wait.timeout_ms.unwrap_or(10_000));
    let idempotency = idempotency_key(headers)?.zip(hash).map(|(key, request_hash)| Idempotency { key, request_hash });
    let mut send = new_send(st, app_id, target, info, options, idempotency)?;
    send.wait = (wait.wait == Some(true)).then_some(timeout);
    if wait.dry_run == Some(true) {
        let targeted = st.delivery.dry_run(&send).await?;
        return Ok((StatusCode::OK, axum::Json(DryRunView { targeted })).into_response());
    }
    match st.delivery.submit(send).await? {
        Submitted::Accepted(a) => Ok((StatusCode::ACCEPTED, axum::Json(AcceptedView::of(a))).into_response()),
        Submitted::Final(done) => {
            let results = done
                .results
                .into_iter()
                .map(|r| ResultView {
                    token: r.device_id.is_none().then_some(r.token),
                    device_id: r.device_id,
                    platform: r.platform,
                    status: r.status.to_string(),
                    reason: r.reason,
                })
                .collect();
            let view = ResultsView { id: done.id, status: done.status.to_string(), targeted: done.targeted, results };
            Ok((StatusCode::OK, axum::Json(view)).into_response())
        }
    }
}

/// Checks a send's notification and options (and the app's send rate) and
/// makes the pipeline's [`NewSend`] of them, without waiting.
pub(super) fn new_send(
    st: &AppState,
    app_id: &str,
    target: Target,
    info: Value,
    options: Option<Value>,
    idempotency: Option<Idempotency>,
) -> ApiResult<NewSend> {
    st.send_limit
        .check(app_id, std::time::Instant::now())
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    let info: NotificationInfo = strict(info, "notification", NOTIFICATION_FIELDS)?;
    // `local_time` is the gateway's, not the providers': taken out first.
    let (options, local_time) = match options {
        Some(Value::Object(mut fields)) => {
            let local_time = fields.remove("local_time");
            (Some(Value::Object(fields)), local_time)
        }
        other => (other, None),
    };
    let local_time = local_time
        .map(|v| match v.as_str() {
            Some(text) => Ok(LocalTime::parse("options.local_time", text)?),
            None => Err(ApiError::field("options.local_time", "local_time is HH:MM")),
        })
        .transpose()?;
    let options: DeliveryOptions = match options {
        Some(v) => strict(v, "options", OPTION_FIELDS)?,
        None => DeliveryOptions::default(),
    };
    if options.ttl_seconds.is_some_and(|ttl| ttl > MAX_TTL_SECONDS) {
        return Err(ApiError::field("options.ttl_seconds", format!("ttl_seconds is 0…{MAX_TTL_SECONDS}")));
    }
    let send_at = match &options.send_at {
        Some(s) => Some(
            time::parse_rfc3339(s)
                .ok_or_else(|| ApiError::field("options.send_at", "send_at must be an RFC 3339 time"))?,
        ),
        None => None,
    };
    Ok(NewSend { app_id: app_id.to_string(), target, info, options, send_at, idempotency, wait: None, local_time })
}

/// Whether the request has an `Idempotency-Key`: only then is its body hashed.
fn idempotent(headers: &HeaderMap) -> bool {
    headers.contains_key("idempotency-key")
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    checked_key("Idempotency-Key", value.to_str().ok()).map(Some)
}

/// An idempotency key, trimmed: 1-255 visible ASCII characters.
pub(super) fn checked_key(field: &str, key: Option<&str>) -> ApiResult<String> {
    let key = key
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
    key.map(str::to_string)
        .ok_or_else(|| ApiError::field(field, format!("{field} must be 1-255 visible ASCII characters")))
}

/// SHA-256 of the route and the body with object keys sorted, so a retry
/// with the same JSON (in any key order or spacing) matches.
pub(super) fn request_hash(route: &str, body: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::from(route);
    text.push('\n');
    canonical(body, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "sending", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), ("id" = String, Path)),
    responses((status = 200, body = NotificationView), (status = "4XX", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<NotificationView>> {
    let app_id = app_id.as_str();
    let row = st.store.notification(app_id, &id).await?.ok_or_else(|| ApiError::not_found("notification"))?;
    Ok(axum::Json(view(row)))
}

#[utoipa::path(delete, path = "/v1/notifications/{id}", tag = "sending", params(("id" = String, Path)),
    responses((status = 200, description = "cancelled: what was not sent will not be", body = NotificationView),
        (status = 409, description = "already completed", body = ErrorBody), (status = "4XX", body = ErrorBody)))]
async fn cancel(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<NotificationView>> {
    let app_id = who.server_app()?;
    st.store
        .cancel_notification(app_id, &id, time::now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    let row = st.store.notification(app_id, &id).await?.ok_or_else(|| ApiError::not_found("notification"))?;
    Ok(axum::Json(view(row)))
}

fn view(row: NotificationRow) -> NotificationView {
    // Devices not yet expanded by the fan-out are pending too.
    let pending = (row.targeted - row.delivered - row.failed - row.expired - row.cancelled).max(0);
    let counts = Counts {
        targeted: row.targeted,
        pending,
        delivered: row.delivered,
        failed: row.failed,
        expired: row.expired,
        cancelled: row.cancelled,
    };
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let mut options = parse(&row.options);
    if let (Some(fields), Some(local_time)) = (options.as_object_mut(), row.local_time) {
        fields.insert("local_time".into(), Value::String(local_time));
    }
    // A scheduled notification whose time has come is queued, promoted or not.
    let status = match row.status {
        NotificationStatus::Scheduled if row.send_at <= time::now_ms() => NotificationStatus::Queued,
        status => status,
    }
    .to_string();
    let mut notification = parse(&row.info);
    if let Some(obj) = notification.as_object_mut() {
        obj.remove("id");
    }
    NotificationView {
        id: row.id,
        status,
        targeted: row.targeted,
        counts,
        to: parse(&row.target),
        notification,
        options,
        send_at: Timestamp(row.send_at),
        expires_at: row.expires_at.map(Timestamp),
        created_at: Timestamp(row.created_at),
        updated_at: Timestamp(row.updated_at),
        completed_at: row.completed_at.map(Timestamp),
    }
}

/// Paging of the notification list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/notifications", tag = "sending", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), ListQuery),
    description = "The app's notifications, newest first, with their counts.",
    responses((status = 200, body = inline(PageOf<NotificationView>)), (status = "4XX", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<NotificationView>>> {
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("notifications");
    let before = cursors.decode(q.cursor.as_deref())?;
    let rows = st.store.list_notifications(&app_id, before.as_deref(), limit + 1).await?;
    Ok(axum::Json(Page::from_rows(rows, limit, cursors, |r| r.id.clone()).map(view)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_hash_ignores_key_order_but_not_values() {
        let a = request_hash("/r", &json!({"to": {"all": true}, "notification": {"title": "x", "body": "y"}}));
        let b = request_hash("/r", &json!({"notification": {"body": "y", "title": "x"}, "to": {"all": true}}));
        let c = request_hash("/r", &json!({"notification": {"body": "z", "title": "x"}, "to": {"all": true}}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            a,
            request_hash("/other", &json!({"to": {"all": true}, "notification": {"title": "x", "body": "y"}}))
        );
    }
}
