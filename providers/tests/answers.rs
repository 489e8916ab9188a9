//! Every row of API.md's "Provider answers" table, as the stand-ins answer
//! it over TLS and HTTP/2, and the outcome the gateway acts on.

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::{apns, apns_credentials, config, fcm, hex_token, mock, mock_with};
use pushgate_mock_providers::{Behavior, OAuthFailure, APPLE_TOKEN_UPDATE_WINDOW};
use pushgate_providers::{ApnsClient, DeliveryOptions, MemoryTokenCache, NotificationInfo, Outcome, Push};

fn note() -> NotificationInfo {
    serde_json::from_value(serde_json::json!({"body": "hi"})).expect("valid info")
}

#[tokio::test]
async fn apns_410_carries_apples_timestamp() {
    let mock = mock().await;
    let token = hex_token("f1", 1);
    mock.set_behavior(&token, Behavior::UnregisteredSince { timestamp_ms: 1_700_000_000_123 });
    let outcome = apns(&mock).send(Push::to(&token), &note(), &DeliveryOptions::default()).await;
    assert_eq!(
        outcome,
        Outcome::Unregistered {
            reason: "Unregistered".into(),
            status: 410,
            since: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        }
    );
    assert!(outcome.token_is_dead());
}

#[tokio::test]
async fn fcm_sender_id_mismatch_is_a_dead_token() {
    let mock = mock().await;
    mock.set_behavior("device-other-project", Behavior::SenderIdMismatch);
    let outcome = fcm(&mock).send(Push::to("device-other-project"), &note(), &DeliveryOptions::default()).await;
    assert_eq!(outcome, Outcome::InvalidToken { reason: "SENDER_ID_MISMATCH".into(), status: 403 });
}

#[tokio::test]
async fn apns_credential_answers_mark_the_credentials_failing_and_recover() {
    let mock = mock().await;
    let client = apns(&mock);
    let creds = apns_credentials(&mock);
    let token = hex_token("f2", 1);
    let opts = DeliveryOptions::default();

    mock.set_apns_key_revoked(&creds.key_id, true);
    assert_eq!(
        client.send(Push::to(&token), &note(), &opts).await,
        Outcome::CredentialsFailing { reason: "InvalidProviderToken".into(), status: Some(403), after: None }
    );
    mock.set_apns_key_revoked(&creds.key_id, false);
    assert!(client.send(Push::to(&token), &note(), &opts).await.is_delivered(), "recovers by itself");

    let bad_topic = hex_token("f2", 2);
    mock.set_behavior(&bad_topic, Behavior::PermissionDenied);
    assert_eq!(
        client.send(Push::to(&bad_topic), &note(), &opts).await,
        Outcome::CredentialsFailing { reason: "BadTopic".into(), status: Some(400), after: None }
    );
    let bad_cert = hex_token("f2", 3);
    mock.set_behavior(&bad_cert, Behavior::Fail { status: 403, reason: "BadCertificateEnvironment".into() });
    assert!(client.send(Push::to(&bad_cert), &note(), &opts).await.credentials_failing());
}

#[tokio::test]
async fn fcm_credential_answers_mark_the_credentials_failing_without_renewing_the_token() {
    let mock = mock().await;
    let client = fcm(&mock);
    let opts = DeliveryOptions::default();
    mock.set_behavior("device-apns-cert", Behavior::ThirdPartyAuthError);
    let outcome = client.send(Push::to("device-apns-cert"), &note(), &opts).await;
    assert!(
        matches!(&outcome, Outcome::CredentialsFailing { status: Some(401), reason, .. }
            if reason.starts_with("THIRD_PARTY_AUTH_ERROR")),
        "{outcome:?}"
    );
    assert_eq!(mock.token_requests(), 1, "the access token was not the problem");

    mock.set_behavior("device-iam", Behavior::PermissionDenied);
    let outcome = client.send(Push::to("device-iam"), &note(), &opts).await;
    assert!(
        matches!(&outcome, Outcome::CredentialsFailing { status: Some(403), reason, .. }
            if reason.starts_with("PERMISSION_DENIED")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_refused_service_account_is_remembered_with_backoff_then_recovers() {
    let mock = mock().await;
    let client = fcm(&mock);
    let opts = DeliveryOptions::default();
    mock.set_oauth_failure(Some(OAuthFailure::InvalidGrant));
    let outcome = client.send(Push::to("device-oauth"), &note(), &opts).await;
    assert!(
        matches!(&outcome, Outcome::CredentialsFailing { status: None, reason, .. } if reason.contains("invalid_grant")),
        "{outcome:?}"
    );
    // Other sends meanwhile fail at once, without asking the endpoint again.
    let body = note();
    let outcomes =
        futures_util::future::join_all((0..20).map(|_| client.send(Push::to("device-oauth"), &body, &opts))).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::CredentialsFailing { after: Some(_), .. })), "{outcomes:?}");
    assert_eq!(mock.token_requests(), 1);

    mock.set_oauth_failure(None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(client.send(Push::to("device-oauth"), &note(), &opts).await.is_delivered());
    assert_eq!(mock.token_requests(), 2);
}

#[tokio::test]
async fn an_oauth_outage_is_retried_and_not_asked_again_by_every_send() {
    let mock = mock().await;
    let client = fcm(&mock);
    mock.set_oauth_failure(Some(OAuthFailure::Unavailable));
    let outcome = client.send(Push::to("device-outage"), &note(), &DeliveryOptions::default()).await;
    assert!(matches!(&outcome, Outcome::Retry { status: None, .. }), "{outcome:?}");
    let again = client.send(Push::to("device-outage"), &note(), &DeliveryOptions::default()).await;
    assert!(
        matches!(&again, Outcome::Retry { after: Some(after), .. } if *after <= Duration::from_secs(1)),
        "{again:?}"
    );
    assert_eq!(mock.token_requests(), 1);
}

#[tokio::test]
async fn instances_that_sign_their_own_tokens_get_too_many_provider_token_updates() {
    let mock = mock_with(|cfg| cfg.provider_token_update_window = APPLE_TOKEN_UPDATE_WINDOW).await;
    let (token, opts) = (hex_token("f3", 1), DeliveryOptions::default());
    // Two instances, each with its own in-memory cache: Apple refuses the second token.
    let isolated = || {
        ApnsClient::with_token_cache(apns_credentials(&mock), &config(&mock), Arc::new(MemoryTokenCache::default()))
            .expect("client")
    };
    assert!(isolated().send(Push::to(&token), &note(), &opts).await.is_delivered());
    assert_eq!(
        isolated().send(Push::to(&token), &note(), &opts).await,
        Outcome::Retry { after: None, reason: "TooManyProviderTokenUpdates".into(), status: Some(429) }
    );
    assert_eq!(mock.apns_jwt_count(), 1);
}

#[tokio::test]
async fn instances_sharing_a_token_cache_send_with_one_token() {
    let mock = mock_with(|cfg| cfg.provider_token_update_window = APPLE_TOKEN_UPDATE_WINDOW).await;
    let (token, opts) = (hex_token("f4", 1), DeliveryOptions::default());
    let shared: Arc<MemoryTokenCache> = Arc::new(MemoryTokenCache::default());
    for _ in 0..3 {
        let instance =
            ApnsClient::with_token_cache(apns_credentials(&mock), &config(&mock), shared.clone()).expect("client");
        assert!(instance.send(Push::to(&token), &note(), &opts).await.is_delivered());
    }
    assert_eq!((mock.apns_jwt_count(), mock.delivered_count(&token)), (1, 3));
}

#[tokio::test]
async fn the_token_update_window_is_configurable() {
    let mock = mock_with(|cfg| cfg.provider_token_update_window = Duration::from_millis(300)).await;
    let (token, opts) = (hex_token("f5", 1), DeliveryOptions::default());
    let instance = || {
        ApnsClient::with_token_cache(apns_credentials(&mock), &config(&mock), Arc::new(MemoryTokenCache::default()))
            .expect("client")
    };
    assert!(instance().send(Push::to(&token), &note(), &opts).await.is_delivered());
    let too_soon = instance().send(Push::to(&token), &note(), &opts).await;
    assert!(matches!(&too_soon, Outcome::Retry { status: Some(429), .. }), "{too_soon:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(instance().send(Push::to(&token), &note(), &opts).await.is_delivered());
    assert_eq!(mock.apns_jwt_count(), 2);
}
