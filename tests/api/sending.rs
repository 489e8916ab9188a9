//! Sending through the pipeline to the local APNs/FCM stand-ins: every
//! target kind, dead and back-pressured tokens, TTL, scheduling, cancel,
//! idempotency, `wait=true`, and bad input.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, Db, TestApp};
use crate::pipeline::{self, ios_token, register, wait_final};

fn statuses(results: &Value) -> Vec<String> {
    let mut s: Vec<String> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("").to_string())
        .collect();
    s.sort();
    s
}

async fn each_target_kind_delivers(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let a_tok = ios_token("c0de", 1);
    let c_tok = ios_token("c0de", 2);
    let a = register(&app, &keys, "ios", &a_tok, Some("u1"), &["g"]).await;
    let b = register(&app, &keys, "android", "live-b", Some("u1"), &[]).await;
    let _c = register(&app, &keys, "ios", &c_tok, Some("u2"), &["g"]).await;
    let d = register(&app, &keys, "android", "live-d", None, &[]).await;
    let note = json!({"title": "Tickets on sale", "body": "Friday", "data": {"movie_id": "881"}});

    let (status, res) =
        app.post(&format!("/v1/devices/{a}/notifications?wait=true"), &key, json!({"notification": note})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["status"], "completed");
    assert_eq!(res["results"], json!([{"device_id": a, "platform": "ios", "status": "delivered", "reason": null}]));

    let (status, res) = app.post("/v1/groups/g/notifications?wait=true", &key, json!({"notification": note})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(statuses(&res), ["delivered", "delivered"]);

    let sends = [
        (json!({"device_ids": [b, d]}), 2),
        (json!({"user_ids": ["u1"]}), 2),
        (json!({"group": "g"}), 2),
        (json!({"tokens": [{"platform": "android", "token": "raw-token-1"}]}), 1),
        (json!({"all": true}), 4),
    ];
    for (to, n) in sends {
        let (status, res) =
            app.post("/v1/notifications?wait=true", &key, json!({"to": to, "notification": note})).await;
        assert_eq!(status, StatusCode::OK, "{to}: {res}");
        assert_eq!(res["targeted"], n, "{to}: {res}");
        assert_eq!(statuses(&res), vec!["delivered"; n], "{to}: {res}");
    }
    let (status, res) =
        app.post("/v1/notifications", &key, json!({"to": {"device_ids": [d]}, "notification": note})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    assert_eq!(res["status"], "queued");
    assert_eq!(res["targeted"], 1);
    let done = wait_final(&app, &keys, res["id"].as_str().expect("id")).await;
    assert_eq!(
        done["counts"],
        json!({"targeted": 1, "pending": 0, "delivered": 1, "failed": 0, "expired": 0, "cancelled": 0})
    );

    let m = &mock.handle;
    assert_eq!(
        [
            m.delivered_count(&a_tok),
            m.delivered_count("live-b"),
            m.delivered_count(&c_tok),
            m.delivered_count("live-d")
        ],
        [5, 3, 3, 3]
    );
    assert_eq!(m.delivered_count("raw-token-1"), 1);
    let got = m.received(&a_tok);
    assert_eq!(got[0].payload["aps"]["alert"]["title"], "Tickets on sale", "{:?}", got[0].payload);
}

async fn dead_bad_and_backpressured_tokens_add_up(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let live = [ios_token("c0de", 1), ios_token("c0de", 2)];
    let mut ids = Vec::new();
    for t in &live {
        ids.push(register(&app, &keys, "ios", t, None, &["mix"]).await);
    }
    for t in ["live-1", "live-2"] {
        ids.push(register(&app, &keys, "android", t, None, &["mix"]).await);
    }
    let dead_ios = register(&app, &keys, "ios", &ios_token("dead", 1), None, &["mix"]).await;
    let dead_android = register(&app, &keys, "android", "dead-1", None, &["mix"]).await;
    let bad_ios = register(&app, &keys, "ios", &ios_token("0bad", 1), None, &["mix"]).await;
    let bad_android = register(&app, &keys, "android", "bad-1", None, &["mix"]).await;
    let slow_ios = ios_token("0429", 1);
    register(&app, &keys, "ios", &slow_ios, None, &["mix"]).await;
    register(&app, &keys, "android", "r503-1", None, &["mix"]).await;

    let (status, res) = app.post("/v1/groups/mix/notifications", &key, json!({"notification": {"title": "hi"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    assert_eq!(res["targeted"], 10);
    let id = res["id"].as_str().expect("id").to_string();
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["counts"],
        json!({"targeted": 10, "pending": 0, "delivered": 6, "failed": 4, "expired": 0, "cancelled": 0})
    );

    let m = &mock.handle;
    for t in live.iter().map(String::as_str).chain(["live-1", "live-2"]) {
        assert_eq!((m.delivered_count(t), m.attempts(t)), (1, 1), "live token {t}");
    }
    for t in [slow_ios.as_str(), "r503-1"] {
        assert_eq!((m.delivered_count(t), m.attempts(t)), (1, 2), "back-pressured token {t}: retried once");
    }
    for (device, reason) in [
        (&dead_ios, "Unregistered"),
        (&dead_android, "UNREGISTERED"),
        (&bad_ios, "BadDeviceToken"),
        (&bad_android, "INVALID_ARGUMENT"),
    ] {
        let (_, dev) = app.get(&format!("/v1/devices/{device}"), &key).await;
        assert_eq!(dev["active"], false, "{dev}");
        assert_eq!(dev["deactivated_reason"], reason, "{dev}");
    }
    let rows = pipeline::deliveries(&app, &key, &format!("notification_id={id}")).await;
    assert_eq!(rows.len(), 10);
    let row = |tok_device: &str| rows.iter().find(|r| r["device_id"] == tok_device).cloned().expect("row");
    let dead_row = row(&dead_ios);
    assert_eq!((dead_row["status"].as_str(), dead_row["provider_status"].as_i64()), (Some("failed"), Some(410)));
    assert_eq!(dead_row["reason"], "Unregistered");
    let retried = rows.iter().find(|r| r["attempts"] == 2 && r["platform"] == "ios").expect("retried row");
    assert_eq!(retried["status"], "delivered");
    assert_eq!(retried["provider_status"], 200);
    assert!(retried["provider_message_id"].as_str().is_some_and(|s| !s.is_empty()), "{retried}");

    // Dead devices are never targeted again.
    let (status, res) =
        app.post("/v1/groups/mix/notifications?wait=true", &key, json!({"notification": {"title": "again"}})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["targeted"], 6);
    assert_eq!(m.attempts(&ios_token("dead", 1)), 1);
}

async fn ttl_ends_retries_as_expired(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let token = ios_token("c0de", 7);
    let device = register(&app, &keys, "ios", &token, None, &[]).await;
    let down = pushgate_mock_providers::Behavior::Status { status: 503, retry_after: None, times: 1_000_000 };
    mock.handle.set_behavior(&token, down);
    let body = json!({"notification": {"title": "flash sale"}, "options": {"ttl_seconds": 1}});
    let (status, res) =
        app.post(&format!("/v1/devices/{device}/notifications?wait=true"), &keys.server_key, body).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["results"][0]["status"], "expired", "{res}");
    let rows = pipeline::deliveries(&app, &keys.server_key, &format!("device_id={device}")).await;
    assert_eq!(rows[0]["status"], "expired");
    assert_eq!(rows[0]["provider_status"], 503);
    assert!(rows[0]["attempts"].as_i64().is_some_and(|a| a >= 2), "retried until the TTL: {}", rows[0]);
    assert_eq!(mock.handle.delivered_count(&token), 0);
}

async fn retries_stop_after_max_attempts(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |c| c.max_attempts = 3).await;
    let device = register(&app, &keys, "android", "flaky-1", None, &[]).await;
    mock.handle.set_behavior(
        "flaky-1",
        pushgate_mock_providers::Behavior::Status { status: 500, retry_after: None, times: 100 },
    );
    let (status, res) = app
        .post(
            &format!("/v1/devices/{device}/notifications?wait=true"),
            &keys.server_key,
            json!({"notification": {"body": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["results"][0]["status"], "failed");
    let rows = pipeline::deliveries(&app, &keys.server_key, &format!("device_id={device}")).await;
    assert_eq!((rows[0]["attempts"].as_i64(), rows[0]["provider_status"].as_i64()), (Some(3), Some(500)));
    assert_eq!(mock.handle.attempts("flaky-1"), 3);
    let (_, dev) = app.get(&format!("/v1/devices/{device}"), &keys.server_key).await;
    assert_eq!(dev["active"], true, "a server error is not the token's fault");
}

async fn scheduled_sends_wait_and_cancel(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let token = ios_token("c0de", 3);
    let device = register(&app, &keys, "ios", &token, None, &["later"]).await;
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = json!({"notification": {"title": "later"}, "options": {"send_at": in_an_hour}});
    let (status, res) = app.post(&format!("/v1/devices/{device}/notifications"), &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    assert_eq!(res["status"], "scheduled");
    let id = res["id"].as_str().expect("id").to_string();
    let (_, n) = app.get(&format!("/v1/notifications/{id}"), &key).await;
    assert_eq!(n["status"], "scheduled");
    assert_eq!(n["counts"]["pending"], 1);

    let (status, n) = app.delete(&format!("/v1/notifications/{id}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{n}");
    assert_eq!(n["status"], "cancelled");
    assert_eq!(
        n["counts"],
        json!({"targeted": 1, "pending": 0, "delivered": 0, "failed": 0, "expired": 0, "cancelled": 1})
    );
    let rows = pipeline::deliveries(&app, &key, &format!("notification_id={id}")).await;
    assert_eq!(rows[0]["status"], "cancelled");

    // A group send scheduled shortly: fanned out and sent at its time.
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let body = json!({"notification": {"title": "soon"}, "options": {"send_at": soon}});
    let (status, res) = app.post("/v1/groups/later/notifications", &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    assert_eq!(res["status"], "scheduled");
    let soon_id = res["id"].as_str().expect("id").to_string();
    let done = wait_final(&app, &keys, &soon_id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["counts"]["delivered"], 1);
    assert_eq!(mock.handle.delivered_count(&token), 1, "the cancelled one was never sent");

    let (status, body) = app.delete(&format!("/v1/notifications/{soon_id}"), &key).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conflict", None);
    let (status, body) = app.delete("/v1/notifications/nope", &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
}

async fn send_with_key(app: &TestApp, server_key: &str, idem: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .http
        .request(Method::POST, app.url("/v1/notifications"))
        .bearer_auth(server_key)
        .header("Idempotency-Key", idem)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = res.status();
    (status, res.json().await.expect("json"))
}

async fn idempotency_key_replays_the_first_answer(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let device = register(&app, &keys, "android", "idem-1", None, &[]).await;
    let body = json!({"to": {"device_ids": [device]}, "notification": {"title": "once", "body": "only"}});
    let (s1, first) = send_with_key(&app, &keys.server_key, "order-42", body.clone()).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{first}");
    let reordered = json!({"notification": {"body": "only", "title": "once"}, "to": {"device_ids": [device]}});
    let (s2, again) = send_with_key(&app, &keys.server_key, "order-42", reordered).await;
    assert_eq!(s2, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again, first, "the first answer, same id");
    wait_final(&app, &keys, first["id"].as_str().expect("id")).await;
    assert_eq!(mock.handle.delivered_count("idem-1"), 1, "sent once");
    assert_eq!(pipeline::deliveries(&app, &keys.server_key, &format!("device_id={device}")).await.len(), 1);

    let other = json!({"to": {"device_ids": [device]}, "notification": {"title": "different"}});
    let (s3, err) = send_with_key(&app, &keys.server_key, "order-42", other).await;
    assert_eq!(s3, StatusCode::CONFLICT);
    assert_error(&err, "conflict", None);

    // Keys are scoped per app.
    let other_app = app.create_app_with(mock.app_body()).await;
    let dev2 = register(&app, &other_app, "android", "idem-2", None, &[]).await;
    let (s4, res) = send_with_key(
        &app,
        &other_app.server_key,
        "order-42",
        json!({"to": {"device_ids": [dev2]}, "notification": {"title": "x"}}),
    )
    .await;
    assert_eq!(s4, StatusCode::ACCEPTED, "{res}");
    assert_ne!(res["id"], first["id"]);
}

async fn bad_sends_get_api_errors(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let device = register(&app, &keys, "ios", &ios_token("c0de", 9), None, &["g"]).await;
    let note = json!({"title": "x"});
    let cases = [
        (json!({"to": {"planets": ["x"]}, "notification": note}), "invalid_field", "to.planets"),
        (json!({"to": {}, "notification": note}), "invalid_field", "to"),
        (json!({"to": {"device_ids": []}, "notification": note}), "invalid_field", "to.device_ids"),
        (json!({"to": {"device_ids": "x"}, "notification": note}), "invalid_field", "to.device_ids"),
        (json!({"to": {"group": 3}, "notification": note}), "invalid_field", "to.group"),
        (json!({"to": {"all": "yes"}, "notification": note}), "invalid_field", "to.all"),
        (
            json!({"to": {"tokens": [{"platform": "ios", "token": "zz"}]}, "notification": note}),
            "invalid_token",
            "to.tokens[0].token",
        ),
        (
            json!({"to": {"tokens": [{"platform": "huawei", "token": "zz"}]}, "notification": note}),
            "invalid_field",
            "to.tokens[0].platform",
        ),
        (json!({"to": {"all": true}}), "invalid_field", "notification"),
        (json!({"to": {"all": true}, "notification": {"badge": "three"}}), "invalid_field", "notification.badge"),
        (
            json!({"to": {"all": true}, "notification": note, "options": {"send_at": "tomorrow"}}),
            "invalid_field",
            "options.send_at",
        ),
        (
            json!({"to": {"all": true}, "notification": note, "options": {"priority": "urgent"}}),
            "invalid_field",
            "options.priority",
        ),
        (json!({"to": {"all": true}, "notification": note, "extra": 1}), "invalid_field", "extra"),
    ];
    for (body, code, field) in cases {
        let (status, err) = app.post("/v1/notifications", &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_error(&err, code, Some(field));
    }
    let (status, err) = app.post("/v1/devices/nope/notifications", &key, json!({"notification": note})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_error(&err, "not_found", None);
    let (status, err) = app
        .post("/v1/notifications", &key, json!({"to": {"device_ids": [device, "nope"]}, "notification": note}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    let (status, err) = app.post("/v1/groups/nobody/notifications", &key, json!({"notification": note})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_error(&err, "not_found", None);

    let big = json!({"notification": {"title": "x", "data": {"blob": "x".repeat(5000)}}});
    let (status, err) = app.post(&format!("/v1/devices/{device}/notifications"), &key, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_error(&err, "payload_too_large", None);
    // Over Web Push's limit but within FCM's: a send that reaches no browser
    // is not refused for a platform it does not reach.
    register(&app, &keys, "android", "fits-fcm", None, &["droids"]).await;
    let fits = json!({"notification": {"title": "x", "data": {"blob": "x".repeat(3990)}}});
    let (status, res) = app.post("/v1/groups/droids/notifications?dry_run=true", &key, fits.clone()).await;
    assert_eq!((status, &res["targeted"]), (StatusCode::OK, &json!(1)), "{res}");
    let (status, res) = app.post("/v1/groups/droids/notifications", &key, fits).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");

    let (status, err) =
        app.post(&format!("/v1/devices/{device}/notifications"), &keys.client_key, json!({"notification": note})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");

    // No credentials for the platform: 422, nothing stored.
    let bare = app.create_app().await;
    let bare_device = register(&app, &bare, "ios", &ios_token("c0de", 10), None, &[]).await;
    let (status, err) = app
        .post(&format!("/v1/devices/{bare_device}/notifications"), &bare.server_key, json!({"notification": note}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_error(&err, "no_provider", None);
    assert!(pipeline::deliveries(&app, &bare.server_key, "status=pending").await.is_empty());

    // Mixed: the platform without credentials fails as `no_provider`.
    let apns_only =
        app.create_app_with(json!({"name": "apns only", "apns": mock.handle.apns_credentials_json()})).await;
    let to = json!({"tokens": [{"platform": "ios", "token": ios_token("c0de", 11)}, {"platform": "android", "token": "mixed-1"}]});
    let (status, res) =
        app.post("/v1/notifications?wait=true", &apns_only.server_key, json!({"to": to, "notification": note})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let mut results: Vec<(String, String, Value)> = res["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["platform"].as_str().unwrap_or("").into(),
                r["status"].as_str().unwrap_or("").into(),
                r["reason"].clone(),
            )
        })
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        results,
        vec![
            ("android".into(), "failed".into(), json!("no_provider")),
            ("ios".into(), "delivered".into(), Value::Null)
        ]
    );
}

/// Single-device sends arriving together are created in one batch; each
/// still gets its own answer: 202 for live devices, 404 for unknown ones or
/// another app's, 422 for a platform without credentials, and 202
/// `completed` with nothing sent for an inactive device.
async fn concurrent_single_sends_each_get_their_own_answer(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let note = json!({"notification": {"title": "together"}});
    let mut live = Vec::new();
    for i in 0..24 {
        let (platform, token) =
            if i % 2 == 0 { ("ios", ios_token("c0de", 100 + i)) } else { ("android", format!("together-{i}")) };
        live.push((register(&app, &keys, platform, &token, None, &[]).await, token));
    }
    let apns_only =
        app.create_app_with(json!({"name": "apns only", "apns": mock.handle.apns_credentials_json()})).await;
    let android_only_app = register(&app, &apns_only, "android", "no-fcm-1", None, &[]).await;
    let other_apps_device = register(&app, &apns_only, "ios", &ios_token("c0de", 99), None, &[]).await;
    // Made inactive by its token dying on a first send.
    let dying = register(&app, &keys, "android", "dead-together", None, &[]).await;
    let (status, res) =
        app.post(&format!("/v1/devices/{dying}/notifications?wait=true"), &keys.server_key, note.clone()).await;
    assert_eq!(status, StatusCode::OK, "{res}");

    let mut calls: Vec<(String, String, StatusCode)> =
        live.iter().map(|(id, _)| (keys.server_key.clone(), id.clone(), StatusCode::ACCEPTED)).collect();
    for i in 0..6 {
        calls.push((keys.server_key.clone(), format!("nope-{i}"), StatusCode::NOT_FOUND));
    }
    calls.push((keys.server_key.clone(), other_apps_device.clone(), StatusCode::NOT_FOUND));
    calls.push((apns_only.server_key.clone(), android_only_app.clone(), StatusCode::UNPROCESSABLE_ENTITY));
    calls.push((keys.server_key.clone(), dying.clone(), StatusCode::ACCEPTED));
    let answers = futures_util::future::join_all(calls.iter().map(|(key, device, _)| {
        let path = format!("/v1/devices/{device}/notifications");
        let (app, note) = (&app, note.clone());
        async move { app.post(&path, key, note).await }
    }))
    .await;
    let mut ids = Vec::new();
    for ((_, device, want), (status, body)) in calls.iter().zip(&answers) {
        assert_eq!(status, want, "{device}: {body}");
        match *want {
            StatusCode::NOT_FOUND => assert_error(body, "not_found", None),
            StatusCode::UNPROCESSABLE_ENTITY => assert_error(body, "no_provider", None),
            _ if device == &dying => {
                assert_eq!(body["status"], "completed", "{body}");
                assert_eq!(body["targeted"], 0, "{body}");
            }
            _ => {
                assert_eq!(body["targeted"], 1, "{body}");
                ids.push(body["id"].as_str().expect("id").to_string());
            }
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), live.len(), "one notification per send");
    for id in &ids {
        let done = wait_final(&app, &keys, id).await;
        assert_eq!(done["counts"]["delivered"], 1, "{done}");
    }
    for (_, token) in &live {
        assert_eq!(mock.handle.attempts(token), 1, "token {token} got exactly one push");
    }
    assert_eq!(mock.handle.attempts("dead-together"), 1, "the inactive device got nothing more");
    assert_eq!(mock.handle.attempts("no-fcm-1"), 0);
}

async fn bad_credentials_are_refused_at_app_time(db: Db) {
    let (app, mock, _keys) = pipeline::start(db, |_| {}).await;
    let mut apns = mock.handle.apns_credentials_json();
    apns["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
    let (status, err) = app.post("/v1/apps", &app.admin_key, json!({"name": "bad", "apns": apns})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_error(&err, "invalid_field", Some("apns.private_key"));
    let mut sa = mock.handle.service_account_json();
    sa.as_object_mut().expect("object").remove("client_email");
    let (status, err) =
        app.post("/v1/apps", &app.admin_key, json!({"name": "bad", "fcm": {"service_account": sa}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_error(&err, "invalid_field", Some("fcm.service_account.client_email"));
}

crate::store_tests!(
    each_target_kind_delivers,
    dead_bad_and_backpressured_tokens_add_up,
    ttl_ends_retries_as_expired,
    retries_stop_after_max_attempts,
    scheduled_sends_wait_and_cancel,
    idempotency_key_replays_the_first_answer,
    bad_sends_get_api_errors,
    concurrent_single_sends_each_get_their_own_answer,
    bad_credentials_are_refused_at_app_time,
);
