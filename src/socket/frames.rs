//! The JSON frames of the socket protocol (API.md, Web notifications).
//! Server frames are serialized once and shared by every recipient.

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{SocketError, Target};
use crate::domain::{ids::new_id, json::from_value, names};

/// A message on its way to connections. The id lets a reconnecting session
/// drop live copies of what it has just replayed.
#[derive(Debug)]
pub struct Outbound {
    /// The message id (the frame's `id`).
    pub id: String,
    /// The `notification` frame, as sent.
    pub text: Utf8Bytes,
}

/// What a client may send.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    /// `{"type": "ping"}`: answered with a pong.
    Ping,
    /// `{"type": "send", "to", "notification"}`: relay to other clients.
    Send { to: Target, notification: Map<String, Value> },
    /// `{"type": "message", "data"}`: for the app's server (a `socket.message` webhook).
    Message { data: Value },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageFrame {
    #[serde(rename = "type")]
    _type: String,
    data: Value,
}

/// `to` of a send frame: `{"client_id": "…"}` or `{"all": true}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct To {
    client_id: Option<String>,
    all: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendFrame {
    #[serde(rename = "type")]
    _type: String,
    to: To,
    notification: Map<String, Value>,
}

/// Parses a client's text frame; the error says what to answer.
pub fn parse(text: &str) -> Result<ClientFrame, SocketError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| SocketError::InvalidJson(format!("frame is not valid JSON: {e}")))?;
    let kind = match value.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(SocketError::field("type", "type must be a string")),
        None if value.is_object() => return Err(SocketError::field("type", "missing field `type`")),
        None => return Err(SocketError::InvalidJson("frame must be a JSON object".into())),
    };
    match kind {
        "ping" => Ok(ClientFrame::Ping),
        "send" => {
            let frame: SendFrame = from_value(value)?;
            let to = match (frame.to.client_id, frame.to.all) {
                (Some(id), None) => {
                    names::opaque("to.client_id", &id)?;
                    Target::Client(id)
                }
                (None, Some(true)) => Target::All,
                _ => return Err(SocketError::field("to", "to must be {\"client_id\": \"…\"} or {\"all\": true}")),
            };
            Ok(ClientFrame::Send { to, notification: frame.notification })
        }
        "message" => {
            let frame: MessageFrame = from_value(value)?;
            Ok(ClientFrame::Message { data: frame.data })
        }
        other => Err(SocketError::field("type", format!("unknown frame type {other:?}: use send, message or ping"))),
    }
}

#[derive(Serialize)]
struct NotificationFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    notification: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
}

/// Builds the `notification` frame. The message id is the notification's own
/// `id` when it has one (pages route on it), else a new UUIDv7.
pub fn notification(notification: &Map<String, Value>, from: Option<&str>) -> Result<Outbound, SocketError> {
    let id = match notification.get("id") {
        None => new_id(),
        Some(Value::String(id)) => {
            names::opaque("notification.id", id)?;
            id.clone()
        }
        Some(_) => return Err(SocketError::field("notification.id", "notification.id must be a string")),
    };
    let frame = NotificationFrame { kind: "notification", id: &id, notification, from };
    // Serializing a map of JSON values into a String cannot fail; mapped anyway.
    let text = serde_json::to_string(&frame).map_err(|e| SocketError::InvalidJson(e.to_string()))?;
    Ok(Outbound { id, text: text.into() })
}

/// `{"type": "welcome", "client_id"}`: the first frame, naming the
/// connection's client id as the gateway knows it (scoped or assigned).
pub fn welcome(client_id: &str) -> Utf8Bytes {
    // Written by hand so `type` comes first, as in every other frame.
    format!(r#"{{"type":"welcome","client_id":{}}}"#, Value::from(client_id)).into()
}

/// `{"type": "pong"}`.
pub fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"type":"pong"}"#)
}

/// `{"type": "error", "error": {"code", "message", "field"?}}` for a frame
/// that could not be acted on; the connection stays open.
pub fn error(e: &SocketError) -> Utf8Bytes {
    serde_json::json!({"type": "error", "error": e.body()}).to_string().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(text: &str) -> String {
        let e = parse(text).expect_err("invalid frame");
        let frame: Value = serde_json::from_str(error(&e).as_str()).expect("json");
        assert_eq!(frame["type"], "error");
        frame["error"]["code"].as_str().expect("code").to_string()
    }

    #[test]
    fn parses_ping_and_send() {
        assert_eq!(parse(r#"{"type":"ping"}"#).expect("ping"), ClientFrame::Ping);
        let send = parse(r#"{"type":"send","to":{"client_id":"b"},"notification":{"message":"hi"}}"#).expect("send");
        let ClientFrame::Send { to, notification } = send else { panic!("not a send") };
        assert_eq!(to, Target::Client("b".into()));
        assert_eq!(notification["message"], "hi");
        let all = parse(r#"{"type":"send","to":{"all":true},"notification":{}}"#).expect("send all");
        assert!(matches!(all, ClientFrame::Send { to: Target::All, .. }));
        let message = parse(r#"{"type":"message","data":{"text":"hi"}}"#).expect("message");
        assert_eq!(message, ClientFrame::Message { data: json!({"text": "hi"}) });
    }

    #[test]
    fn bad_frames_get_api_codes() {
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code("[1]"), "invalid_json");
        assert_eq!(code(r#"{"type":"dance"}"#), "invalid_field");
        assert_eq!(code(r#"{"hello":1}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"send","to":{"all":true}}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"send","to":{"all":false},"notification":{}}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"send","to":{"all":true},"notification":"x"}"#), "invalid_field");
        assert_eq!(code(r#"{"type":"message"}"#), "invalid_field");
    }

    #[test]
    fn notification_frames_keep_fields_and_ids() {
        let n = json!({"id": "n-1", "object": "cart", "message": "hi"});
        let out = notification(n.as_object().expect("object"), Some("a")).expect("frame");
        assert_eq!(out.id, "n-1");
        let frame: Value = serde_json::from_str(out.text.as_str()).expect("json");
        assert_eq!(frame, json!({"type": "notification", "id": "n-1", "notification": n, "from": "a"}));
        let out = notification(&Map::new(), None).expect("frame");
        assert_eq!(out.id.len(), 36, "a UUID is assigned");
        assert!(notification(json!({"id": 5}).as_object().expect("object"), None).is_err());
    }
}
