//! The APNs client against the stand-in, over TLS and HTTP/2.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{apns, apns_credentials, closed_url, config, hex_token, mock};
use pushgate_mock_providers::Behavior;
use pushgate_providers::{
    ApnsClient, DeliveryOptions, Expiry, NotificationInfo, Outcome, Priority, ProviderError, Push,
};
use serde_json::json;

fn info(v: serde_json::Value) -> NotificationInfo {
    serde_json::from_value(v).expect("valid info")
}

#[tokio::test]
async fn delivers_the_payload_and_headers_apple_expects() {
    let mock = mock().await;
    let client = apns(&mock);
    let token = hex_token("a1", 1);
    let opts = DeliveryOptions {
        priority: Priority::High,
        ttl_seconds: Some(3600),
        collapse_key: Some("movies".into()),
        send_at: None,
    };
    let note = info(json!({"title": "Tickets", "body": "Friday", "badge": 3, "data": {"movie_id": "881"}}));
    let push = Push::to(&token).expiry(Expiry::from_ttl(SystemTime::now(), opts.ttl_seconds));
    let outcome = client.send(push, &note, &opts).await;

    let Outcome::Delivered { provider_message_id: Some(apns_id), status: 200 } = &outcome else {
        panic!("expected delivery, got {outcome:?}");
    };
    let received = mock.received(&token);
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].payload,
        json!({"aps": {"alert": {"title": "Tickets", "body": "Friday"}, "badge": 3}, "movie_id": "881"})
    );
    let h = &received[0].headers;
    assert_eq!(h.get("apns-id"), Some(apns_id));
    assert_eq!(h.get("apns-topic").map(String::as_str), Some("com.example.pushgate"));
    assert_eq!(h.get("apns-push-type").map(String::as_str), Some("alert"));
    assert_eq!(h.get("apns-priority").map(String::as_str), Some("10"));
    assert_eq!(h.get("apns-collapse-id").map(String::as_str), Some("movies"));
    let expiration: u64 = h.get("apns-expiration").and_then(|e| e.parse().ok()).expect("expiration header");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    assert!(expiration > now + 3000 && expiration <= now + 3600, "expiration {expiration} vs now {now}");
}

#[tokio::test]
async fn silent_push_is_background_priority_5_without_alert() {
    let mock = mock().await;
    let token = hex_token("b2", 1);
    let note = info(json!({"title": "ignored", "sound": "default", "silent": true, "data": {"sync": "inbox"}}));
    let outcome = apns(&mock).send(Push::to(&token), &note, &DeliveryOptions::default()).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let received = mock.received(&token);
    assert_eq!(received[0].payload, json!({"aps": {"content-available": 1}, "sync": "inbox"}));
    assert_eq!(received[0].headers.get("apns-push-type").map(String::as_str), Some("background"));
    assert_eq!(received[0].headers.get("apns-priority").map(String::as_str), Some("5"));
    assert_eq!(received[0].headers.get("apns-expiration"), None);
}

#[tokio::test]
async fn dead_and_bad_tokens_are_invalid_tokens() {
    let mock = mock().await;
    let client = apns(&mock);
    let note = info(json!({"body": "hi"}));
    let opts = DeliveryOptions::default();

    let dead = client.send(Push::to(&hex_token("dead", 1)), &note, &opts).await;
    assert!(
        matches!(&dead, Outcome::Unregistered { reason, status: 410, since: Some(_) } if reason == "Unregistered"),
        "{dead:?}"
    );

    let bad = client.send(Push::to(&hex_token("0bad", 1)), &note, &opts).await;
    assert_eq!(bad, Outcome::InvalidToken { reason: "BadDeviceToken".into(), status: 400 });

    let malformed = client.send(Push::to("not-a-hex-token"), &note, &opts).await;
    assert_eq!(malformed, Outcome::InvalidToken { reason: "BadDeviceToken".into(), status: 400 });

    let other_app = hex_token("c3", 1);
    mock.set_behavior(&other_app, Behavior::Fail { status: 400, reason: "DeviceTokenNotForTopic".into() });
    let not_for_topic = client.send(Push::to(&other_app), &note, &opts).await;
    assert_eq!(not_for_topic, Outcome::InvalidToken { reason: "DeviceTokenNotForTopic".into(), status: 400 });
}

#[tokio::test]
async fn throttling_and_outages_are_retried_with_retry_after() {
    let mock = mock().await;
    let client = apns(&mock);
    let note = info(json!({"body": "hi"}));
    let opts = DeliveryOptions::default();

    let throttled = hex_token("0429", 1);
    assert_eq!(
        client.send(Push::to(&throttled), &note, &opts).await,
        Outcome::Retry { after: Some(Duration::from_secs(1)), reason: "TooManyRequests".into(), status: Some(429) }
    );
    assert!(client.send(Push::to(&throttled), &note, &opts).await.is_delivered());

    let down = hex_token("d4", 1);
    mock.set_behavior(&down, Behavior::Status { status: 503, retry_after: Some(120), times: 1 });
    assert_eq!(
        client.send(Push::to(&down), &note, &opts).await,
        Outcome::Retry {
            after: Some(Duration::from_secs(120)),
            reason: "ServiceUnavailable".into(),
            status: Some(503)
        }
    );
    assert!(client.send(Push::to(&down), &note, &opts).await.is_delivered());
    assert_eq!((mock.attempts(&down), mock.delivered_count(&down)), (2, 1));
}

#[tokio::test]
async fn wrong_topic_and_unknown_key_mark_the_credentials_failing() {
    let mock = mock().await;
    let note = info(json!({"body": "hi"}));
    let token = hex_token("e5", 1);

    let mut creds = apns_credentials(&mock);
    creds.topic = "com.example.other".into();
    let wrong_topic = ApnsClient::new(creds, &config(&mock)).expect("client");
    assert_eq!(
        wrong_topic.send(Push::to(&token), &note, &DeliveryOptions::default()).await,
        Outcome::CredentialsFailing { reason: "TopicDisallowed".into(), status: Some(400), after: None }
    );

    let mut creds = apns_credentials(&mock);
    creds.key_id = "UNKNOWNKEY".into();
    let unknown_key = ApnsClient::new(creds, &config(&mock)).expect("client");
    assert_eq!(
        unknown_key.send(Push::to(&token), &note, &DeliveryOptions::default()).await,
        Outcome::CredentialsFailing { reason: "InvalidProviderToken".into(), status: Some(403), after: None }
    );
    assert_eq!(mock.total_received(), 0);
}

#[tokio::test]
async fn concurrent_sends_share_one_provider_token_and_connection_pool() {
    let mock = mock().await;
    let client = apns(&mock);
    let note = info(json!({"body": "hi"}));
    let opts = DeliveryOptions::default();
    let tokens: Vec<String> = (0..50).map(|i| hex_token("f6", i)).collect();
    let outcomes = futures_util::future::join_all(tokens.iter().map(|t| client.send(Push::to(t), &note, &opts))).await;
    assert!(outcomes.iter().all(Outcome::is_delivered), "{outcomes:?}");
    assert_eq!(mock.total_received(), 50);
    assert_eq!(mock.apns_jwt_count(), 1);
}

#[tokio::test]
async fn expired_provider_token_is_renewed_once_and_the_push_retried() {
    let mock = mock().await;
    let client = apns(&mock);
    let note = info(json!({"body": "hi"}));
    let token = hex_token("a7", 1);
    assert!(client.send(Push::to(&token), &note, &DeliveryOptions::default()).await.is_delivered());
    mock.expire_apns_jwts();
    let outcome = client.send(Push::to(&token), &note, &DeliveryOptions::default()).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(mock.apns_jwt_count(), 2);
    assert_eq!(mock.delivered_count(&token), 2);

    // Expired again at once: no third token within 20 minutes, so the push
    // comes back as retryable instead of hammering Apple with new tokens.
    mock.expire_apns_jwts();
    let outcome = client.send(Push::to(&token), &note, &DeliveryOptions::default()).await;
    assert_eq!(outcome, Outcome::Retry { after: None, reason: "ExpiredProviderToken".into(), status: Some(403) });
    assert_eq!(mock.apns_jwt_count(), 2);
}

#[tokio::test]
async fn payloads_over_4k_and_long_collapse_ids_are_refused_before_sending() {
    let mock = mock().await;
    let client = apns(&mock);
    let token = hex_token("b8", 1);
    let big = info(json!({"body": "x".repeat(5000)}));
    assert_eq!(
        client.send(Push::to(&token), &big, &DeliveryOptions::default()).await,
        Outcome::Rejected { reason: "PayloadTooLarge".into(), status: None }
    );
    let long_collapse = DeliveryOptions { collapse_key: Some("c".repeat(65)), ..Default::default() };
    assert_eq!(
        client.send(Push::to(&token), &info(json!({"body": "hi"})), &long_collapse).await,
        Outcome::Rejected { reason: "BadCollapseId".into(), status: None }
    );
    assert_eq!(mock.attempts(&token), 0);
}

#[tokio::test]
async fn connection_errors_and_timeouts_are_retried() {
    let mock = mock().await;
    let note = info(json!({"body": "hi"}));
    let token = hex_token("c9", 1);

    let mut cfg = config(&mock);
    cfg.apns_base_url = Some(closed_url());
    let unreachable = ApnsClient::new(apns_credentials(&mock), &cfg).expect("client");
    let outcome = unreachable.send(Push::to(&token), &note, &DeliveryOptions::default()).await;
    assert!(
        matches!(&outcome, Outcome::Retry { status: None, reason, .. } if reason.starts_with("connection error")),
        "{outcome:?}"
    );

    let mut cfg = config(&mock);
    cfg.request_timeout = Duration::from_millis(300);
    let impatient = ApnsClient::new(apns_credentials(&mock), &cfg).expect("client");
    mock.set_behavior(&token, Behavior::Slow { delay_ms: 5_000 });
    let outcome = impatient.send(Push::to(&token), &note, &DeliveryOptions::default()).await;
    assert!(
        matches!(&outcome, Outcome::Retry { status: None, reason, .. } if reason.starts_with("timeout")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_key_that_cannot_sign_is_refused_at_construction() {
    let mock = mock().await;
    let mut creds = apns_credentials(&mock);
    creds.private_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
    let err = ApnsClient::new(creds, &config(&mock)).expect_err("bad key refused");
    assert!(matches!(err, ProviderError::InvalidKey { .. }), "{err:?}");
    let mut creds = apns_credentials(&mock);
    creds.team_id = " ".into();
    assert!(matches!(ApnsClient::new(creds, &config(&mock)), Err(ProviderError::MissingField("team_id"))));
    let mut creds = apns_credentials(&mock);
    creds.topic = "com.example\napp".into();
    let err = ApnsClient::new(creds, &config(&mock)).expect_err("a topic that cannot be a header is refused");
    assert!(matches!(err, ProviderError::InvalidField { field: "topic", .. }), "{err:?}");
}

#[tokio::test]
async fn a_connection_apple_closes_is_replaced_for_the_next_push() {
    let mock = mock().await;
    let client = apns(&mock);
    let note = info(json!({"body": "hi"}));
    let (first, second) = (hex_token("d1", 1), hex_token("d1", 2));
    assert!(client.send(Push::to(&first), &note, &DeliveryOptions::default()).await.is_delivered());
    // GOAWAY on the shared connection while it is idle, as Apple does.
    mock.close_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outcome = client.send(Push::to(&second), &note, &DeliveryOptions::default()).await;
    assert!(outcome.is_delivered(), "the push after a GOAWAY: {outcome:?}");
    assert_eq!((mock.delivered_count(&first), mock.delivered_count(&second)), (1, 1));
}

#[tokio::test]
async fn concurrent_pushes_share_one_connection_and_each_gets_its_answer() {
    let mock = mock().await;
    let client = apns(&mock);
    let note = info(json!({"body": "hi"}));
    let dead = hex_token("e1", 0);
    mock.set_behavior(&dead, Behavior::Dead);
    let tokens: Vec<String> = (1..=200).map(|i| hex_token("e1", i)).collect();
    let opts = DeliveryOptions::default();
    let sends = tokens.iter().map(|t| client.send(Push::to(t), &note, &opts));
    let (outcomes, dead_outcome) =
        tokio::join!(futures_util::future::join_all(sends), client.send(Push::to(&dead), &note, &opts));
    assert!(outcomes.iter().all(Outcome::is_delivered), "{:?}", outcomes.iter().find(|o| !o.is_delivered()));
    assert!(matches!(dead_outcome, Outcome::Unregistered { status: 410, .. }), "{dead_outcome:?}");
    assert_eq!(mock.total_received(), 200);
}
