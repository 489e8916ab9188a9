//! The delivery log: API.md, Delivery logs.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::json::Query;
use crate::auth::{Auth, Principal};
use crate::domain::cursor::{self, Page, PageOf};
use crate::domain::{time, time::Timestamp, Platform};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::store::{DeliveryFilter, DeliveryRow, DeliveryStatus};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Filters of the log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    notification_id: Option<String>,
    device_id: Option<String>,
    /// Deliveries to the devices of this user.
    user_id: Option<String>,
    /// pending | delivered | failed | expired | cancelled
    status: Option<String>,
    /// ios | android
    platform: Option<String>,
    /// Created at or after (RFC 3339).
    since: Option<String>,
    /// Created before (RFC 3339).
    until: Option<String>,
    /// Admin key only: one app's deliveries.
    app_id: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// One delivery: a (notification, device) pair and its last attempt's outcome.
#[derive(Serialize, ToSchema)]
struct DeliveryView {
    id: String,
    app_id: String,
    notification_id: String,
    device_id: Option<String>,
    platform: String,
    /// pending | delivered | failed | expired | cancelled
    status: String,
    attempts: i32,
    /// HTTP status of the provider's last answer.
    provider_status: Option<i32>,
    /// Provider reason, e.g. `Unregistered`, `UNREGISTERED`, `BadDeviceToken`, or `no_provider`.
    reason: Option<String>,
    /// `apns-id` / FCM message name.
    provider_message_id: Option<String>,
    /// While pending: when the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    delivered_at: Option<Timestamp>,
    /// Every attempt, oldest first: `{at, provider_status, reason, latency_ms}`.
    #[schema(value_type = Vec<Object>)]
    attempts_log: Vec<serde_json::Value>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: r.id.to_string(),
            // Written by the gateway only; unreadable text shows as no attempts.
            attempts_log: r.attempts_log.as_deref().and_then(|log| serde_json::from_str(log).ok()).unwrap_or_default(),
            next_attempt_at: (r.status == DeliveryStatus::Pending).then_some(Timestamp(r.next_attempt_at)),
            app_id: r.app_id,
            notification_id: r.notification_id,
            device_id: r.device_id,
            platform: r.platform,
            status: r.status.to_string(),
            attempts: r.attempts,
            provider_status: r.provider_status,
            reason: r.reason,
            provider_message_id: r.provider_message_id,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            delivered_at: r.delivered_at.map(Timestamp),
        }
    }
}

#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", params(ListQuery),
    responses((status = 200, body = inline(PageOf<DeliveryView>)), (status = "4XX", body = ErrorBody)))]
async fn list(
    State(st): State<AppState>,
    Auth(who): Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<DeliveryView>>> {
    let app_id = match &who {
        Principal::Admin => q.app_id.clone(),
        Principal::Server { app_id } => {
            if q.app_id.as_ref().is_some_and(|a| a != app_id) {
                return Err(ApiError::Forbidden("a server key reads its own app's deliveries only".into()));
            }
            Some(app_id.clone())
        }
        Principal::Client { .. } => return Err(ApiError::Forbidden("this needs a server or the admin key".into())),
    };
    let status = q
        .status
        .as_deref()
        .map(str::parse::<DeliveryStatus>)
        .transpose()
        .map_err(|_| ApiError::field("status", "status is pending, delivered, failed, expired or cancelled"))?;
    if let Some(p) = &q.platform {
        Platform::parse(p).ok_or_else(|| ApiError::field("platform", "platform is ios, android or web"))?;
    }
    let at = |field: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|s| {
                time::parse_rfc3339(s)
                    .ok_or_else(|| ApiError::field(field, format!("{field} must be an RFC 3339 time")))
            })
            .transpose()
    };
    let limit = cursor::limit(q.limit)?;
    let cursors = st.cursors.list("deliveries");
    let before_id = match cursors.decode(q.cursor.as_deref())? {
        Some(c) => Some(c.parse::<i64>().map_err(|_| ApiError::field("cursor", "cursor is not one this server gave"))?),
        None => None,
    };
    let filter = DeliveryFilter {
        app_id,
        notification_id: q.notification_id.clone(),
        device_id: q.device_id.clone(),
        user_id: q.user_id.clone(),
        status,
        platform: q.platform.clone(),
        since: at("since", &q.since)?,
        until: at("until", &q.until)?,
        before_id,
    };
    let rows = st.store.list_deliveries(&filter, limit + 1).await?;
    Ok(axum::Json(Page::from_rows(rows, limit, cursors, |r| r.id.to_string()).map(DeliveryView::from)))
}
