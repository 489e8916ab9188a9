//! The FCM v1 message for a notification.

use serde_json::{json, Map, Value};

use crate::error::PayloadError;
use crate::info::{DeliveryOptions, NotificationInfo, Priority};
use crate::json::deep_merge;

/// FCM's limit for a message's `data`, in bytes (serialized JSON).
pub const MAX_DATA_BYTES: usize = 4096;

/// Builds the request body `{"message": {...}}` for one device token.
///
/// The raw `fcm` fields are merged into the message last; the token is set
/// after them so a raw field cannot redirect the message.
pub fn build(token: &str, info: &NotificationInfo, opts: &DeliveryOptions) -> Result<Value, PayloadError> {
    let mut message = Map::new();
    if !info.silent {
        let mut notification = Map::new();
        insert_str(&mut notification, "title", &info.title);
        insert_str(&mut notification, "body", &info.body);
        insert_str(&mut notification, "image", &info.image);
        if !notification.is_empty() {
            message.insert("notification".into(), Value::Object(notification));
        }
    }
    let data = data(info);
    if !data.is_empty() {
        message.insert("data".into(), Value::Object(data));
    }
    message.insert("android".into(), Value::Object(android(info, opts)));
    if let Some(raw) = &info.fcm {
        deep_merge(&mut message, raw);
    }
    message.insert("token".into(), json!(token));
    check_data(&message)?;
    Ok(json!({ "message": message }))
}

fn insert_str(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        map.insert(key.into(), json!(value));
    }
}

/// FCM data values must be strings: other JSON values travel as their JSON
/// text (`3` → `"3"`, `{"a":1}` → `"{\"a\":1}"`), and the app parses them.
fn data(info: &NotificationInfo) -> Map<String, Value> {
    let mut data: Map<String, Value> = info
        .data
        .iter()
        .flatten()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key.clone(), Value::String(text))
        })
        .collect();
    insert_str(&mut data, "action", &info.action);
    insert_str(&mut data, "object", &info.object);
    insert_str(&mut data, "id", &info.id);
    data
}

fn android(info: &NotificationInfo, opts: &DeliveryOptions) -> Map<String, Value> {
    let mut android = Map::new();
    let priority = match opts.priority {
        Priority::High => "HIGH",
        Priority::Normal => "NORMAL",
    };
    android.insert("priority".into(), json!(priority));
    if let Some(ttl) = opts.ttl_seconds {
        android.insert("ttl".into(), json!(format!("{ttl}s")));
    }
    insert_str(&mut android, "collapse_key", &opts.collapse_key);
    if !info.silent {
        let mut notification = Map::new();
        insert_str(&mut notification, "sound", &info.sound);
        insert_str(&mut notification, "channel_id", &info.channel_id);
        insert_str(&mut notification, "click_action", &info.action);
        // Like apns-collapse-id: a newer notification replaces the shown one.
        insert_str(&mut notification, "tag", &opts.collapse_key);
        if let Some(badge) = info.badge {
            notification.insert("notification_count".into(), json!(badge));
        }
        if !notification.is_empty() {
            android.insert("notification".into(), Value::Object(notification));
        }
    }
    android
}

fn check_data(message: &Map<String, Value>) -> Result<(), PayloadError> {
    let Some(data) = message.get("data") else {
        return Ok(());
    };
    let size = serde_json::to_vec(data).map_err(|e| PayloadError::InvalidRaw(e.to_string()))?.len();
    if size > MAX_DATA_BYTES {
        return Err(PayloadError::TooLarge { size, limit: MAX_DATA_BYTES });
    }
    Ok(())
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
