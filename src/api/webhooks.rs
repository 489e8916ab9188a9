//! Webhooks: API.md, Webhooks. An app's endpoints (server key), their
//! secrets (shown at creation and rotation only), test events and the
//! attempt log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::{Json, Query};
use super::reader::Reader;
use crate::auth::Auth;
use crate::domain::cursor::{self, Page, PageOf};
use crate::domain::time::{now_ms, Timestamp};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::store::{NewWebhook, WebhookAttemptRow, WebhookPatch, WebhookRow};
use crate::webhooks::{events, signature};

/// How long a rotated secret keeps signing beside the new one.
const SECRET_OVERLAP_MS: i64 = 24 * 3600 * 1000;
/// Longest description.
const MAX_DESCRIPTION: usize = 1000;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, update, remove))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(attempts))
}

/// `POST /v1/webhooks` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    /// `http(s)` URL on a public address.
    url: String,
    /// Event types to receive (see the Webhooks section of API.md).
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}` body: what is given is replaced.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateWebhook {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    /// `true` enables again (an endpoint disabled for failing counts afresh).
    #[serde(default)]
    enabled: Option<bool>,
}

/// An endpoint as shown; `secret` only in the answer that created it.
#[derive(Serialize, ToSchema)]
struct WebhookView {
    id: String,
    url: String,
    events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    enabled: bool,
    /// Why the gateway disabled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    /// Since when every attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_since: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<WebhookRow> for WebhookView {
    fn from(row: WebhookRow) -> Self {
        Self {
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            id: row.id,
            url: row.url,
            description: row.description,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since.map(Timestamp),
            created_at: Timestamp(row.created_at),
            updated_at: Timestamp(row.updated_at),
            secret: None,
        }
    }
}

/// The event list as stored (a JSON array), every type known and named once.
fn valid_events(events: &[String]) -> ApiResult<String> {
    if events.is_empty() {
        return Err(ApiError::field("events", "events must name at least one event type"));
    }
    for (i, e) in events.iter().enumerate() {
        if !events::TYPES.contains(&e.as_str()) {
            return Err(ApiError::field(
                format!("events[{i}]"),
                format!("unknown event type {e:?}: use one of {}", events::TYPES.join(", ")),
            ));
        }
    }
    let mut unique: Vec<&str> = events.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    Ok(json!(unique).to_string())
}

fn valid_description(d: Option<&str>) -> ApiResult<Option<&str>> {
    match d {
        Some(d) if d.len() > MAX_DESCRIPTION => {
            Err(ApiError::field("description", format!("description is at most {MAX_DESCRIPTION} bytes")))
        }
        other => Ok(other),
    }
}

async fn valid_url(st: &AppState, url: &str) -> ApiResult<String> {
    st.webhooks.check_url(url).await.map_err(|e| ApiError::field("url", e.to_string()))
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    description = "Subscribes an endpoint of the app's servers to events. URLs on loopback, private or link-local \
        addresses are refused unless `PUSHGATE_WEBHOOK_ALLOW_PRIVATE=true`.",
    responses((status = 201, description = "created; the secret (`whsec_…`) is shown only here", body = WebhookView),
        (status = "4XX", body = ErrorBody)))]
async fn create(
    State(st): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    let app_id = who.server_app()?;
    let events = valid_events(&body.events)?;
    let description = valid_description(body.description.as_deref())?;
    // Last: it may ask DNS.
    let url = valid_url(&st, &body.url).await?;
    let secret = signature::generate_secret();
    let new = NewWebhook { app_id, url: &url, description, events: &events, secret: &secret };
    let row = st.store.create_webhook(&new, now_ms()).await?;
    let mut view = WebhookView::from(row);
    view.secret = Some(secret);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(ListQuery, ("app_id" = Option<String>, Query, description = "admin key: the app read")),
    responses((status = 200, body = inline(PageOf<WebhookView>)), (status = "4XX", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<WebhookView>>> {
    let app_id = app_id.as_str();
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("webhooks");
    let after = cursors.decode(q.cursor.as_deref())?;
    let rows = st.store.list_webhooks(app_id, after.as_deref(), limit + 1).await?;
    Ok(axum::Json(Page::from_rows(rows, limit, cursors, |r| r.id.clone()).map(WebhookView::from)))
}

/// The endpoint `id` of the key's app.
async fn found(st: &AppState, app_id: &str, id: &str) -> ApiResult<WebhookRow> {
    st.store.webhook(app_id, id).await?.ok_or_else(|| ApiError::not_found("webhook"))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path), ("app_id" = Option<String>, Query, description = "admin key: the app read")),
    responses((status = 200, body = WebhookView), (status = "4XX", body = ErrorBody)))]
async fn read(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookView>> {
    Ok(axum::Json(found(&st, &app_id, &id).await?.into()))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = WebhookView), (status = "4XX", body = ErrorBody)))]
async fn update(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateWebhook>,
) -> ApiResult<axum::Json<WebhookView>> {
    let app_id = who.server_app()?;
    let events = body.events.as_deref().map(valid_events).transpose()?;
    let description = valid_description(body.description.as_deref())?;
    let url = match &body.url {
        Some(url) => Some(valid_url(&st, url).await?),
        None => None,
    };
    let patch = WebhookPatch { url: url.as_deref(), description, events: events.as_deref(), enabled: body.enabled };
    let row = st.store.update_webhook(app_id, &id, &patch, now_ms()).await?;
    Ok(axum::Json(row.ok_or_else(|| ApiError::not_found("webhook"))?.into()))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    description = "Removes the endpoint, with its events not yet delivered and its attempt log.",
    responses((status = 204, description = "removed"), (status = "4XX", body = ErrorBody)))]
async fn remove(State(st): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let app_id = who.server_app()?;
    if st.store.delete_webhook(app_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

/// Answer of a secret rotation.
#[derive(Serialize, ToSchema)]
struct RotatedSecret {
    /// The new secret (shown only here).
    secret: String,
    /// Until when the previous secret signs too (a second `v1,` signature).
    previous_valid_until: Timestamp,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/secret", tag = "webhooks", params(("id" = String, Path)),
    description = "Rotates the signing secret. For 24 hours every event carries two signatures, by the old and \
        the new secret, so receivers can switch without losing any.",
    responses((status = 200, body = RotatedSecret), (status = "4XX", body = ErrorBody)))]
async fn rotate_secret(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<RotatedSecret>> {
    let app_id = who.server_app()?;
    let now = now_ms();
    let (secret, until) = (signature::generate_secret(), now + SECRET_OVERLAP_MS);
    st.store
        .rotate_webhook_secret(app_id, &id, &secret, until, now)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(axum::Json(RotatedSecret { secret, previous_valid_until: Timestamp(until) }))
}

/// Answer of a test event.
#[derive(Serialize, ToSchema)]
struct TestSent {
    /// The event's `webhook-id`, as its attempts list it.
    msg_id: String,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)),
    description = "Queues a `webhook.test` event for the endpoint now, subscribed to it or not; its attempts are \
        listed like any other.",
    responses((status = 202, body = TestSent), (status = "4XX", body = ErrorBody)))]
async fn send_test(
    State(st): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<TestSent>)> {
    let app_id = who.server_app()?;
    let hook = found(&st, app_id, &id).await?;
    let now = now_ms();
    let message = events::message(&hook.id, "webhook.test", now, json!({"webhook_id": hook.id}));
    st.store.enqueue_webhook_message(&message, now).await?;
    st.webhooks.wake();
    Ok((StatusCode::ACCEPTED, axum::Json(TestSent { msg_id: message.msg_id })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AttemptsQuery {
    /// `succeeded` or `failed`.
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// One attempt at sending an event.
#[derive(Serialize, ToSchema)]
struct AttemptView {
    id: String,
    /// The event's `webhook-id`.
    msg_id: String,
    #[serde(rename = "type")]
    kind: String,
    /// 1 for an event's first attempt.
    attempt: i32,
    /// `succeeded` (a 2xx answer) or `failed`.
    status: String,
    /// The endpoint's answer, when one came.
    http_status: Option<i32>,
    latency_ms: i64,
    /// Why it failed (`HTTP 500`, a timeout, a connection error).
    error: Option<String>,
    at: Timestamp,
}

impl From<WebhookAttemptRow> for AttemptView {
    fn from(r: WebhookAttemptRow) -> Self {
        Self {
            id: r.id.to_string(),
            msg_id: r.msg_id,
            kind: r.kind,
            attempt: r.attempt,
            status: r.status,
            http_status: r.http_status,
            latency_ms: r.latency_ms,
            error: r.error,
            at: Timestamp(r.at),
        }
    }
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/attempts", tag = "webhooks", params(("id" = String, Path), AttemptsQuery, ("app_id" = Option<String>, Query, description = "admin key: the app read")),
    description = "Every attempt at the endpoint's events, newest first.",
    responses((status = 200, body = inline(PageOf<AttemptView>)), (status = "4XX", body = ErrorBody)))]
async fn attempts(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Path(id): Path<String>,
    Query(q): Query<AttemptsQuery>,
) -> ApiResult<axum::Json<Page<AttemptView>>> {
    let hook = found(&st, &app_id, &id).await?;
    if let Some(s) = q.status.as_deref().filter(|s| !matches!(*s, "succeeded" | "failed")) {
        return Err(ApiError::field("status", format!("unknown status {s:?}: use succeeded or failed")));
    }
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("webhook_attempts");
    let before = cursors
        .decode(q.cursor.as_deref())?
        .map(|c| c.parse::<i64>().map_err(|_| ApiError::field("cursor", "cursor is not one this list gave")))
        .transpose()?;
    let rows = st.store.list_webhook_attempts(&hook.id, q.status.as_deref(), before, limit + 1).await?;
    let page = Page::from_rows(rows, limit, cursors, |r| r.id.to_string());
    Ok(axum::Json(page.map(AttemptView::from)))
}
