//! Strict payloads: priorities on the wire, raw merges that are refused
//! before anything is sent.

mod common;

use common::{apns, fcm, hex_token, mock};
use pushgate_providers::{DeliveryOptions, NotificationInfo, Outcome, PayloadError, Priority, Push};
use serde_json::json;

fn note(v: serde_json::Value) -> NotificationInfo {
    serde_json::from_value(v).expect("valid info")
}

#[tokio::test]
async fn priorities_reach_apple_as_10_5_1_and_google_as_high_normal_normal() {
    let mock = mock().await;
    for (i, (priority, apns_priority, fcm_priority)) in
        [(Priority::High, "10", "HIGH"), (Priority::Normal, "5", "NORMAL"), (Priority::Low, "1", "NORMAL")]
            .into_iter()
            .enumerate()
    {
        let opts = DeliveryOptions { priority, ..Default::default() };
        let token = hex_token("c1", i as u32);
        let device = format!("device-priority-{i}");
        assert!(apns(&mock).send(Push::to(&token), &note(json!({"body": "b"})), &opts).await.is_delivered());
        assert!(fcm(&mock).send(Push::to(&device), &note(json!({"body": "b"})), &opts).await.is_delivered());
        assert_eq!(mock.received(&token)[0].headers.get("apns-priority").map(String::as_str), Some(apns_priority));
        assert_eq!(mock.received(&device)[0].payload["android"]["priority"], json!(fcm_priority));
    }
}

#[tokio::test]
async fn refused_raw_merges_name_the_field_and_send_nothing() {
    let mock = mock().await;
    let token = hex_token("c2", 1);
    let opts = DeliveryOptions::default();

    let alert_in_background = note(json!({"silent": true, "apns": {"aps": {"alert": {"title": "surprise"}}}}));
    let err = pushgate_providers::apns::payload::build(&alert_in_background, &opts).expect_err("refused");
    assert_eq!(err.field(), Some("notification.apns.aps.alert"));
    assert_eq!(
        apns(&mock).send(Push::to(&token), &alert_in_background, &opts).await,
        Outcome::Rejected { reason: "BadPayload".into(), status: None }
    );

    let to_a_topic = note(json!({"body": "b", "fcm": {"topic": "everyone"}}));
    let err = pushgate_providers::fcm::message::build("device-strict", &to_a_topic, &opts).expect_err("refused");
    assert_eq!(err.field(), Some("notification.fcm.topic"));
    assert_eq!(
        fcm(&mock).send(Push::to("device-strict"), &to_a_topic, &opts).await,
        Outcome::Rejected { reason: "BadPayload".into(), status: None }
    );

    let half = "x".repeat(2100);
    let merged_data = note(json!({"data": {"a": half}, "fcm": {"data": {"b": half}}}));
    assert!(matches!(
        pushgate_providers::fcm::message::build("device-strict", &merged_data, &opts),
        Err(PayloadError::TooLarge { .. })
    ));
    assert_eq!(
        fcm(&mock).send(Push::to("device-strict"), &merged_data, &opts).await,
        Outcome::Rejected { reason: "PayloadTooLarge".into(), status: None }
    );
    assert_eq!((mock.attempts(&token), mock.attempts("device-strict")), (0, 0));
}
