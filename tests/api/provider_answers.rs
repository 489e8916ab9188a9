//! Meeting Apple and Google as they behave (issue 12): sandbox devices,
//! absolute expiry and collapse ids, every provider answer, the attempts
//! log, against the stand-ins over TLS + HTTP/2.

use pushgate_mock_providers::{Behavior, MockConfig};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Db, TestApp, TestAppKeys};
use crate::pipeline::{self, ios_token, register, wait_final};

async fn sandbox_devices_go_to_the_sandbox_host_on_every_path(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let m = &mock.handle;
    // `5a4d…` tokens are development-build tokens: production refuses them.
    let dev_tok = ios_token("5a4d", 1);
    let retried_tok = ios_token("5a4d", 2);
    let wrong_tok = ios_token("5a4d", 3);
    let mut ids = Vec::new();
    for (tok, env) in [(&dev_tok, "sandbox"), (&retried_tok, "sandbox"), (&wrong_tok, "production")] {
        let body = json!({"platform": "ios", "token": tok, "environment": env, "groups": ["dev"]});
        let (status, device) = app.post("/v1/devices", &key, body).await;
        assert_eq!(status, StatusCode::CREATED, "{device}");
        ids.push(device["id"].as_str().expect("id").to_string());
    }
    m.set_behavior(&retried_tok, Behavior::Status { status: 503, retry_after: None, times: 1 });
    let note = json!({"notification": {"title": "from Xcode"}});

    // A single send with wait=true, a fan-out (with a retry), raw tokens of
    // a registered device, and an explicit list queued for the worker.
    let (status, res) = app.post(&format!("/v1/devices/{}/notifications?wait=true", ids[0]), &key, note.clone()).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["results"][0]["status"], "delivered", "{res}");
    let (status, res) = app.post("/v1/groups/dev/notifications", &key, note.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let done = wait_final(&app, &keys, res["id"].as_str().expect("id")).await;
    assert_eq!(done["counts"]["delivered"], 2, "{done}");
    assert_eq!(done["counts"]["failed"], 1, "{done}");
    let to = json!({"tokens": [{"platform": "ios", "token": dev_tok}]});
    let (status, res) =
        app.post("/v1/notifications?wait=true", &key, json!({"to": to, "notification": {"title": "raw"}})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["results"][0]["status"], "delivered", "{res}");
    let to = json!({"device_ids": [ids[0]]});
    let (status, res) = app.post("/v1/notifications", &key, json!({"to": to, "notification": {"title": "q"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    wait_final(&app, &keys, res["id"].as_str().expect("id")).await;

    assert_eq!(m.delivered_count(&dev_tok), 4);
    assert!(m.received(&dev_tok).iter().all(|r| r.sandbox), "every push to the sandbox host");
    assert_eq!((m.delivered_count(&retried_tok), m.attempts(&retried_tok)), (1, 2));
    assert!(m.received(&retried_tok).iter().all(|r| r.sandbox), "the retry too");
    for id in &ids[..2] {
        let (_, dev) = app.get(&format!("/v1/devices/{id}"), &key).await;
        assert_eq!(dev["active"], true, "{dev}");
    }
    // The same kind of token registered as production meets Apple's refusal.
    let (_, dev) = app.get(&format!("/v1/devices/{}", ids[2]), &key).await;
    assert_eq!((dev["active"].as_bool(), dev["deactivated_reason"].as_str()), (Some(false), Some("BadDeviceToken")));
}

/// A device registered without `environment` follows its app's: a
/// development app (`apns.environment: "sandbox"`) sends it to the sandbox.
async fn devices_without_environment_follow_their_app(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let m = &mock.handle;
    let mut apns = m.apns_credentials_json();
    apns["environment"] = json!("sandbox");
    let (status, res) = app.patch(&format!("/v1/apps/{}", keys.id), &app.admin_key, json!({"apns": apns})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let tok = ios_token("5a4d", 9);
    let id = register(&app, &keys, "ios", &tok, None, &[]).await;
    let (_, dev) = app.get(&format!("/v1/devices/{id}"), &keys.server_key).await;
    assert_eq!(dev["environment"], Value::Null, "{dev}");
    let note = json!({"notification": {"title": "dev build"}});
    let (status, res) = app.post(&format!("/v1/devices/{id}/notifications?wait=true"), &keys.server_key, note).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["results"][0]["status"], "delivered", "{res}");
    assert!(m.received(&tok).iter().all(|r| r.sandbox), "sent to the sandbox host");
}

async fn expiry_is_absolute_and_pushes_collapse_by_notification(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let m = &mock.handle;
    let first = ios_token("c0de", 1);
    // `0429…`: the first attempt is throttled (Retry-After 1 s), the retry accepted.
    let retried = ios_token("0429", 1);
    for t in [&first, &retried] {
        register(&app, &keys, "ios", t, None, &["g"]).await;
    }
    register(&app, &keys, "android", "live-tag", None, &["g"]).await;
    let body = json!({"notification": {"title": "t"}, "options": {"ttl_seconds": 600}});
    let (status, res) = app.post("/v1/groups/g/notifications", &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(done["counts"]["delivered"], 3, "{done}");
    assert_eq!(m.attempts(&retried), 2);
    let header = |t: &str, name: &str| m.received(t)[0].headers.get(name).cloned();
    let expiration = header(&first, "apns-expiration").expect("apns-expiration");
    assert_eq!(header(&retried, "apns-expiration"), Some(expiration.clone()), "the retry carries the same instant");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let at: u64 = expiration.parse().expect("seconds");
    assert!(at > now + 590 && at <= now + 600, "created_at + ttl: {at} vs now {now}");
    for t in [&first, &retried] {
        assert_eq!(header(t, "apns-collapse-id").as_deref(), Some(id.as_str()), "collapse id of {t}");
    }
    let android = &m.received("live-tag")[0].payload;
    assert_eq!(android["android"]["notification"]["tag"], id.as_str(), "{android}");
    let ttl = android["android"]["ttl"].as_str().expect("ttl");
    let left: u64 = ttl.trim_end_matches('s').parse().expect("ttl seconds");
    assert!(left <= 600 && left > 590, "what remains of the ttl: {ttl}");

    // The delivery log keeps every attempt, not only the last.
    let rows = pipeline::deliveries(&app, &key, &format!("notification_id={id}")).await;
    let mut logs: Vec<Vec<Option<i64>>> = rows
        .iter()
        .map(|r| {
            let log = r["attempts_log"].as_array().expect("attempts_log");
            for a in log {
                assert!(a["at"].is_string() && a["latency_ms"].is_u64(), "{a}");
            }
            log.iter().map(|a| a["provider_status"].as_i64()).collect()
        })
        .collect();
    logs.sort();
    assert_eq!(logs, [vec![Some(200)], vec![Some(200)], vec![Some(429), Some(200)]], "{rows:?}");
    let throttled = rows.iter().find(|r| r["attempts"] == 2).expect("retried row");
    assert_eq!(throttled["attempts_log"][0]["reason"], "TooManyRequests", "{throttled}");

    // A collapse key, when given, is the collapse id.
    let body = json!({"notification": {"title": "t"}, "options": {"collapse_key": "score"}});
    let (status, _) = app.post("/v1/groups/g/notifications?wait=true", &key, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m.received(&first)[1].headers.get("apns-collapse-id").map(String::as_str), Some("score"));

    // ttl 0: now or never.
    let body = json!({"notification": {"title": "t"}, "options": {"ttl_seconds": 0}});
    let (status, _) = app.post("/v1/groups/g/notifications?wait=true", &key, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m.received(&first)[2].headers.get("apns-expiration").map(String::as_str), Some("0"));
    assert_eq!(m.received("live-tag")[2].payload["android"]["ttl"], "0s");
}

async fn a_delivery_past_its_expiry_is_expired_without_a_request(db: Db) {
    // No workers: the delivery waits in the queue past its expiry.
    let (mut app, mock, keys) = pipeline::start(db, |c| c.workers = false).await;
    let token = ios_token("c0de", 9);
    let device = register(&app, &keys, "ios", &token, None, &[]).await;
    let body = json!({"notification": {"title": "late"}, "options": {"ttl_seconds": 1}});
    let (status, res) = app.post(&format!("/v1/devices/{device}/notifications"), &keys.server_key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    app.config.workers = true;
    let app = app.restart().await;
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(done["counts"]["expired"], 1, "{done}");
    let rows = pipeline::deliveries(&app, &keys.server_key, &format!("notification_id={id}")).await;
    assert_eq!((rows[0]["status"].as_str(), rows[0]["attempts"].as_i64()), (Some("expired"), Some(0)));
    assert_eq!(mock.handle.attempts(&token), 0, "never sent");
}

/// `GET /v1/apps/{id}` until `check` holds for its `providers`.
async fn providers_until(app: &TestApp, keys: &TestAppKeys, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, read) = app.get(&format!("/v1/apps/{}", keys.id), &app.admin_key).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        if check(&read["providers"]) {
            return read["providers"].clone();
        }
        assert!(Instant::now() < deadline, "providers not as expected in time: {read}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refused_credentials_make_the_provider_failing_until_they_work(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let m = &mock.handle;
    let ios = ios_token("c0de", 1);
    let ios_id = register(&app, &keys, "ios", &ios, None, &["g"]).await;
    let android_id = register(&app, &keys, "android", "live-auth", None, &["g"]).await;
    // APNs 403 InvalidProviderToken; FCM 401 THIRD_PARTY_AUTH_ERROR.
    m.set_behavior(&ios, Behavior::ThirdPartyAuthError);
    m.set_behavior("live-auth", Behavior::ThirdPartyAuthError);
    let providers = providers_until(&app, &keys, |p| p["apns"]["status"] == "ok" && p["fcm"]["status"] == "ok").await;
    assert_eq!(providers["apns"], json!({"configured": true, "status": "ok"}));

    let (status, res) = app.post("/v1/groups/g/notifications", &key, json!({"notification": {"title": "t"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();
    let failing =
        providers_until(&app, &keys, |p| p["apns"]["status"] == "failing" && p["fcm"]["status"] == "failing").await;
    assert_eq!(failing["apns"]["last_error"], "InvalidProviderToken", "{failing}");
    assert!(
        failing["fcm"]["last_error"].as_str().is_some_and(|e| e.starts_with("THIRD_PARTY_AUTH_ERROR")),
        "{failing}"
    );
    assert!(failing["apns"]["since"].is_string(), "{failing}");
    // The deliveries wait (several attempts, none final) and the devices stay active.
    let deadline = Instant::now() + Duration::from_secs(20);
    while m.attempts(&ios) < 3 || m.attempts("live-auth") < 3 {
        assert!(Instant::now() < deadline, "deliveries are retried while the credentials fail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = pipeline::deliveries(&app, &key, &format!("notification_id={id}")).await;
    assert!(rows.iter().all(|r| r["status"] == "pending"), "{rows:?}");
    for device in [&ios_id, &android_id] {
        let (_, dev) = app.get(&format!("/v1/devices/{device}"), &key).await;
        assert_eq!(dev["active"], true, "{dev}");
    }

    // The credentials work again: the deliveries go through, the providers are ok.
    m.clear_behaviors();
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(done["counts"]["delivered"], 2, "{done}");
    let providers = providers_until(&app, &keys, |p| p["apns"]["status"] == "ok" && p["fcm"]["status"] == "ok").await;
    assert!(providers["apns"].get("last_error").is_none(), "{providers}");

    // FCM 403 PERMISSION_DENIED: failing until the credentials are replaced.
    m.set_behavior("live-auth", Behavior::PermissionDenied);
    let (status, _) = app.post("/v1/groups/g/notifications", &key, json!({"notification": {"title": "u"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let failing = providers_until(&app, &keys, |p| p["fcm"]["status"] == "failing").await;
    assert!(failing["fcm"]["last_error"].as_str().is_some_and(|e| e.starts_with("PERMISSION_DENIED")), "{failing}");
    let fcm = json!({"service_account": m.service_account_json()});
    let (status, read) = app.patch(&format!("/v1/apps/{}", keys.id), &app.admin_key, json!({"fcm": fcm})).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["providers"]["fcm"], json!({"configured": true, "status": "ok"}), "{read}");
    m.clear_behaviors();
}

/// APNs `ExpiredProviderToken` is the gateway's own token grown old: the
/// push is sent again at once with a new one and the app stays `ok`. An OAuth refusal
/// (Google's token endpoint says `invalid_grant`) makes FCM `failing` with
/// the deliveries kept, until the endpoint accepts again.
async fn expired_provider_tokens_and_oauth_refusals(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let m = &mock.handle;
    let ios = ios_token("c0de", 7);
    let ios_id = register(&app, &keys, "ios", &ios, None, &[]).await;
    let note = json!({"notification": {"title": "t"}});
    let (status, res) = app.post(&format!("/v1/devices/{ios_id}/notifications?wait=true"), &key, note.clone()).await;
    assert_eq!((status, &res["results"][0]["status"]), (StatusCode::OK, &json!("delivered")), "{res}");
    m.expire_apns_jwts();
    let (status, res) = app.post(&format!("/v1/devices/{ios_id}/notifications"), &key, note.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let done = wait_final(&app, &keys, res["id"].as_str().expect("id")).await;
    assert_eq!(done["counts"]["delivered"], 1, "retried with a new provider token: {done}");
    // Apple refused the old token once; the same attempt was sent again
    // with a new one, so the log shows one attempt, delivered.
    assert_eq!((m.delivered_count(&ios), m.apns_jwt_count()), (2, 2), "delivered again, with a second provider token");
    let rows = pipeline::deliveries(&app, &key, &format!("notification_id={}", res["id"].as_str().unwrap_or(""))).await;
    assert_eq!((rows[0]["status"].as_str(), rows[0]["attempts"].as_u64()), (Some("delivered"), Some(1)), "{rows:?}");
    let (_, read) = app.get(&format!("/v1/apps/{}", keys.id), &app.admin_key).await;
    assert_eq!(read["providers"]["apns"]["status"], "ok", "an expired token is not a credentials failure: {read}");

    let android_id = register(&app, &keys, "android", "live-oauth", None, &[]).await;
    m.set_oauth_failure(Some(pushgate_mock_providers::OAuthFailure::InvalidGrant));
    let (status, res) = app.post(&format!("/v1/devices/{android_id}/notifications"), &key, note).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();
    let failing = providers_until(&app, &keys, |p| p["fcm"]["status"] == "failing").await;
    assert!(failing["fcm"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{failing}");
    let rows = pipeline::deliveries(&app, &key, &format!("notification_id={id}")).await;
    assert_eq!(rows[0]["status"], "pending", "kept for a retry: {rows:?}");
    m.set_oauth_failure(None);
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(done["counts"]["delivered"], 1, "{done}");
    providers_until(&app, &keys, |p| p["fcm"]["status"] == "ok").await;
    assert_eq!(m.delivered_count("live-oauth"), 1);
}

async fn dead_tokens_are_deactivated_as_the_table_says(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let m = &mock.handle;
    let now_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let reinstalled = ios_token("c0de", 1);
    let gone = ios_token("c0de", 2);
    let other_topic = ios_token("c0de", 3);
    let mut ids = Vec::new();
    for t in [&reinstalled, &gone, &other_topic] {
        ids.push(register(&app, &keys, "ios", t, None, &["g"]).await);
    }
    ids.push(register(&app, &keys, "android", "other-sender", None, &["g"]).await);
    // Apple saw the token dead an hour before it was registered again.
    m.set_behavior(&reinstalled, Behavior::UnregisteredSince { timestamp_ms: now_ms() - 3_600_000 });
    m.set_behavior(&gone, Behavior::UnregisteredSince { timestamp_ms: now_ms() + 5_000 });
    m.set_behavior(&other_topic, Behavior::SenderIdMismatch);
    m.set_behavior("other-sender", Behavior::SenderIdMismatch);
    let (status, res) =
        app.post("/v1/groups/g/notifications?wait=true", &key, json!({"notification": {"title": "t"}})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let results = res["results"].as_array().expect("results");
    assert!(results.len() == 4 && results.iter().all(|r| r["status"] == "failed"), "{res}");
    let expect = [
        (Some(true), None),
        (Some(false), Some("Unregistered")),
        (Some(false), Some("DeviceTokenNotForTopic")),
        (Some(false), Some("SENDER_ID_MISMATCH")),
    ];
    for (id, want) in ids.iter().zip(expect) {
        let (_, dev) = app.get(&format!("/v1/devices/{id}"), &key).await;
        assert_eq!((dev["active"].as_bool(), dev["deactivated_reason"].as_str()), want, "{dev}");
    }
}

async fn instances_share_one_apns_provider_token(db: Db) {
    // Apple's rule on: a key's token may change once per 20 minutes.
    let config = MockConfig {
        provider_token_update_window: pushgate_mock_providers::APPLE_TOKEN_UPDATE_WINDOW,
        ..MockConfig::default()
    };
    let mock = pipeline::Mock::start_with(config).await;
    let first = TestApp::spawn_with(db, |c| mock.configure(c)).await;
    let keys = first.create_app_with(mock.app_body()).await;
    let second = first.another_instance().await;
    let m = &mock.handle;
    for (n, app) in [&first, &second, &first, &second].into_iter().enumerate() {
        let token = ios_token("c0de", n);
        let device = register(app, &keys, "ios", &token, None, &[]).await;
        let (status, res) = app
            .post(
                &format!("/v1/devices/{device}/notifications?wait=true"),
                &keys.server_key,
                json!({"notification": {"title": "t"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
        assert_eq!(res["results"][0]["status"], "delivered", "instance {}: {res}", n % 2);
        assert_eq!(m.attempts(&token), 1, "never refused TooManyProviderTokenUpdates");
    }
    assert_eq!(m.apns_jwt_count(), 1, "one provider token for both instances");
}

async fn strict_input_names_the_refused_field(db: Db) {
    let (app, _mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let device = register(&app, &keys, "android", "live-strict", None, &[]).await;
    let path = format!("/v1/devices/{device}/notifications");
    let note = json!({"title": "t"});
    let cases = [
        (json!({"notification": note, "ttl": 60}), "ttl"),
        (json!({"notification": {"title": "t", "titel": "x"}}), "notification.titel"),
        (json!({"notification": note, "options": {"ttl": 60}}), "options.ttl"),
        (json!({"notification": note, "options": {"ttl_seconds": 2_419_201}}), "options.ttl_seconds"),
        (json!({"notification": note, "options": {"priority": "urgent"}}), "options.priority"),
        (json!({"notification": {"title": "t", "fcm": {"topic": "news"}}}), "notification.fcm.topic"),
    ];
    for (body, field) in cases {
        let (status, err) = app.post(&path, &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_error(&err, "invalid_field", Some(field));
    }
    let to = json!({"device_ids": [device]});
    let (status, err) =
        app.post("/v1/notifications", &key, json!({"to": to, "notification": note, "options": {"prio": 1}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_error(&err, "invalid_field", Some("options.prio"));
    let (status, err) =
        app.post("/v1/devices", &key, json!({"platform": "android", "token": "t-x", "user": "u"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_error(&err, "invalid_field", Some("user"));
    // The limits themselves are accepted.
    for options in [json!({"ttl_seconds": 0, "priority": "low"}), json!({"ttl_seconds": 2_419_200})] {
        let (status, res) = app.post(&path, &key, json!({"notification": note, "options": options})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    }
}

async fn deleting_a_device_cancels_its_queued_deliveries(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let device = register(&app, &keys, "android", "r503-gone", None, &[]).await;
    // Always 503: the delivery stays queued for a retry.
    mock.handle.set_behavior("r503-gone", Behavior::Status { status: 503, retry_after: Some(60), times: 1_000 });
    let (status, res) =
        app.post(&format!("/v1/devices/{device}/notifications"), &key, json!({"notification": {"title": "t"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.handle.attempts("r503-gone") == 0 {
        assert!(Instant::now() < deadline, "first attempt made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = app.delete(&format!("/v1/devices/{device}"), &key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["cancelled"], 1, "{done}");
    let rows = pipeline::deliveries(&app, &key, &format!("notification_id={id}")).await;
    assert_eq!(rows[0]["status"], "cancelled", "{rows:?}");
}

crate::store_tests!(
    deleting_a_device_cancels_its_queued_deliveries,
    strict_input_names_the_refused_field,
    instances_share_one_apns_provider_token,
    refused_credentials_make_the_provider_failing_until_they_work,
    dead_tokens_are_deactivated_as_the_table_says,
    sandbox_devices_go_to_the_sandbox_host_on_every_path,
    devices_without_environment_follow_their_app,
    expired_provider_tokens_and_oauth_refusals,
    expiry_is_absolute_and_pushes_collapse_by_notification,
    a_delivery_past_its_expiry_is_expired_without_a_request,
);
