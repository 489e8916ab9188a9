//! Web Push (issue 15): browsers as a third platform, through the Web Push
//! stand-in, which checks VAPID and decrypts what it receives.

use pushgate_mock_providers::WebPushSubscription;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, Db, TestApp, TestAppKeys};
use crate::pipeline::{self, deliveries, ios_token, register, wait_final, Mock};

/// A gateway wired to the stand-ins, sending Web Push to them (their host
/// allowed), and an app with a VAPID key; answers its public key too.
async fn start(db: Db) -> (TestApp, Mock, TestAppKeys, String) {
    let (app, mock, keys) = pipeline::start(db, |c| c.webpush_hosts = vec!["127.0.0.1".into()]).await;
    let body = json!({"web_push": {"subject": "mailto:ops@example.com"}});
    let (status, updated) = app.patch(&format!("/v1/apps/{}", keys.id), &app.admin_key, body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let public_key = updated["web_push"]["public_key"].as_str().expect("public key").to_owned();
    (app, mock, keys, public_key)
}

/// Registers `sub` as a web device with the client key, as pushgate.js does.
async fn register_browser(app: &TestApp, keys: &TestAppKeys, sub: &WebPushSubscription, groups: &[&str]) -> Value {
    let body = json!({"platform": "web", "subscription": sub.json(), "groups": groups});
    let (status, device) = app.post("/v1/devices", &keys.client_key, body).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    device
}

async fn a_group_send_reaches_a_browser_decrypted_with_its_headers(db: Db) {
    let (app, mock, keys, public_key) = start(db).await;
    let (status, key) = app.get("/v1/web-push/public-key", &keys.client_key).await;
    assert_eq!((status, key["public_key"].as_str()), (StatusCode::OK, Some(public_key.as_str())));

    let sub = mock.handle.web_push_subscription();
    let device = register_browser(&app, &keys, &sub, &["news"]).await;
    assert_eq!((device["platform"].as_str(), device["token"].as_str()), (Some("web"), Some(sub.endpoint.as_str())));
    assert!(device["environment"].is_null(), "the subscription keys stay in the gateway: {device}");
    register(&app, &keys, "ios", &ios_token("ab", 1), None, &["news"]).await;

    let notification = json!({"title": "Tickets on sale", "body": "Friday", "data": {"movie_id": "881"},
                              "action": "https://example.com/movies/881"});
    let body = json!({"notification": notification, "options": {"priority": "normal", "ttl_seconds": 600, "collapse_key": "movies"}});
    let (status, sent) = app.post("/v1/groups/news/notifications", &keys.server_key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id");
    let done = wait_final(&app, &keys, id).await;
    assert_eq!(done["counts"]["delivered"], 2, "{done}");

    // The browser decrypts the NotificationInfo, with the notification's id.
    let received = mock.handle.received(sub.id());
    assert_eq!(received.len(), 1, "{received:?}");
    let mut expected = notification.clone();
    expected["id"] = json!(id);
    assert_eq!(received[0].payload, expected);
    let headers = &received[0].headers;
    let ttl: u64 = headers["ttl"].parse().expect("TTL seconds");
    assert!(ttl > 590 && ttl <= 600, "TTL from the absolute expiry: {ttl}");
    assert_eq!((headers["urgency"].as_str(), headers["topic"].as_str()), ("normal", "movies"));

    let rows = deliveries(&app, &keys.server_key, &format!("notification_id={id}&platform=web")).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["status"].as_str(), rows[0]["provider_status"].as_u64()), (Some("delivered"), Some(201)));
    assert!(rows[0]["provider_message_id"].as_str().is_some_and(|m| m.contains("/wp-message/")), "{}", rows[0]);
}

async fn a_gone_subscription_deactivates_and_throttling_is_retried(db: Db) {
    let (app, mock, keys, _) = start(db).await;
    // By the stand-in's naming convention: `dead-` answers 410, `r429-`
    // answers 429 with `Retry-After: 1` once.
    let gone = mock.handle.web_push_subscription_named("dead-");
    let throttled = mock.handle.web_push_subscription_named("r429-");
    let gone_id = register_browser(&app, &keys, &gone, &["g"]).await["id"].as_str().expect("id").to_owned();
    register_browser(&app, &keys, &throttled, &["g"]).await;

    let (status, sent) =
        app.post("/v1/groups/g/notifications", &keys.server_key, json!({"notification": {"body": "hi"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let done = wait_final(&app, &keys, sent["id"].as_str().expect("id")).await;
    assert_eq!((done["counts"]["delivered"].as_u64(), done["counts"]["failed"].as_u64()), (Some(1), Some(1)), "{done}");
    assert_eq!((mock.handle.attempts(throttled.id()), mock.handle.delivered_count(throttled.id())), (2, 1));

    let (_, device) = app.get(&format!("/v1/devices/{gone_id}"), &keys.server_key).await;
    assert_eq!(
        (device["active"].as_bool(), device["deactivated_reason"].as_str()),
        (Some(false), Some("Gone")),
        "{device}"
    );
    // Registering the browser's subscription again brings it back.
    let body = json!({"platform": "web", "subscription": gone.json()});
    let (status, again) = app.post("/v1/devices", &keys.server_key, body).await;
    assert_eq!((status, again["active"].as_bool()), (StatusCode::OK, Some(true)), "{again}");
}

async fn subscriptions_elsewhere_and_bad_keys_are_refused(db: Db) {
    let (app, mock, keys, _) = start(db).await;
    let sub = mock.handle.web_push_subscription().json();
    let register = |subscription: Value| {
        let app = &app;
        let key = keys.client_key.clone();
        async move { app.post("/v1/devices", &key, json!({"platform": "web", "subscription": subscription})).await }
    };
    // A host outside PUSHGATE_WEBPUSH_HOSTS: the gateway never POSTs there.
    let mut elsewhere = sub.clone();
    elsewhere["endpoint"] = json!("https://attacker.example/collect");
    let (status, body) = register(elsewhere).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_token", Some("subscription.endpoint"));
    let mut plain_http = sub.clone();
    plain_http["endpoint"] = json!(sub["endpoint"].as_str().expect("endpoint").replace("https:", "http:"));
    let (status, body) = register(plain_http).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_token", Some("subscription.endpoint"));

    let mut bad_key = sub.clone();
    bad_key["keys"]["p256dh"] = json!("AAAA");
    let (status, body) = register(bad_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("subscription.keys.p256dh"));
    let (status, body) =
        app.post("/v1/devices", &keys.client_key, json!({"platform": "web", "token": sub["endpoint"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("subscription"));

    // The default list holds the browsers' push services, not this host.
    let (other, _, other_keys) = pipeline::start(app.db, |_| {}).await;
    let (status, body) =
        other.post("/v1/devices", &other_keys.client_key, json!({"platform": "web", "subscription": sub})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_token", Some("subscription.endpoint"));
}

async fn without_a_vapid_key_web_devices_have_no_provider(db: Db) {
    let (app, mock, keys) = pipeline::start(db, |c| c.webpush_hosts = vec!["127.0.0.1".into()]).await;
    let (status, body) = app.get("/v1/web-push/public-key", &keys.client_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
    let sub = mock.handle.web_push_subscription();
    let device = register_browser(&app, &keys, &sub, &[]).await;
    let path = format!("/v1/devices/{}/notifications", device["id"].as_str().expect("id"));
    let (status, body) = app.post(&path, &keys.server_key, json!({"notification": {"body": "x"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "no_provider", None);

    // A VAPID key given, then the subject changed: the key stays.
    let pem = pushgate_providers::webpush::VapidKey::generate().expect("key").to_pem();
    let set = |web_push: Value| {
        let app = &app;
        let path = format!("/v1/apps/{}", keys.id);
        async move { app.patch(&path, &app.admin_key, json!({"web_push": web_push})).await }
    };
    let (status, first) = set(json!({"subject": "https://example.com/contact", "private_key": pem})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, second) = set(json!({"subject": "mailto:new@example.com"})).await;
    assert_eq!(second["web_push"]["public_key"], first["web_push"]["public_key"]);
    assert_eq!(second["web_push"]["subject"], "mailto:new@example.com");
    assert_eq!(second["providers"]["web_push"]["status"], "ok", "{second}");
    assert!(!second.to_string().contains("PRIVATE KEY"), "the private key is never shown: {second}");
    let (status, body) = set(json!({"subject": "ops@example.com"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("web_push.subject"));
    let (status, body) = set(json!({"subject": "mailto:a@b.c", "private_key": "not a key"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_field", Some("web_push.private_key"));

    let (status, body) =
        app.post(&format!("{path}?wait=true"), &keys.server_key, json!({"notification": {"body": "x"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "delivered", "{body}");
    assert_eq!(mock.handle.received(sub.id())[0].payload["body"], "x");
}

async fn many_endpoints_share_one_subscriptions_keys_at_the_stand_in(db: Db) {
    let (app, mock, keys, _) = start(db).await;
    // How a load test seeds many browsers from one subscription.
    let sub = mock.handle.web_push_subscription();
    let endpoints: Vec<String> = (1..=3).map(|n| format!("{}~{n}", sub.endpoint)).collect();
    for endpoint in &endpoints {
        let mut json = sub.json();
        json["endpoint"] = json!(endpoint);
        let body = json!({"platform": "web", "subscription": json, "groups": ["load"]});
        let (status, device) = app.post("/v1/devices", &keys.server_key, body).await;
        assert_eq!(status, StatusCode::CREATED, "{device}");
    }
    let (_, sent) =
        app.post("/v1/groups/load/notifications", &keys.server_key, json!({"notification": {"body": "n"}})).await;
    let done = wait_final(&app, &keys, sent["id"].as_str().expect("id")).await;
    assert_eq!(done["counts"]["delivered"], 3, "{done}");
    for n in 1..=3 {
        assert_eq!(mock.handle.received(&format!("{}~{n}", sub.id()))[0].payload["body"], "n");
    }
    assert_eq!(mock.handle.stats().webpush_delivered, 3);
}

crate::store_tests!(
    many_endpoints_share_one_subscriptions_keys_at_the_stand_in,
    a_group_send_reaches_a_browser_decrypted_with_its_headers,
    a_gone_subscription_deactivates_and_throttling_is_retried,
    subscriptions_elsewhere_and_bad_keys_are_refused,
    without_a_vapid_key_web_devices_have_no_provider,
);
