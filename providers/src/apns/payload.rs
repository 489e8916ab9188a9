//! The APNs payload and headers for a notification.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::error::PayloadError;
use crate::info::{DeliveryOptions, NotificationInfo, Priority};
use crate::json::deep_merge;

/// Apple's limit for a (non-VoIP) notification payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Apple's limit for `apns-collapse-id`, in bytes.
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;

/// Builds the JSON payload, refusing what Apple would refuse for size or
/// collapse id. The gateway calls this when a send is requested, to answer
/// 413 before queueing.
pub fn build(info: &NotificationInfo, opts: &DeliveryOptions) -> Result<Vec<u8>, PayloadError> {
    check_collapse_id(opts)?;
    let bytes = serde_json::to_vec(&Value::Object(payload_object(info)))
        .map_err(|e| PayloadError::InvalidRaw(e.to_string()))?;
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
    /// `apns-priority`: 10 or 5.
    pub priority: u8,
    /// `apns-expiration` in unix seconds; `None` leaves Apple's default.
    pub expiration: Option<u64>,
    /// `apns-collapse-id`.
    pub collapse_id: Option<String>,
}

/// Computes the headers at `now` (for the expiration).
pub fn headers(info: &NotificationInfo, opts: &DeliveryOptions, now: SystemTime) -> Headers {
    let (push_type, priority) = if info.silent {
        // Apple refuses background pushes at priority 10.
        ("background", 5)
    } else {
        ("alert", if opts.priority == Priority::High { 10 } else { 5 })
    };
    let expiration = opts.ttl_seconds.map(|ttl| match ttl {
        // 0 tells Apple to try once and not store the notification.
        0 => 0,
        ttl => now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + u64::from(ttl),
    });
    Headers { push_type, priority, expiration, collapse_id: opts.collapse_key.clone() }
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
