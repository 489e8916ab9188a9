//! Web notifications: real WebSocket clients against the real server.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{assert_error, postgres_available, Db, TestApp, TestAppKeys};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on every wait for something the server should do.
const WAIT: Duration = Duration::from_secs(5);

/// Opens a socket (`query` without the leading `?`); the error is the HTTP
/// status and JSON body of a refused upgrade.
async fn try_connect(app: &TestApp, query: &str, bearer: Option<&str>) -> Result<Ws, (u16, Value)> {
    let mut req = format!("ws://{}/v1/socket?{query}", app.addr).into_client_request().expect("request");
    if let Some(key) = bearer {
        req.headers_mut().insert("authorization", format!("Bearer {key}").parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(res)) => {
            let body = res.body().as_deref().map(|b| serde_json::from_slice(b).expect("JSON error body"));
            Err((res.status().as_u16(), body.unwrap_or(Value::Null)))
        }
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// Opens a socket for `client_id` (and `user_id`) with the app's client key.
pub(crate) async fn connect(app: &TestApp, keys: &TestAppKeys, client_id: &str, user_id: Option<&str>) -> Ws {
    let mut query = format!("client_id={client_id}&key={}", keys.client_key);
    if let Some(user) = user_id {
        query.push_str(&format!("&user_id={user}"));
    }
    let mut ws = try_connect(app, &query, None).await.expect("socket opens");
    let welcome = tokio::time::timeout(WAIT, ws.next()).await.expect("welcome within 5 s");
    assert!(matches!(welcome, Some(Ok(Message::Text(ref t))) if t.as_str().contains("welcome")), "{welcome:?}");
    ws
}

/// The next message other than pings, pongs and the welcome frame, within [`WAIT`].
pub(crate) async fn next_message(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame within 5 s");
        match msg.expect("socket open").expect("frame read") {
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(t) if t.as_str().starts_with(r#"{"type":"welcome""#) => continue,
            other => return other,
        }
    }
}

/// The next JSON text frame.
async fn next_frame(ws: &mut Ws) -> Value {
    match next_message(ws).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn send_frame(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.expect("frame sent");
}

/// Polls the connected clients until `done` holds (bounded).
async fn wait_for_clients(app: &TestApp, keys: &TestAppKeys, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = app.get("/v1/socket/clients", &keys.server_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "clients never became as expected: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn client_ids(body: &Value) -> Vec<&str> {
    body["items"].as_array().expect("items").iter().filter_map(|c| c["client_id"].as_str()).collect()
}

async fn a_client_gets_server_notifications_unchanged(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut ws = connect(&app, &keys, "page-1", None).await;

    let notification = json!({"id": "n-1", "object": "cart", "message": "Your order shipped", "data": {"k": 1}});
    let (status, body) = app
        .post("/v1/socket/clients/page-1/notifications", &keys.server_key, json!({"notification": notification}))
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"delivered": 1})));
    let frame = next_frame(&mut ws).await;
    assert_eq!(frame, json!({"type": "notification", "id": "n-1", "notification": notification}));

    // Without an id of its own, the message gets a fresh UUIDv7.
    let (status, _) = app
        .post(
            "/v1/socket/clients/page-1/notifications",
            &keys.server_key,
            json!({"notification": {"message": "again"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let frame = next_frame(&mut ws).await;
    let id = frame["id"].as_str().expect("id");
    assert_eq!(uuid::Uuid::parse_str(id).expect("uuid").get_version_num(), 7);
    assert_eq!(frame["notification"], json!({"message": "again"}));

    // Another app's server cannot reach this client; bad bodies are refused.
    let other = app.create_app().await;
    let (status, body) =
        app.post("/v1/socket/clients/page-1/notifications", &other.server_key, json!({"notification": {}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
    let (status, body) =
        app.post("/v1/socket/clients/page-1/notifications", &keys.server_key, json!({"notification": "hi"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("notification"));
    let (status, body) =
        app.post("/v1/socket/clients/page-1/notifications", &keys.client_key, json!({"notification": {}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden", None);
}

async fn every_connection_of_a_user_gets_it(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut phone = connect(&app, &keys, "phone", Some("alice")).await;
    let mut laptop = connect(&app, &keys, "laptop", Some("alice")).await;
    let mut bob = connect(&app, &keys, "bob-laptop", Some("bob")).await;

    let (status, body) = app
        .post(
            "/v1/socket/users/alice/notifications",
            &keys.server_key,
            json!({"notification": {"message": "for alice"}}),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"delivered": 2})));
    assert_eq!(next_frame(&mut phone).await["notification"]["message"], "for alice");
    assert_eq!(next_frame(&mut laptop).await["notification"]["message"], "for alice");

    let (status, body) = app
        .post("/v1/socket/users/bob/notifications", &keys.server_key, json!({"notification": {"message": "for bob"}}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"delivered": 1})));
    assert_eq!(next_frame(&mut bob).await["notification"]["message"], "for bob");

    let (status, body) =
        app.post("/v1/socket/users/carol/notifications", &keys.server_key, json!({"notification": {}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
}

async fn broadcast_reaches_every_client_of_the_app(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let (status, body) =
        app.post("/v1/socket/broadcast", &keys.server_key, json!({"notification": {"message": "0"}})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"delivered": 0})), "nobody is connected yet");

    let mut a = connect(&app, &keys, "a", None).await;
    let mut b = connect(&app, &keys, "b", Some("u")).await;
    let other = app.create_app().await;
    let mut stranger = connect(&app, &other, "a", None).await;
    let (status, body) =
        app.post("/v1/socket/broadcast", &keys.server_key, json!({"notification": {"message": "1"}})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"delivered": 2})));
    assert_eq!(next_frame(&mut a).await["notification"]["message"], "1");
    assert_eq!(next_frame(&mut b).await["notification"]["message"], "1");

    // The other app's client got nothing: its next frame is its own app's.
    let (_, body) =
        app.post("/v1/socket/broadcast", &other.server_key, json!({"notification": {"message": "x"}})).await;
    assert_eq!(body, json!({"delivered": 1}));
    assert_eq!(next_frame(&mut stranger).await["notification"]["message"], "x");
}

async fn clients_relay_to_one_and_to_all(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut a = connect(&app, &keys, "a", None).await;
    let mut b = connect(&app, &keys, "b", None).await;
    let mut c = connect(&app, &keys, "c", None).await;

    send_frame(
        &mut a,
        json!({"type": "send", "to": {"client_id": "b"}, "notification": {"message": "psst", "object": "chat"}}),
    )
    .await;
    let frame = next_frame(&mut b).await;
    assert_eq!(frame["type"], "notification");
    assert_eq!(frame["from"], "a");
    assert_eq!(frame["notification"], json!({"message": "psst", "object": "chat"}));

    // The room: everyone, the sender included, gets it with `from`.
    send_frame(&mut a, json!({"type": "send", "to": {"all": true}, "notification": {"message": "hello room"}})).await;
    for ws in [&mut a, &mut b, &mut c] {
        let frame = next_frame(ws).await;
        assert_eq!(
            (frame["from"].as_str(), frame["notification"]["message"].as_str()),
            (Some("a"), Some("hello room"))
        );
    }

    // Nobody by that name: an error frame, and the socket goes on.
    send_frame(&mut a, json!({"type": "send", "to": {"client_id": "ghost"}, "notification": {}})).await;
    let frame = next_frame(&mut a).await;
    assert_eq!((frame["type"].as_str(), frame["error"]["code"].as_str()), (Some("error"), Some("not_found")));
    send_frame(&mut a, json!({"type": "ping"})).await;
    assert_eq!(next_frame(&mut a).await, json!({"type": "pong"}));
}

async fn bad_frames_get_error_frames_and_the_socket_stays_open(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut ws = connect(&app, &keys, "a", None).await;

    let cases: [(Message, &str, Option<&str>); 6] = [
        (Message::text("not json"), "invalid_json", None),
        (Message::text("[1, 2]"), "invalid_json", None),
        (Message::text(r#"{"type": "dance"}"#), "invalid_field", Some("type")),
        (Message::text(r#"{"type": "send", "to": {"client_id": "b"}}"#), "invalid_field", Some("notification")),
        (Message::text(r#"{"type": "send", "to": {}, "notification": {}}"#), "invalid_field", Some("to")),
        (Message::binary(vec![1u8, 2, 3]), "invalid_json", None),
    ];
    for (msg, code, field) in cases {
        ws.send(msg.clone()).await.expect("sent");
        let frame = next_frame(&mut ws).await;
        assert_eq!(frame["type"], "error", "{msg:?} → {frame}");
        assert_eq!(frame["error"]["code"], code, "{msg:?} → {frame}");
        assert!(frame["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(field) = field {
            assert_eq!(frame["error"]["field"], field, "{msg:?} → {frame}");
        }
    }
    send_frame(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_frame(&mut ws).await, json!({"type": "pong"}));
}

async fn opening_a_socket_needs_a_client_key(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;

    let (status, body) = try_connect(&app, "client_id=a", None).await.expect_err("refused");
    assert_eq!(status, 401);
    assert_error(&body, "unauthorized", None);
    let (status, body) = try_connect(&app, "client_id=a&key=pgs_ck_nope", None).await.expect_err("refused");
    assert_eq!(status, 401);
    assert_error(&body, "unauthorized", None);
    let (status, body) = try_connect(&app, "client_id=a", Some(&app.admin_key)).await.expect_err("refused");
    assert_eq!(status, 403);
    assert_error(&body, "forbidden", None);
    let query = format!("key={}", keys.client_key);
    let (status, body) = try_connect(&app, &query, None).await.expect_err("refused");
    assert_eq!(status, 400);
    assert_error(&body, "invalid_field", Some("client_id"));

    // A bearer client key works, and so does the app's server key.
    let mut ws = try_connect(&app, "client_id=a", Some(&keys.client_key)).await.expect("bearer client key");
    send_frame(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_frame(&mut ws).await, json!({"type": "pong"}));
    try_connect(&app, "client_id=b", Some(&keys.server_key)).await.expect("server key");

    // A plain GET with a good key is told to upgrade.
    let (status, body) = app.get("/v1/socket?client_id=a", &keys.client_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("upgrade"));
}

async fn an_oversized_message_closes_with_1009(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut ws = connect(&app, &keys, "big", None).await;
    let big = "x".repeat(2 * 1024 * 1024);
    // The server may close before the whole frame is written.
    let _ = ws.send(Message::text(big)).await;
    match next_message(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

async fn a_closed_client_is_gone(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut ws = connect(&app, &keys, "a", Some("alice")).await;
    let _b = connect(&app, &keys, "b", None).await;
    let _b2 = connect(&app, &keys, "b", None).await;

    let (status, body) = app.get("/v1/socket/clients", &keys.server_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"items": [
            {"client_id": "a", "user_id": "alice", "connections": 1},
            {"client_id": "b", "user_id": null, "connections": 2},
        ], "next_cursor": null})
    );
    let (_, page) = app.get("/v1/socket/clients?limit=1", &keys.server_key).await;
    assert_eq!(client_ids(&page), ["a"]);
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let (_, page) = app.get(&format!("/v1/socket/clients?limit=1&cursor={cursor}"), &keys.server_key).await;
    assert_eq!((client_ids(&page), &page["next_cursor"]), (vec!["b"], &Value::Null));

    ws.close(None).await.expect("closed");
    wait_for_clients(&app, &keys, |body| client_ids(body) == ["b"]).await;
    let (status, body) =
        app.post("/v1/socket/clients/a/notifications", &keys.server_key, json!({"notification": {}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
    let (status, _) =
        app.post("/v1/socket/users/alice/notifications", &keys.server_key, json!({"notification": {}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_slow_client_is_dropped_and_others_keep_receiving(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.socket.buffer = 8).await;
    let keys = app.create_app().await;
    // Never read: its TCP buffers fill, then its queue.
    let slow = connect(&app, &keys, "slow", None).await;
    let mut fast = connect(&app, &keys, "fast", None).await;
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        loop {
            let frame = next_frame(&mut fast).await;
            if frame["notification"]["message"] == "done" {
                return ids;
            }
            ids.push(frame["notification"]["seq"].as_i64().expect("seq"));
        }
    });

    let filler = "x".repeat(100 * 1024);
    let mut sent = 0;
    let mut dropped = false;
    // Up to ~40 MB: far more than loopback TCP buffers hold.
    while sent < 400 && !dropped {
        let body = json!({"notification": {"seq": sent, "filler": filler}});
        let (status, answer) = app.post("/v1/socket/broadcast", &keys.server_key, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        sent += 1;
        dropped = answer["delivered"] == 1;
    }
    assert!(dropped, "the slow client was never dropped");
    // Postgres presence follows the session's end, shortly after.
    wait_for_clients(&app, &keys, |body| client_ids(body) == ["fast"]).await;

    let (status, _) =
        app.post("/v1/socket/broadcast", &keys.server_key, json!({"notification": {"message": "done"}})).await;
    assert_eq!(status, StatusCode::OK);
    let ids = reader.await.expect("reader");
    assert_eq!(ids, (0..sent).collect::<Vec<_>>(), "the fast client got everything, in order");
    drop(slow);
}

async fn reconnecting_with_since_replays_what_was_missed(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut ws = connect(&app, &keys, "tab", Some("alice")).await;
    let _phone = connect(&app, &keys, "phone", Some("alice")).await;
    let _other = connect(&app, &keys, "other", Some("bob")).await;
    let send = |path: &'static str, message: &'static str| {
        let app = &app;
        let key = keys.server_key.clone();
        async move {
            let (status, body) = app.post(path, &key, json!({"notification": {"message": message}})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    send("/v1/socket/clients/tab/notifications", "seen").await;
    let last = next_frame(&mut ws).await["id"].as_str().expect("id").to_string();

    ws.close(None).await.expect("closed");
    wait_for_clients(&app, &keys, |body| !client_ids(body).contains(&"tab")).await;
    send("/v1/socket/broadcast", "missed 1").await;
    send("/v1/socket/users/alice/notifications", "missed 2").await;
    send("/v1/socket/clients/other/notifications", "not for tab").await;
    send("/v1/socket/users/bob/notifications", "not for alice").await;
    send("/v1/socket/broadcast", "missed 3").await;

    // Kept in the store: a restart loses nothing (on SQLite too).
    let app = app.restart().await;
    let query = format!("client_id=tab&user_id=alice&since={last}&key={}", keys.client_key);
    let mut ws = try_connect(&app, &query, None).await.expect("reconnected");
    for expected in ["missed 1", "missed 2", "missed 3"] {
        assert_eq!(next_frame(&mut ws).await["notification"]["message"], expected);
    }
    // Then live messages, not repeats.
    let (_, body) = app
        .post("/v1/socket/clients/tab/notifications", &keys.server_key, json!({"notification": {"message": "live"}}))
        .await;
    assert_eq!(body, json!({"delivered": 1}));
    assert_eq!(next_frame(&mut ws).await["notification"]["message"], "live");

    // An unknown `since` is said so; the socket works anyway.
    let query = format!("client_id=tab2&since=nope&key={}", keys.client_key);
    let mut ws = try_connect(&app, &query, None).await.expect("connected");
    assert_eq!(next_frame(&mut ws).await["error"]["code"], "not_found");
    send_frame(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_frame(&mut ws).await, json!({"type": "pong"}));
}

async fn quiet_sockets_are_pinged(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.socket.ping_interval_ms = 50).await;
    let keys = app.create_app().await;
    let mut ws = connect(&app, &keys, "a", None).await;
    let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a ping within 5 s");
    assert!(matches!(msg, Some(Ok(Message::Ping(_)))), "{msg:?}");
    // Reading answered the ping (tungstenite pongs by itself): still open.
    send_frame(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_frame(&mut ws).await, json!({"type": "pong"}));
}

async fn shutdown_closes_sockets_with_going_away(db: Db) {
    let mut app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut ws = connect(&app, &keys, "a", None).await;
    app.stop().await;
    match next_message(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

crate::store_tests!(
    a_client_gets_server_notifications_unchanged,
    every_connection_of_a_user_gets_it,
    broadcast_reaches_every_client_of_the_app,
    clients_relay_to_one_and_to_all,
    bad_frames_get_error_frames_and_the_socket_stays_open,
    opening_a_socket_needs_a_client_key,
    a_closed_client_is_gone,
    an_oversized_message_closes_with_1009,
    a_slow_client_is_dropped_and_others_keep_receiving,
    reconnecting_with_since_replays_what_was_missed,
    quiet_sockets_are_pinged,
    shutdown_closes_sockets_with_going_away,
);

/// Two instances on one Postgres: clients on either are reached from either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_share_their_sockets() {
    if !postgres_available().await {
        return;
    }
    let a = TestApp::spawn(Db::Postgres).await;
    let b = a.another_instance().await;
    let keys = a.create_app().await;
    let mut on_b = connect(&b, &keys, "on-b", Some("alice")).await;
    let mut on_a = connect(&a, &keys, "on-a", None).await;

    // A server send through A reaches the client on B, with the right count.
    let notification = json!({"id": "n-1", "object": "cart", "message": "hi"});
    let (status, body) =
        a.post("/v1/socket/clients/on-b/notifications", &keys.server_key, json!({"notification": notification})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"delivered": 1})));
    assert_eq!(next_frame(&mut on_b).await, json!({"type": "notification", "id": "n-1", "notification": notification}));
    let (_, body) = a
        .post("/v1/socket/users/alice/notifications", &keys.server_key, json!({"notification": {"message": "u"}}))
        .await;
    assert_eq!(body, json!({"delivered": 1}));
    assert_eq!(next_frame(&mut on_b).await["notification"]["message"], "u");

    // Both instances list both clients.
    for app in [&a, &b] {
        let body = wait_for_clients(app, &keys, |body| client_ids(body).len() == 2).await;
        assert_eq!(client_ids(&body), ["on-a", "on-b"]);
    }

    // A broadcast through B counts and reaches both; a large one travels via the table.
    let big = "y".repeat(20_000);
    let (_, body) = b.post("/v1/socket/broadcast", &keys.server_key, json!({"notification": {"message": big}})).await;
    assert_eq!(body, json!({"delivered": 2}));
    assert_eq!(next_frame(&mut on_a).await["notification"]["message"], big.as_str());
    assert_eq!(next_frame(&mut on_b).await["notification"]["message"], big.as_str());

    // A client on A relays to the one on B.
    send_frame(&mut on_a, json!({"type": "send", "to": {"client_id": "on-b"}, "notification": {"message": "hey"}}))
        .await;
    let frame = next_frame(&mut on_b).await;
    assert_eq!((frame["from"].as_str(), frame["notification"]["message"].as_str()), (Some("on-a"), Some("hey")));

    // Once B's client leaves, A answers not_found.
    on_b.close(None).await.expect("closed");
    wait_for_clients(&a, &keys, |body| client_ids(body) == ["on-a"]).await;
    let (status, body) =
        a.post("/v1/socket/clients/on-b/notifications", &keys.server_key, json!({"notification": {}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
}
