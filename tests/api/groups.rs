//! Groups (API.md, Groups).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::devices::{deactivate, ids, register};
use crate::helpers::{assert_error, Db, TestApp};

async fn membership_from_the_device_and_the_endpoints_is_one(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let key = keys.server_key.as_str();
    let d1 = register(&app, &keys, "t-1", json!({"groups": ["news", "eu"]})).await;
    let d2 = register(&app, &keys, "t-2", json!({"groups": ["news"]})).await;
    deactivate(&app, &keys.id, &d2, "UNREGISTERED").await;
    let (status, groups) = app.get("/v1/groups", key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        groups,
        json!({"items": [{"name": "eu", "devices": 1, "active_devices": 1}, {"name": "news", "devices": 2, "active_devices": 1}],
            "next_cursor": null})
    );

    for _ in 0..2 {
        let (status, body) = app.put(&format!("/v1/groups/sports/devices/{d2}"), key).await;
        assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null), "adding is idempotent");
    }
    let (_, device) = app.get(&format!("/v1/devices/{d2}"), key).await;
    assert_eq!(device["groups"], json!(["news", "sports"]), "the device field shows it");

    for _ in 0..2 {
        let (status, _) = app.delete(&format!("/v1/groups/news/devices/{d1}"), key).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "removing a non-member is not an error");
    }
    let (_, members) = app.get("/v1/groups/news/devices", key).await;
    assert_eq!(ids(&members), [d2.as_str()]);
    assert_eq!(members["items"][0]["groups"], json!(["news", "sports"]));

    let (_, patched) = app.patch(&format!("/v1/devices/{d1}"), key, json!({"groups": ["sports"]})).await;
    assert_eq!(patched["groups"], json!(["sports"]));
    let (_, groups) = app.get("/v1/groups", key).await;
    let counts: Vec<_> =
        groups["items"].as_array().expect("items").iter().map(|g| (g["name"].clone(), g["devices"].clone())).collect();
    assert_eq!(counts, [(json!("news"), json!(1)), (json!("sports"), json!(2))], "eu lost its last member: {groups}");

    let (_, members) = app.get("/v1/groups/nobody/devices", key).await;
    assert_eq!(members, json!({"items": [], "next_cursor": null}), "a group without members lists none");
}

async fn unknown_devices_and_bad_names_are_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let other = app.create_app().await;
    let id = register(&app, &keys, "t-1", json!({})).await;
    for path in ["/v1/groups/news/devices/nope".to_string(), format!("/v1/groups/news/devices/{id}")] {
        let (status, body) = app.put(&path, &other.server_key).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "PUT {path}");
        assert_error(&body, "not_found", None);
        let (status, _) = app.delete(&path, &other.server_key).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "DELETE {path}");
    }
    let (status, body) = app.put(&format!("/v1/groups/bad%20name/devices/{id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("name"));
    let (status, body) = app.put(&format!("/v1/groups/news/devices/{id}"), &keys.client_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden", None);
    let (status, _) = app.get("/v1/groups/news/devices", &keys.client_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn groups_and_members_paginate(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let key = keys.server_key.as_str();
    let mut members = Vec::new();
    for n in 0..5 {
        members.push(register(&app, &keys, &format!("t-{n}"), json!({"groups": ["all", format!("g{}", n % 3)]})).await);
    }
    register(&app, &keys, "t-outsider", json!({"groups": ["g0"]})).await;

    let (_, first) = app.get("/v1/groups/all/devices?limit=2", key).await;
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let (_, second) = app.get(&format!("/v1/groups/all/devices?limit=2&cursor={cursor}"), key).await;
    let cursor = second["next_cursor"].as_str().expect("more pages");
    let (_, third) = app.get(&format!("/v1/groups/all/devices?limit=2&cursor={cursor}"), key).await;
    assert_eq!(third["next_cursor"], Value::Null);
    let seen: Vec<String> = [first, second, third].iter().flat_map(ids).collect();
    members.reverse();
    assert_eq!(seen, members, "every member once, newest first");

    let (_, first) = app.get("/v1/groups?limit=3", key).await;
    let names: Vec<_> = first["items"].as_array().expect("items").iter().map(|g| g["name"].clone()).collect();
    assert_eq!(names, [json!("all"), json!("g0"), json!("g1")]);
    let cursor = first["next_cursor"].as_str().expect("more groups");
    let (_, rest) = app.get(&format!("/v1/groups?limit=3&cursor={cursor}"), key).await;
    assert_eq!(rest, json!({"items": [{"name": "g2", "devices": 1, "active_devices": 1}], "next_cursor": null}));
    assert_eq!(first["items"][1], json!({"name": "g0", "devices": 3, "active_devices": 3}));
}

crate::store_tests!(
    membership_from_the_device_and_the_endpoints_is_one,
    unknown_devices_and_bad_names_are_refused,
    groups_and_members_paginate,
);
