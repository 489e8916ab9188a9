use super::*;
use crate::info::Priority;

fn info(v: Value) -> NotificationInfo {
    serde_json::from_value(v).expect("valid info")
}

#[test]
fn maps_every_field_and_stringifies_data() {
    let info = info(json!({
        "id": "n-1", "title": "Tickets on sale", "body": "Friday", "image": "https://x/p.jpg",
        "data": {"movie_id": "881", "n": 3, "ok": true, "obj": {"a": [1, 2]}, "nothing": null},
        "action": "open_movie", "object": "MovieView", "sound": "default", "badge": 2, "channel_id": "news"
    }));
    let opts = DeliveryOptions {
        priority: Priority::Normal,
        ttl_seconds: Some(86400),
        collapse_key: Some("movies".into()),
        send_at: None,
    };
    assert_eq!(
        build("tok", &info, &opts).expect("builds"),
        json!({"message": {
            "token": "tok",
            "notification": {"title": "Tickets on sale", "body": "Friday", "image": "https://x/p.jpg"},
            "data": {"movie_id": "881", "n": "3", "ok": "true", "obj": "{\"a\":[1,2]}", "nothing": "null",
                     "action": "open_movie", "object": "MovieView", "id": "n-1"},
            "android": {
                "priority": "NORMAL", "ttl": "86400s", "collapse_key": "movies",
                "notification": {"sound": "default", "channel_id": "news", "click_action": "open_movie",
                                 "tag": "movies", "notification_count": 2}
            }
        }})
    );
}

#[test]
fn defaults_send_high_priority_without_ttl() {
    let built = build("tok", &info(json!({"body": "b"})), &DeliveryOptions::default()).expect("builds");
    assert_eq!(
        built,
        json!({"message": {"token": "tok", "notification": {"body": "b"}, "android": {"priority": "HIGH"}}})
    );
    let zero = DeliveryOptions { ttl_seconds: Some(0), ..Default::default() };
    let built = build("tok", &NotificationInfo::default(), &zero).expect("builds");
    assert_eq!(built["message"]["android"]["ttl"], json!("0s"));
}

#[test]
fn silent_message_is_data_only() {
    let info = info(json!({"title": "t", "body": "b", "sound": "s", "silent": true, "data": {"sync": 1}}));
    let built = build("tok", &info, &DeliveryOptions::default()).expect("builds");
    assert_eq!(built, json!({"message": {"token": "tok", "data": {"sync": "1"}, "android": {"priority": "HIGH"}}}));
}

#[test]
fn raw_fcm_is_merged_last_but_cannot_change_the_token() {
    let info = info(json!({
        "title": "t", "sound": "default",
        "fcm": {"token": "other", "android": {"notification": {"sound": "bell"}, "direct_boot_ok": true},
                "apns": {"headers": {"apns-priority": "5"}}}
    }));
    let built = build("tok", &info, &DeliveryOptions::default()).expect("builds");
    assert_eq!(
        built,
        json!({"message": {
            "token": "tok", "notification": {"title": "t"},
            "android": {"priority": "HIGH", "direct_boot_ok": true, "notification": {"sound": "bell"}},
            "apns": {"headers": {"apns-priority": "5"}}
        }})
    );
}

#[test]
fn refuses_data_over_4096_bytes() {
    // {"k":"…"} is 8 bytes around the value.
    let with = |n: usize| info(json!({"data": {"k": "x".repeat(n)}}));
    assert!(build("tok", &with(4096 - 8), &DeliveryOptions::default()).is_ok());
    assert_eq!(
        build("tok", &with(4096 - 7), &DeliveryOptions::default()),
        Err(PayloadError::TooLarge { size: 4097, limit: 4096 })
    );
    // A long title does not count against the data limit.
    let title = info(json!({"title": "x".repeat(5000)}));
    assert!(build("tok", &title, &DeliveryOptions::default()).is_ok());
}

#[test]
fn ttl_is_what_remains_and_the_id_is_the_tag_without_collapse_key() {
    use std::time::{Duration, UNIX_EPOCH};
    let created = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let note = info(json!({"id": "0190f0c2-1111-7000-8000-000000000001", "body": "b"}));
    let opts = DeliveryOptions { priority: Priority::Low, ttl_seconds: Some(3600), ..Default::default() };
    let push = Push::to("tok").expiry(Expiry::from_ttl(created, opts.ttl_seconds));
    let retried = build_at(&push, &note, &opts, created + Duration::from_secs(600)).expect("builds");
    assert_eq!(
        retried["message"]["android"],
        json!({"priority": "NORMAL", "ttl": "3000s", "notification": {"tag": "0190f0c2-1111-7000-8000-000000000001"}})
    );
    let zero = Push::to("tok").expiry(Expiry::NowOrNever);
    assert_eq!(build_at(&zero, &note, &opts, created).expect("builds")["message"]["android"]["ttl"], json!("0s"));
}

#[test]
fn a_raw_merge_cannot_add_a_topic_or_condition() {
    for field in ["topic", "condition"] {
        let note = info(json!({"body": "b", "fcm": {field: "news"}}));
        assert_eq!(
            build("tok", &note, &DeliveryOptions::default()),
            Err(PayloadError::RawFieldRefused {
                field: format!("notification.fcm.{field}"),
                reason: "a notification goes to its target's devices, not to an FCM topic or condition"
            })
        );
    }
}

#[test]
fn data_added_by_a_raw_merge_counts_against_the_limit() {
    let half = "x".repeat(2100);
    let note = info(json!({"data": {"a": half}, "fcm": {"data": {"b": half}}}));
    assert!(matches!(build("tok", &note, &DeliveryOptions::default()), Err(PayloadError::TooLarge { .. })));
    let note = info(json!({"data": {"a": half}, "fcm": {"android": {"data": {"b": half}}}}));
    assert!(matches!(build("tok", &note, &DeliveryOptions::default()), Err(PayloadError::TooLarge { .. })));
    let note = info(json!({"data": {"a": half}}));
    assert!(build("tok", &note, &DeliveryOptions::default()).is_ok());
}
