//! `POST /v1/notifications/batch`: many independent sends in one request,
//! each answered in its place, the good ones sent even when others are bad.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Db};
use crate::pipeline::{self, ios_token, register, wait_final};

fn results(body: &Value) -> &Vec<Value> {
    body["results"].as_array().expect("results")
}

async fn each_send_of_a_batch_gets_its_own_answer(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let key = keys.server_key.clone();
    let ios = ios_token("ba7c", 1);
    let a = register(&app, &keys, "ios", &ios, Some("u1"), &["fans"]).await;
    let b = register(&app, &keys, "android", "batch-b", Some("u2"), &["fans"]).await;
    let note = |title: &str| json!({"title": title});
    let batch = json!({"notifications": [
        {"to": {"device_ids": [a]}, "notification": note("one")},
        {"to": {"device_ids": ["no-such-device"]}, "notification": note("lost")},
        {"to": {"group": "fans"}, "notification": note("group"), "options": {"priority": "high"}},
        {"to": {"device_ids": [b]}, "notification": note("bad"), "options": {"ttl_seconds": 99_999_999}},
        {"to": {"user_ids": ["u2"]}, "notification": note("user"), "idempotency_key": "order-7"},
        {"to": {"device_ids": [b]}, "notification": note("typo"), "option": {}},
        {"to": {"tokens": [{"platform": "android", "token": "raw-batch"}]}, "notification": note("raw")},
    ]});
    let (status, body) = app.post("/v1/notifications/batch", &key, batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["refused"].as_u64()), (Some(4), Some(3)), "{body}");
    let r = results(&body);
    assert_eq!(r.len(), 7, "one result per send, in order: {body}");
    for (i, targeted) in [(0, 1), (2, 2), (4, 1), (6, 1)] {
        assert_eq!(r[i]["status"], "queued", "send {i}: {body}");
        assert_eq!(r[i]["targeted"], targeted, "send {i}: {body}");
    }
    assert_error(&r[1], "not_found", None);
    assert_error(&r[3], "invalid_field", Some("options.ttl_seconds"));
    assert_error(&r[5], "invalid_field", Some("option"));

    let ids: Vec<&str> = [0, 2, 4, 6].iter().map(|&i| r[i]["id"].as_str().expect("id")).collect();
    for id in &ids {
        let done = wait_final(&app, &keys, id).await;
        assert_eq!(done["counts"]["delivered"], done["targeted"], "{done}");
    }
    // one (single) + group, and group + user for b; the refused sends sent nothing.
    assert_eq!(mock.handle.delivered_count(&ios), 2);
    assert_eq!(mock.handle.delivered_count("batch-b"), 2);
    assert_eq!(mock.handle.delivered_count("raw-batch"), 1);
    let got = mock.handle.received(&ios);
    let titles: Vec<&Value> = got.iter().map(|p| &p.payload["aps"]["alert"]["title"]).collect();
    assert!(titles.contains(&&json!("one")) && titles.contains(&&json!("group")), "{titles:?}");

    // The batch retried: the send with a key answers as the first time and
    // is not sent again; the others are new sends.
    let (status, again) = app.post("/v1/notifications/batch", &key, batch).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(results(&again)[4]["id"], r[4]["id"], "{again}");
    assert_ne!(results(&again)[0]["id"], r[0]["id"], "{again}");
    // The same key with another send is a conflict, for that send only.
    let reused = json!({"notifications": [
        {"to": {"user_ids": ["u2"]}, "notification": note("other"), "idempotency_key": "order-7"},
        {"to": {"device_ids": [a]}, "notification": note("fine")},
    ]});
    let (status, body) = app.post("/v1/notifications/batch", &key, reused).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(&results(&body)[0], "conflict", None);
    assert_eq!(results(&body)[1]["status"], "queued", "{body}");
    for id in results(&again).iter().chain(results(&body)).filter_map(|r| r["id"].as_str()) {
        wait_final(&app, &keys, id).await;
    }
    // b: the group and user sends, then the group send again; the replayed
    // user send was not sent twice.
    assert_eq!(mock.handle.delivered_count("batch-b"), 3);
}

async fn a_malformed_batch_is_refused_whole(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let device = register(&app, &keys, "android", "batch-never", None, &[]).await;
    let one = json!({"to": {"device_ids": [device]}, "notification": {"title": "x"}});
    let cases = [
        (json!({}), "notifications"),
        (json!({"notifications": []}), "notifications"),
        (json!({"notifications": vec![one.clone(); 1001]}), "notifications"),
        (json!({"notifications": one.clone()}), "notifications"),
        (json!({"notifications": [one.clone()], "wait": true}), "wait"),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/v1/notifications/batch", &keys.server_key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert_error(&err, "invalid_field", Some(field));
    }
    let batch = json!({"notifications": [one]});
    let (status, err) = app.post("/v1/notifications/batch", &keys.client_key, batch.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    let (status, _) = app.post("/v1/notifications/batch", "pgs_sk_not-a-key", batch).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mock.handle.attempts("batch-never"), 0, "nothing of a refused batch was sent");
}

/// A full batch of sends that each take their own transaction (group
/// targets) is accepted whole: the pool is shared, not exhausted.
async fn a_full_batch_of_group_sends_is_accepted(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    register(&app, &keys, "android", "batch-full", None, &["one"]).await;
    let send = json!({"to": {"group": "one"}, "notification": {"title": "many"}});
    let batch = json!({"notifications": vec![send; 1000]});
    let (status, body) = app.post("/v1/notifications/batch", &keys.server_key, batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first_refusal = results(&body).iter().find(|r| r.get("error").is_some());
    assert_eq!(body["accepted"], 1000, "first refusal: {first_refusal:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while mock.handle.delivered_count("batch-full") < 1000 {
        assert!(std::time::Instant::now() < deadline, "delivered {}", mock.handle.delivered_count("batch-full"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(mock.handle.delivered_count("batch-full"), 1000, "each send once");
}

crate::store_tests!(
    each_send_of_a_batch_gets_its_own_answer,
    a_malformed_batch_is_refused_whole,
    a_full_batch_of_group_sends_is_accepted,
);
