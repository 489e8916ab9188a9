//! The stand-in's HTTP control endpoints and files, as a staging user sees them.

mod common;

use common::{apns, config, hex_token, mock};
use pushgate_providers::{DeliveryOptions, NotificationInfo, Outcome, Push};
use serde_json::{json, Value};

#[tokio::test]
async fn behaviors_and_counts_over_http() {
    let mock = mock().await;
    let http = config(&mock).http_client().expect("client");
    let token = hex_token("ab", 1);
    let resp = http
        .post(format!("{}/mock/behavior", mock.base_url()))
        .json(&json!({"token": token, "behavior": {"kind": "dead"}}))
        .send()
        .await
        .expect("control reachable");
    assert_eq!(resp.status(), 204);

    let outcome = apns(&mock).send(Push::to(&token), &NotificationInfo::default(), &DeliveryOptions::default()).await;
    assert!(matches!(outcome, Outcome::Unregistered { status: 410, .. }), "{outcome:?}");
    let ok = hex_token("ac", 1);
    assert!(apns(&mock)
        .send(Push::to(&ok), &NotificationInfo::default(), &DeliveryOptions::default())
        .await
        .is_delivered());

    let stats: Value =
        http.get(format!("{}/mock/stats", mock.base_url())).send().await.expect("stats").json().await.expect("json");
    assert_eq!((stats["apns_requests"].as_u64(), stats["apns_delivered"].as_u64()), (Some(2), Some(1)));

    let received: Value = http
        .get(format!("{}/mock/received/{ok}", mock.base_url()))
        .send()
        .await
        .expect("received")
        .json()
        .await
        .expect("json");
    assert_eq!(received["delivered"], json!(1));
    assert_eq!(received["received"][0]["payload"], json!({"aps": {}}));
}

#[tokio::test]
async fn out_dir_files_are_ready_to_use() {
    let mock = mock().await;
    let dir = std::env::temp_dir().join(format!("pushgate-mock-{}", std::process::id()));
    mock.write_files(&dir).expect("files written");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("file exists");
    let apns: Value = serde_json::from_str(&read("apns.json")).expect("json");
    assert_eq!(apns["private_key"].as_str(), Some(read("apns_key.p8").as_str()));
    let account: Value = serde_json::from_str(&read("service_account.json")).expect("json");
    assert_eq!(account["type"], "service_account");
    assert_eq!(account["token_uri"].as_str(), Some(mock.token_url().as_str()));
    assert_eq!(read("ca.pem"), mock.ca_pem());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn oauth_failures_and_revoked_keys_over_http() {
    let mock = mock().await;
    let http = config(&mock).http_client().expect("client");
    let post = |path: &str, body: Value| http.post(format!("{}/mock/{path}", mock.base_url())).json(&body).send();
    let resp = post("oauth", json!({"failure": "invalid_grant"})).await.expect("control reachable");
    assert_eq!(resp.status(), 204);
    let outcome =
        common::fcm(&mock).send(Push::to("d"), &NotificationInfo::default(), &DeliveryOptions::default()).await;
    assert!(outcome.credentials_failing(), "{outcome:?}");

    let key_id = common::apns_credentials(&mock).key_id;
    let resp = post(&format!("revoked-apns-keys/{key_id}"), json!({})).await.expect("control reachable");
    assert_eq!(resp.status(), 204);
    let token = hex_token("ad", 1);
    let outcome = apns(&mock).send(Push::to(&token), &NotificationInfo::default(), &DeliveryOptions::default()).await;
    assert_eq!(
        outcome,
        Outcome::CredentialsFailing { reason: "InvalidProviderToken".into(), status: Some(403), after: None }
    );
    let resp = http
        .delete(format!("{}/mock/revoked-apns-keys/{key_id}", mock.base_url()))
        .send()
        .await
        .expect("control reachable");
    assert_eq!(resp.status(), 204);
    let outcome = apns(&mock).send(Push::to(&token), &NotificationInfo::default(), &DeliveryOptions::default()).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
}
