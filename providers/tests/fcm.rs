//! The FCM client against the stand-in, over TLS and HTTP/2.

mod common;

use std::time::Duration;

use common::{closed_url, config, fcm, fcm_credentials, mock};
use pushgate_mock_providers::Behavior;
use pushgate_providers::{
    DeliveryOptions, Expiry, FcmClient, FcmCredentials, NotificationInfo, Outcome, Priority, Push,
};
use serde_json::json;

fn info(v: serde_json::Value) -> NotificationInfo {
    serde_json::from_value(v).expect("valid info")
}

#[tokio::test]
async fn delivers_the_message_google_expects() {
    let mock = mock().await;
    let note = info(json!({
        "id": "n-1", "title": "Tickets", "body": "Friday", "data": {"movie_id": 881},
        "action": "open_movie", "sound": "default", "channel_id": "news"
    }));
    let opts = DeliveryOptions { priority: Priority::Normal, ttl_seconds: Some(60), ..Default::default() };
    let push = Push::to("device-1").expiry(Expiry::from_ttl(std::time::SystemTime::now(), opts.ttl_seconds));
    let outcome = fcm(&mock).send(push, &note, &opts).await;

    let Outcome::Delivered { provider_message_id: Some(name), status: 200 } = &outcome else {
        panic!("expected delivery, got {outcome:?}");
    };
    assert!(name.starts_with("projects/pushgate-mock/messages/"), "{name}");
    let received = mock.received("device-1");
    assert_eq!(
        received[0].payload,
        json!({
            "token": "device-1",
            "notification": {"title": "Tickets", "body": "Friday"},
            "data": {"movie_id": "881", "action": "open_movie", "id": "n-1"},
            "android": {"priority": "NORMAL", "ttl": "60s",
                        "notification": {"sound": "default", "channel_id": "news", "click_action": "open_movie",
                                         "tag": "n-1"}}
        })
    );
}

#[tokio::test]
async fn silent_message_has_no_notification() {
    let mock = mock().await;
    let note = info(json!({"title": "t", "silent": true, "data": {"sync": "inbox"}}));
    assert!(fcm(&mock).send(Push::to("device-2"), &note, &DeliveryOptions::default()).await.is_delivered());
    let payload = &mock.received("device-2")[0].payload;
    assert_eq!(payload.get("notification"), None);
    assert_eq!(payload["data"], json!({"sync": "inbox"}));
}

#[tokio::test]
async fn unregistered_and_invalid_registration_tokens_are_invalid_tokens() {
    let mock = mock().await;
    let client = fcm(&mock);
    let note = info(json!({"body": "hi"}));
    assert_eq!(
        client.send(Push::to("dead-1"), &note, &DeliveryOptions::default()).await,
        Outcome::InvalidToken { reason: "UNREGISTERED".into(), status: 404 }
    );
    assert_eq!(
        client.send(Push::to("bad-1"), &note, &DeliveryOptions::default()).await,
        Outcome::InvalidToken { reason: "INVALID_ARGUMENT".into(), status: 400 }
    );
}

#[tokio::test]
async fn not_found_without_unregistered_detail_is_rejected_not_a_dead_token() {
    let mock = mock().await;
    mock.set_behavior("device-3", Behavior::Fail { status: 404, reason: "NOT_FOUND".into() });
    let outcome =
        fcm(&mock).send(Push::to("device-3"), &info(json!({"body": "hi"})), &DeliveryOptions::default()).await;
    assert!(matches!(&outcome, Outcome::Rejected { status: Some(404), .. }), "{outcome:?}");
}

#[tokio::test]
async fn quota_and_outages_are_retried_with_retry_after() {
    let mock = mock().await;
    let client = fcm(&mock);
    let note = info(json!({"body": "hi"}));
    assert_eq!(
        client.send(Push::to("r429-1"), &note, &DeliveryOptions::default()).await,
        Outcome::Retry { after: Some(Duration::from_secs(1)), reason: "QUOTA_EXCEEDED".into(), status: Some(429) }
    );
    assert!(client.send(Push::to("r429-1"), &note, &DeliveryOptions::default()).await.is_delivered());

    mock.set_behavior("device-4", Behavior::Status { status: 503, retry_after: Some(30), times: 2 });
    for _ in 0..2 {
        assert_eq!(
            client.send(Push::to("device-4"), &note, &DeliveryOptions::default()).await,
            Outcome::Retry { after: Some(Duration::from_secs(30)), reason: "UNAVAILABLE".into(), status: Some(503) }
        );
    }
    assert!(client.send(Push::to("device-4"), &note, &DeliveryOptions::default()).await.is_delivered());
}

#[tokio::test]
async fn concurrent_sends_share_one_access_token() {
    let mock = mock().await;
    let client = fcm(&mock);
    let note = info(json!({"body": "hi"}));
    let opts = DeliveryOptions::default();
    let tokens: Vec<String> = (0..50).map(|i| format!("device-{i}")).collect();
    let outcomes = futures_util::future::join_all(tokens.iter().map(|t| client.send(Push::to(t), &note, &opts))).await;
    assert!(outcomes.iter().all(Outcome::is_delivered), "{outcomes:?}");
    assert_eq!(mock.total_received(), 50);
    assert_eq!(mock.token_requests(), 1);
}

#[tokio::test]
async fn revoked_access_token_is_renewed_once_and_the_send_retried() {
    let mock = mock().await;
    let client = fcm(&mock);
    let note = info(json!({"body": "hi"}));
    assert!(client.send(Push::to("device-5"), &note, &DeliveryOptions::default()).await.is_delivered());
    mock.revoke_fcm_tokens();
    assert!(client.send(Push::to("device-5"), &note, &DeliveryOptions::default()).await.is_delivered());
    assert_eq!(mock.token_requests(), 2);
    assert_eq!(mock.delivered_count("device-5"), 2);
}

#[tokio::test]
async fn data_over_4k_is_refused_before_sending() {
    let mock = mock().await;
    let note = info(json!({"data": {"blob": "x".repeat(5000)}}));
    assert_eq!(
        fcm(&mock).send(Push::to("device-6"), &note, &DeliveryOptions::default()).await,
        Outcome::Rejected { reason: "PayloadTooLarge".into(), status: None }
    );
    assert_eq!((mock.attempts("device-6"), mock.token_requests()), (0, 0));
}

#[tokio::test]
async fn wrong_project_and_unknown_service_account_mark_the_credentials_failing() {
    let mock = mock().await;
    let note = info(json!({"body": "hi"}));

    let mut creds = fcm_credentials(&mock);
    creds.service_account.project_id = "someone-else".into();
    let wrong_project = FcmClient::new(creds, &config(&mock)).expect("client");
    let outcome = wrong_project.send(Push::to("device-7"), &note, &DeliveryOptions::default()).await;
    assert!(
        matches!(&outcome, Outcome::CredentialsFailing { status: Some(403), reason, .. }
            if reason.starts_with("PERMISSION_DENIED")),
        "{outcome:?}"
    );

    // A second mock's account is unknown to this one: the token endpoint refuses.
    let other = common::mock().await;
    let mut creds = fcm_credentials(&other);
    creds.service_account.token_uri = mock.token_url();
    let stranger = FcmClient::new(creds, &config(&mock)).expect("client");
    let outcome = stranger.send(Push::to("device-7"), &note, &DeliveryOptions::default()).await;
    assert!(
        matches!(&outcome, Outcome::CredentialsFailing { status: None, reason, .. } if reason.contains("invalid_grant")),
        "{outcome:?}"
    );
    assert_eq!(mock.total_received(), 0);
}

#[tokio::test]
async fn a_second_service_account_works_side_by_side() {
    let mock = mock().await;
    let json = mock.add_service_account("second-project").expect("account");
    let creds = FcmCredentials { service_account: serde_json::from_value(json).expect("parses") };
    let client = FcmClient::new(creds, &config(&mock)).expect("client");
    let outcome = client.send(Push::to("device-8"), &info(json!({"body": "hi"})), &DeliveryOptions::default()).await;
    let Outcome::Delivered { provider_message_id: Some(name), .. } = outcome else {
        panic!("expected delivery, got {outcome:?}");
    };
    assert!(name.starts_with("projects/second-project/messages/"), "{name}");
}

#[tokio::test]
async fn unreachable_endpoints_are_retried() {
    let mock = mock().await;
    let note = info(json!({"body": "hi"}));
    let mut cfg = config(&mock);
    cfg.fcm_base_url = Some(closed_url());
    // The token endpoint still answers; the send itself cannot connect.
    let client = FcmClient::new(fcm_credentials(&mock), &cfg).expect("client");
    let outcome = client.send(Push::to("device-9"), &note, &DeliveryOptions::default()).await;
    assert!(
        matches!(&outcome, Outcome::Retry { status: None, reason, .. } if reason.starts_with("connection error")),
        "{outcome:?}"
    );
    // And when the token endpoint is the one that is down.
    let mut creds = fcm_credentials(&mock);
    creds.service_account.token_uri = format!("{}/token", closed_url());
    let client = FcmClient::new(creds, &config(&mock)).expect("client");
    let outcome = client.send(Push::to("device-9"), &note, &DeliveryOptions::default()).await;
    assert!(matches!(&outcome, Outcome::Retry { status: None, .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_connection_google_closes_is_replaced_for_the_next_push() {
    let mock = mock().await;
    let client = fcm(&mock);
    let note = info(json!({"body": "hi"}));
    assert!(client.send(Push::to("device-goaway-1"), &note, &DeliveryOptions::default()).await.is_delivered());
    mock.close_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outcome = client.send(Push::to("device-goaway-2"), &note, &DeliveryOptions::default()).await;
    assert!(outcome.is_delivered(), "the push after a GOAWAY: {outcome:?}");
    assert_eq!(mock.delivered_count("device-goaway-2"), 1);
}
