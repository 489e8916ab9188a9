//! The real binary, stopped by SIGTERM in the middle of a group send: it exits
//! 0 within a bounded time, and a restart on the same database finishes the
//! job with every device served exactly once.

use std::time::{Duration, Instant};

use pushgate_mock_providers::Behavior;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{fresh_database, Db};
use crate::pipeline::{ios_token, Mock};
use crate::process::{Process, ADMIN};

/// Small batches, so that a stop lands in the middle of a job.
const SMALL_BATCHES: [(&str, &str); 3] =
    [("PUSHGATE_FANOUT_BATCH", "25"), ("PUSHGATE_CLAIM_BATCH", "20"), ("PUSHGATE_SEND_CONCURRENCY", "20")];

async fn sigterm_mid_fanout_loses_nothing(db: Db) {
    let mock = Mock::start().await;
    let (url, _tmp) = fresh_database(db).await;
    let gw = Process::start(&url, &mock, &SMALL_BATCHES).await;
    let (status, app) = gw.call(reqwest::Method::POST, "/v1/apps", ADMIN, Some(mock.app_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let key = app["server_key"].as_str().expect("server key").to_string();

    let tokens: Vec<String> = (0..300).map(|n| ios_token("5eed", n)).collect();
    for t in &tokens {
        // Slow answers keep provider calls in flight when the signal comes.
        mock.handle.set_behavior(t, Behavior::Slow { delay_ms: 20 });
        let body = json!({"platform": "ios", "token": t, "groups": ["all-fans"]});
        let (status, dev) = gw.call(reqwest::Method::POST, "/v1/devices", &key, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{dev}");
    }
    let (status, sent) = gw
        .call(
            reqwest::Method::POST,
            "/v1/groups/all-fans/notifications",
            &key,
            Some(json!({"notification": {"title": "t"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id").to_string();
    // Let fan-out and the first sends begin, then stop the gateway mid-job.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mock.handle.total_received() < 20 {
        assert!(Instant::now() < deadline, "sending started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = gw.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let sent_before_restart = mock.handle.total_received();
    assert!(sent_before_restart < tokens.len() as u64, "the job was stopped part-way ({sent_before_restart} sent)");

    let gw = Process::start(&url, &mock, &SMALL_BATCHES).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (status, n) = gw.call(reqwest::Method::GET, &format!("/v1/notifications/{id}"), &key, None).await;
        assert_eq!(status, StatusCode::OK, "{n}");
        if n["status"] == "completed" {
            break n;
        }
        assert!(Instant::now() < deadline, "the restarted gateway finished the job: {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["counts"]["delivered"], 300, "{done}");
    for t in &tokens {
        assert_eq!(mock.handle.delivered_count(t), 1, "token {t} got exactly one push");
    }
    drop(gw);
}

/// A kill -9 in the middle of a group send and of single sends: the
/// restarted instance (same `PUSHGATE_INSTANCE_ID`) takes its leases back at
/// once instead of after the 60 s lease, every device gets its push, and a
/// device pushed twice shows two attempts in the log.
async fn kill_9_restart_takes_its_leases_back_at_once(db: Db) {
    let mock = Mock::start().await;
    let (url, _tmp) = fresh_database(db).await;
    let me = [
        ("PUSHGATE_FANOUT_BATCH", "25"),
        ("PUSHGATE_CLAIM_BATCH", "20"),
        ("PUSHGATE_INSTANCE_ID", "kill-9-test"),
        ("PUSHGATE_LEASE_SECONDS", "60"),
        ("PUSHGATE_SEND_CONCURRENCY", "100"),
    ];
    let mut gw = Process::start(&url, &mock, &me).await;
    let (status, app) = gw.call(reqwest::Method::POST, "/v1/apps", ADMIN, Some(mock.app_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let key = app["server_key"].as_str().expect("server key").to_string();

    let mut device_of = std::collections::HashMap::new();
    let tokens: Vec<String> = (0..43).map(|n| ios_token("9a11", n)).collect();
    for (i, t) in tokens.iter().enumerate() {
        // Answers slower than the test waits keep pushes in flight at the kill.
        mock.handle.set_behavior(t, Behavior::Slow { delay_ms: 30_000 });
        let groups = if i < 40 { json!(["k9"]) } else { json!([]) };
        let body = json!({"platform": "ios", "token": t, "groups": groups});
        let (status, dev) = gw.call(reqwest::Method::POST, "/v1/devices", &key, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{dev}");
        device_of.insert(dev["id"].as_str().expect("id").to_string(), t.clone());
    }
    let mut ids = Vec::new();
    let (status, sent) = gw
        .call(reqwest::Method::POST, "/v1/groups/k9/notifications", &key, Some(json!({"notification": {"title": "g"}})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    ids.push(sent["id"].as_str().expect("id").to_string());
    for (device, _) in device_of.iter().filter(|(_, t)| tokens[40..].contains(t)) {
        let path = format!("/v1/devices/{device}/notifications");
        let (status, sent) =
            gw.call(reqwest::Method::POST, &path, &key, Some(json!({"notification": {"title": "one"}}))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
        ids.push(sent["id"].as_str().expect("id").to_string());
    }
    let arrived = || tokens.iter().filter(|t| mock.handle.attempts(t) > 0).count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while arrived() < tokens.len() {
        assert!(Instant::now() < deadline, "pushes in flight before the kill: {}", arrived());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.child.kill().expect("kill -9");
    gw.child.wait().expect("reaped");
    drop(gw);
    let in_flight: Vec<&String> = tokens.iter().filter(|t| mock.handle.attempts(t) > 0).collect();
    mock.handle.clear_behaviors();

    let started = Instant::now();
    let gw = Process::start(&url, &mock, &me).await;
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, n) = gw.call(reqwest::Method::GET, &format!("/v1/notifications/{id}"), &key, None).await;
            assert_eq!(status, StatusCode::OK, "{n}");
            if n["status"] == "completed" {
                break;
            }
            assert!(Instant::now() < deadline, "finished well within the 60 s lease: {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30), "taken back at once, not after the lease");
    let mut logged = std::collections::HashMap::new();
    for id in &ids {
        let path = format!("/v1/deliveries?notification_id={id}&limit=100");
        let (status, page) = gw.call(reqwest::Method::GET, &path, &key, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for row in page["items"].as_array().expect("rows") {
            assert_eq!(row["status"], "delivered", "{row}");
            let token = &device_of[row["device_id"].as_str().expect("device")];
            logged.insert(token.clone(), row["attempts"].as_u64().expect("attempts"));
        }
    }
    assert_eq!(logged.len(), tokens.len(), "one row per device");
    for t in &tokens {
        assert_eq!(mock.handle.delivered_count(t), 1, "token {t}: one push accepted after the restart");
        assert!(
            logged[t] >= mock.handle.attempts(t),
            "token {t}: pushed {} times, logged {} attempts",
            mock.handle.attempts(t),
            logged[t]
        );
    }
    for t in in_flight {
        assert_eq!(mock.handle.attempts(t), 2, "token {t} was pushed before and after the kill");
        assert_eq!(logged[t], 2, "token {t}: the push repeated after the crash is a second attempt");
    }
}

/// A kill -9 right after a batch send was answered, with its pushes in
/// flight or not yet started: every send the answer accepted is delivered
/// after the restart, once per device.
async fn kill_9_after_a_batch_answer_loses_no_accepted_send(db: Db) {
    let mock = Mock::start().await;
    let (url, _tmp) = fresh_database(db).await;
    let me = [("PUSHGATE_INSTANCE_ID", "kill-9-batch"), ("PUSHGATE_LEASE_SECONDS", "60")];
    let mut gw = Process::start(&url, &mock, &me).await;
    let (status, app) = gw.call(reqwest::Method::POST, "/v1/apps", ADMIN, Some(mock.app_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let key = app["server_key"].as_str().expect("server key").to_string();
    let tokens: Vec<String> = (0..60).map(|n| ios_token("ba7c", n)).collect();
    let mut sends = Vec::new();
    for t in &tokens {
        mock.handle.set_behavior(t, Behavior::Slow { delay_ms: 30_000 });
        let body = json!({"platform": "ios", "token": t});
        let (status, dev) = gw.call(reqwest::Method::POST, "/v1/devices", &key, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{dev}");
        sends.push(json!({"to": {"device_ids": [dev["id"]]}, "notification": {"title": "batch"}}));
    }
    let batch = json!({"notifications": sends});
    let (status, answer) = gw.call(reqwest::Method::POST, "/v1/notifications/batch", &key, Some(batch)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 60, "{answer}");
    gw.child.kill().expect("kill -9");
    gw.child.wait().expect("reaped");
    drop(gw);
    mock.handle.clear_behaviors();

    let gw = Process::start(&url, &mock, &me).await;
    for result in answer["results"].as_array().expect("results") {
        let id = result["id"].as_str().expect("id");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, n) = gw.call(reqwest::Method::GET, &format!("/v1/notifications/{id}"), &key, None).await;
            assert_eq!(status, StatusCode::OK, "{n}");
            if n["status"] == "completed" {
                assert_eq!(n["counts"]["delivered"], 1, "{n}");
                break;
            }
            assert!(Instant::now() < deadline, "every accepted send finished after the restart: {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for t in &tokens {
        assert_eq!(mock.handle.delivered_count(t), 1, "token {t}: one push accepted after the restart");
    }
}

crate::store_tests!(
    sigterm_mid_fanout_loses_nothing,
    kill_9_restart_takes_its_leases_back_at_once,
    kill_9_after_a_batch_answer_loses_no_accepted_send,
);
