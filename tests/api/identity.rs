//! Identity (API.md, Identity): what someone holding only the public client
//! key can no longer do.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, sign_user_token, Db, TestApp, TestAppKeys};

/// Bound on every wait for something the server should do.
const WAIT: Duration = Duration::from_secs(5);

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

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket with the client key and `query`; the HTTP status when refused.
async fn socket(app: &TestApp, keys: &TestAppKeys, query: &str) -> Result<Ws, u16> {
    let url = format!("ws://{}/v1/socket?key={}&{query}", app.addr, keys.client_key);
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// The next JSON text frame, or None when nothing comes within `wait`.
async fn frame_within(ws: &mut Ws, wait: Duration) -> Option<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(t.as_str()).expect("JSON frame")),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("socket ended: {other:?}"),
        }
    }
}

async fn sockets_get_their_user_from_the_token_only(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = verified_app(&app).await;
    let alice_token = keys.user_token("alice", 600);
    let mut alice = socket(&app, &keys, &format!("client_id=tab&user_token={alice_token}")).await.expect("alice");
    let welcome = frame_within(&mut alice, WAIT).await.expect("welcome");
    assert_eq!(welcome, json!({"type": "welcome", "client_id": "alice:tab"}));

    // Naming alice without her token, or with a forged or expired one.
    for query in [
        "client_id=tab&user_id=alice".to_string(),
        format!("client_id=tab&user_id=alice&user_token={}", sign_user_token("guess", "alice", 600)),
        format!("client_id=tab&user_token={}", keys.user_token("alice", -600)),
        format!("client_id=tab&user_id=alice&user_token={}", keys.user_token("mallory", 600)),
    ] {
        assert_eq!(socket(&app, &keys, &query).await.err(), Some(401), "{query}");
    }
    // Naming her client id gets mallory's own, or is refused when anonymous.
    let mallory_token = keys.user_token("mallory", 600);
    let mut mallory = socket(&app, &keys, &format!("client_id=tab&user_token={mallory_token}")).await.expect("m");
    let welcome = frame_within(&mut mallory, WAIT).await.expect("welcome");
    assert_eq!(welcome["client_id"], "mallory:tab");
    assert_eq!(socket(&app, &keys, "client_id=alice:tab").await.err(), Some(400));
    let mut anonymous = socket(&app, &keys, "").await.expect("anonymous");
    let welcome = frame_within(&mut anonymous, WAIT).await.expect("welcome");
    assert!(welcome["client_id"].as_str().is_some_and(|id| id.starts_with('~')), "{welcome}");

    // Alice's messages reach alice only, live and by replay.
    let note = |n: &str| json!({"notification": {"id": n, "message": "one-time code 123456"}});
    let (status, _) = app.post("/v1/socket/users/alice/notifications", &keys.server_key, note("n-1")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post("/v1/socket/clients/alice:tab/notifications", &keys.server_key, note("n-2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(frame_within(&mut alice, WAIT).await.expect("n-1")["id"], "n-1");
    assert_eq!(frame_within(&mut alice, WAIT).await.expect("n-2")["id"], "n-2");
    let (status, _) = app.post("/v1/socket/broadcast", &keys.server_key, note("n-0")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(frame_within(&mut mallory, WAIT).await.expect("broadcast")["id"], "n-0", "nothing of alice's first");
    assert_eq!(frame_within(&mut anonymous, WAIT).await.expect("broadcast")["id"], "n-0");
    let (status, _) = app.post("/v1/socket/users/alice/notifications", &keys.server_key, note("n-3")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(frame_within(&mut mallory, Duration::from_millis(300)).await, None);

    let since = format!("client_id=tab&user_token={mallory_token}&since=n-1");
    let mut replay = socket(&app, &keys, &since).await.expect("replay");
    assert_eq!(frame_within(&mut replay, WAIT).await.expect("welcome")["type"], "welcome");
    assert_eq!(frame_within(&mut replay, WAIT).await.expect("broadcast")["id"], "n-0", "only what was hers to see");
    assert_eq!(frame_within(&mut replay, Duration::from_millis(300)).await, None);
}

async fn relays_follow_the_app_setting(db: Db) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn(db).await;
    let keys = verified_app(&app).await;
    let open = |user: &str, client: &str| {
        let token = keys.user_token(user, 600);
        let (app, keys) = (&app, &keys);
        let client = client.to_string();
        async move {
            let mut ws = socket(app, keys, &format!("client_id={client}&user_token={token}")).await.expect("open");
            frame_within(&mut ws, WAIT).await.expect("welcome");
            ws
        }
    };
    let mut phone = open("alice", "phone").await;
    let mut tab = open("alice", "tab").await;
    let mut bob = open("bob", "tab").await;
    let send =
        |to: Value| Message::text(json!({"type": "send", "to": to, "notification": {"message": "hi"}}).to_string());

    tab.send(send(json!({"all": true}))).await.expect("send");
    assert_eq!(frame_within(&mut phone, WAIT).await.expect("relayed")["from"], "alice:tab");
    assert_eq!(frame_within(&mut tab, WAIT).await.expect("own user")["from"], "alice:tab");
    tab.send(send(json!({"client_id": "phone"}))).await.expect("send");
    assert_eq!(frame_within(&mut phone, WAIT).await.expect("relayed")["from"], "alice:tab");
    tab.send(send(json!({"client_id": "bob:tab"}))).await.expect("send");
    assert_eq!(frame_within(&mut tab, WAIT).await.expect("error")["error"]["code"], "forbidden");
    assert_eq!(frame_within(&mut bob, Duration::from_millis(300)).await, None, "bob gets nothing");

    let (status, _) =
        app.patch(&format!("/v1/apps/{}", keys.id), &app.admin_key, json!({"socket": {"client_relay": "none"}})).await;
    assert_eq!(status, StatusCode::OK);
    let mut later = open("alice", "later").await;
    later.send(send(json!({"all": true}))).await.expect("send");
    assert_eq!(frame_within(&mut later, WAIT).await.expect("error")["error"]["code"], "forbidden");
}

async fn one_address_flooding_registrations_does_not_lock_out_the_others(db: Db) {
    let app = TestApp::spawn_with(db, |c| {
        c.registration_rate = 5;
        c.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let keys = verified_app(&app).await;
    let register = |from: &'static str, n: u32| {
        let body = json!({"platform": "android", "token": format!("t-{}-{n}", from.replace('.', "-"))});
        let (app, key) = (&app, keys.client_key.clone());
        async move { app.call_with(Method::POST, "/v1/devices", Some(&key), &[("x-forwarded-for", from)], Some(body)).await }
    };
    let mut limited = None;
    for n in 0..50 {
        let (status, body) = register("198.51.100.1", n).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(body);
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_error(&limited.expect("the flooding address is limited"), "rate_limited", None);
    let (status, body) = register("198.51.100.2", 0).await;
    assert_eq!(status, StatusCode::CREATED, "another address of the app still registers: {body}");
}

async fn forwarded_for_is_ignored_from_untrusted_peers(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.registration_rate = 5).await;
    let keys = verified_app(&app).await;
    let mut statuses = Vec::new();
    for n in 0..30 {
        // A new made-up address each time: were the header believed, no bucket would empty.
        let from = format!("203.0.113.{n}");
        let body = json!({"platform": "android", "token": format!("t-{n}")});
        let (status, _) = app
            .call_with(Method::POST, "/v1/devices", Some(&keys.client_key), &[("x-forwarded-for", &from)], Some(body))
            .await;
        statuses.push(status);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}

async fn sends_are_limited_per_app_when_configured(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.send_rate = 2).await;
    let keys = app.create_app().await;
    let body = json!({"to": {"user_ids": ["nobody"]}, "notification": {"title": "hi"}});
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(app.post("/v1/notifications", &keys.server_key, body.clone()).await.0);
    }
    assert!(statuses.contains(&StatusCode::ACCEPTED), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let other = app.create_app().await;
    let (status, _) = app.post("/v1/notifications", &other.server_key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "another app is not limited by the first");
}

async fn sockets_are_capped_per_address_and_flooding_frames_closes(db: Db) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn_with(db, |c| {
        c.socket.max_per_address = 2;
        c.socket.frame_rate = 5;
    })
    .await;
    let keys = verified_app(&app).await;
    let mut first = socket(&app, &keys, "").await.expect("first");
    let _second = socket(&app, &keys, "").await.expect("second");
    assert_eq!(socket(&app, &keys, "").await.err(), Some(429), "the third from this address");

    frame_within(&mut first, WAIT).await.expect("welcome");
    let mut codes = Vec::new();
    let closed = loop {
        if first.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
            break None;
        }
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut first)).await.expect("an answer") {
            Some(Ok(Message::Text(t))) => {
                let frame: Value = serde_json::from_str(t.as_str()).expect("JSON");
                codes.push(frame["error"]["code"].as_str().unwrap_or("pong").to_string());
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(codes.len() < 100, "never closed: {codes:?}");
    };
    assert!(codes.contains(&"rate_limited".to_string()), "{codes:?}");
    assert_eq!(closed, Some(1008));
    drop(first);
    // Its place is given back.
    let deadline = tokio::time::Instant::now() + WAIT;
    while socket(&app, &keys, "").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the closed socket's place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin_reads_any_app_with_app_id(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = verified_app(&app).await;
    let other = app.create_app().await;
    let body = json!({"platform": "android", "token": "t-1", "groups": ["news"], "user_id": "u-1"});
    let (_, device) = app.post("/v1/devices", &keys.server_key, body).await;
    let device_id = device["id"].as_str().expect("id");
    let (status, sent) = app
        .post(
            "/v1/notifications",
            &keys.server_key,
            json!({"to": {"user_ids": ["nobody"]}, "notification": {"title": "hi"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let notification_id = sent["id"].as_str().expect("id");
    let mut ws =
        socket(&app, &keys, &format!("client_id=tab&user_token={}", keys.user_token("u-1", 600))).await.expect("ws");
    frame_within(&mut ws, WAIT).await.expect("welcome");

    let q = format!("app_id={}", keys.id);
    let reads = [
        format!("/v1/devices?{q}"),
        format!("/v1/devices/{device_id}?{q}"),
        format!("/v1/groups?{q}"),
        format!("/v1/groups/news/devices?{q}"),
        format!("/v1/notifications/{notification_id}?{q}"),
        format!("/v1/deliveries?{q}"),
        format!("/v1/socket/clients?{q}"),
    ];
    for path in &reads {
        let (status, body) = app.get(path, &app.admin_key).await;
        assert_eq!(status, StatusCode::OK, "admin GET {path}: {body}");
    }
    let (_, devices) = app.get(&reads[0], &app.admin_key).await;
    assert_eq!(devices["items"][0]["id"], device_id);
    let (_, groups) = app.get(&reads[2], &app.admin_key).await;
    assert_eq!(groups["items"][0]["name"], "news");
    let (_, clients) = app.get(&reads[6], &app.admin_key).await;
    assert_eq!(clients["items"][0]["client_id"], "u-1:tab");
    // Without app_id the admin key names no app; a server key reads its own app only.
    let (status, _) = app.get("/v1/devices", &app.admin_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get(&reads[0], &other.server_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/v1/devices?app_id=no-such-app", &app.admin_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the flows that handle secrets with every log line captured (at
/// TRACE, on this test's one thread), then looks for the secrets in the log
/// and in every read.
async fn secrets_never_show_in_reads_or_logs(db: Db) {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (app, _mock, keys) = crate::pipeline::start(db, |_| {}).await;
    let (_, created) = app.post("/v1/apps", &app.admin_key, crate::pipeline::Mock::start().await.app_body()).await;
    let (_, rotated) = app.post(&format!("/v1/apps/{}/identity-secret", keys.id), &keys.server_key, json!({})).await;
    let body =
        json!({"platform": "android", "token": "t-1", "user_id": "alice", "user_token": keys.user_token("alice", 600)});
    let (_, device) = app.post("/v1/devices", &keys.client_key, body).await;
    let device_secret = device["device_secret"].as_str().expect("device_secret").to_string();
    let path = format!("/v1/devices/{}", device["id"].as_str().expect("id"));
    app.as_device(Method::PATCH, &path, &keys.client_key, &device_secret, Some(json!({"locale": "es"}))).await;
    app.as_device(Method::PATCH, &path, &keys.client_key, "pgds_wrong", Some(json!({"locale": "es"}))).await;
    let (status, sent) = app
        .post(
            "/v1/notifications?wait=true",
            &keys.server_key,
            json!({"to": {"user_ids": ["alice"]}, "notification": {"title": "hi"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");

    let pem_line = |pem: &Value| {
        pem.as_str()
            .expect("PEM")
            .lines()
            .find(|l| l.len() > 40 && !l.starts_with("-----"))
            .expect("key line")
            .to_string()
    };
    let app_row = app.get(&format!("/v1/apps/{}", keys.id), &app.admin_key).await.1;
    let mut secrets = vec![
        ("identity secret", keys.identity_secret.clone()),
        ("rotated identity secret", rotated["identity_secret"].as_str().expect("rotated").to_string()),
        ("device secret", device_secret),
        ("client key", keys.client_key.clone()),
        ("server key", keys.server_key.clone()),
        ("second app's identity secret", created["identity_secret"].as_str().expect("secret").to_string()),
    ];
    let second = crate::pipeline::Mock::start().await;
    let body = second.app_body();
    let (_, third) = app.post("/v1/apps", &app.admin_key, body.clone()).await;
    secrets.push(("APNs private key", pem_line(&body["apns"]["private_key"])));
    secrets.push(("FCM private key", pem_line(&body["fcm"]["service_account"]["private_key"])));

    let mut reads = vec![app_row, app.get("/v1/apps", &app.admin_key).await.1];
    reads.push(app.get(&format!("/v1/apps/{}", third["id"].as_str().expect("id")), &app.admin_key).await.1);
    reads.push(app.get(&format!("/v1/apps/{}/keys", keys.id), &app.admin_key).await.1);
    reads.push(app.get("/v1/devices", &keys.server_key).await.1);
    reads.push(app.get(&path, &keys.server_key).await.1);
    drop(_guard);
    let log = String::from_utf8_lossy(&log.0.lock().expect("log buffer")).to_string();
    assert!(log.len() > 1000, "the log was captured: {} bytes", log.len());
    for (what, secret) in &secrets {
        assert!(!log.contains(secret.as_str()), "the {what} is in the log");
        for read in &reads {
            assert!(!read.to_string().contains(secret.as_str()), "the {what} is in a read: {read}");
        }
    }
}

mod logs {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        secrets_never_show_in_reads_or_logs(Db::Sqlite).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        if crate::helpers::postgres_available().await {
            secrets_never_show_in_reads_or_logs(Db::Postgres).await
        }
    }
}

crate::store_tests!(
    admin_reads_any_app_with_app_id,
    one_address_flooding_registrations_does_not_lock_out_the_others,
    forwarded_for_is_ignored_from_untrusted_peers,
    sends_are_limited_per_app_when_configured,
    sockets_are_capped_per_address_and_flooding_frames_closes,
    sockets_get_their_user_from_the_token_only,
    relays_follow_the_app_setting,
    new_apps_are_verified_and_show_their_settings,
    user_ids_need_a_user_token_for_that_user,
    open_apps_take_user_ids_from_the_client,
    rotated_secrets_keep_verifying_for_the_grace_period,
    devices_answer_only_to_their_secret,
);
