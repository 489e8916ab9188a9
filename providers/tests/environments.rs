//! APNs per-device environments: one key and one provider token, two hosts.

mod common;

use common::{apns, apns_credentials, config, hex_token, mock};
use pushgate_providers::{ApnsClient, ApnsEnvironment, DeliveryOptions, NotificationInfo, Outcome, Push};

fn note() -> NotificationInfo {
    serde_json::from_value(serde_json::json!({"body": "hi"})).expect("valid info")
}

#[tokio::test]
async fn a_sandbox_device_is_sent_to_the_sandbox_host_with_the_same_provider_token() {
    let mock = mock().await;
    let client = apns(&mock);
    assert_eq!(client.environment(), ApnsEnvironment::Production, "the mock's credentials are production");
    let opts = DeliveryOptions::default();
    let development = hex_token("5a4d", 1);
    let store_build = hex_token("a1", 1);

    let outcome = client.send(Push::to(&development).environment(ApnsEnvironment::Sandbox), &note(), &opts).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let outcome = client.send(Push::to(&store_build), &note(), &opts).await;
    assert!(outcome.is_delivered(), "{outcome:?}");

    let sandbox: Vec<bool> = mock.received(&development).iter().map(|r| r.sandbox).collect();
    let production: Vec<bool> = mock.received(&store_build).iter().map(|r| r.sandbox).collect();
    assert_eq!((sandbox, production), (vec![true], vec![false]));
    assert_eq!(mock.apns_jwt_count(), 1, "one provider token serves both hosts");
}

#[tokio::test]
async fn the_production_host_refuses_a_sandbox_token_as_apple_does() {
    let mock = mock().await;
    let development = hex_token("5a4d", 2);
    let outcome = apns(&mock).send(Push::to(&development), &note(), &DeliveryOptions::default()).await;
    assert_eq!(outcome, Outcome::InvalidToken { reason: "BadDeviceToken".into(), status: 400 });
    assert_eq!(mock.delivered_count(&development), 0);
}

#[tokio::test]
async fn the_hosts_default_to_apples_and_can_be_set_apart() {
    let mock = mock().await;
    let development = hex_token("5a4d", 3);
    // Sandbox pointed at the production side: the routing is the URL's.
    let mut cfg = config(&mock);
    cfg.apns_sandbox_base_url = Some(mock.base_url());
    let misrouted = ApnsClient::new(apns_credentials(&mock), &cfg).expect("client");
    let push = Push::to(&development).environment(ApnsEnvironment::Sandbox);
    let outcome = misrouted.send(push, &note(), &DeliveryOptions::default()).await;
    assert!(matches!(outcome, Outcome::InvalidToken { status: 400, .. }), "{outcome:?}");
    assert_eq!(ApnsEnvironment::Sandbox.default_base_url(), "https://api.sandbox.push.apple.com");
    assert_eq!(ApnsEnvironment::Production.default_base_url(), "https://api.push.apple.com");
}
