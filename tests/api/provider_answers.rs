//! Meeting Apple and Google as they behave (issue 12): sandbox devices,
//! absolute expiry and collapse ids, every provider answer, the attempts
//! log, against the stand-ins over TLS + HTTP/2.

use pushgate_mock_providers::Behavior;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::Db;
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

crate::store_tests!(
    sandbox_devices_go_to_the_sandbox_host_on_every_path,
    expiry_is_absolute_and_pushes_collapse_by_notification,
    a_delivery_past_its_expiry_is_expired_without_a_request,
);
