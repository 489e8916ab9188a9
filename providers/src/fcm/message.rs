//! The FCM v1 message for a notification.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::error::PayloadError;
use crate::info::{DeliveryOptions, NotificationInfo};
use crate::json::deep_merge;
use crate::push::{Expiry, Push};

/// FCM's limit for a message's data, in bytes (serialized JSON).
pub const MAX_DATA_BYTES: usize = 4096;

/// Message fields that would send to other devices than the one meant: a
/// raw merge may not add them.
const REDIRECTING_FIELDS: &[&str] = &["topic", "condition"];

/// Builds the request body `{"message": {...}}` for one device token, as if
/// sent now: `android.ttl` is the whole `ttl_seconds`. Used to check a
/// notification before queueing it.
pub fn build(token: &str, info: &NotificationInfo, opts: &DeliveryOptions) -> Result<Value, PayloadError> {
    let now = SystemTime::now();
    build_at(&Push::to(token).expiry(Expiry::from_ttl(now, opts.ttl_seconds)), info, opts, now)
}

/// Builds the message of `push` at `now`: `android.ttl` is what remains of
/// the notification's life, `android.notification.tag` its collapse key or
/// else its id.
///
/// The raw `fcm` fields are merged into the message last; they may not add
/// a `topic` or `condition`, and the token is set after them so a raw field
/// cannot redirect the message.
pub fn build_at(
    push: &Push<'_>,
    info: &NotificationInfo,
    opts: &DeliveryOptions,
    now: SystemTime,
) -> Result<Value, PayloadError> {
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
    message.insert("android".into(), Value::Object(android(info, opts, push.expiry.fcm_ttl(now))));
    if let Some(raw) = &info.fcm {
        if let Some(field) = REDIRECTING_FIELDS.iter().find(|f| raw.contains_key(**f)) {
            return Err(PayloadError::RawFieldRefused {
                field: format!("notification.fcm.{field}"),
                reason: "a notification goes to its target's devices, not to an FCM topic or condition",
            });
        }
        deep_merge(&mut message, raw);
    }
    message.insert("token".into(), json!(push.token));
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

fn android(info: &NotificationInfo, opts: &DeliveryOptions, ttl: Option<String>) -> Map<String, Value> {
    let mut android = Map::new();
    android.insert("priority".into(), json!(opts.priority.fcm()));
    if let Some(ttl) = ttl {
        android.insert("ttl".into(), json!(ttl));
    }
    insert_str(&mut android, "collapse_key", &opts.collapse_key);
    if !info.silent {
        let mut notification = Map::new();
        insert_str(&mut notification, "sound", &info.sound);
        insert_str(&mut notification, "channel_id", &info.channel_id);
        insert_str(&mut notification, "click_action", &info.action);
        // Like apns-collapse-id: a newer notification replaces the shown
        // one, and a push repeated after a crash replaces the first.
        insert_str(&mut notification, "tag", &opts.collapse_key.clone().or_else(|| info.id.clone()));
        if let Some(badge) = info.badge {
            notification.insert("notification_count".into(), json!(badge));
        }
        if !notification.is_empty() {
            android.insert("notification".into(), Value::Object(notification));
        }
    }
    android
}

/// Checks the data of the whole message, raw fields merged: `data` and
/// `android.data` (which Android delivers in its place) count together.
fn check_data(message: &Map<String, Value>) -> Result<(), PayloadError> {
    let android_data = message.get("android").and_then(|a| a.get("data"));
    let mut size = 0;
    for data in [message.get("data"), android_data].into_iter().flatten() {
        size += serde_json::to_vec(data).map_err(|e| PayloadError::InvalidRaw(e.to_string()))?.len();
    }
    if size > MAX_DATA_BYTES {
        return Err(PayloadError::TooLarge { size, limit: MAX_DATA_BYTES });
    }
    Ok(())
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
