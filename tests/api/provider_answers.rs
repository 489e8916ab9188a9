//! Meeting Apple and Google as they behave (issue 12): sandbox devices,
//! absolute expiry and collapse ids, every provider answer, the attempts
//! log, against the stand-ins over TLS + HTTP/2.

use pushgate_mock_providers::Behavior;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::Db;
use crate::pipeline::{self, ios_token, wait_final};

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

crate::store_tests!(sandbox_devices_go_to_the_sandbox_host_on_every_path,);
