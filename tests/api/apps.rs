//! Apps and keys (admin).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error, Db, TestApp};

async fn admin_creates_app_and_keys_are_shown_once(db: Db) {
    let app = TestApp::spawn(db).await;
    let (status, body) = app.post("/v1/apps", &app.admin_key, json!({"name": "Cinema"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["name"], "Cinema");
    assert!(body["server_key"].as_str().is_some_and(|k| k.len() >= 32));
    assert!(body["client_key"].as_str().is_some_and(|k| k.len() >= 32));
    let id = body["id"].as_str().expect("id");

    let (status, read) = app.get(&format!("/v1/apps/{id}"), &app.admin_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        read["providers"],
        json!({"apns": {"configured": false}, "fcm": {"configured": false}, "web_push": {"configured": false}})
    );
    assert!(read.get("server_key").is_none(), "keys are never shown again: {read}");

    let (status, list) = app.get("/v1/apps", &app.admin_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["next_cursor"], serde_json::Value::Null);
}

async fn keys_are_scoped_and_revocable(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let (status, body) = app.get("/v1/apps", &keys.server_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden", None);

    let (status, body) = app.get("/v1/apps", "not-a-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized", None);
    let (status, _) = app.call(Method::GET, "/v1/apps", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, key) =
        app.post(&format!("/v1/apps/{}/keys", keys.id), &app.admin_key, json!({"kind": "server"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let plain = key["key"].as_str().expect("plain key").to_string();
    let key_id = key["id"].as_str().expect("key id").to_string();
    let (status, _) = app.get("/v1/apps", &plain).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a server key is known but may not list apps");

    let (status, _) = app.delete(&format!("/v1/apps/{}/keys/{key_id}", keys.id), &app.admin_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/v1/apps", &plain).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key is unknown");
    let (status, body) = app.delete(&format!("/v1/apps/{}/keys/{key_id}", keys.id), &app.admin_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
}

async fn bad_input_gets_api_errors(db: Db) {
    let app = TestApp::spawn(db).await;
    let res = app
        .http
        .post(app.url("/v1/apps"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_error(&body, "invalid_json", None);

    let (status, body) = app.post("/v1/apps", &app.admin_key, json!([1, 2])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_json", None);

    let (status, body) = app.post("/v1/apps", &app.admin_key, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("name"));

    let (status, body) = app.post("/v1/apps", &app.admin_key, json!({"name": 7})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("name"));

    let (status, body) = app.post("/v1/apps", &app.admin_key, json!({"name": "x", "apns": {"team_id": "T"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("apns.key_id"));

    let (status, body) = app.get("/v1/apps/nope", &app.admin_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);

    let (status, body) = app.get("/v1/no-such-route", &app.admin_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);

    let (status, body) = app.get("/v1/apps?limit=0", &app.admin_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("limit"));

    let big = "x".repeat(2 * 1024 * 1024);
    let (status, body) = app.post("/v1/apps", &app.admin_key, json!({"name": big})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large", None);
}

async fn restart_keeps_apps_and_keys(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let app = app.restart().await;
    let (status, body) = app.get(&format!("/v1/apps/{}", keys.id), &app.admin_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.get("/v1/apps", &keys.server_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the server key is still known after a restart");
}

crate::store_tests!(
    admin_creates_app_and_keys_are_shown_once,
    keys_are_scoped_and_revocable,
    bad_input_gets_api_errors,
    restart_keeps_apps_and_keys,
);
