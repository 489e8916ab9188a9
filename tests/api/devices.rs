//! The device registry (API.md, Devices).

use std::collections::{HashMap, HashSet};

use pushgate::domain::Platform;
use pushgate::store::{NewDevice, Registration, Store};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, Db, TestApp, TestAppKeys};

/// A valid APNs token, distinct per `n`.
pub fn ios_token(n: u32) -> String {
    format!("{n:064x}")
}

/// Registers an Android device with `extra` fields (server key); returns its id.
pub async fn register(app: &TestApp, keys: &TestAppKeys, token: &str, extra: Value) -> String {
    let mut body = json!({"platform": "android", "token": token});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, device) = app.post("/v1/devices", &keys.server_key, body).await;
    assert_eq!(status, StatusCode::CREATED, "register: {device}");
    device["id"].as_str().expect("device id").to_string()
}

/// Registers an Android device with `extra` fields by the client key;
/// returns its id and device secret.
pub async fn register_own(app: &TestApp, keys: &TestAppKeys, token: &str, extra: Value) -> (String, String) {
    let mut body = json!({"platform": "android", "token": token});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, device) = app.post("/v1/devices", &keys.client_key, body).await;
    assert_eq!(status, StatusCode::CREATED, "register: {device}");
    let secret = device["device_secret"].as_str().expect("device_secret").to_string();
    (device["id"].as_str().expect("device id").to_string(), secret)
}

/// Marks a device dead the way the delivery engine does when a provider
/// rejects its token.
pub async fn deactivate(app: &TestApp, app_id: &str, device_id: &str, reason: &str) {
    let store = pushgate::store::Store::connect(&app.config.database_url).await.expect("store");
    let changed =
        store.deactivate_devices(app_id, &[(device_id.to_string(), reason.to_string())]).await.expect("deactivate");
    assert_eq!(changed, 1);
    store.close().await;
}

/// The ids of a list answer's items, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|d| d["id"].as_str().expect("id").to_string()).collect()
}

async fn register_creates_then_refreshes(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let body = json!({"platform": "ios", "token": ios_token(1), "user_id": "u-42", "groups": ["news", "eu", "news"],
        "locale": "es-UY", "timezone": "America/Montevideo", "app_version": "3.2.0", "metadata": {"model": "iPhone15,2"}});
    let (status, device) = app.post("/v1/devices", &keys.client_key, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    assert_eq!(device["platform"], "ios");
    assert_eq!(device["token"], ios_token(1));
    assert_eq!(device["groups"], json!(["eu", "news"]), "sorted, without duplicates");
    assert_eq!(device["environment"], Value::Null, "absent: the app's environment decides at send time");
    assert_eq!(device["metadata"], json!({"model": "iPhone15,2"}));
    assert_eq!(device["active"], true);
    assert_eq!(device["deactivated_reason"], Value::Null);
    assert_eq!(device["installation_id"], Value::Null);
    for field in ["created_at", "updated_at", "last_seen_at"] {
        let at = device[field].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{field} is RFC 3339: {device}");
    }
    let id = device["id"].as_str().expect("id").to_string();
    let secret = device["device_secret"].as_str().expect("device_secret").to_string();

    // The device itself (it holds its secret) sees its whole record.
    let body = json!({"platform": "ios", "token": ios_token(1), "app_version": "3.3.0"});
    let (status, again) = app.as_device(Method::POST, "/v1/devices", &keys.client_key, &secret, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["app_version"], "3.3.0", "given fields are replaced");
    assert_eq!(again["user_id"], "u-42", "fields left out are kept");
    assert_eq!(again["groups"], json!(["eu", "news"]));

    deactivate(&app, &keys.id, &id, "Unregistered").await;
    let (_, dead) = app.get(&format!("/v1/devices/{id}"), &keys.server_key).await;
    assert_eq!((dead["active"].clone(), dead["deactivated_reason"].clone()), (json!(false), json!("Unregistered")));
    let (status, revived) =
        app.post("/v1/devices", &keys.client_key, json!({"platform": "ios", "token": ios_token(1)})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revived["id"], id.as_str());
    assert_eq!((revived["active"].clone(), revived["deactivated_reason"].clone()), (json!(true), Value::Null));
}

async fn installation_id_rotates_the_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let (id, secret) =
        register_own(&app, &keys, "token-a", json!({"installation_id": "inst-1", "user_id": "u-1"})).await;

    let body = json!({"platform": "android", "token": "token-b", "installation_id": "inst-1"});
    let (status, device) = app.as_device(Method::POST, "/v1/devices", &keys.client_key, &secret, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!((device["id"].as_str(), device["token"].as_str()), (Some(id.as_str()), Some("token-b")));
    assert_eq!(device["user_id"], "u-1");

    // The new token was registered before without an installation id: that
    // stale row gives way instead of breaking the upsert.
    let stale = register(&app, &keys, "token-c", json!({})).await;
    let body = json!({"platform": "android", "token": "token-c", "installation_id": "inst-1"});
    let (status, device) = app.as_device(Method::POST, "/v1/devices", &keys.client_key, &secret, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!(device["id"], id.as_str());
    let (_, list) = app.get("/v1/devices", &keys.server_key).await;
    assert_eq!(ids(&list), [id.as_str()], "one device per installation: {list}");
    let (status, _) = app.get(&format!("/v1/devices/{stale}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A token-only row is adopted by the first installation id it reports.
    let plain = register(&app, &keys, "token-d", json!({})).await;
    let body = json!({"platform": "android", "token": "token-d", "installation_id": "inst-2"});
    let (status, device) = app.post("/v1/devices", &keys.client_key, body).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!((device["id"].as_str(), device["installation_id"].as_str()), (Some(plain.as_str()), Some("inst-2")));
}

async fn concurrent_registrations_of_one_device_agree(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    for body in [
        json!({"platform": "android", "token": "t-same"}),
        json!({"platform": "android", "token": "t-inst", "installation_id": "inst-1"}),
    ] {
        let answers =
            futures_util::future::join_all((0..8).map(|_| app.post("/v1/devices", &keys.server_key, body.clone())))
                .await;
        let created = answers.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
        assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::OK), "{answers:?}");
        assert_eq!(created, 1, "one registration creates, the others refresh: {answers:?}");
        assert_eq!(answers.iter().map(|(_, d)| d["id"].clone()).collect::<HashSet<_>>().len(), 1);
    }
    let (_, list) = app.get("/v1/devices", &keys.server_key).await;
    assert_eq!(ids(&list).len(), 2);
}

/// A registration of Android `token` for the store's batch API, changed by `with`.
fn registration(app_id: &str, token: &str, with: impl FnOnce(&mut NewDevice)) -> Registration {
    let mut device = NewDevice {
        platform: Platform::Android,
        token: token.to_string(),
        installation_id: None,
        user_id: None,
        groups: None,
        locale: None,
        timezone: None,
        app_version: None,
        environment: None,
        metadata: None,
        secret_hash: None,
        tags: None,
    };
    with(&mut device);
    Registration { app_id: app_id.to_string(), device }
}

async fn one_batch_applies_registrations_of_a_device_in_order(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let plain = register(&app, &keys, "t-old", json!({})).await;
    let stale = register(&app, &keys, "t-stale", json!({})).await;
    let rotating = register(&app, &keys, "t-x", json!({"installation_id": "inst-4"})).await;
    let inst = |id: &str| Some(id.to_string());
    let batch = vec![
        registration(&keys.id, "t-1", |d| d.user_id = Some("u-1".into())),
        // The same token again: a refresh of the device just created.
        registration(&keys.id, "t-1", |d| {
            d.user_id = Some("u-2".into());
            d.groups = Some(vec!["a".into(), "b".into()]);
        }),
        registration(&keys.id, "t-2", |d| d.installation_id = inst("inst-1")),
        // The same installation with a rotated token.
        registration(&keys.id, "t-3", |d| d.installation_id = inst("inst-1")),
        // An installation-less token adopted by its installation.
        registration(&keys.id, "t-old", |d| d.installation_id = inst("inst-3")),
        registration(&keys.id, "t-1", |d| d.groups = Some(Vec::new())),
        // A token moved to an existing installation: the stale row goes.
        registration(&keys.id, "t-stale", |d| d.installation_id = inst("inst-4")),
        registration(&keys.id, "t-4", |_| {}),
    ];
    let store = Store::connect(&app.config.database_url).await.expect("store");
    let answers = store.register_devices(&batch).await.expect("one batch, no fallback");
    store.close().await;
    let seen: Vec<(&str, bool)> = answers.iter().map(|a| (a.device.id.as_str(), a.created)).collect();
    let first = seen[0].0;
    let installed = seen[2].0;
    assert_eq!(
        seen,
        [
            (first, true),
            (first, false),
            (installed, true),
            (installed, false),
            (plain.as_str(), false),
            (first, false),
            (rotating.as_str(), false),
            (seen[7].0, true),
        ]
    );
    assert_eq!(HashSet::from([first, installed, plain.as_str(), rotating.as_str(), seen[7].0]).len(), 5);
    let row = |n: usize| &answers[n].device;
    assert_eq!((row(0).user_id.as_deref(), row(0).groups()), (Some("u-1"), vec![]), "each answer as of its own turn");
    assert_eq!((row(1).user_id.as_deref(), row(1).groups()), (Some("u-2"), vec!["a".to_string(), "b".to_string()]));
    assert_eq!((row(5).user_id.as_deref(), row(5).groups()), (Some("u-2"), vec![]), "left-out fields are kept");
    assert_eq!((row(2).token.as_str(), row(3).token.as_str()), ("t-2", "t-3"));
    assert_eq!(row(4).installation_id.as_deref(), Some("inst-3"));
    assert_eq!((row(6).token.as_str(), row(6).installation_id.as_deref()), ("t-stale", Some("inst-4")));

    let (_, list) = app.get("/v1/devices", &keys.server_key).await;
    let listed: HashSet<String> = ids(&list).into_iter().collect();
    let expected = [first, installed, plain.as_str(), rotating.as_str(), seen[7].0];
    assert_eq!(listed, expected.iter().map(|s| s.to_string()).collect(), "{stale} is gone: {list}");
    let (_, device) = app.get(&format!("/v1/devices/{first}"), &keys.server_key).await;
    assert_eq!((device["user_id"].clone(), device["groups"].clone()), (json!("u-2"), json!([])));
}

async fn concurrent_registrations_each_get_their_own_answer(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    // (body, what its answer must echo): distinct tokens, one token six
    // times, one installation six times with rotating tokens.
    let mut requests = Vec::new();
    for n in 0..48 {
        let body = json!({"platform": "android", "token": format!("c-{n}"), "user_id": format!("u-{n}")});
        requests.push(("distinct", body));
    }
    for n in 0..6 {
        requests.push(("token", json!({"platform": "android", "token": "dup", "user_id": format!("d-{n}")})));
        let body = json!({"platform": "android", "token": format!("i-{n}"), "installation_id": "inst-c"});
        requests.push(("installation", body));
    }
    let answers = futures_util::future::join_all(
        requests.iter().map(|(_, body)| app.post("/v1/devices", &keys.server_key, body.clone())),
    )
    .await;

    let mut by_kind: HashMap<&str, Vec<(StatusCode, String)>> = HashMap::new();
    for ((kind, body), (status, answer)) in requests.iter().zip(&answers) {
        assert!(status.is_success(), "{body}: {status} {answer}");
        for field in ["token", "user_id", "installation_id"] {
            if let Some(sent) = body.get(field) {
                assert_eq!(&answer[field], sent, "an answer shows its own registration: {body} → {answer}");
            }
        }
        by_kind.entry(kind).or_default().push((*status, answer["id"].as_str().expect("id").to_string()));
    }
    let distinct = &by_kind["distinct"];
    assert!(distinct.iter().all(|(s, _)| *s == StatusCode::CREATED), "{distinct:?}");
    assert_eq!(distinct.iter().map(|(_, id)| id).collect::<HashSet<_>>().len(), 48);
    for kind in ["token", "installation"] {
        let same = &by_kind[kind];
        let created = same.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
        assert_eq!(created, 1, "{kind}: one creates, the others refresh: {same:?}");
        assert_eq!(same.iter().map(|(_, id)| id).collect::<HashSet<_>>().len(), 1, "{kind}: one device");
    }
    let (_, list) = app.get("/v1/devices?limit=100", &keys.server_key).await;
    assert_eq!(ids(&list).len(), 50, "{list}");
}

async fn apns_tokens_are_normalised(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let raw = format!("<{} {}>", "AB".repeat(16), "Cd".repeat(16));
    let (status, device) = app.post("/v1/devices", &keys.client_key, json!({"platform": "ios", "token": raw})).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let normal = format!("{}{}", "ab".repeat(16), "cd".repeat(16));
    assert_eq!(device["token"], normal.as_str());
    let (status, again) = app.post("/v1/devices", &keys.client_key, json!({"platform": "ios", "token": normal})).await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &device["id"]), "the same device in either spelling");
}

async fn malformed_tokens_are_invalid_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    for (platform, token) in
        [("ios", "abc"), ("ios", "zz".repeat(32).as_str()), ("android", "has space"), ("android", "")]
    {
        let (status, body) =
            app.post("/v1/devices", &keys.client_key, json!({"platform": platform, "token": token})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{platform} {token:?}");
        assert_error(&body, "invalid_token", Some("token"));
    }
}

async fn bad_fields_are_named(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let ok = || json!({"platform": "android", "token": "t-1"});
    let with = |field: &str, value: Value| {
        let mut body = ok();
        body[field] = value;
        body
    };
    let cases = [
        (json!({"token": "t-1"}), "platform"),
        (json!({"platform": "android"}), "token"),
        (with("platform", json!("huawei")), "platform"),
        (with("token", json!(7)), "token"),
        (with("groups", json!("news")), "groups"),
        (with("groups", json!(["news", "bad name"])), "groups[1]"),
        (with("groups", json!((0..101).map(|i| format!("g{i}")).collect::<Vec<_>>())), "groups"),
        (with("metadata", json!("model")), "metadata"),
        (with("metadata", json!({"blob": "x".repeat(5000)})), "metadata"),
        (with("environment", json!("staging")), "environment"),
        (with("locale", json!("")), "locale"),
        (with("timezone", json!("x".repeat(65))), "timezone"),
        (with("app_version", json!(3)), "app_version"),
        (with("user_id", json!("u".repeat(257))), "user_id"),
        (with("installation_id", json!("")), "installation_id"),
        (with("colour", json!("red")), "colour"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/v1/devices", &keys.client_key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_error(&answer, "invalid_field", Some(field));
    }

    let (id, secret) = register_own(&app, &keys, "t-1", json!({})).await;
    let path = format!("/v1/devices/{id}");
    for (body, code, field) in [
        (json!({"environment": "sandbox"}), "invalid_field", "environment"),
        (json!({"groups": ["a,b"]}), "invalid_field", "groups[0]"),
        (json!({"locale": ""}), "invalid_field", "locale"),
        (json!({"token": "has space"}), "invalid_token", "token"),
    ] {
        let (status, answer) = app.as_device(Method::PATCH, &path, &keys.client_key, &secret, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_error(&answer, code, Some(field));
    }

    for (query, field) in [
        ("platform=huawei", "platform"),
        ("active=maybe", "active"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=%%", "cursor"),
    ] {
        let (status, answer) = app.get(&format!("/v1/devices?{query}"), &keys.server_key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        assert_error(&answer, "invalid_field", Some(field));
    }
}

async fn client_keys_register_but_cannot_read(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let (status, device) =
        app.post("/v1/devices", &keys.client_key, json!({"platform": "android", "token": "t-1"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/v1/devices/{}", device["id"].as_str().expect("id"));
    let secret = device["device_secret"].as_str().expect("device_secret");
    let (status, patched) =
        app.as_device(Method::PATCH, &path, &keys.client_key, secret, Some(json!({"user_id": "u-1"}))).await;
    assert_eq!((status, &patched["user_id"]), (StatusCode::OK, &json!("u-1")));

    for (key, who) in [(&keys.client_key, "client"), (&app.admin_key, "admin")] {
        for read in ["/v1/devices", path.as_str(), "/v1/groups"] {
            let (status, body) = app.get(read, key).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{who} GET {read}");
            assert_error(&body, "forbidden", None);
        }
    }
    let (status, _) = app.post("/v1/devices", &app.admin_key, json!({"platform": "android", "token": "t-2"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the admin key belongs to no app");

    let (status, _) = app.as_device(Method::DELETE, &path, &keys.client_key, secret, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn another_apps_device_is_not_found(db: Db) {
    let app = TestApp::spawn(db).await;
    let mine = app.create_app().await;
    let theirs = app.create_app().await;
    let id = register(&app, &mine, "t-1", json!({})).await;
    let path = format!("/v1/devices/{id}");
    let (status, body) = app.get(&path, &theirs.server_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
    let (status, _) = app.patch(&path, &theirs.client_key, json!({"user_id": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&path, &theirs.server_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/devices", &theirs.server_key).await;
    assert_eq!(list["items"], json!([]));

    // The same token in another app is another device.
    let (status, _) = app.post("/v1/devices", &theirs.client_key, json!({"platform": "android", "token": "t-1"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, device) = app.get(&path, &mine.server_key).await;
    assert_eq!((status, device["user_id"].clone()), (StatusCode::OK, Value::Null), "untouched: {device}");
}

async fn lists_filter_by_user_group_platform_and_state(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let alice_phone = register(&app, &keys, "t-1", json!({"user_id": "alice", "groups": ["news"]})).await;
    let (_, ipad) = app
        .post("/v1/devices", &keys.server_key, json!({"platform": "ios", "token": ios_token(2), "user_id": "alice"}))
        .await;
    let alice_ipad = ipad["id"].as_str().expect("id").to_string();
    let bob_phone = register(&app, &keys, "t-3", json!({"user_id": "bob", "groups": ["news", "eu"]})).await;
    deactivate(&app, &keys.id, &bob_phone, "UNREGISTERED").await;

    let list = |query: &'static str| {
        let app = &app;
        let key = keys.server_key.clone();
        async move {
            let (status, page) = app.get(&format!("/v1/devices?{query}"), &key).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            ids(&page)
        }
    };
    assert_eq!(list("").await, [bob_phone.as_str(), alice_ipad.as_str(), alice_phone.as_str()], "newest first");
    assert_eq!(list("user_id=alice").await, [alice_ipad.as_str(), alice_phone.as_str()]);
    assert_eq!(list("group=news").await, [bob_phone.as_str(), alice_phone.as_str()]);
    assert_eq!(list("group=eu").await, [bob_phone.as_str()]);
    assert_eq!(list("platform=ios").await, [alice_ipad.as_str()]);
    assert_eq!(list("active=false").await, [bob_phone.as_str()]);
    assert_eq!(list("active=true").await, [alice_ipad.as_str(), alice_phone.as_str()]);
    assert_eq!(list("group=news&active=true&platform=android&user_id=alice").await, [alice_phone.as_str()]);
    assert!(list("user_id=carol").await.is_empty());
}

async fn pages_never_repeat_or_skip(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let mut all = Vec::new();
    for n in 0..7 {
        all.push(register(&app, &keys, &format!("t-{n}"), json!({})).await);
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/devices?limit=3&cursor={c}"),
            None => "/v1/devices?limit=3".to_string(),
        };
        let (status, page) = app.get(&path, &keys.server_key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        sizes.push(ids(&page).len());
        seen.extend(ids(&page));
        if seen.len() == 3 {
            // Added while paging: newer than every listed device, so it
            // cannot shift the pages still to come.
            register(&app, &keys, "t-late", json!({})).await;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    all.reverse();
    assert_eq!(seen, all, "every device once, newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
}

async fn patch_refreshes_token_and_fields(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let (id, secret) = register_own(
        &app,
        &keys,
        "t-old",
        json!({"user_id": "u-1", "groups": ["a", "b"], "locale": "en", "metadata": {"k": 1}}),
    )
    .await;
    let other = register(&app, &keys, "t-other", json!({})).await;
    let path = format!("/v1/devices/{id}");
    deactivate(&app, &keys.id, &id, "UNREGISTERED").await;

    let body = json!({"token": "t-new", "user_id": null, "groups": ["c"], "locale": null, "metadata": {"k": 2}, "timezone": "UTC"});
    let (status, device) = app.as_device(Method::PATCH, &path, &keys.client_key, &secret, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!(device["token"], "t-new");
    assert_eq!(
        (device["active"].clone(), device["deactivated_reason"].clone()),
        (json!(true), Value::Null),
        "a fresh token is live"
    );
    assert_eq!(device["user_id"], Value::Null);
    assert_eq!(device["groups"], json!(["c"]));
    assert_eq!(device["locale"], Value::Null);
    assert_eq!(device["timezone"], "UTC");
    assert_eq!(device["metadata"], json!({"k": 2}));

    let (status, kept) = app.patch(&path, &keys.server_key, json!({"app_version": "2.0"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (kept["token"].as_str(), kept["timezone"].as_str()),
        (Some("t-new"), Some("UTC")),
        "untouched fields stay"
    );

    let (status, body) =
        app.as_device(Method::PATCH, &path, &keys.client_key, &secret, Some(json!({"token": "t-other"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "conflict", None);
    let (_, other) = app.get(&format!("/v1/devices/{other}"), &keys.server_key).await;
    assert_eq!(other["token"], "t-other");

    let (_, old) = app.post("/v1/devices", &keys.client_key, json!({"platform": "android", "token": "t-old"})).await;
    assert_ne!(old["id"], id.as_str(), "the old token no longer names the device");
}

async fn delete_unregisters(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let (id, secret) = register_own(&app, &keys, "t-1", json!({"groups": ["news"]})).await;
    let path = format!("/v1/devices/{id}");
    let (status, body) = app.as_device(Method::DELETE, &path, &keys.client_key, &secret, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, _) = app.get(&path, &keys.server_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.as_device(Method::DELETE, &path, &keys.client_key, &secret, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
    let (_, groups) = app.get("/v1/groups", &keys.server_key).await;
    assert_eq!(groups["items"], json!([]), "its memberships went with it");
}

async fn restart_keeps_devices(db: Db) {
    let app = TestApp::spawn(db).await;
    let keys = app.create_app().await;
    let id = register(&app, &keys, "t-1", json!({"groups": ["news"], "metadata": {"k": "v"}})).await;
    let (_, before) = app.get(&format!("/v1/devices/{id}"), &keys.server_key).await;
    let app = app.restart().await;
    let (status, after) = app.get(&format!("/v1/devices/{id}"), &keys.server_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, before);
}

async fn client_registrations_are_rate_limited(db: Db) {
    let app = TestApp::spawn_with(db, |c| c.registration_rate = 1).await;
    let keys = app.create_app().await;
    let mut limited = None;
    // One per second passes; some of these quick ones cannot.
    for n in 0..20 {
        let res = app
            .http
            .post(app.url("/v1/devices"))
            .bearer_auth(&keys.client_key)
            .json(&json!({"platform": "android", "token": format!("t-{n}")}))
            .send()
            .await
            .expect("sent");
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(res);
            break;
        }
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = limited.expect("a quick second registration is limited");
    let retry_after =
        res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After in seconds: {retry_after:?}");
    let body: Value = res.json().await.expect("json");
    assert_error(&body, "rate_limited", None);

    for n in 0..5 {
        let (status, _) =
            app.post("/v1/devices", &keys.server_key, json!({"platform": "android", "token": format!("s-{n}")})).await;
        assert_eq!(status, StatusCode::CREATED, "server keys are not limited");
    }
}

crate::store_tests!(
    register_creates_then_refreshes,
    installation_id_rotates_the_token,
    concurrent_registrations_of_one_device_agree,
    one_batch_applies_registrations_of_a_device_in_order,
    concurrent_registrations_each_get_their_own_answer,
    apns_tokens_are_normalised,
    malformed_tokens_are_invalid_token,
    bad_fields_are_named,
    client_keys_register_but_cannot_read,
    another_apps_device_is_not_found,
    lists_filter_by_user_group_platform_and_state,
    pages_never_repeat_or_skip,
    patch_refreshes_token_and_fields,
    delete_unregisters,
    restart_keeps_devices,
    client_registrations_are_rate_limited,
);
