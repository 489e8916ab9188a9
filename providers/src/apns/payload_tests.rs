use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("payload is JSON")
}

fn info(v: Value) -> NotificationInfo {
    serde_json::from_value(v).expect("valid info")
}

#[test]
fn maps_every_field_into_aps_or_beside_it() {
    let info = info(json!({
        "id": "n-1", "title": "Tickets on sale", "body": "Friday", "data": {"movie_id": "881", "n": 3},
        "action": "open_movie", "object": "MovieView", "sound": "default", "badge": 3,
        "image": "https://x/p.jpg", "category": "MOVIE", "thread_id": "movies"
    }));
    let payload = parse(&build(&info, &DeliveryOptions::default()).expect("builds"));
    assert_eq!(
        payload,
        json!({
            "aps": {
                "alert": {"title": "Tickets on sale", "body": "Friday"}, "badge": 3, "sound": "default",
                "category": "MOVIE", "thread-id": "movies", "mutable-content": 1
            },
            "image": "https://x/p.jpg", "movie_id": "881", "n": 3,
            "action": "open_movie", "object": "MovieView", "id": "n-1"
        })
    );
}

#[test]
fn silent_push_has_content_available_and_nothing_visible() {
    let info = info(json!({"title": "t", "body": "b", "sound": "default", "badge": 1, "silent": true,
                           "data": {"sync": "1"}}));
    let payload = parse(&build(&info, &DeliveryOptions::default()).expect("builds"));
    assert_eq!(payload, json!({"aps": {"content-available": 1}, "sync": "1"}));
    let h = headers(&info, &DeliveryOptions::default(), Expiry::ProviderDefault);
    assert_eq!((h.push_type, h.priority), ("background", 5));
    let low = DeliveryOptions { priority: Priority::Low, ..Default::default() };
    assert_eq!(headers(&info, &low, Expiry::ProviderDefault).priority, 1);
}

#[test]
fn raw_apns_is_deep_merged_last_and_data_cannot_replace_aps() {
    let info = info(json!({
        "title": "t", "data": {"aps": "ignored", "k": "v"},
        "apns": {"aps": {"alert": {"subtitle": "s"}, "interruption-level": "time-sensitive"}, "k": "raw"}
    }));
    let payload = parse(&build(&info, &DeliveryOptions::default()).expect("builds"));
    assert_eq!(
        payload,
        json!({"aps": {"alert": {"title": "t", "subtitle": "s"}, "interruption-level": "time-sensitive"}, "k": "raw"})
    );
}

#[test]
fn refuses_payloads_over_4096_bytes() {
    let at_limit_body = |n: usize| info(json!({"body": "x".repeat(n)}));
    // {"aps":{"alert":{"body":"…"}}} is 29 bytes around the body.
    assert_eq!(build(&at_limit_body(4096 - 29), &DeliveryOptions::default()).map(|b| b.len()), Ok(4096));
    assert_eq!(
        build(&at_limit_body(4096 - 28), &DeliveryOptions::default()),
        Err(PayloadError::TooLarge { size: 4097, limit: 4096 })
    );
}

#[test]
fn refuses_collapse_ids_over_64_bytes() {
    let opts = |n: usize| DeliveryOptions { collapse_key: Some("c".repeat(n)), ..Default::default() };
    assert!(build(&NotificationInfo::default(), &opts(64)).is_ok());
    assert_eq!(
        build(&NotificationInfo::default(), &opts(65)),
        Err(PayloadError::CollapseIdTooLong { len: 65, limit: 64 })
    );
}

#[test]
fn headers_follow_priority_expiry_and_collapse_key() {
    let created = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let plain = NotificationInfo::default();
    let h = headers(&plain, &DeliveryOptions::default(), Expiry::ProviderDefault);
    assert_eq!(h, Headers { push_type: "alert", priority: 10, expiration: None, collapse_id: None });
    let opts = DeliveryOptions {
        priority: Priority::Normal,
        ttl_seconds: Some(3600),
        collapse_key: Some("movies".into()),
        send_at: None,
    };
    let h = headers(&plain, &opts, Expiry::from_ttl(created, opts.ttl_seconds));
    assert_eq!(
        h,
        Headers { push_type: "alert", priority: 5, expiration: Some(1_003_600), collapse_id: Some("movies".into()) }
    );
    let zero = Expiry::from_ttl(SystemTime::now(), Some(0));
    assert_eq!(headers(&plain, &DeliveryOptions::default(), zero).expiration, Some(0));
    let low = DeliveryOptions { priority: Priority::Low, ..Default::default() };
    assert_eq!(headers(&plain, &low, Expiry::ProviderDefault).priority, 1);
}

#[test]
fn the_notification_id_collapses_when_no_collapse_key_is_given() {
    let with_id = info(json!({"id": "0190f0c2-1111-7000-8000-000000000001", "body": "b"}));
    let h = headers(&with_id, &DeliveryOptions::default(), Expiry::ProviderDefault);
    assert_eq!(h.collapse_id.as_deref(), Some("0190f0c2-1111-7000-8000-000000000001"));
    let keyed = DeliveryOptions { collapse_key: Some("movies".into()), ..Default::default() };
    assert_eq!(headers(&with_id, &keyed, Expiry::ProviderDefault).collapse_id.as_deref(), Some("movies"));
    let long_id = info(json!({"id": "i".repeat(65)}));
    assert_eq!(headers(&long_id, &DeliveryOptions::default(), Expiry::ProviderDefault).collapse_id, None);
}

#[test]
fn a_raw_merge_cannot_make_a_silent_push_visible() {
    for key in ["alert", "sound", "badge"] {
        let silent = info(json!({"silent": true, "apns": {"aps": {key: "x"}}}));
        assert_eq!(
            build(&silent, &DeliveryOptions::default()),
            Err(PayloadError::RawFieldRefused {
                field: format!("notification.apns.aps.{key}"),
                reason: "a silent (background) push cannot show an alert, play a sound or set a badge"
            })
        );
    }
    let silent = info(json!({"silent": true, "apns": {"aps": {"content-available": 1}, "k": "v"}}));
    assert!(build(&silent, &DeliveryOptions::default()).is_ok());
    let visible = info(json!({"apns": {"aps": {"sound": "bell"}}}));
    assert!(build(&visible, &DeliveryOptions::default()).is_ok());
}
