//! The APNs payload and headers for a notification.

use serde_json::{json, Map, Value};

use crate::error::PayloadError;
use crate::info::{DeliveryOptions, NotificationInfo, Priority};
use crate::json::deep_merge;
use crate::push::Expiry;

/// Apple's limit for a (non-VoIP) notification payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Apple's limit for `apns-collapse-id`, in bytes.
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;

/// Builds the JSON payload, refusing what Apple would refuse for size or
/// collapse id. The gateway calls this when a send is requested, to answer
/// 413 before queueing.
pub fn build(info: &NotificationInfo, opts: &DeliveryOptions) -> Result<Vec<u8>, PayloadError> {
    check_collapse_id(opts)?;
    let payload = payload_object(info);
    if info.silent {
        check_still_background(&payload)?;
    }
    let bytes = serde_json::to_vec(&Value::Object(payload)).map_err(|e| PayloadError::InvalidRaw(e.to_string()))?;
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge { size: bytes.len(), limit: MAX_PAYLOAD_BYTES });
    }
    Ok(bytes)
}

fn check_collapse_id(opts: &DeliveryOptions) -> Result<(), PayloadError> {
    match &opts.collapse_key {
        Some(key) if key.len() > MAX_COLLAPSE_ID_BYTES => {
            Err(PayloadError::CollapseIdTooLong { len: key.len(), limit: MAX_COLLAPSE_ID_BYTES })
        }
        _ => Ok(()),
    }
}

/// Keys of `aps` that make a push visible: Apple would treat a background
/// push carrying one as an alert (and throttle or drop it).
const VISIBLE_APS_KEYS: &[&str] = &["alert", "sound", "badge"];

/// A raw `apns` merge may not turn a silent push into an alert.
fn check_still_background(payload: &Map<String, Value>) -> Result<(), PayloadError> {
    let aps = payload.get("aps").and_then(Value::as_object);
    match aps.and_then(|aps| VISIBLE_APS_KEYS.iter().find(|k| aps.contains_key(**k))) {
        Some(key) => Err(PayloadError::RawFieldRefused {
            field: format!("notification.apns.aps.{key}"),
            reason: "a silent (background) push cannot show an alert, play a sound or set a badge",
        }),
        None => Ok(()),
    }
}

fn payload_object(info: &NotificationInfo) -> Map<String, Value> {
    // Custom data first, so the fields pushgate sets (and `aps`) win.
    let mut root = info.data.clone().unwrap_or_default();
    let mut aps = Map::new();
    if info.silent {
        // A background push wakes the app; an alert, sound or badge would
        // make Apple treat it as a visible notification.
        aps.insert("content-available".into(), json!(1));
    } else {
        let mut alert = Map::new();
        if let Some(title) = &info.title {
            alert.insert("title".into(), json!(title));
        }
        if let Some(body) = &info.body {
            alert.insert("body".into(), json!(body));
        }
        if !alert.is_empty() {
            aps.insert("alert".into(), Value::Object(alert));
        }
        if let Some(badge) = info.badge {
            aps.insert("badge".into(), json!(badge));
        }
        if let Some(sound) = &info.sound {
            aps.insert("sound".into(), json!(sound));
        }
        if let Some(category) = &info.category {
            aps.insert("category".into(), json!(category));
        }
        if let Some(thread_id) = &info.thread_id {
            aps.insert("thread-id".into(), json!(thread_id));
        }
        if let Some(image) = &info.image {
            // A notification service extension downloads the image.
            aps.insert("mutable-content".into(), json!(1));
            root.insert("image".into(), json!(image));
        }
    }
    root.insert("aps".into(), Value::Object(aps));
    for (key, value) in [("action", &info.action), ("object", &info.object), ("id", &info.id)] {
        if let Some(value) = value {
            root.insert(key.into(), json!(value));
        }
    }
    if let Some(raw) = &info.apns {
        deep_merge(&mut root, raw);
    }
    root
}

/// The APNs request headers that depend on the notification (authorization,
/// topic and `apns-id` are added by the client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headers {
    /// `apns-push-type`: `alert` or `background`.
    pub push_type: &'static str,
    /// `apns-priority`: 10, 5 or 1.
    pub priority: u8,
    /// `apns-expiration` in unix seconds; `None` leaves Apple's default.
    pub expiration: Option<u64>,
    /// `apns-collapse-id`: the collapse key, else the notification id.
    pub collapse_id: Option<String>,
}

/// Computes the headers of a push whose notification expires at `expiry`.
pub fn headers(info: &NotificationInfo, opts: &DeliveryOptions, expiry: Expiry) -> Headers {
    let (push_type, priority) = if info.silent {
        // Apple refuses background pushes at priority 10.
        ("background", if opts.priority == Priority::Low { 1 } else { 5 })
    } else {
        ("alert", opts.priority.apns())
    };
    Headers { push_type, priority, expiration: expiry.apns_expiration(), collapse_id: collapse_id(info, opts) }
}

/// The collapse key, or else the notification id: a push repeated after a
/// crash then replaces the first on the device instead of showing twice.
/// An id too long to be a collapse id (not one of pushgate's) is not used.
pub fn collapse_id(info: &NotificationInfo, opts: &DeliveryOptions) -> Option<String> {
    opts.collapse_key.clone().or_else(|| info.id.clone().filter(|id| id.len() <= MAX_COLLAPSE_ID_BYTES))
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
