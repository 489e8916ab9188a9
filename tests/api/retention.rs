//! Delivery log retention removes finished notifications older than the
//! retention age, with their deliveries, and nothing newer.

use pushgate::delivery::retention;
use pushgate::domain::time::now_ms;
use pushgate::store::Store;
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::helpers::Db;
use crate::pipeline::{self, ios_token, register};

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn retention_removes_old_rows_only(db: Db) {
    let (app, _mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    for n in 0..3 {
        register(&app, &keys, "ios", &ios_token("a1d", n), None, &["r"]).await;
    }
    let mut ids = Vec::new();
    for title in ["old", "new"] {
        let (status, res) =
            app.post("/v1/groups/r/notifications?wait=true", &key, json!({"notification": {"title": title}})).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        ids.push(res["id"].as_str().expect("id").to_string());
    }
    let (old, new) = (&ids[0], &ids[1]);

    // Age the first notification past a 30-day retention.
    let aged = now_ms() - 40 * DAY_MS;
    let sql = "UPDATE notifications SET completed_at = $1, created_at = $1 WHERE id = $2";
    match db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.config.database_url).await.expect("sqlite");
            sqlx::query(sql).bind(aged).bind(old).execute(&pool).await.expect("age");
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&app.config.database_url).await.expect("postgres");
            sqlx::query(sql).bind(aged).bind(old).execute(&pool).await.expect("age");
        }
    }

    let store = Store::connect(&app.config.database_url).await.expect("store");
    let removed = retention::run(&store, now_ms() - 30 * DAY_MS, &CancellationToken::new()).await.expect("retention");
    assert_eq!(removed, 1);

    let (status, _) = app.get(&format!("/v1/notifications/{old}"), &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the old notification is gone");
    assert!(pipeline::deliveries(&app, &key, &format!("notification_id={old}")).await.is_empty());
    let (status, kept) = app.get(&format!("/v1/notifications/{new}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(pipeline::deliveries(&app, &key, &format!("notification_id={new}")).await.len(), 3);
    let (_, devices) = app.get("/v1/devices", &key).await;
    assert_eq!(devices["items"].as_array().map(Vec::len), Some(3), "devices are not touched");
}

crate::store_tests!(retention_removes_old_rows_only);

/// On Postgres the log is partitioned by UTC day: a day past the retention
/// age goes whole (its partition dropped), and a newer day's rows stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_a_day_partition_on_postgres() {
    if !crate::helpers::postgres_available().await {
        return;
    }
    let (app, _mock, keys) = pipeline::start(Db::Postgres, |_| {}).await;
    let key = keys.server_key.clone();
    for n in 0..3 {
        register(&app, &keys, "ios", &ios_token("b2e", n), None, &["r"]).await;
    }
    let mut ids = Vec::new();
    for title in ["old", "new"] {
        let (status, res) =
            app.post("/v1/groups/r/notifications?wait=true", &key, json!({"notification": {"title": title}})).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        ids.push(res["id"].as_str().expect("id").to_string());
    }
    let (old, new) = (&ids[0], &ids[1]);

    // Move the first notification and its deliveries 40 days back: the
    // deliveries into that day's partition, made as the chores make them.
    let aged = now_ms() - 40 * DAY_MS;
    let day = format!("deliveries_{}", chrono::DateTime::from_timestamp_millis(aged).expect("a time").format("%Y%m%d"));
    let store = Store::connect(&app.config.database_url).await.expect("store");
    assert!(store.make_delivery_partitions(aged).await.expect("partitions") >= 1);
    let pool = sqlx::PgPool::connect(&app.config.database_url).await.expect("postgres");
    let moved = sqlx::query("UPDATE deliveries SET created_at = $1 WHERE notification_id = $2")
        .bind(aged)
        .bind(old)
        .execute(&pool)
        .await
        .expect("age deliveries")
        .rows_affected();
    assert_eq!(moved, 3);
    sqlx::query("UPDATE notifications SET completed_at = $1, created_at = $1 WHERE id = $2")
        .bind(aged)
        .bind(old)
        .execute(&pool)
        .await
        .expect("age notification");
    let in_day: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{day}\"")).fetch_one(&pool).await.expect("count");
    assert_eq!(in_day, 3, "the aged deliveries are in their day's partition");

    let removed = retention::run(&store, now_ms() - 30 * DAY_MS, &CancellationToken::new()).await.expect("retention");
    assert_eq!(removed, 1);

    let gone: Option<String> =
        sqlx::query_scalar("SELECT to_regclass($1)::text").bind(&day).fetch_one(&pool).await.expect("regclass");
    assert_eq!(gone, None, "the old day's partition is dropped");
    let (status, _) = app.get(&format!("/v1/notifications/{old}"), &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the old notification is gone");
    assert!(pipeline::deliveries(&app, &key, &format!("notification_id={old}")).await.is_empty());
    let (status, kept) = app.get(&format!("/v1/notifications/{new}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(pipeline::deliveries(&app, &key, &format!("notification_id={new}")).await.len(), 3);
}
