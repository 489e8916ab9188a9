//! Targeting (API.md, Targeting by filters): device tags and time zones,
//! filters, several groups, dry runs and delivery at local time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::devices::register;
use crate::helpers::{assert_error, Db, TestApp, TestAppKeys};
use crate::pipeline::{self, deliveries, wait_final};

/// The tokens of the devices `GET /v1/devices?filters=` lists for `filter`.
async fn listed(app: &TestApp, keys: &TestAppKeys, filter: Value) -> BTreeSet<String> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("filters", &filter.to_string())
        .append_pair("limit", "1000")
        .finish();
    let (status, page) = app.get(&format!("/v1/devices?{query}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{filter}: {page}");
    page["items"].as_array().expect("items").iter().map(|d| d["token"].as_str().expect("token").to_string()).collect()
}

/// `targeted` of a dry run of a send to `to`.
async fn dry_run(app: &TestApp, keys: &TestAppKeys, to: Value) -> i64 {
    let body = json!({"to": to, "notification": {"title": "t"}});
    let (status, answer) = app.post("/v1/notifications?dry_run=true", &keys.server_key, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["targeted"].as_i64().expect("targeted")
}

fn set(tokens: &[&str]) -> BTreeSet<String> {
    tokens.iter().map(|t| t.to_string()).collect()
}

fn cond(field: &str, relation: &str, value: Value) -> Value {
    json!({"field": field, "relation": relation, "value": value})
}

fn tag(key: &str, relation: &str, value: Value) -> Value {
    json!({"field": "tag", "key": key, "relation": relation, "value": value})
}

/// A small registry with one device per shape a condition tells apart.
async fn registry(app: &TestApp, keys: &TestAppKeys) {
    let devices = [
        (
            "a",
            json!({"user_id": "u-1", "locale": "es-UY", "timezone": "America/Montevideo", "app_version": "3.10.0",
            "groups": ["news"], "tags": {"tier": "gold", "score": 42, "beta": true}}),
        ),
        (
            "b",
            json!({"user_id": "u-2", "locale": "es", "app_version": "3.9.2", "groups": ["news", "eu"],
            "tags": {"tier": "silver", "score": 7}}),
        ),
        (
            "c",
            json!({"locale": "en-US", "timezone": "Europe/Madrid", "app_version": "3.9.10", "groups": ["eu"],
            "tags": {"tier": 3, "score": "high"}}),
        ),
        ("d", json!({"locale": "esx", "app_version": "beta"})),
    ];
    for (token, extra) in devices {
        register(app, keys, token, extra).await;
    }
    let (status, ios) = app
        .post("/v1/devices", &keys.server_key, json!({"platform": "ios", "token": "e".repeat(64), "app_version": "4"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ios}");
}

async fn each_field_and_relation_selects_its_devices(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    registry(&app, &keys).await;
    let e = "e".repeat(64);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (cond("platform", "=", json!("ios")), vec![&e]),
        (cond("platform", "!=", json!("ios")), vec!["a", "b", "c", "d"]),
        (cond("platform", "in", json!(["android"])), vec!["a", "b", "c", "d"]),
        (cond("locale", "=", json!("es")), vec!["a", "b"]),
        (cond("locale", "=", json!("ES-uy")), vec!["a"]),
        (cond("locale", "in", json!(["en", "es-UY"])), vec!["a", "c"]),
        (json!({"field": "locale", "relation": "not_exists"}), vec![&e]),
        (cond("app_version", ">", json!("3.9.2")), vec!["a", "c", &e]),
        (cond("app_version", ">=", json!("3.9.2")), vec!["a", "b", "c", &e]),
        (cond("app_version", "<", json!("3.10")), vec!["b", "c"]),
        (cond("app_version", "<=", json!("3.9.2")), vec!["b"]),
        (cond("app_version", "=", json!("3.10")), vec!["a"]),
        (cond("app_version", "in", json!(["3.9.2", "4.0"])), vec!["b", &e]),
        (json!({"field": "app_version", "relation": "exists"}), vec!["a", "b", "c", "d", &e]),
        (cond("timezone", "=", json!("America/Montevideo")), vec!["a"]),
        (json!({"field": "timezone", "relation": "exists"}), vec!["a", "c"]),
        (cond("user_id", "in", json!(["u-1", "u-2"])), vec!["a", "b"]),
        (cond("user_id", "!=", json!("u-1")), vec!["b", "c", "d", &e]),
        (json!({"field": "user_id", "relation": "not_exists"}), vec!["c", "d", &e]),
        (cond("group", "=", json!("news")), vec!["a", "b"]),
        (cond("group", "!=", json!("news")), vec!["c", "d", &e]),
        (cond("group", "in", json!(["eu", "none"])), vec!["b", "c"]),
        (json!({"field": "group", "relation": "not_exists"}), vec!["d", &e]),
        (tag("tier", "=", json!("gold")), vec!["a"]),
        (tag("tier", "=", json!(3)), vec!["c"]),
        (tag("tier", "in", json!(["silver", 3])), vec!["b", "c"]),
        (tag("tier", "!=", json!("gold")), vec!["b", "c", "d", &e]),
        (tag("beta", "=", json!(true)), vec!["a"]),
        (tag("score", ">", json!(7)), vec!["a"]),
        (tag("score", ">=", json!(7)), vec!["a", "b"]),
        (tag("score", "<", json!(42.5)), vec!["a", "b"]),
        (tag("score", "<=", json!(6)), vec![]),
        (json!({"field": "tag", "key": "beta", "relation": "exists"}), vec!["a"]),
        (json!({"field": "tag", "key": "score", "relation": "not_exists"}), vec!["d", &e]),
        (cond("created_at", "<", json!("1h")), vec!["a", "b", "c", "d", &e]),
        (cond("last_seen_at", ">", json!("1d")), vec![]),
        (
            json!({"all": [cond("platform", "=", json!("android")), {"any": [
                tag("tier", "=", json!("gold")), cond("group", "=", json!("eu"))]}]}),
            vec!["a", "b", "c"],
        ),
        (
            json!({"any": [cond("user_id", "=", json!("u-2")), {"all": [cond("locale", "=", json!("en")),
            cond("app_version", ">", json!("3.9.9"))]}]}),
            vec!["b", "c"],
        ),
    ];
    for (filter, expected) in cases {
        let want = set(&expected);
        assert_eq!(listed(&app, &keys, filter.clone()).await, want, "listed by {filter}");
        assert_eq!(dry_run(&app, &keys, json!({"filters": filter})).await, want.len() as i64, "counted by {filter}");
    }
}

async fn sql_metacharacters_in_filters_are_only_values(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let evil = "x' OR '1'='1\"; DROP TABLE devices; -- %_\\";
    register(&app, &keys, "plain", json!({"tags": {"k": "v"}})).await;
    register(&app, &keys, "evil", json!({"user_id": evil, "tags": {"k": evil}})).await;
    for filter in [
        cond("user_id", "=", json!(evil)),
        tag("k", "=", json!(evil)),
        tag("k", "in", json!([evil, "%"])),
        cond("user_id", "in", json!(["a';--", evil])),
    ] {
        assert_eq!(listed(&app, &keys, filter.clone()).await, set(&["evil"]), "{filter}");
    }
    for filter in
        [cond("user_id", "=", json!("' OR 1=1 --")), tag("k", "=", json!("%")), tag("k", "=", json!("v' OR 'a'='a"))]
    {
        assert_eq!(listed(&app, &keys, filter.clone()).await, set(&[]), "{filter}");
    }
    let body =
        json!({"to": {"filters": tag("x'); DELETE FROM devices; --", "=", json!(1))}, "notification": {"title": "t"}});
    let (status, err) = app.post("/v1/notifications", &keys.server_key, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&err, "invalid_field", Some("to.filters.key"));
    assert_eq!(listed(&app, &keys, json!({"field": "platform", "relation": "=", "value": "android"})).await.len(), 2);
}

async fn bad_filters_answer_400_with_their_path(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let ok = cond("platform", "=", json!("ios"));
    let cases = [
        (json!([]), "to.filters"),
        (json!({"any": []}), "to.filters.any"),
        (json!({"any": [ok.clone(), cond("platform", "~", json!("ios"))]}), "to.filters.any[1].relation"),
        (json!({"all": [ok.clone(), {"any": [cond("colour", "=", json!("red"))]}]}), "to.filters.all[1].any[0].field"),
        (cond("platform", ">", json!("ios")), "to.filters.relation"),
        (cond("app_version", ">", json!("3.x")), "to.filters.value"),
        (cond("last_seen_at", ">", json!("seven days")), "to.filters.value"),
        (cond("created_at", "=", json!("7d")), "to.filters.relation"),
        (cond("platform", "in", json!(["ios", "huawei"])), "to.filters.value[1]"),
        (cond("user_id", "=", json!(7)), "to.filters.value"),
        (json!({"field": "tag", "relation": "=", "value": 1}), "to.filters.key"),
        (tag("score", ">", json!("high")), "to.filters.value"),
        (json!({"field": "user_id", "relation": "=", "value": "u", "key": "k"}), "to.filters.key"),
        (json!({"field": "group", "relation": "exists", "value": "news"}), "to.filters.value"),
        (json!({"field": "user_id", "relation": "=", "value": "u", "extra": 1}), "to.filters.extra"),
        (cond("timezone", "=", json!("Mars/Olympus")), "to.filters.value"),
    ];
    for (filter, path) in cases {
        for url in ["/v1/notifications", "/v1/notifications?dry_run=true"] {
            let body = json!({"to": {"filters": filter}, "notification": {"title": "t"}});
            let (status, err) = app.post(url, &keys.server_key, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url} {filter}: {err}");
            assert_error(&err, "invalid_field", Some(path));
        }
    }
    let (status, err) = app.get("/v1/devices?filters=%7Bnope", &keys.server_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_error(&err, "invalid_field", Some("filters"));
    let bad_list = serde_json::to_string(&json!({"any": [ok, cond("user_id", "<", json!("u"))]})).expect("json");
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("filters", &bad_list).finish();
    let (status, err) = app.get(&format!("/v1/devices?{query}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_error(&err, "invalid_field", Some("filters.any[1].relation"));
}

async fn tags_and_timezones_are_validated_and_patched(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let key = keys.server_key.as_str();
    let body = json!({"platform": "android", "token": "t-1", "timezone": "Asia/Kolkata",
        "tags": {"tier": "gold", "score": 42, "beta": false}});
    let (status, device) = app.post("/v1/devices", &keys.client_key, body).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    assert_eq!(device["tags"], json!({"tier": "gold", "score": 42, "beta": false}));
    let id = device["id"].as_str().expect("id").to_string();
    let refused = [
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"tags": {"tier": null}}), "tags.tier"),
        (json!({"tags": {"nested": {"a": 1}}}), "tags.nested"),
        (json!({"tags": {"list": [1]}}), "tags.list"),
        (json!({"tags": {"with space": 1}}), "tags.with space"),
        (json!({"tags": {"long": "x".repeat(257)}}), "tags.long"),
        (json!({"tags": (0..51).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}), "tags"),
    ];
    for (extra, field) in refused {
        let mut body = json!({"platform": "android", "token": "t-2"});
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        let (status, err) = app.post("/v1/devices", key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {err}");
        assert_error(&err, "invalid_field", Some(field));
        let (status, err) = app.patch(&format!("/v1/devices/{id}"), key, extra.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "PATCH {extra}: {err}");
        assert_error(&err, "invalid_field", Some(field));
    }
    let (status, device) = app.patch(&format!("/v1/devices/{id}"), key, json!({"tags": {"tier": "silver"}})).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!(device["tags"], json!({"tier": "silver"}), "tags are replaced as a whole");
    let (_, device) = app.get(&format!("/v1/devices/{id}"), key).await;
    assert_eq!(
        (device["tags"].clone(), device["timezone"].clone()),
        (json!({"tier": "silver"}), json!("Asia/Kolkata"))
    );
    let (_, device) = app.patch(&format!("/v1/devices/{id}"), key, json!({"tags": null, "app_version": "2.0"})).await;
    assert_eq!(device["tags"], Value::Null);
    assert_eq!(
        listed(&app, &keys, cond("app_version", "<", json!("10"))).await,
        set(&["t-1"]),
        "the version key follows a PATCH"
    );
    let (_, device) = app
        .post("/v1/devices", key, json!({"platform": "android", "token": "t-1", "app_version": "11", "tags": {"a": 1}}))
        .await;
    assert_eq!(device["tags"], json!({"a": 1}), "a registration replaces them too");
    assert_eq!(listed(&app, &keys, cond("app_version", "<", json!("10"))).await, set(&[]), "and the version key");

    // One by one, as when a batch of registrations fails as a whole.
    let store = pushgate::store::Store::connect(&app.config.database_url).await.expect("store");
    let device = pushgate::store::NewDevice {
        platform: pushgate::domain::Platform::Android,
        token: "t-3".into(),
        installation_id: None,
        user_id: None,
        groups: None,
        locale: None,
        timezone: None,
        app_version: Some("1.2".into()),
        environment: None,
        metadata: None,
        secret_hash: None,
        tags: Some(r#"{"tier":"bronze"}"#.into()),
    };
    store.register_device(&keys.id, &device).await.expect("registered");
    store.close().await;
    let bronze = json!({"all": [tag("tier", "=", json!("bronze")), cond("app_version", "<", json!("1.10"))]});
    assert_eq!(listed(&app, &keys, bronze).await, set(&["t-3"]));
}

async fn dry_runs_count_what_a_send_targets(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    for (token, user, groups) in [
        ("g-1", Some("u-1"), vec!["news"]),
        ("g-2", None, vec!["sports"]),
        ("g-3", Some("u-3"), vec![]),
        ("g-4", None, vec![]),
    ] {
        pipeline::register(&app, &keys, "android", token, user, &groups).await;
    }
    let targets = [
        json!({"groups": ["news", "sports"]}),
        json!({"filters": {"any": [cond("user_id", "in", json!(["u-3"])), cond("group", "in", json!(["news"]))]}}),
        json!({"filters": {"field": "group", "relation": "not_exists"}}),
    ];
    let expected = [set(&["g-1", "g-2"]), set(&["g-1", "g-3"]), set(&["g-3", "g-4"])];
    for (to, want) in targets.iter().zip(expected) {
        let received = mock.handle.total_received();
        let counted = dry_run(&app, &keys, to.clone()).await;
        assert_eq!(mock.handle.total_received(), received, "a dry run sends nothing");
        let before: Vec<u64> = ["g-1", "g-2", "g-3", "g-4"].iter().map(|t| mock.handle.delivered_count(t)).collect();
        let (status, sent) =
            app.post("/v1/notifications", &keys.server_key, json!({"to": to, "notification": {"title": "t"}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
        let done = wait_final(&app, &keys, sent["id"].as_str().expect("id")).await;
        assert_eq!(done["targeted"], counted, "{to}: {done}");
        assert_eq!(done["counts"]["delivered"], want.len(), "{to}: {done}");
        let reached: BTreeSet<String> = ["g-1", "g-2", "g-3", "g-4"]
            .iter()
            .zip(before)
            .filter(|(t, b)| mock.handle.delivered_count(t) > *b)
            .map(|(t, _)| t.to_string())
            .collect();
        assert_eq!(reached, want, "{to}");
    }
    let (status, answer) = app
        .post(
            "/v1/notifications?dry_run=true",
            &keys.server_key,
            json!({"to": {"device_ids": ["nope"]}, "notification": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

/// The minute of UTC now, as `HH:MM`, and when it started, once at least
/// 5 s of it are left.
async fn this_minute() -> (String, DateTime<Utc>) {
    loop {
        let now = Utc::now();
        if now.second() < 55 {
            let start = now.with_second(0).and_then(|t| t.with_nanosecond(0)).expect("a minute's start");
            return (format!("{:02}:{:02}", now.hour(), now.minute()), start);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn local_time_sends_at_each_devices_time_survives_restarts_and_cancels(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    // UTC's clock shows this minute now; Kiritimati's (UTC+14) at the earliest in ten hours.
    register(&app, &keys, "here", json!({"groups": ["all"]})).await;
    let there = register(&app, &keys, "there", json!({"timezone": "Pacific/Kiritimati", "groups": ["all"]})).await;
    let (minute, started) = this_minute().await;
    // Kiritimati is UTC+14 all year: its clock shows this minute ten hours from now.
    let there_at = (started + chrono::Duration::hours(10)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let body = json!({"to": {"group": "all"}, "notification": {"title": "good morning"},
        "options": {"local_time": minute}});
    let (status, sent) = app.post("/v1/notifications", &keys.server_key, body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let n = loop {
        let (_, n) = app.get(&format!("/v1/notifications/{id}"), &keys.server_key).await;
        if n["counts"]["delivered"] == 1 {
            break n;
        }
        assert!(Instant::now() < deadline, "not delivered in time: {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(mock.handle.delivered_count("here"), 1);
    assert_eq!((n["status"].as_str(), n["counts"]["pending"].as_i64()), (Some("sending"), Some(1)), "{n}");
    assert_eq!(n["options"]["local_time"], minute, "{n}");

    let app = app.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, n) = app.get(&format!("/v1/notifications/{id}"), &keys.server_key).await;
    assert_eq!(n["counts"]["pending"], 1, "still scheduled after a restart: {n}");
    assert_eq!(mock.handle.delivered_count("there"), 0);
    let rows = deliveries(&app, &keys.server_key, &format!("notification_id={id}&device_id={there}")).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["next_attempt_at"].as_str()),
        (Some("pending"), Some(there_at.as_str()))
    );

    let (status, n) = app.delete(&format!("/v1/notifications/{id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{n}");
    assert_eq!(n["status"], "cancelled");
    assert_eq!((n["counts"]["pending"].as_i64(), n["counts"]["cancelled"].as_i64()), (Some(0), Some(1)), "{n}");
    let rows = deliveries(&app, &keys.server_key, &format!("notification_id={id}&device_id={there}")).await;
    assert_eq!(rows[0]["status"], "cancelled");

    // Ten hours on for the scheduled delivery: its due time moved to now.
    let (status, sent) = app.post("/v1/notifications", &keys.server_key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while deliveries(&app, &keys.server_key, &format!("notification_id={id}&status=pending")).await.is_empty() {
        assert!(Instant::now() < deadline, "never scheduled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    execute(&app, &format!("UPDATE deliveries SET next_attempt_at = 0 WHERE notification_id = '{id}'")).await;
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!((done["status"].as_str(), done["counts"]["delivered"].as_i64()), (Some("completed"), Some(2)), "{done}");
    assert_eq!(mock.handle.delivered_count("there"), 1, "sent once its time came");
}

async fn local_time_refuses_what_it_cannot_schedule(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let id = register(&app, &keys, "t-1", json!({})).await;
    let cases = [
        (json!({"all": true}), json!({"local_time": "9:00"}), "options.local_time"),
        (json!({"all": true}), json!({"local_time": "24:00"}), "options.local_time"),
        (json!({"all": true}), json!({"local_time": 900}), "options.local_time"),
        (json!({"device_ids": [id]}), json!({"local_time": "09:00"}), "options.local_time"),
        (json!({"all": true}), json!({"local_time": "09:00", "ttl_seconds": 60}), "options.ttl_seconds"),
    ];
    for (to, options, field) in cases {
        for url in ["/v1/notifications", "/v1/notifications?dry_run=true"] {
            let body = json!({"to": to, "notification": {"title": "t"}, "options": options});
            let (status, err) = app.post(url, &keys.server_key, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url} {to} {options}: {err}");
            assert_error(&err, "invalid_field", Some(field));
        }
    }
}

/// Runs `sql` on the gateway's database, behind its back.
async fn execute(app: &TestApp, sql: &str) {
    use sqlx::Connection;
    match app.db {
        Db::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.config.database_url).await.expect("connect");
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
        Db::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.config.database_url).await.expect("connect");
            sqlx::query(sql).execute(&mut c).await.expect(sql);
        }
    }
}

/// Devices registered before version keys existed (their key is NULL) get
/// one when the gateway starts, so version conditions see them.
async fn devices_from_before_version_keys_get_theirs_at_start(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    register(&app, &keys, "old", json!({"app_version": "3.10.0"})).await;
    register(&app, &keys, "odd", json!({"app_version": "nightly"})).await;
    execute(&app, "UPDATE devices SET version_key = NULL").await;
    let newer = cond("app_version", ">", json!("3.9.2"));
    assert_eq!(listed(&app, &keys, newer.clone()).await, set(&[]), "without a key, no version condition matches");
    let app = app.restart().await;
    assert_eq!(listed(&app, &keys, newer).await, set(&["old"]));
}

crate::store_tests!(
    local_time_refuses_what_it_cannot_schedule,
    devices_from_before_version_keys_get_theirs_at_start,
    each_field_and_relation_selects_its_devices,
    sql_metacharacters_in_filters_are_only_values,
    bad_filters_answer_400_with_their_path,
    tags_and_timezones_are_validated_and_patched,
    dry_runs_count_what_a_send_targets,
    local_time_sends_at_each_devices_time_survives_restarts_and_cancels,
);

/// On Postgres a tag condition is answered from the GIN index on the tags:
/// counted over 20,000 devices of which 1% carry the tag, the plan of the
/// condition as the store writes it reads the index, not the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tag_conditions_read_the_gin_index() {
    use sqlx::{Connection, Executor, Row};
    if !crate::helpers::postgres_available().await {
        return;
    }
    let app = TestApp::spawn(Db::Postgres).await;
    let keys = app.create_app().await;
    let mut db = sqlx::PgConnection::connect(&app.config.database_url).await.expect("connect");
    let fill = "INSERT INTO devices (id, app_id, platform, token, active, created_at, updated_at, last_seen_at, tags) \
         SELECT lpad(i::text, 12, '0'), $1, 'android', 'tok-' || i, TRUE, 0, 0, 0, \
         CASE WHEN i % 100 = 0 THEN '{\"tier\": \"gold\"}' ELSE '{\"tier\": \"silver\", \"n\": ' || i || '}' END \
         FROM generate_series(1, 20000) i";
    sqlx::query(fill).bind(&keys.id).execute(&mut db).await.expect("fill the registry");
    db.execute("VACUUM ANALYZE devices").await.expect("vacuum");
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN SELECT COUNT(*) FROM devices d WHERE d.app_id = $1 AND d.active = TRUE \
         AND (CAST(d.tags AS jsonb) @> CAST($2 AS jsonb))",
    )
    .bind(&keys.id)
    .bind(r#"{"tier": "gold"}"#)
    .fetch_all(&mut db)
    .await
    .expect("explain")
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Bitmap Index Scan on devices_tags"), "{plan}");
    assert_eq!(dry_run(&app, &keys, json!({"filters": tag("tier", "=", json!("gold"))})).await, 200);
}
