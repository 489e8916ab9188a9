//! Odd bytes at the edge: control characters in every kind of input are
//! refused before they reach a store; cursors are checked.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, Db};
use crate::pipeline::{self, ios_token, register};

crate::store_tests!(control_characters_are_refused_in_every_kind_of_input, foreign_and_forged_cursors_are_refused);

async fn control_characters_are_refused_in_every_kind_of_input(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |_| {}).await;
    let device = register(&app, &keys, "ios", &ios_token("ab", 1), Some("u1"), &[]).await;

    // Registration fields.
    for (field, value) in
        [("user_id", "a\u{0}b"), ("locale", "en\u{0}"), ("installation_id", "i\r\nj"), ("app_version", "1\u{7f}")]
    {
        let mut body = json!({"platform": "ios", "token": ios_token("cd", 2)});
        body[field] = json!(value);
        let (status, answer) = app.post("/v1/devices", &keys.client_key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert_error(&answer, "invalid_field", Some(field));
    }
    let (status, answer) =
        app.patch(&format!("/v1/devices/{device}"), &keys.server_key, json!({"user_id": "x\u{0}"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_error(&answer, "invalid_field", Some("user_id"));

    // Send targets and header-bound options.
    let alert = json!({"title": "t", "body": "line one\nline two"});
    let sends = [
        (json!({"to": {"device_ids": ["d\u{0}"]}, "notification": alert}), "to.device_ids[0]"),
        (json!({"to": {"user_ids": ["u\r\n"]}, "notification": alert}), "to.user_ids[0]"),
        (
            json!({"to": {"device_ids": [device]}, "notification": alert, "options": {"collapse_key": "k\r\nX-Evil: 1"}}),
            "options.collapse_key",
        ),
        (
            json!({"to": {"device_ids": [device]}, "notification": alert, "options": {"collapse_key": "k\u{0}"}}),
            "options.collapse_key",
        ),
    ];
    for (body, field) in sends {
        let (status, answer) = app.post("/v1/notifications", &keys.server_key, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert_error(&answer, "invalid_field", Some(field));
    }
    // A newline in the text of an alert is content, not an identifier.
    let (status, answer) = app
        .post("/v1/notifications", &keys.server_key, json!({"to": {"device_ids": [device]}, "notification": alert}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    // The APNs topic is a header: refused when the app is created.
    let mut body = mock.app_body();
    body["apns"]["topic"] = json!("com.example\r\nX-Evil: 1");
    let (status, answer) = app.post("/v1/apps", &app.admin_key, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_error(&answer, "invalid_field", None);

    // Query parameters and cursors.
    for (query, field) in
        [("user_id=a%00b", "user_id"), ("group=g%0D%0A", "group"), ("cursor=%00", "cursor"), ("user_id=%FF", "user_id")]
    {
        let (status, answer) = app.get(&format!("/v1/devices?{query}"), &keys.server_key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        assert_error(&answer, "invalid_field", Some(field));
    }
    let (status, answer) = app.get("/v1/deliveries?device_id=%00", &keys.server_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_error(&answer, "invalid_field", Some("device_id"));

    // Path ids (and socket ids), including bytes that are not UTF-8: nothing by that name.
    for path in [
        "/v1/devices/dev%00x".to_string(),
        format!("/v1/devices/{device}%0A"),
        "/v1/devices/%FF%FE".to_string(),
        "/v1/notifications/n%00".to_string(),
        "/v1/groups/g%00/devices".to_string(),
    ] {
        let (status, answer) = app.get(&path, &keys.server_key).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert_error(&answer, "not_found", None);
    }
    for path in ["/v1/socket/clients/c%00/notifications", "/v1/socket/users/u%0D%0A/notifications"] {
        let (status, answer) = app.post(path, &keys.server_key, json!({"data": {"k": "v"}})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert_error(&answer, "not_found", None);
    }
    // The store still answers for the real device.
    let (status, _) = app.get(&format!("/v1/devices/{device}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK);
}

async fn foreign_and_forged_cursors_are_refused(db: Db) {
    let app = crate::helpers::TestApp::spawn(db).await;
    let keys = app.create_app().await;
    app.create_app().await;
    for n in 0..3 {
        let body = json!({"platform": "ios", "token": ios_token("ef", n), "groups": ["g1", "g2"]});
        let (status, answer) = app.post("/v1/devices", &keys.server_key, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let (_, page) = app.get("/v1/devices?limit=1", &keys.server_key).await;
    let devices_cursor = page["next_cursor"].as_str().expect("a devices cursor").to_string();
    let (_, page) = app.get("/v1/apps?limit=1", &app.admin_key).await;
    let apps_cursor = page["next_cursor"].as_str().expect("an apps cursor").to_string();

    // Each list takes its own cursors.
    let (status, answer) = app.get(&format!("/v1/devices?limit=1&cursor={devices_cursor}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = app.get(&format!("/v1/apps?limit=1&cursor={apps_cursor}"), &app.admin_key).await;
    assert_eq!(status, StatusCode::OK);

    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let forged = b64("dev_0000");
    let foreign = [
        ("/v1/groups", devices_cursor.as_str(), keys.server_key.as_str()),
        ("/v1/groups/g1/devices", devices_cursor.as_str(), keys.server_key.as_str()),
        ("/v1/socket/clients", devices_cursor.as_str(), keys.server_key.as_str()),
        ("/v1/deliveries", devices_cursor.as_str(), keys.server_key.as_str()),
        ("/v1/apps", devices_cursor.as_str(), app.admin_key.as_str()),
        ("/v1/devices", apps_cursor.as_str(), keys.server_key.as_str()),
        ("/v1/devices", forged.as_str(), keys.server_key.as_str()),
        ("/v1/apps", forged.as_str(), app.admin_key.as_str()),
        ("/v1/groups", "Zm9vYmFyYmF6cXV4cXV1eA", keys.server_key.as_str()),
    ];
    for (list, cursor, key) in foreign {
        let (status, answer) = app.get(&format!("{list}?cursor={cursor}"), key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{list} with {cursor}: {answer}");
        assert_error(&answer, "invalid_field", Some("cursor"));
    }
}
