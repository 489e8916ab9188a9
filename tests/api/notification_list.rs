//! `GET /v1/notifications`: an app's notifications, newest first, paged.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, Db};
use crate::pipeline::{self, register};

async fn notifications_are_listed_newest_first_per_app(db: Db) {
    let (app, _mock, keys) = pipeline::start(db, |_| {}).await;
    let other = app.create_app().await;
    register(&app, &keys, "android", "fcm-list-1", None, &["g"]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({"to": {"group": "g"}, "notification": {"title": format!("n{i}")}});
        let (status, sent) = app.post("/v1/notifications", &keys.server_key, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
        ids.push(sent["id"].as_str().expect("id").to_string());
    }
    let (status, first) = app.get("/v1/notifications?limit=3", &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a second page").to_string();
    let (_, second) = app.get(&format!("/v1/notifications?limit=3&cursor={cursor}"), &keys.server_key).await;
    assert!(second["next_cursor"].is_null(), "{second}");
    let listed: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page["items"].as_array().expect("items").iter())
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids, "newest first, each once");
    assert_eq!(first["items"][0]["notification"]["title"], "n4");
    assert!(first["items"][0]["counts"]["targeted"].is_number(), "{first}");

    let (_, none) = app.get("/v1/notifications", &other.server_key).await;
    assert_eq!(none["items"], json!([]), "another app's notifications are not listed");
    let (status, admin) = app.get(&format!("/v1/notifications?app_id={}", keys.id), &app.admin_key).await;
    assert_eq!((status, admin["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(5)));
    let (status, body) = app.get("/v1/notifications", &keys.client_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden", None);
}

crate::store_tests!(notifications_are_listed_newest_first_per_app);
