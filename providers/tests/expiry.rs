//! Absolute expiry and collapse ids, as they reach the stand-ins.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{apns, fcm, hex_token, mock};
use pushgate_mock_providers::Behavior;
use pushgate_providers::{DeliveryOptions, Expiry, NotificationInfo, Outcome, Push};
use serde_json::json;

fn note(v: serde_json::Value) -> NotificationInfo {
    serde_json::from_value(v).expect("valid info")
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

#[tokio::test]
async fn apns_expiration_is_the_same_instant_on_the_first_attempt_and_a_retry() {
    let mock = mock().await;
    let client = apns(&mock);
    let token = hex_token("e1", 1);
    mock.set_behavior(&token, Behavior::Status { status: 503, retry_after: None, times: 1 });
    let created = SystemTime::now() - Duration::from_secs(600);
    let opts = DeliveryOptions { ttl_seconds: Some(3600), ..Default::default() };
    let push = Push::to(&token).expiry(Expiry::from_ttl(created, opts.ttl_seconds));
    let body = note(json!({"body": "hi"}));

    assert!(matches!(client.send(push, &body, &opts).await, Outcome::Retry { status: Some(503), .. }));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(client.send(push, &body, &opts).await.is_delivered());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(client.send(push, &body, &opts).await.is_delivered());

    let expirations: Vec<String> =
        mock.received(&token).iter().filter_map(|r| r.headers.get("apns-expiration").cloned()).collect();
    let expected = (unix(created) + 3600).to_string();
    assert_eq!(expirations, vec![expected.clone(), expected]);
}

#[tokio::test]
async fn fcm_ttl_is_what_remains_of_the_notifications_life() {
    let mock = mock().await;
    let client = fcm(&mock);
    let created = SystemTime::now() - Duration::from_secs(600);
    let opts = DeliveryOptions { ttl_seconds: Some(3600), ..Default::default() };
    let push = Push::to("device-ttl").expiry(Expiry::from_ttl(created, opts.ttl_seconds));
    assert!(client.send(push, &note(json!({"body": "hi"})), &opts).await.is_delivered());
    let ttl = mock.received("device-ttl")[0].payload["android"]["ttl"].as_str().map(str::to_owned);
    let seconds: u64 = ttl.as_deref().and_then(|t| t.strip_suffix('s')).and_then(|n| n.parse().ok()).expect("ttl");
    assert!((2995..=3000).contains(&seconds), "android.ttl {ttl:?}");
}

#[tokio::test]
async fn ttl_zero_is_now_or_never_on_both_providers() {
    let mock = mock().await;
    let opts = DeliveryOptions { ttl_seconds: Some(0), ..Default::default() };
    let expiry = Expiry::from_ttl(SystemTime::now() - Duration::from_secs(2), opts.ttl_seconds);
    let token = hex_token("e2", 1);
    let body = note(json!({"body": "hi"}));
    assert!(apns(&mock).send(Push::to(&token).expiry(expiry), &body, &opts).await.is_delivered());
    assert!(fcm(&mock).send(Push::to("device-zero").expiry(expiry), &body, &opts).await.is_delivered());
    assert_eq!(mock.received(&token)[0].headers.get("apns-expiration").map(String::as_str), Some("0"));
    assert_eq!(mock.received("device-zero")[0].payload["android"]["ttl"], json!("0s"));
    // The one attempt made, a retry would be past its expiry.
    assert!(expiry.has_passed(SystemTime::now(), 1));
}

#[tokio::test]
async fn without_a_collapse_key_the_notification_id_collapses_a_repeated_push() {
    let mock = mock().await;
    let id = "0190f0c2-1111-7000-8000-00000000c0de";
    let body = note(json!({"id": id, "title": "t"}));
    let token = hex_token("e3", 1);
    let opts = DeliveryOptions::default();
    for _ in 0..2 {
        assert!(apns(&mock).send(Push::to(&token), &body, &opts).await.is_delivered());
        assert!(fcm(&mock).send(Push::to("device-collapse"), &body, &opts).await.is_delivered());
    }
    let collapse_ids: Vec<_> =
        mock.received(&token).iter().map(|r| r.headers.get("apns-collapse-id").cloned()).collect();
    assert_eq!(collapse_ids, vec![Some(id.to_owned()), Some(id.to_owned())]);
    let tags: Vec<_> =
        mock.received("device-collapse").iter().map(|r| r.payload["android"]["notification"]["tag"].clone()).collect();
    assert_eq!(tags, vec![json!(id), json!(id)]);

    let keyed = DeliveryOptions { collapse_key: Some("movies".into()), ..Default::default() };
    let other = hex_token("e3", 2);
    assert!(apns(&mock).send(Push::to(&other), &body, &keyed).await.is_delivered());
    assert_eq!(mock.received(&other)[0].headers.get("apns-collapse-id").map(String::as_str), Some("movies"));
}
