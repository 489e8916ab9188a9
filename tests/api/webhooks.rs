//! Webhooks against a real HTTP receiver on 127.0.0.1 (the private-address
//! switch on): every event from a real trigger, signatures checked with the
//! Standard Webhooks reference implementation, retries and their spacing,
//! batching on a fan-out, a crash with events pending, and the chat room.

pub mod receiver;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use pushgate::config::Config;
use pushgate_mock_providers::Behavior;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{assert_error, fresh_database, Db, TestApp, TestAppKeys};
use crate::pipeline::{self, register, wait_final, Mock};
use crate::process::{Process, ADMIN};
use crate::socket::{connect, next_message};
use receiver::{header, verifies, Answer, Receiver};

/// Every event type.
const ALL: &[&str] = &[
    "device.deactivated",
    "notification.completed",
    "delivery.failed",
    "app.credentials_failing",
    "socket.message",
    "socket.connected",
    "socket.disconnected",
    "webhook.test",
];

/// Webhook settings for tests: private addresses, quick rounds.
pub fn quick(c: &mut Config) {
    c.webhook.allow_private = true;
    c.webhook.poll_interval_ms = 50;
    c.webhook.batch_wait_ms = 300;
}

/// Subscribes `url` to `events`; the webhook's id and secret.
pub async fn subscribe(app: &TestApp, keys: &TestAppKeys, url: &str, events: &[&str]) -> (String, String) {
    let (status, hook) = app.post("/v1/webhooks", &keys.server_key, json!({"url": url, "events": events})).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"].as_str().expect("secret shown at creation").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (hook["id"].as_str().expect("id").to_string(), secret)
}

/// Waits (bounded) until the webhook's attempt log lists `n` attempts; answers them, newest first.
pub async fn attempts_listed(app: &TestApp, keys: &TestAppKeys, hook_id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = app.get(&format!("/v1/webhooks/{hook_id}/attempts"), &keys.server_key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() == n {
            return items;
        }
        assert!(Instant::now() < deadline, "{n} attempts listed: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn of_type<'a>(bodies: &'a [Value], kind: &str) -> Vec<&'a Value> {
    bodies.iter().filter(|b| b["type"] == kind).collect()
}

/// Every item of the batched events of `kind`.
fn items(bodies: &[Value], kind: &str) -> Vec<Value> {
    of_type(bodies, kind).iter().flat_map(|b| b["data"]["items"].as_array().cloned().unwrap_or_default()).collect()
}

async fn every_event_comes_signed_from_its_real_trigger(db: Db) {
    let (app, mock, keys) = pipeline::start(db, quick).await;
    let receiver = Receiver::start().await;
    let (hook_id, secret) = subscribe(&app, &keys, &receiver.url, ALL).await;

    // A group send with two dead tokens: deactivations, failures, a completion.
    let mut dead_ids = Vec::new();
    for token in ["live-1", "live-2", "dead-1", "dead-2"] {
        let id = register(&app, &keys, "android", token, Some("u-1"), &["g"]).await;
        if token.starts_with("dead") {
            dead_ids.push(id);
        }
    }
    let (status, res) =
        app.post("/v1/groups/g/notifications", &keys.server_key, json!({"notification": {"title": "t"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();
    wait_final(&app, &keys, &id).await;
    let bodies = receiver
        .wait_for("the send's events", |b| {
            !of_type(b, "notification.completed").is_empty()
                && items(b, "device.deactivated").len() == 2
                && items(b, "delivery.failed").len() == 2
        })
        .await;
    let completed = of_type(&bodies, "notification.completed")[0];
    assert_eq!(completed["data"]["id"], id.as_str());
    assert_eq!(
        completed["data"]["counts"],
        json!({"targeted": 4, "delivered": 2, "failed": 2, "expired": 0, "cancelled": 0}),
        "{completed}"
    );
    let mut deactivated: Vec<String> =
        items(&bodies, "device.deactivated").iter().map(|i| i["device_id"].as_str().expect("id").to_string()).collect();
    deactivated.sort();
    dead_ids.sort();
    assert_eq!(deactivated, dead_ids);
    let first = &items(&bodies, "device.deactivated")[0];
    assert_eq!((first["platform"].as_str(), first["user_id"].as_str()), (Some("android"), Some("u-1")), "{first}");
    assert_eq!(first["reason"], "UNREGISTERED", "{first}");
    let failed = &items(&bodies, "delivery.failed")[0];
    assert_eq!(failed["notification_id"], id.as_str(), "{failed}");
    assert!(dead_ids.iter().any(|d| failed["device_id"] == d.as_str()), "{failed}");

    // A test event, on demand.
    let (status, sent) = app.post(&format!("/v1/webhooks/{hook_id}/test"), &keys.server_key, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let bodies = receiver.wait_for("the test event", |b| !of_type(b, "webhook.test").is_empty()).await;
    assert_eq!(of_type(&bodies, "webhook.test")[0]["data"]["webhook_id"], hook_id.as_str());

    // Socket events from a real WebSocket client.
    let mut ws = connect(&app, &keys, "c-1", None).await;
    ws.send(Message::Text(r#"{"type":"message","data":{"text":"hello"}}"#.into())).await.expect("send frame");
    // Events are sent concurrently: the connection's may come after the message's.
    let bodies = receiver
        .wait_for("the connection and the message", |b| {
            !of_type(b, "socket.message").is_empty() && !of_type(b, "socket.connected").is_empty()
        })
        .await;
    let message = of_type(&bodies, "socket.message")[0];
    assert_eq!(message["data"]["data"], json!({"text": "hello"}), "{message}");
    let client_id = message["data"]["client_id"].as_str().expect("client id").to_string();
    assert_eq!(of_type(&bodies, "socket.connected")[0]["data"]["client_id"], client_id.as_str());
    // A message frame without data is refused, and sends nothing.
    ws.send(Message::Text(r#"{"type":"message"}"#.into())).await.expect("send frame");
    let Message::Text(refusal) = next_message(&mut ws).await else { panic!("an error frame") };
    assert!(refusal.as_str().contains("invalid_field"), "{refusal}");
    ws.close(None).await.expect("close");
    let bodies = receiver.wait_for("the disconnection", |b| !of_type(b, "socket.disconnected").is_empty()).await;
    assert_eq!(of_type(&bodies, "socket.disconnected")[0]["data"]["client_id"], client_id.as_str());
    assert_eq!(of_type(&bodies, "socket.message").len(), 1);

    // Refused credentials.
    register(&app, &keys, "android", "cred-1", None, &["c"]).await;
    mock.handle.set_behavior("cred-1", Behavior::ThirdPartyAuthError);
    let (status, res) =
        app.post("/v1/groups/c/notifications", &keys.server_key, json!({"notification": {"title": "t"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let bodies =
        receiver.wait_for("the credentials event", |b| !of_type(b, "app.credentials_failing").is_empty()).await;
    let failing = of_type(&bodies, "app.credentials_failing")[0];
    assert_eq!(failing["data"]["provider"], "fcm", "{failing}");
    assert!(failing["data"]["reason"].as_str().is_some_and(|r| r.starts_with("THIRD_PARTY_AUTH_ERROR")), "{failing}");

    // Everything as the specification signs it, and shaped as documented.
    let received = receiver.received();
    // The send's completion, deactivations and failures, the test, three socket events, the credentials.
    assert_eq!(received.len(), 8, "{received:#?}");
    for r in &received {
        assert!(verifies(r, &secret), "signature of {}", r.body);
        assert!(header(&r.headers, "webhook-id").starts_with("msg_"));
        let body = r.json();
        assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
        assert!(ALL.contains(&body["type"].as_str().unwrap_or_default()), "{body}");
    }
    // Each attempt is recorded once its answer is in.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (status, page) = app.get(&format!("/v1/webhooks/{hook_id}/attempts?limit=1000"), &keys.server_key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if page["items"].as_array().map(Vec::len) == Some(received.len()) {
            break page;
        }
        assert!(Instant::now() < deadline, "an attempt listed per request received: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(page["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|a| a["status"] == "succeeded" && a["http_status"] == 200));
}

async fn failures_are_retried_on_schedule_and_listed(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        quick(c);
        c.webhook.retry_schedule = "300ms,600ms,900ms".to_string().try_into().expect("schedule");
        c.webhook.timeout_ms = 300;
    })
    .await;
    let keys = app.create_app().await;
    let receiver = Receiver::start().await;
    receiver.plan(&[Answer::Status(500), Answer::Status(503), Answer::Hang(Duration::from_millis(800))]);
    let (hook_id, _) = subscribe(&app, &keys, &receiver.url, &["webhook.test"]).await;
    let (status, sent) = app.post(&format!("/v1/webhooks/{hook_id}/test"), &keys.server_key, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let msg_id = sent["msg_id"].as_str().expect("msg_id").to_string();

    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.received().len() < 4 {
        assert!(Instant::now() < deadline, "four attempts in time: {:?}", receiver.received().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = receiver.received();
    assert!(got.iter().all(|r| header(&r.headers, "webhook-id") == msg_id), "one event, retried under its id");
    // Pauses after each failure: 300 ms, 600 ms, then the 300 ms timeout and 900 ms.
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, (least, most)) in gaps.iter().zip([(300, 1300), (600, 1600), (1200, 2200)]) {
        let ms = gap.as_millis();
        assert!(ms >= least && ms < most, "gaps {gaps:?}: expected {least}..{most} ms");
    }

    // Every attempt listed, newest first; the filter and the cursor work.
    let attempts = attempts_listed(&app, &keys, &hook_id, 4).await;
    let summary: Vec<(Value, Value, Value)> =
        attempts.iter().map(|a| (a["attempt"].clone(), a["status"].clone(), a["http_status"].clone())).collect();
    assert_eq!(
        summary,
        [
            (json!(4), json!("succeeded"), json!(200)),
            (json!(3), json!("failed"), Value::Null),
            (json!(2), json!("failed"), json!(503)),
            (json!(1), json!("failed"), json!(500)),
        ]
    );
    assert!(attempts[1]["error"].as_str().is_some_and(|e| e.contains("timeout")), "{}", attempts[1]);
    assert!(attempts.iter().all(|a| a["msg_id"] == msg_id.as_str() && a["type"] == "webhook.test"));
    let (_, failed) =
        app.get(&format!("/v1/webhooks/{hook_id}/attempts?status=failed&limit=2"), &keys.server_key).await;
    assert_eq!(failed["items"].as_array().map(Vec::len), Some(2), "{failed}");
    let cursor = failed["next_cursor"].as_str().expect("a next page");
    let path = format!("/v1/webhooks/{hook_id}/attempts?status=failed&limit=2&cursor={cursor}");
    let (_, rest) = app.get(&path, &keys.server_key).await;
    assert_eq!(rest["items"][0]["attempt"], 1, "{rest}");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (status, bad) = app.get(&format!("/v1/webhooks/{hook_id}/attempts?status=ok"), &keys.server_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&bad, "invalid_field", Some("status"));
}

async fn instances_sharing_a_store_send_each_event_once(db: Db) {
    let app = TestApp::spawn_with(db, quick).await;
    let other = app.another_instance().await;
    let keys = app.create_app().await;
    let receiver = Receiver::start().await;
    let (id, _) = subscribe(&app, &keys, &receiver.url, &["webhook.test"]).await;
    let mut sent = Vec::new();
    for n in 0..20 {
        let instance = if n % 2 == 0 { &app } else { &other };
        let (status, test) = instance.post(&format!("/v1/webhooks/{id}/test"), &keys.server_key, json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{test}");
        sent.push(test["msg_id"].as_str().expect("msg_id").to_string());
    }
    receiver.wait_for("every test event", |b| b.len() == 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids: Vec<String> = receiver.received().iter().map(|r| header(&r.headers, "webhook-id")).collect();
    ids.sort();
    sent.sort();
    assert_eq!(ids, sent, "each event exactly once");
    let metrics = app.http.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("pushgate_webhook_attempts_total{outcome=\"succeeded\"}"), "{metrics}");
}

async fn a_webhook_failing_too_long_is_disabled_until_enabled(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        quick(c);
        c.webhook.retry_schedule = "100ms,100ms,100ms,100ms".to_string().try_into().expect("schedule");
        // Failing at all is failing too long.
        c.webhook.disable_after_seconds = 0;
    })
    .await;
    let keys = app.create_app().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Some(500));
    let (id, _) = subscribe(&app, &keys, &receiver.url, &["webhook.test"]).await;
    app.post(&format!("/v1/webhooks/{id}/test"), &keys.server_key, json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let disabled = loop {
        let (_, hook) = app.get(&format!("/v1/webhooks/{id}"), &keys.server_key).await;
        if hook["enabled"] == false {
            break hook;
        }
        assert!(Instant::now() < deadline, "disabled in time: {hook}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(disabled["disabled_reason"].as_str().is_some_and(|r| r.contains("failing")), "{disabled}");
    assert!(disabled["failing_since"].is_string(), "{disabled}");
    // The first failure starts the clock, the second finds it run out; then nothing is tried.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 2);
    receiver.answer_always(None);
    let (status, enabled) = app.patch(&format!("/v1/webhooks/{id}"), &keys.server_key, json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!((enabled["disabled_reason"].clone(), enabled["failing_since"].clone()), (Value::Null, Value::Null));
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.received().len() < 3 {
        assert!(Instant::now() < deadline, "the waiting event is sent once enabled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_fan_out_with_many_dead_tokens_makes_few_calls(db: Db) {
    let (app, _mock, keys) = pipeline::start(db, |c| {
        quick(c);
        c.fanout_batch = 50;
        c.webhook.batch_max = 100;
    })
    .await;
    let receiver = Receiver::start().await;
    subscribe(&app, &keys, &receiver.url, &["device.deactivated", "delivery.failed", "notification.completed"]).await;
    for n in 0..300 {
        let token = if n % 2 == 0 { format!("dead-{n}") } else { format!("live-{n}") };
        register(&app, &keys, "android", &token, None, &["many"]).await;
    }
    let (status, res) =
        app.post("/v1/groups/many/notifications", &keys.server_key, json!({"notification": {"title": "t"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    wait_final(&app, &keys, res["id"].as_str().expect("id")).await;
    let bodies = receiver
        .wait_for("150 deactivations and failures", |b| {
            items(b, "device.deactivated").len() == 150 && items(b, "delivery.failed").len() == 150
        })
        .await;
    // 150 of each in batches of at most 100: a handful of calls, not 300.
    for kind in ["device.deactivated", "delivery.failed"] {
        let calls = of_type(&bodies, kind);
        assert!((2..=6).contains(&calls.len()), "{kind}: {} calls", calls.len());
        assert!(calls.iter().all(|c| c["data"]["items"].as_array().is_some_and(|i| i.len() <= 100)));
        let mut devices: Vec<Value> = items(&bodies, kind).iter().map(|i| i["device_id"].clone()).collect();
        devices.sort_by_key(|d| d.to_string());
        devices.dedup();
        assert_eq!(devices.len(), 150, "{kind}: every device once");
    }
}

async fn a_hanging_endpoint_does_not_slow_sending(db: Db) {
    let (app, _mock, keys) = pipeline::start(db, |c| {
        quick(c);
        c.webhook.timeout_ms = 20_000;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.plan(&[Answer::Hang(Duration::from_secs(30)); 50]);
    let (id, _) = subscribe(&app, &keys, &receiver.url, ALL).await;
    app.post(&format!("/v1/webhooks/{id}/test"), &keys.server_key, json!({})).await;
    for n in 0..40 {
        let token = if n % 4 == 0 { format!("dead-{n}") } else { format!("live-{n}") };
        register(&app, &keys, "android", &token, None, &["slow"]).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.received().is_empty() {
        assert!(Instant::now() < deadline, "the endpoint is being called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The endpoint holds every call it gets; sends go on regardless.
    for _ in 0..3 {
        let started = Instant::now();
        let path = "/v1/groups/slow/notifications?wait=true";
        let (status, res) = app.post(path, &keys.server_key, json!({"notification": {"title": "t"}})).await;
        assert_eq!((status, res["status"].as_str()), (StatusCode::OK, Some("completed")), "{res}");
        assert!(started.elapsed() < Duration::from_secs(5), "a send took {:?}", started.elapsed());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.received().len() < 2 {
        assert!(Instant::now() < deadline, "the sends' events go to the hanging endpoint too");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_chat_room_goes_through_the_app_server(db: Db) {
    let app = TestApp::spawn_with(db, quick).await;
    let keys = app.create_app().await;
    let receiver = Receiver::start().await;
    subscribe(&app, &keys, &receiver.url, &["socket.message"]).await;
    // The application's server: answers every chat message with a broadcast.
    let mut events = receiver.events();
    let (base, server_key, http) = (app.url(""), keys.server_key.clone(), app.http.clone());
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let data = &event["data"];
            let note = json!({"notification": {"message": data["data"]["text"], "from": data["client_id"]}});
            let res =
                http.post(format!("{base}/v1/socket/broadcast")).bearer_auth(&server_key).json(&note).send().await;
            assert_eq!(res.map(|r| r.status()).ok(), Some(StatusCode::OK));
        }
    });
    let mut alice = connect(&app, &keys, "alice", None).await;
    let mut bob = connect(&app, &keys, "bob", None).await;
    alice.send(Message::Text(r#"{"type":"message","data":{"text":"hi all"}}"#.into())).await.expect("send");
    for ws in [&mut alice, &mut bob] {
        let Message::Text(frame) = next_message(ws).await else { panic!("a text frame") };
        let frame: Value = serde_json::from_str(frame.as_str()).expect("JSON frame");
        assert_eq!(frame["type"], "notification", "{frame}");
        assert_eq!(frame["notification"]["message"], "hi all", "{frame}");
        assert!(frame["notification"]["from"].as_str().is_some_and(|f| f.contains("alice")), "{frame}");
    }
}

async fn webhooks_are_managed_and_guarded(db: Db) {
    // Private addresses refused (the default).
    let strict = TestApp::spawn(db).await;
    let keys = strict.create_app().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/",
        "http://[::1]/",
        "ftp://example.com/",
    ] {
        let (status, body) =
            strict.post("/v1/webhooks", &keys.server_key, json!({"url": url, "events": ["webhook.test"]})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_error(&body, "invalid_field", Some("url"));
    }
    let (status, body) =
        strict.post("/v1/webhooks", &keys.server_key, json!({"url": "https://example.com/", "events": ["sent"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_field", Some("events[0]"));
    let (status, body) = strict
        .post(
            "/v1/webhooks",
            &keys.server_key,
            json!({"url": "https://example.com/", "events": ["webhook.test"], "secret": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_field", Some("secret"));
    let (status, _) = strict.get("/v1/webhooks", &keys.client_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let app = TestApp::spawn_with(db, quick).await;
    let keys = app.create_app().await;
    let other = app.create_app().await;
    let receiver = Receiver::start().await;
    let (id, old_secret) = subscribe(&app, &keys, &receiver.url, &["webhook.test", "socket.message"]).await;
    let (status, read) = app.get(&format!("/v1/webhooks/{id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["secret"], Value::Null, "the secret is shown once");
    assert_eq!(read["events"], json!(["socket.message", "webhook.test"]));
    let (status, _) = app.get(&format!("/v1/webhooks/{id}"), &other.server_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another app's webhook");
    // The admin key reads any app's webhooks, naming the app; never a secret.
    let app_id = &keys.id;
    let (status, page) = app.get(&format!("/v1/webhooks?app_id={app_id}"), &app.admin_key).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["id"], id.as_str(), "{page}");
    assert_eq!(page["items"][0]["secret"], Value::Null, "{page}");
    let (status, admin_read) = app.get(&format!("/v1/webhooks/{id}?app_id={app_id}"), &app.admin_key).await;
    assert_eq!((status, admin_read["url"].clone()), (StatusCode::OK, read["url"].clone()), "{admin_read}");
    let (status, _) = app.get(&format!("/v1/webhooks/{id}/attempts?app_id={app_id}"), &app.admin_key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/v1/webhooks", &app.admin_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the admin key names the app");
    let (status, _) = app.get(&format!("/v1/webhooks?app_id={app_id}"), &other.server_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a server key reads its own app only");
    let (status, _) = app.patch(&format!("/v1/webhooks/{id}?app_id={app_id}"), &app.admin_key, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the admin key only reads");
    let (status, page) = app.get("/v1/webhooks", &keys.server_key).await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{page}");
    let patch = json!({"events": ["webhook.test"], "description": "ops", "enabled": false});
    let (status, changed) = app.patch(&format!("/v1/webhooks/{id}"), &keys.server_key, patch).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!((changed["enabled"].clone(), changed["description"].clone()), (json!(false), json!("ops")));
    // A disabled webhook's test event waits; enabling delivers it.
    app.post(&format!("/v1/webhooks/{id}/test"), &keys.server_key, json!({})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(receiver.received().is_empty());
    app.patch(&format!("/v1/webhooks/{id}"), &keys.server_key, json!({"enabled": true})).await;
    receiver.wait_for("the waiting test event", |b| b.len() == 1).await;

    // Rotation: both secrets sign for the overlap.
    let (status, rotated) = app.post(&format!("/v1/webhooks/{id}/secret"), &keys.server_key, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("new secret").to_string();
    assert_ne!(new_secret, old_secret);
    app.post(&format!("/v1/webhooks/{id}/test"), &keys.server_key, json!({})).await;
    receiver.wait_for("a test event after the rotation", |b| b.len() == 2).await;
    let last = receiver.received().pop().expect("received");
    assert!(verifies(&last, &old_secret) && verifies(&last, &new_secret));
    assert_eq!(header(&last.headers, "webhook-signature").split(' ').count(), 2);

    let (status, _) = app.delete(&format!("/v1/webhooks/{id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/v1/webhooks/{id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
}

/// The webhook settings of the crash test's gateway: private receivers,
/// quick polls and retries.
const QUICK_WEBHOOKS: [(&str, &str); 4] = [
    ("PUSHGATE_WEBHOOK_ALLOW_PRIVATE", "true"),
    ("PUSHGATE_WEBHOOK_POLL_INTERVAL_MS", "50"),
    ("PUSHGATE_WEBHOOK_TIMEOUT_MS", "1000"),
    ("PUSHGATE_WEBHOOK_RETRY_SCHEDULE", "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms"),
];

/// `POST` to a child gateway, which must succeed; answers the JSON body.
async fn post(gw: &Process, path: &str, key: &str, body: Value) -> Value {
    let (status, answer) = gw.call(reqwest::Method::POST, path, key, Some(body)).await;
    assert!(status.is_success(), "{path}: {status}");
    answer
}

async fn events_pending_at_a_crash_are_delivered_after_it(db: Db) {
    let mock = Mock::start().await;
    let (url, _tmp) = fresh_database(db).await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Some(503));
    // Batches wait long in the first life: its deactivations are still in
    // the outbox when it dies, its test events sealed and failing.
    let first =
        Process::start(&url, &mock, &[&QUICK_WEBHOOKS[..], &[("PUSHGATE_WEBHOOK_BATCH_WAIT_MS", "600000")]].concat())
            .await;
    let app = post(&first, "/v1/apps", ADMIN, mock.app_body()).await;
    let key = app["server_key"].as_str().expect("server key").to_string();
    let hook = post(&first, "/v1/webhooks", &key, json!({"url": receiver.url, "events": ALL})).await;
    let hook_id = hook["id"].as_str().expect("id");
    for n in 0..10 {
        post(
            &first,
            "/v1/devices",
            &key,
            json!({"platform": "android", "token": format!("dead-{n}"), "groups": ["g"]}),
        )
        .await;
    }
    let sent =
        post(&first, "/v1/groups/g/notifications?wait=true", &key, json!({"notification": {"title": "t"}})).await;
    assert_eq!(sent["status"], "completed", "{sent}");
    let mut test_ids = Vec::new();
    for _ in 0..3 {
        let test = post(&first, &format!("/v1/webhooks/{hook_id}/test"), &key, json!({})).await;
        test_ids.push(test["msg_id"].as_str().expect("msg_id").to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.received().len() < 4 {
        assert!(Instant::now() < deadline, "failing attempts before the crash");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first); // SIGKILL: no shutdown at all.

    receiver.answer_always(None);
    let _second =
        Process::start(&url, &mock, &[&QUICK_WEBHOOKS[..], &[("PUSHGATE_WEBHOOK_BATCH_WAIT_MS", "100")]].concat())
            .await;
    let bodies = receiver
        .wait_for("every event of the first life", |b| {
            items(b, "device.deactivated").len() == 10
                && items(b, "delivery.failed").len() == 10
                && of_type(b, "notification.completed").len() == 1
        })
        .await;
    let delivered: Vec<String> = receiver
        .received()
        .iter()
        .filter(|r| r.json()["type"] == "webhook.test")
        .map(|r| header(&r.headers, "webhook-id"))
        .collect();
    for id in &test_ids {
        assert!(delivered.contains(id), "test event {id} delivered after the crash");
    }
    assert_eq!(of_type(&bodies, "webhook.test").len(), 3);
}

/// Single sends complete with the counts of their one delivery, delivered
/// or failed, in the event and in the notification read after it.
async fn single_sends_complete_with_their_counts(db: Db) {
    let (app, _mock, keys) = pipeline::start(db, quick).await;
    let receiver = Receiver::start().await;
    subscribe(&app, &keys, &receiver.url, &["notification.completed"]).await;
    let mut sent = Vec::new();
    for (token, counts) in [
        ("live-single", json!({"targeted": 1, "delivered": 1, "failed": 0, "expired": 0, "cancelled": 0})),
        ("dead-single", json!({"targeted": 1, "delivered": 0, "failed": 1, "expired": 0, "cancelled": 0})),
    ] {
        let device = register(&app, &keys, "android", token, None, &[]).await;
        let path = format!("/v1/devices/{device}/notifications");
        let (status, res) = app.post(&path, &keys.server_key, json!({"notification": {"title": "one"}})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{res}");
        sent.push((res["id"].as_str().expect("id").to_string(), counts));
    }
    let bodies = receiver.wait_for("both completions", |b| of_type(b, "notification.completed").len() == 2).await;
    for (id, counts) in &sent {
        let event = of_type(&bodies, "notification.completed").into_iter().find(|e| e["data"]["id"] == id.as_str());
        let event = event.unwrap_or_else(|| panic!("no completion of {id}: {bodies:#?}"));
        assert_eq!(&event["data"]["counts"], counts, "{event}");
        let read = wait_final(&app, &keys, id).await;
        let mut read_counts = read["counts"].clone();
        read_counts.as_object_mut().expect("counts").remove("pending");
        assert_eq!(&read_counts, counts, "{read}");
    }
}

crate::store_tests!(
    single_sends_complete_with_their_counts,
    every_event_comes_signed_from_its_real_trigger,
    failures_are_retried_on_schedule_and_listed,
    a_webhook_failing_too_long_is_disabled_until_enabled,
    instances_sharing_a_store_send_each_event_once,
    a_fan_out_with_many_dead_tokens_makes_few_calls,
    the_chat_room_goes_through_the_app_server,
    a_hanging_endpoint_does_not_slow_sending,
    webhooks_are_managed_and_guarded,
    events_pending_at_a_crash_are_delivered_after_it,
);
