//! Delivery and device stats: API.md, Stats.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::apps::Providers;
use super::json::Query;
use super::reader::Reader;
use crate::domain::time::{self, Timestamp};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::store::{StatsWindow, MINUTE_MS};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats))
}

/// The most buckets one read answers (a day of minutes): enough for a
/// chart, and a bound on the work of a read.
const MAX_BUCKETS: i64 = 1440;

/// Window of the stats.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// Start (RFC 3339), rounded down to its bucket [default: 60 buckets before `until`].
    since: Option<String>,
    /// End (RFC 3339, excluded), rounded up to a bucket boundary [default: now].
    until: Option<String>,
    /// minute | hour | day (UTC) [default: minute].
    bucket: Option<String>,
    /// Only this notification's deliveries.
    notification_id: Option<String>,
}

/// Final deliveries recorded in one bucket.
#[derive(Serialize, ToSchema)]
struct Bucket {
    start: Timestamp,
    delivered: i64,
    failed: i64,
    expired: i64,
    /// Failed and expired deliveries by provider reason (those with one).
    by_reason: BTreeMap<String, i64>,
}

/// Devices of one platform.
#[derive(Default, Serialize, ToSchema)]
struct DeviceStates {
    active: i64,
    inactive: i64,
}

/// `GET /v1/stats` answer.
#[derive(Serialize, ToSchema)]
struct StatsView {
    /// minute | hour | day
    bucket: &'static str,
    since: Timestamp,
    until: Timestamp,
    /// Every bucket of the window, oldest first, empty ones included.
    buckets: Vec<Bucket>,
    /// Registered devices by platform.
    devices: BTreeMap<String, DeviceStates>,
    /// The app's providers and whether they accept its credentials.
    providers: Providers,
}

/// The width (ms) and name of `bucket`.
fn bucket_of(bucket: Option<&str>) -> ApiResult<(i64, &'static str)> {
    match bucket.unwrap_or("minute") {
        "minute" => Ok((MINUTE_MS, "minute")),
        "hour" => Ok((60 * MINUTE_MS, "hour")),
        "day" => Ok((24 * 60 * MINUTE_MS, "day")),
        _ => Err(ApiError::field("bucket", "bucket is minute, hour or day")),
    }
}

/// `[since, until)` aligned to buckets of `width`, at most [`MAX_BUCKETS`].
fn window(since: Option<i64>, until: Option<i64>, width: i64, now: i64) -> ApiResult<(i64, i64)> {
    let until = until.unwrap_or(now);
    let until = until - until.rem_euclid(width) + if until.rem_euclid(width) == 0 { 0 } else { width };
    let since = since.map_or(until - 60 * width, |s| s - s.rem_euclid(width));
    if since >= until {
        return Err(ApiError::field("since", "since must be before until"));
    }
    if (until - since) / width > MAX_BUCKETS {
        return Err(ApiError::field(
            "since",
            format!("at most {MAX_BUCKETS} buckets: a wider bucket, or a later since"),
        ));
    }
    Ok((since, until))
}

#[utoipa::path(get, path = "/v1/stats", tag = "stats", params(("app_id" = Option<String>, Query, description = "admin key: the app read"), StatsQuery),
    description = "Final deliveries per bucket (from counters kept as results are recorded), devices by platform \
        and state, and the app's provider status. Needs the app's server key, or the admin key with `app_id`.",
    responses((status = 200, body = StatsView), (status = "4XX", body = ErrorBody)))]
async fn stats(
    State(st): State<AppState>,
    Reader(app_id): Reader,
    Query(q): Query<StatsQuery>,
) -> ApiResult<axum::Json<StatsView>> {
    let (width, bucket) = bucket_of(q.bucket.as_deref())?;
    let at = |field: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|s| {
                time::parse_rfc3339(s)
                    .ok_or_else(|| ApiError::field(field, format!("{field} must be an RFC 3339 time")))
            })
            .transpose()
    };
    let (since, until) = window(at("since", &q.since)?, at("until", &q.until)?, width, time::now_ms())?;
    if let Some(id) = &q.notification_id {
        st.store.notification(&app_id, id).await?.ok_or_else(|| ApiError::not_found("notification"))?;
    }
    let app = st.store.app(&app_id).await?.ok_or_else(|| ApiError::not_found("app"))?;
    let w =
        StatsWindow { app_id: &app_id, since, until, bucket_ms: width, notification_id: q.notification_id.as_deref() };
    let rows = st.store.delivery_stats(&w).await?;
    let mut buckets: Vec<Bucket> = (since..until)
        .step_by(usize::try_from(width).unwrap_or(usize::MAX))
        .map(|start| Bucket {
            start: Timestamp(start),
            delivered: 0,
            failed: 0,
            expired: 0,
            by_reason: BTreeMap::new(),
        })
        .collect();
    for row in rows {
        let Some(b) = usize::try_from((row.start - since) / width).ok().and_then(|i| buckets.get_mut(i)) else {
            continue;
        };
        match row.status.as_str() {
            "delivered" => b.delivered += row.count,
            "failed" => b.failed += row.count,
            "expired" => b.expired += row.count,
            _ => continue,
        }
        if !row.reason.is_empty() {
            *b.by_reason.entry(row.reason).or_default() += row.count;
        }
    }
    let mut devices: BTreeMap<String, DeviceStates> = BTreeMap::new();
    for c in st.store.device_counts(&app_id).await? {
        let states = devices.entry(c.platform).or_default();
        if c.active {
            states.active += c.count;
        } else {
            states.inactive += c.count;
        }
    }
    Ok(axum::Json(StatsView {
        bucket,
        since: Timestamp(since),
        until: Timestamp(until),
        buckets,
        devices,
        providers: Providers::of(&app),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_buckets_and_are_bounded() {
        let hour = 60 * MINUTE_MS;
        assert_eq!(window(None, Some(10 * hour), hour, 0).ok(), Some((-50 * hour, 10 * hour)));
        assert_eq!(window(Some(hour + 5), Some(3 * hour + 1), hour, 0).ok(), Some((hour, 4 * hour)));
        assert_eq!(window(None, None, MINUTE_MS, 61 * MINUTE_MS - 1).ok(), Some((MINUTE_MS, 61 * MINUTE_MS)));
        assert!(window(Some(5 * hour), Some(5 * hour), hour, 0).is_err());
        assert!(window(Some(0), Some(2000 * MINUTE_MS), MINUTE_MS, 0).is_err());
    }
}
