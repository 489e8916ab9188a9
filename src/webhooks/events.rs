//! The event types (API.md, Webhooks), and the bodies sent for them:
//! `{"type", "timestamp", "data"}`. The high-volume types are batched: their
//! events from one endpoint's outbox go out together, `data` being
//! `{"items": [...]}`, so a fan-out with many dead tokens makes a call per
//! batch, not per device.

use serde_json::{json, Value};

use crate::domain::time::Timestamp;
use crate::store::{NewWebhookMessage, OutboxItem};

/// Every event type an endpoint may subscribe to.
pub const TYPES: &[&str] = &[
    "device.deactivated",
    "notification.completed",
    "delivery.failed",
    "app.credentials_failing",
    "socket.message",
    "socket.connected",
    "socket.disconnected",
    "webhook.test",
];

/// Whether events of `kind` are sent in batches.
pub fn batched(kind: &str) -> bool {
    matches!(kind, "device.deactivated" | "delivery.failed")
}

/// A new `webhook-id`.
pub fn new_msg_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// A message of one event.
pub fn message(webhook_id: &str, kind: &str, at: i64, data: Value) -> NewWebhookMessage {
    let body = json!({"type": kind, "timestamp": Timestamp(at), "data": data});
    NewWebhookMessage { webhook_id: webhook_id.into(), msg_id: new_msg_id(), kind: kind.into(), body: body.to_string() }
}

/// Seals outbox items into messages by the batch rule: an event of a
/// batched type waits until `max` items of its endpoint and type are there,
/// or until the oldest has waited `wait_ms`, then goes with the others (up
/// to `max`); any other event goes alone, at once. Returns the messages
/// and the ids of the items they hold; the others stay in the outbox.
pub fn seal(items: Vec<OutboxItem>, now: i64, wait_ms: i64, max: usize) -> (Vec<NewWebhookMessage>, Vec<i64>) {
    let max = max.max(1);
    let mut messages = Vec::new();
    let mut sealed = Vec::new();
    // Batched items by (endpoint, type), in outbox order.
    let mut groups: Vec<((String, String), Vec<OutboxItem>)> = Vec::new();
    for item in items {
        if !batched(&item.kind) {
            sealed.push(item.id);
            messages.push(message(&item.webhook_id, &item.kind, item.created_at, data_of(&item)));
            continue;
        }
        let key = (item.webhook_id.clone(), item.kind.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    for ((webhook_id, kind), group) in groups {
        for chunk in group.chunks(max) {
            let ready = chunk.len() == max || chunk[0].created_at <= now - wait_ms;
            if !ready {
                break;
            }
            sealed.extend(chunk.iter().map(|i| i.id));
            let items: Vec<Value> = chunk.iter().map(data_of).collect();
            messages.push(message(&webhook_id, &kind, chunk[0].created_at, json!({"items": items})));
        }
    }
    (messages, sealed)
}

/// An item's `data`; text that is not JSON (never written so) goes as a string.
fn data_of(item: &OutboxItem) -> Value {
    serde_json::from_str(&item.data).unwrap_or_else(|_| Value::String(item.data.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, hook: &str, kind: &str, at: i64) -> OutboxItem {
        OutboxItem { id, webhook_id: hook.into(), kind: kind.into(), data: format!(r#"{{"n":{id}}}"#), created_at: at }
    }

    fn body(m: &NewWebhookMessage) -> Value {
        serde_json::from_str(&m.body).expect("json body")
    }

    #[test]
    fn batched_events_go_together_per_endpoint_and_type() {
        let items = vec![
            item(1, "a", "delivery.failed", 0),
            item(2, "a", "notification.completed", 0),
            item(3, "a", "delivery.failed", 10),
            item(4, "b", "delivery.failed", 10),
            item(5, "a", "device.deactivated", 10),
        ];
        let (messages, sealed) = seal(items, 2_000, 1_000, 100);
        assert_eq!(sealed.len(), 5);
        assert_eq!(messages.len(), 4);
        let completed = body(&messages[0]);
        assert_eq!(completed["type"], "notification.completed");
        assert_eq!(completed["data"], json!({"n": 2}));
        let failed = body(&messages[1]);
        assert_eq!((failed["type"].as_str(), messages[1].webhook_id.as_str()), (Some("delivery.failed"), "a"));
        assert_eq!(failed["data"]["items"], json!([{"n": 1}, {"n": 3}]));
        assert!(messages.iter().all(|m| m.msg_id.starts_with("msg_")));
    }

    #[test]
    fn a_batch_waits_for_more_until_full_or_old_enough() {
        let young: Vec<OutboxItem> = (1..=5).map(|i| item(i, "a", "delivery.failed", 900)).collect();
        let (messages, sealed) = seal(young.clone(), 1_000, 1_000, 2);
        // Two full batches go; the fifth item waits for company.
        assert_eq!((messages.len(), sealed), (2, vec![1, 2, 3, 4]));
        let (messages, sealed) = seal(young, 1_900, 1_000, 10);
        assert_eq!((messages.len(), sealed.len()), (1, 5));
        assert_eq!(body(&messages[0])["data"]["items"].as_array().map(Vec::len), Some(5));
    }
}
