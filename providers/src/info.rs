//! What a notification says and how it should be delivered, independent of
//! the provider (API.md, "Sending").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The content of a notification, as the API receives and stores it.
///
/// Every field is optional; unknown fields are accepted and dropped so that
/// clients written against a newer API keep working.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationInfo {
    /// The gateway's notification id, passed to the app beside the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Alert title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Alert text; `message` is accepted as another name.
    #[serde(alias = "message", skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Custom key/values for the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
    /// What the app should do when the notification is opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The client-side object or control that should handle the notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Sound name (`default` for the system sound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// App icon badge number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub badge: Option<u32>,
    /// URL of an image shown with the notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// APNs notification category (actionable notifications).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// APNs thread id, used to group notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Android notification channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// A background (data-only) push: nothing is shown to the user.
    #[serde(skip_serializing_if = "is_false")]
    pub silent: bool,
    /// Raw fields deep-merged into the APNs payload, last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apns: Option<Map<String, Value>>,
    /// Raw fields deep-merged into the FCM v1 `message`, last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fcm: Option<Map<String, Value>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How urgently a notification should be delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Deliver immediately (APNs priority 10, FCM `HIGH`).
    #[default]
    High,
    /// Deliver when convenient for the device's power (APNs 5, FCM `NORMAL`).
    Normal,
    /// Deliver when the device's power matters most (APNs 1, FCM `NORMAL`).
    Low,
}

impl Priority {
    /// `apns-priority` of a visible notification.
    pub fn apns(self) -> u8 {
        match self {
            Priority::High => 10,
            Priority::Normal => 5,
            Priority::Low => 1,
        }
    }

    /// FCM `android.priority`: Android knows only two.
    pub fn fcm(self) -> &'static str {
        match self {
            Priority::High => "HIGH",
            Priority::Normal | Priority::Low => "NORMAL",
        }
    }
}

/// Delivery options that go beside a [`NotificationInfo`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryOptions {
    /// Delivery priority; `high` unless told otherwise.
    pub priority: Priority,
    /// How long the provider keeps trying to reach an offline device; `None`
    /// leaves the provider's default, `0` means "now or never".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
    /// Newer notifications with the same key replace older ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// RFC 3339 time to send at; used by the gateway, ignored by providers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_message_as_body_and_ignores_unknown_fields() {
        let info: NotificationInfo =
            serde_json::from_value(json!({"message": "hi", "future_field": 1})).expect("parses");
        assert_eq!(info.body.as_deref(), Some("hi"));
    }

    #[test]
    fn round_trips_and_skips_empty_fields() {
        let original = json!({
            "id": "n1", "title": "Tickets on sale", "body": "Friday",
            "data": {"movie_id": "881", "n": 3}, "action": "open_movie", "object": "MovieView",
            "sound": "default", "badge": 3, "image": "https://x/p.jpg", "category": "MOVIE",
            "thread_id": "movies", "channel_id": "news", "silent": true,
            "apns": {"aps": {"interruption-level": "active"}}, "fcm": {"android": {"direct_boot_ok": true}}
        });
        let info: NotificationInfo = serde_json::from_value(original.clone()).expect("parses");
        assert_eq!(serde_json::to_value(&info).expect("serializes"), original);
        assert_eq!(serde_json::to_value(NotificationInfo::default()).expect("serializes"), json!({}));
    }

    #[test]
    fn options_default_to_high_priority_and_provider_ttl() {
        let opts: DeliveryOptions = serde_json::from_value(json!({})).expect("parses");
        assert_eq!(opts.priority, Priority::High);
        assert_eq!(opts.ttl_seconds, None);
        let opts: DeliveryOptions =
            serde_json::from_value(json!({"priority": "normal", "ttl_seconds": 60, "collapse_key": "c"}))
                .expect("parses");
        assert_eq!(opts.priority, Priority::Normal);
        let low: DeliveryOptions = serde_json::from_value(json!({"priority": "low"})).expect("parses");
        assert_eq!((low.priority.apns(), low.priority.fcm()), (1, "NORMAL"));
        assert!(serde_json::from_value::<DeliveryOptions>(json!({"priority": "urgent"})).is_err());
        let back: DeliveryOptions =
            serde_json::from_value(serde_json::to_value(&opts).expect("serializes")).expect("parses");
        assert_eq!(back, opts);
    }
}
