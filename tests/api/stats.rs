//! `GET /v1/stats`: counters kept as results are recorded, equal to what
//! the delivery log holds, on both stores.

use std::collections::BTreeMap;

use pushgate_mock_providers::Behavior;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Db};
use crate::pipeline::{self, deliveries, ios_token, register, wait_final};

/// `(bucket start, status, reason)` → deliveries, from the stats buckets.
fn stats_counts(stats: &Value) -> BTreeMap<(String, String, String), i64> {
    let mut counts = BTreeMap::new();
    for b in stats["buckets"].as_array().expect("buckets") {
        let start = b["start"].as_str().expect("start").to_string();
        for status in ["delivered", "failed", "expired"] {
            let n = b[status].as_i64().expect("count");
            if n > 0 {
                *counts.entry((start.clone(), status.to_string(), String::new())).or_default() += n;
            }
        }
        for (reason, n) in b["by_reason"].as_object().expect("by_reason") {
            *counts.entry((start.clone(), "reason".to_string(), reason.clone())).or_default() += n.as_i64().expect("n");
        }
    }
    counts
}

/// The same counts made from the log's final rows, by the minute of their last change.
fn log_counts(rows: &[Value]) -> BTreeMap<(String, String, String), i64> {
    let mut counts = BTreeMap::new();
    for d in rows {
        let status = d["status"].as_str().expect("status");
        if !["delivered", "failed", "expired"].contains(&status) {
            continue;
        }
        let updated = d["updated_at"].as_str().expect("updated_at");
        let start = format!("{}:00.000Z", &updated[..16]);
        *counts.entry((start.clone(), status.to_string(), String::new())).or_default() += 1;
        if let Some(reason) = d["reason"].as_str().filter(|_| status != "delivered") {
            *counts.entry((start, "reason".to_string(), reason.to_string())).or_default() += 1;
        }
    }
    counts
}

async fn stats_count_what_the_log_holds(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let ok: Vec<String> = (0..4).map(|i| format!("fcm-ok-{i}")).collect();
    for t in &ok {
        register(&app, &keys, "android", t, Some("u-1"), &["all"]).await;
    }
    let dead = register(&app, &keys, "android", "fcm-dead", None, &["all"]).await;
    mock.handle.set_behavior("fcm-dead", Behavior::Dead);
    for i in 0..3 {
        register(&app, &keys, "ios", &ios_token("ab", i), None, &["all"]).await;
    }
    let bad = ios_token("cd", 1);
    register(&app, &keys, "ios", &bad, None, &["all"]).await;
    mock.handle.set_behavior(&bad, Behavior::BadToken);
    let slow = ios_token("ef", 1);
    let late = register(&app, &keys, "ios", &slow, None, &[]).await;
    mock.handle.set_behavior(&slow, Behavior::Status { status: 503, retry_after: None, times: 1000 });

    // A group fan-out, a single-device send that expires while retried, and
    // an explicit target of another app whose Android devices have no provider.
    let (status, group) =
        app.post("/v1/groups/all/notifications", &keys.server_key, json!({"notification": {"title": "hi"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{group}");
    let group_id = group["id"].as_str().expect("id").to_string();
    let (status, single) = app
        .post(
            &format!("/v1/devices/{late}/notifications"),
            &keys.server_key,
            json!({"notification": {"title": "soon stale"}, "options": {"ttl_seconds": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{single}");
    let apns_only = app.create_app_with(json!({"name": "ios only", "apns": mock.handle.apns_credentials_json()})).await;
    let ios = register(&app, &apns_only, "ios", &ios_token("aa", 9), None, &[]).await;
    let android = register(&app, &apns_only, "android", "fcm-nowhere", None, &[]).await;
    let (status, mixed) = app
        .post(
            "/v1/notifications",
            &apns_only.server_key,
            json!({"to": {"device_ids": [ios, android]}, "notification": {"title": "mixed"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{mixed}");
    wait_final(&app, &keys, &group_id).await;
    wait_final(&app, &keys, single["id"].as_str().expect("id")).await;
    wait_final(&app, &apns_only, mixed["id"].as_str().expect("id")).await;

    for (keys, expected) in [
        (&keys, json!({"delivered": 7, "failed": 2, "expired": 1})),
        (&apns_only, json!({"delivered": 1, "failed": 1, "expired": 0})),
    ] {
        let (status, stats) = app.get("/v1/stats?bucket=minute&since=2000-01-01T00:00:00Z", &keys.server_key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{stats}");
        assert_error(&stats, "invalid_field", Some("since"));
        let (status, stats) = app.get("/v1/stats", &keys.server_key).await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        assert_eq!(stats["buckets"].as_array().expect("buckets").len(), 60, "an hour of minutes by default");
        let log = deliveries(&app, &keys.server_key, "since=2000-01-01T00:00:00Z").await;
        assert_eq!(stats_counts(&stats), log_counts(&log), "stats against the log: {stats}");
        let total = |k: &str| {
            stats["buckets"].as_array().expect("buckets").iter().map(|b| b[k].as_i64().unwrap_or(0)).sum::<i64>()
        };
        assert_eq!(
            json!({"delivered": total("delivered"), "failed": total("failed"), "expired": total("expired")}),
            expected
        );
    }

    // Hours and days sum the same minutes.
    let (_, minutes) = app.get("/v1/stats?bucket=minute", &keys.server_key).await;
    let (status, days) = app.get("/v1/stats?bucket=day", &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{days}");
    let sum = |v: &Value, k: &str| {
        v["buckets"].as_array().expect("buckets").iter().map(|b| b[k].as_i64().unwrap_or(0)).sum::<i64>()
    };
    assert_eq!(sum(&days, "delivered"), sum(&minutes, "delivered"));
    assert_eq!(days["bucket"], "day");

    // One notification's stats are its own log's.
    let (status, one) = app.get(&format!("/v1/stats?notification_id={group_id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let log = deliveries(&app, &keys.server_key, &format!("notification_id={group_id}")).await;
    assert_eq!(stats_counts(&one), log_counts(&log));
    assert_eq!(sum(&one, "delivered"), 7);
    let reasons: Vec<String> = log.iter().filter_map(|d| d["reason"].as_str().map(str::to_string)).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");

    // Devices by platform and state: the two dead tokens are inactive.
    assert_eq!(one["devices"], json!({"android": {"active": 4, "inactive": 1}, "ios": {"active": 4, "inactive": 1}}));
    let (_, device) = app.get(&format!("/v1/devices/{dead}"), &keys.server_key).await;
    assert_eq!(device["active"], false);
    assert_eq!(one["providers"]["apns"]["status"], "ok");

    // Who may read: the admin names the app; a client key may not; bad input is named.
    let (status, admin) = app.get(&format!("/v1/stats?app_id={}", keys.id), &app.admin_key).await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    assert_eq!(stats_counts(&admin), stats_counts(&minutes));
    let (status, body) = app.get("/v1/stats", &app.admin_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app.get("/v1/stats", &keys.client_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app.get("/v1/stats?bucket=week", &keys.server_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("bucket"));
    let (status, body) = app.get(&format!("/v1/stats?notification_id={group_id}"), &apns_only.server_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another app's notification: {body}");
}

crate::store_tests!(stats_count_what_the_log_holds);
