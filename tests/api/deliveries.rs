//! The delivery log, and the pipeline's durability: several instances on
//! one database, and a gateway stopped mid fan-out.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, Db};
use crate::pipeline::{self, ios_token, register, wait_final};

async fn instances_share_the_work_without_duplicates(db: Db) {
    let (first, mock, keys) = pipeline::start(db, |c| {
        c.claim_batch = 4;
        c.fanout_batch = 7;
    })
    .await;
    let second = first.another_instance().await;
    let tokens: Vec<String> = (0..40).map(|i| format!("shared-{i}")).collect();
    for t in &tokens {
        register(&first, &keys, "android", t, None, &["all-hands"]).await;
    }
    for i in 0..10 {
        register(&second, &keys, "ios", &ios_token("c0de", i), None, &["all-hands"]).await;
    }
    let (status, res) = second
        .post("/v1/groups/all-hands/notifications", &keys.server_key, json!({"notification": {"title": "hi"}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let done = wait_final(&first, &keys, res["id"].as_str().expect("id")).await;
    assert_eq!(done["counts"]["delivered"], 50, "{done}");
    for t in tokens.iter().cloned().chain((0..10).map(|i| ios_token("c0de", i))) {
        assert_eq!(mock.handle.attempts(&t), 1, "token {t} received exactly once");
    }
}

/// Stopped while provider calls are in flight and the fan-out is under way:
/// the calls finish and are written back, the rest is resumed on restart.
async fn fanout_resumes_after_a_stop(db: Db) {
    let (mut app, mock, keys) = pipeline::start(db, |c| {
        c.fanout_batch = 3;
        c.claim_batch = 5;
        c.send_concurrency = 5;
    })
    .await;
    let tokens: Vec<String> = (0..60).map(|i| format!("big-{i}")).collect();
    for t in &tokens {
        register(&app, &keys, "android", t, None, &["big"]).await;
        mock.handle.set_behavior(t, pushgate_mock_providers::Behavior::Slow { delay_ms: 400 });
    }
    let (status, res) =
        app.post("/v1/groups/big/notifications", &keys.server_key, json!({"notification": {"title": "hi"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    assert_eq!(res["targeted"], 60);
    let id = res["id"].as_str().expect("id").to_string();
    let started = |m: &pushgate_mock_providers::MockHandle| tokens.iter().filter(|t| m.attempts(t) > 0).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while started(&mock.handle) == 0 {
        assert!(std::time::Instant::now() < deadline, "no send started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.stop().await;
    let in_flight = started(&mock.handle);
    assert!(in_flight < 60, "stopped mid-way ({in_flight} sends started)");
    mock.handle.clear_behaviors();

    let app = app.restart().await;
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(
        done["counts"],
        json!({"targeted": 60, "pending": 0, "delivered": 60, "failed": 0, "expired": 0, "cancelled": 0})
    );
    for t in &tokens {
        assert_eq!(mock.handle.attempts(t), 1, "token {t} received exactly once");
    }
}

/// A gateway that died after recording two batches (its lease still held)
/// is replaced by one that waits out the lease and resumes at the cursor:
/// nothing recorded is sent again, nothing after it is missed.
async fn fanout_of_a_crashed_gateway_is_resumed(db: Db) {
    use pushgate::domain::Target;
    use pushgate::store::{DeliveryStatus, DeliveryUpdate, FanoutCommit, NewDeliveryRow, Store};

    let (mut app, mock, keys) = pipeline::start(db, |c| {
        c.workers = false;
        c.fanout_batch = 5;
        c.lease_seconds = 1;
    })
    .await;
    let tokens: Vec<String> = (0..30).map(|i| format!("crash-{i}")).collect();
    for t in &tokens {
        register(&app, &keys, "android", t, None, &["crash"]).await;
    }
    let (status, res) =
        app.post("/v1/groups/crash/notifications", &keys.server_key, json!({"notification": {"title": "hi"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    assert_eq!(res["targeted"], 30);
    let id = res["id"].as_str().expect("id").to_string();

    let store = Store::connect(&app.config.database_url).await.expect("store");
    let now = pushgate::domain::time::now_ms();
    let job = store.claim_fanout(now, now + 1000).await.expect("claim").expect("a fan-out to do");
    assert_eq!(job.id, id);
    let target = Target::Group("crash".into());
    let mut cursor = String::new();
    let mut recorded = Vec::new();
    for _ in 0..2 {
        let devices = store.fanout_window(&job, &target, &cursor, 5).await.expect("window");
        assert_eq!(devices.len(), 5);
        let rows: Vec<NewDeliveryRow> = devices
            .iter()
            .map(|x| NewDeliveryRow {
                device_id: x.id.clone(),
                platform_name: x.platform.clone(),
                token: x.token.clone(),
                environment: x.environment.clone(),
                update: DeliveryUpdate {
                    id: 0,
                    created_at: 0,
                    status: DeliveryStatus::Delivered,
                    inc: 1,
                    next_attempt_at: now,
                    provider_status: Some(200),
                    reason: None,
                    provider_message_id: Some("before-the-crash".into()),
                    delivered_at: Some(now),
                    attempt: None,
                    platform: "android",
                },
            })
            .collect();
        let to = devices.last().map(|x| x.id.clone()).expect("a device");
        let step = FanoutCommit { from: &cursor, to: &to, count: 5, done: false, lease_until: now + 1000 };
        assert!(store.fanout_commit(&job, &step, &rows, &[], now).await.expect("commit"), "the cursor moved");
        recorded.extend(devices.into_iter().map(|x| x.token));
        cursor = to;
    }
    store.close().await;

    app.config.workers = true;
    let app = app.restart().await;
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(
        done["counts"],
        json!({"targeted": 30, "pending": 0, "delivered": 30, "failed": 0, "expired": 0, "cancelled": 0})
    );
    for t in &tokens {
        let want = if recorded.contains(t) { 0 } else { 1 };
        assert_eq!(mock.handle.attempts(t), want, "token {t}: recorded before the crash or sent once after");
    }
}

async fn the_log_filters_pages_and_is_scoped(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let alice_phone = register(&app, &keys, "ios", &ios_token("c0de", 1), Some("alice"), &[]).await;
    let alice_tablet = register(&app, &keys, "android", "alice-tab", Some("alice"), &[]).await;
    let bob = register(&app, &keys, "android", "dead-bob", Some("bob"), &[]).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, res) = app
            .post(
                "/v1/notifications?wait=true",
                &key,
                json!({"to": {"all": true}, "notification": {"title": format!("n{n}")}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
        ids.push(res["id"].as_str().expect("id").to_string());
    }
    // Bob's token died on the first send: 3 + 2 + 2 deliveries.
    let all = pipeline::deliveries(&app, &key, "").await;
    assert_eq!(all.len(), 7);
    let as_ids: Vec<i64> =
        all.iter().map(|r| r["id"].as_str().and_then(|s| s.parse().ok()).expect("numeric id")).collect();
    assert!(as_ids.windows(2).all(|w| w[0] > w[1]), "newest first: {as_ids:?}");

    let (_, page) = app.get("/v1/deliveries?limit=2", &key).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let next = page["next_cursor"].as_str().expect("cursor");
    let (_, page2) = app.get(&format!("/v1/deliveries?limit=2&cursor={next}"), &key).await;
    assert_eq!(page2["items"][0]["id"], all[2]["id"], "pages neither repeat nor skip");

    assert_eq!(pipeline::deliveries(&app, &key, &format!("notification_id={}", ids[0])).await.len(), 3);
    assert_eq!(pipeline::deliveries(&app, &key, &format!("device_id={alice_phone}")).await.len(), 3);
    assert_eq!(pipeline::deliveries(&app, &key, "user_id=alice").await.len(), 6);
    assert_eq!(pipeline::deliveries(&app, &key, "platform=android").await.len(), 4);
    let failed = pipeline::deliveries(&app, &key, "status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0]["device_id"].as_str(), failed[0]["reason"].as_str()),
        (Some(bob.as_str()), Some("UNREGISTERED"))
    );
    assert_eq!(failed[0]["provider_status"], 404);
    let delivered = pipeline::deliveries(&app, &key, &format!("status=delivered&device_id={alice_tablet}")).await;
    assert_eq!(delivered.len(), 3);
    assert!(delivered.iter().all(|r| r["attempts"] == 1 && r["delivered_at"].is_string()));
    assert!(pipeline::deliveries(&app, &key, "since=2999-01-01T00:00:00Z").await.is_empty());
    assert_eq!(pipeline::deliveries(&app, &key, "until=2999-01-01T00:00:00Z").await.len(), 7);

    // Another app's server key sees none of it; the admin sees all of it.
    let other = app.create_app_with(mock.app_body()).await;
    assert!(pipeline::deliveries(&app, &other.server_key, "").await.is_empty());
    let (status, _) = app.get(&format!("/v1/deliveries?app_id={}", keys.id), &other.server_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(pipeline::deliveries(&app, &app.admin_key, &format!("app_id={}", keys.id)).await.len(), 7);
    assert_eq!(pipeline::deliveries(&app, &app.admin_key, &format!("app_id={}", other.id)).await.len(), 0);
    let (status, _) = app.get("/v1/deliveries", &keys.client_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (query, field) in [
        ("status=lost", "status"),
        ("platform=huawei", "platform"),
        ("since=yesterday", "since"),
        ("cursor=%%%", "cursor"),
    ] {
        let (status, err) = app.get(&format!("/v1/deliveries?{query}"), &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {err}");
        assert_error(&err, "invalid_field", Some(field));
    }
}

/// A fan-out records devices it cannot send to (no credentials for their
/// platform) as failed without a provider call, and a cancel stops it: the
/// batches in flight finish and are logged, nothing after them is sent.
async fn fanout_fails_unsendable_devices_and_stops_when_cancelled(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |c| {
        c.fanout_batch = 2;
        c.send_concurrency = 6;
    })
    .await;
    let apns_only =
        app.create_app_with(json!({"name": "apns only", "apns": mock.handle.apns_credentials_json()})).await;
    for i in 0..3 {
        register(&app, &apns_only, "ios", &ios_token("c0de", 200 + i), None, &["mixed"]).await;
    }
    for i in 0..2 {
        register(&app, &apns_only, "android", &format!("mixed-{i}"), None, &["mixed"]).await;
    }
    let (status, res) = app
        .post(
            "/v1/groups/mixed/notifications?wait=true",
            &apns_only.server_key,
            json!({"notification": {"title": "m"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let (_, n) =
        app.get(&format!("/v1/notifications/{}", res["id"].as_str().expect("id")), &apns_only.server_key).await;
    assert_eq!(
        n["counts"],
        json!({"targeted": 5, "pending": 0, "delivered": 3, "failed": 2, "expired": 0, "cancelled": 0})
    );
    assert_eq!(mock.handle.attempts("mixed-0") + mock.handle.attempts("mixed-1"), 0, "no provider call");

    let tokens: Vec<String> = (0..30).map(|i| format!("slow-{i}")).collect();
    for t in &tokens {
        register(&app, &keys, "android", t, None, &["slow"]).await;
        mock.handle.set_behavior(t, pushgate_mock_providers::Behavior::Slow { delay_ms: 300 });
    }
    let (status, res) =
        app.post("/v1/groups/slow/notifications", &keys.server_key, json!({"notification": {"title": "s"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();
    let sent = |m: &pushgate_mock_providers::MockHandle| tokens.iter().map(|t| m.attempts(t)).sum::<u64>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sent(&mock.handle) == 0 {
        assert!(std::time::Instant::now() < deadline, "no send started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, n) = app.delete(&format!("/v1/notifications/{id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{n}");
    // What was in flight finishes (300 ms each) and is logged.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, n) = app.get(&format!("/v1/notifications/{id}"), &keys.server_key).await;
    assert_eq!(n["status"], "cancelled", "{n}");
    let total = sent(&mock.handle);
    assert!(total < tokens.len() as u64, "the cancel stopped the fan-out: {total} sent");
    assert!(tokens.iter().all(|t| mock.handle.attempts(t) <= 1), "none twice");
    assert_eq!(n["counts"]["delivered"], total, "every push sent is logged: {n}");
    let rows = pipeline::deliveries(&app, &keys.server_key, &format!("notification_id={id}")).await;
    assert_eq!(rows.len() as u64, total);
}

/// An instance whose fan-out lease ran out while it was still sending
/// (slow, not dead) records its batch after another instance took the job
/// over and recorded the same devices: the late batch adds no rows and no
/// counts, so each device keeps one delivery per notification.
async fn a_late_batch_after_a_takeover_adds_no_duplicates(db: Db) {
    use pushgate::domain::Target;
    use pushgate::store::{DeliveryStatus, DeliveryUpdate, FanoutCommit, FanoutDevice, NewDeliveryRow, Store};

    let (app, _mock, keys) = pipeline::start(db, |c| c.workers = false).await;
    for i in 0..5 {
        register(&app, &keys, "android", &format!("late-{i}"), None, &["late"]).await;
    }
    let (status, res) =
        app.post("/v1/groups/late/notifications", &keys.server_key, json!({"notification": {"title": "hi"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let id = res["id"].as_str().expect("id").to_string();

    let slow = Store::connect(&app.config.database_url).await.expect("store").owned_by("slow");
    let taker = Store::connect(&app.config.database_url).await.expect("store").owned_by("taker");
    let now = pushgate::domain::time::now_ms();
    let job = slow.claim_fanout(now, now + 10).await.expect("claim").expect("a fan-out to do");
    let target = Target::Group("late".into());
    let devices = slow.fanout_window(&job, &target, "", 5).await.expect("window");
    // The slow instance's lease runs out; the other takes the job over.
    let later = now + 1000;
    let taken = taker.claim_fanout(later, later + 60_000).await.expect("claim").expect("taken over");
    assert!(taken.abandoned, "the job was left by an instance that did not finish it");
    let rows = |devices: &[FanoutDevice], label: &str| -> Vec<NewDeliveryRow> {
        devices
            .iter()
            .map(|x| NewDeliveryRow {
                device_id: x.id.clone(),
                platform_name: x.platform.clone(),
                token: x.token.clone(),
                environment: x.environment.clone(),
                update: DeliveryUpdate {
                    id: 0,
                    created_at: 0,
                    status: DeliveryStatus::Delivered,
                    inc: 1,
                    next_attempt_at: later,
                    provider_status: Some(200),
                    reason: None,
                    provider_message_id: Some(label.to_string()),
                    delivered_at: Some(later),
                    attempt: None,
                    platform: "android",
                },
            })
            .collect()
    };
    let to = devices.last().map(|x| x.id.clone()).expect("a device");
    let step = FanoutCommit { from: "", to: &to, count: 5, done: true, lease_until: later + 60_000 };
    assert!(taker.fanout_commit(&taken, &step, &rows(&devices, "taker"), &[], later).await.expect("commit"));
    let late = slow.fanout_commit(&job, &step, &rows(&devices, "slow"), &[], later).await.expect("commit");
    assert!(!late, "the cursor had moved on");
    slow.close().await;
    taker.close().await;

    let log = pipeline::deliveries(&app, &keys.server_key, &format!("notification_id={id}")).await;
    assert_eq!(log.len(), 5, "one delivery per device: {log:?}");
    assert!(log.iter().all(|r| r["provider_message_id"] == "taker"), "{log:?}");
    let (_, n) = app.get(&format!("/v1/notifications/{id}"), &keys.server_key).await;
    assert_eq!(n["counts"]["delivered"], 5, "counted once: {n}");
}

crate::store_tests!(
    a_late_batch_after_a_takeover_adds_no_duplicates,
    fanout_fails_unsendable_devices_and_stops_when_cancelled,
    instances_share_the_work_without_duplicates,
    fanout_resumes_after_a_stop,
    fanout_of_a_crashed_gateway_is_resumed,
    the_log_filters_pages_and_is_scoped,
);
