//! Identity (API.md, Identity): what someone holding only the public client
//! key can no longer do.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, sign_user_token, Db, TestApp, TestAppKeys};

/// An app as created by default: `verified`, relay `same_user`.
pub async fn verified_app(app: &TestApp) -> TestAppKeys {
    app.create_app_with(json!({"name": "verified", "identity": "verified", "socket": {"client_relay": "same_user"}}))
        .await
}

async fn new_apps_are_verified_and_show_their_settings(db: Db) {
    let app = TestApp::spawn(db).await;
    let (status, created) = app.post("/v1/apps", &app.admin_key, json!({"name": "plain"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created["identity_secret"].as_str().is_some_and(|s| s.len() >= 32), "shown once: {created}");
    let path = format!("/v1/apps/{}", created["id"].as_str().expect("id"));
    let (_, read) = app.get(&path, &app.admin_key).await;
    assert_eq!(read["identity"], "verified");
    assert_eq!(read["socket"], json!({"client_relay": "same_user"}));
    assert_eq!(read.get("identity_secret"), None, "never read back: {read}");

    let (status, patched) =
        app.patch(&path, &app.admin_key, json!({"identity": "open", "socket": {"client_relay": "none"}})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["identity"].clone(), patched["socket"]["client_relay"].clone()),
        (json!("open"), json!("none"))
    );
    let (status, body) = app.patch(&path, &app.admin_key, json!({"identity": "trusting"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", None);
}

async fn user_ids_need_a_user_token_for_that_user(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = verified_app(&app).await;
    let device = |user_token: Option<String>| {
        let mut body = json!({"platform": "android", "token": "t-1", "user_id": "alice"});
        if let Some(t) = user_token {
            body["user_token"] = json!(t);
        }
        body
    };
    let refused = [
        ("no token", device(None)),
        ("forged", device(Some(sign_user_token("not-the-app-secret", "alice", 600)))),
        ("expired", device(Some(keys.user_token("alice", -600)))),
        ("another user's", device(Some(keys.user_token("mallory", 600)))),
        ("not a JWT", device(Some("alice".into()))),
    ];
    for (what, body) in refused {
        let (status, answer) = app.post("/v1/devices", &keys.client_key, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_error(&answer, "unauthorized", None);
    }
    let (_, list) = app.get("/v1/devices", &keys.server_key).await;
    assert_eq!(list["items"], json!([]), "nothing registered");

    let (status, answer) = app.post("/v1/devices", &keys.client_key, device(Some(keys.user_token("alice", 600)))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["user_id"], "alice");
    // A token alone names its user; no user at all needs no token.
    let body = json!({"platform": "android", "token": "t-2", "user_token": keys.user_token("bob", 600)});
    let (_, answer) = app.post("/v1/devices", &keys.client_key, body).await;
    assert_eq!(answer["user_id"], "bob");
    let (status, _) = app.post("/v1/devices", &keys.client_key, json!({"platform": "android", "token": "t-3"})).await;
    assert_eq!(status, StatusCode::CREATED);
    // Server keys are trusted as before.
    let (status, answer) =
        app.post("/v1/devices", &keys.server_key, json!({"platform": "android", "token": "t-4", "user_id": "x"})).await;
    assert_eq!((status, answer["user_id"].clone()), (StatusCode::CREATED, json!("x")));

    // PATCH: the same rule for a user id.
    let path = format!("/v1/devices/{}", answer["id"].as_str().expect("id"));
    let (_, own) = app.post("/v1/devices", &keys.client_key, json!({"platform": "android", "token": "t-5"})).await;
    let own_path = format!("/v1/devices/{}", own["id"].as_str().expect("id"));
    let secret = own["device_secret"].as_str().expect("device_secret");
    let (status, _) =
        app.as_device(Method::PATCH, &own_path, &keys.client_key, secret, Some(json!({"user_id": "alice"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let body = json!({"user_id": "alice", "user_token": keys.user_token("alice", 600)});
    let (status, patched) = app.as_device(Method::PATCH, &own_path, &keys.client_key, secret, Some(body)).await;
    assert_eq!((status, patched["user_id"].clone()), (StatusCode::OK, json!("alice")));
    let (status, _) = app.patch(&path, &keys.server_key, json!({"user_id": "y"})).await;
    assert_eq!(status, StatusCode::OK);
}

async fn open_apps_take_user_ids_from_the_client(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app_with(json!({"name": "open", "identity": "open"})).await;
    let body = json!({"platform": "android", "token": "t-1", "user_id": "anyone"});
    let (status, answer) = app.post("/v1/devices", &keys.client_key, body).await;
    assert_eq!((status, answer["user_id"].clone()), (StatusCode::CREATED, json!("anyone")));
}

async fn rotated_secrets_keep_verifying_for_the_grace_period(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.identity_grace_seconds = 2).await;
    let keys = verified_app(&app).await;
    let old_token = keys.user_token("alice", 600);
    let path = format!("/v1/apps/{}/identity-secret", keys.id);
    let (status, rotated) = app.post(&path, &keys.server_key, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["identity_secret"].as_str().expect("identity_secret").to_string();
    assert_ne!(new_secret, keys.identity_secret);
    let other = app.create_app().await;
    let (status, _) = app.post(&path, &other.server_key, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another app's server key cannot rotate it");
    let (status, _) = app.post(&path, &keys.client_key, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let register = |token: &str, n: u32| json!({"platform": "android", "token": format!("t-{n}"), "user_id": "alice", "user_token": token});
    let (status, answer) = app.post("/v1/devices", &keys.client_key, register(&old_token, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "the old secret still verifies: {answer}");
    let new_token = sign_user_token(&new_secret, "alice", 600);
    let (status, _) = app.post("/v1/devices", &keys.client_key, register(&new_token, 2)).await;
    assert_eq!(status, StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _) = app.post("/v1/devices", &keys.client_key, register(&old_token, 3)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "past its grace period");
    let (status, _) = app.post("/v1/devices", &keys.client_key, register(&new_token, 4)).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn devices_answer_only_to_their_secret(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = verified_app(&app).await;
    let body = json!({"platform": "android", "token": "t-victim", "installation_id": "inst-v", "user_id": "alice",
        "user_token": keys.user_token("alice", 600), "metadata": {"phone": "+598"}, "groups": ["vip"]});
    let (status, victim) = app.post("/v1/devices", &keys.client_key, body).await;
    assert_eq!(status, StatusCode::CREATED, "{victim}");
    let victim_secret = victim["device_secret"].as_str().expect("device_secret").to_string();
    let path = format!("/v1/devices/{}", victim["id"].as_str().expect("id"));
    let (_, mine) = app.post("/v1/devices", &keys.client_key, json!({"platform": "android", "token": "t-mine"})).await;
    let my_secret = mine["device_secret"].as_str().expect("device_secret").to_string();

    // PATCH and DELETE without the device's secret, or with another device's.
    for secret in [None, Some(my_secret.as_str()), Some("pgds_guess")] {
        let patch = Some(json!({"token": "t-attacker"}));
        let (status, body) = match secret {
            Some(s) => app.as_device(Method::PATCH, &path, &keys.client_key, s, patch).await,
            None => app.patch(&path, &keys.client_key, json!({"token": "t-attacker"})).await,
        };
        assert_eq!(status, StatusCode::NOT_FOUND, "{secret:?}: {body}");
        assert_error(&body, "not_found", None);
        let (status, _) = match secret {
            Some(s) => app.as_device(Method::DELETE, &path, &keys.client_key, s, None).await,
            None => app.delete(&path, &keys.client_key).await,
        };
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // Taking over the installation id.
    let body = json!({"platform": "android", "token": "t-attacker", "installation_id": "inst-v"});
    let (status, answer) = app.post("/v1/devices", &keys.client_key, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, _) = app.as_device(Method::POST, "/v1/devices", &keys.client_key, &my_secret, Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Re-registering the known token reveals nothing of its owner.
    let (status, echo) =
        app.post("/v1/devices", &keys.client_key, json!({"platform": "android", "token": "t-victim"})).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    for field in ["user_id", "metadata", "installation_id", "device_secret"] {
        assert!(echo.get(field).is_none_or(Value::is_null), "{field} leaked: {echo}");
    }
    assert_eq!(echo["groups"], json!([]));

    let (_, stored) = app.get(&path, &keys.server_key).await;
    assert_eq!((stored["token"].clone(), stored["user_id"].clone()), (json!("t-victim"), json!("alice")), "untouched");
    // The device itself still can.
    let (status, own) =
        app.as_device(Method::PATCH, &path, &keys.client_key, &victim_secret, Some(json!({"locale": "es"}))).await;
    assert_eq!((status, own["metadata"].clone()), (StatusCode::OK, json!({"phone": "+598"})));
    let (status, _) = app.as_device(Method::DELETE, &path, &keys.client_key, &victim_secret, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

crate::store_tests!(
    new_apps_are_verified_and_show_their_settings,
    user_ids_need_a_user_token_for_that_user,
    open_apps_take_user_ids_from_the_client,
    rotated_secrets_keep_verifying_for_the_grace_period,
    devices_answer_only_to_their_secret,
);
