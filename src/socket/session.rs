//! The protocol of one connection, without I/O: frames and clock ticks in,
//! [`Action`]s out. [`super::conn`] performs the actions; tests feed frames.

use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value};

use super::frames::{self, ClientFrame};
use super::{close, SocketError, Target};

/// What the connection should do next.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Send this frame to this client only (pong, error).
    Reply(Utf8Bytes),
    /// Relay a notification from this client to others.
    Relay { to: Target, notification: Map<String, Value> },
    /// Send a WebSocket ping: the client has been quiet.
    Ping,
    /// Close the connection.
    Close { code: u16, reason: &'static str },
}

/// Keepalive state of one connection.
#[derive(Debug)]
pub struct Session {
    keepalive: Duration,
    last_seen: Instant,
}

impl Session {
    /// A session that pings after `keepalive` of silence and closes after twice that.
    pub fn new(keepalive: Duration, now: Instant) -> Self {
        Self { keepalive, last_seen: now }
    }

    /// A text frame arrived.
    pub fn on_text(&mut self, text: &str, now: Instant) -> Action {
        self.last_seen = now;
        match frames::parse(text) {
            Ok(ClientFrame::Ping) => Action::Reply(frames::pong()),
            Ok(ClientFrame::Send { to, notification }) => Action::Relay { to, notification },
            Err(e) => Action::Reply(frames::error(&e)),
        }
    }

    /// A binary frame arrived: the protocol is JSON text only.
    pub fn on_binary(&mut self, now: Instant) -> Action {
        self.last_seen = now;
        Action::Reply(frames::error(&SocketError::InvalidJson("binary frames are not accepted: send JSON text".into())))
    }

    /// A WebSocket ping or pong arrived: the client is alive.
    pub fn on_control(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// The keepalive clock ticked.
    pub fn on_tick(&mut self, now: Instant) -> Option<Action> {
        let quiet = now.saturating_duration_since(self.last_seen);
        if quiet >= self.keepalive * 2 {
            Some(Action::Close { code: close::NORMAL, reason: "idle timeout" })
        } else if quiet >= self.keepalive {
            Some(Action::Ping)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Duration = Duration::from_secs(30);

    fn reply(action: Action) -> Value {
        match action {
            Action::Reply(text) => serde_json::from_str(text.as_str()).expect("json reply"),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn ping_frame_gets_pong() {
        let t0 = Instant::now();
        let mut s = Session::new(K, t0);
        assert_eq!(reply(s.on_text(r#"{"type":"ping"}"#, t0))["type"], "pong");
    }

    #[test]
    fn bad_frames_get_errors_and_the_session_goes_on() {
        let t0 = Instant::now();
        let mut s = Session::new(K, t0);
        assert_eq!(reply(s.on_text("{", t0))["error"]["code"], "invalid_json");
        assert_eq!(reply(s.on_binary(t0))["error"]["code"], "invalid_json");
        let e = reply(s.on_text(r#"{"type":"send","to":{"client_id":"b"}}"#, t0));
        assert_eq!(e["error"]["code"], "invalid_field");
        assert_eq!(e["error"]["field"], "notification");
        assert_eq!(reply(s.on_text(r#"{"type":"ping"}"#, t0))["type"], "pong");
    }

    #[test]
    fn send_frames_become_relays() {
        let t0 = Instant::now();
        let mut s = Session::new(K, t0);
        let action = s.on_text(r#"{"type":"send","to":{"all":true},"notification":{"message":"hi"}}"#, t0);
        let Action::Relay { to, notification } = action else { panic!("not a relay: {action:?}") };
        assert_eq!(to, Target::All);
        assert_eq!(notification["message"], "hi");
    }

    #[test]
    fn quiet_clients_are_pinged_then_closed() {
        let t0 = Instant::now();
        let mut s = Session::new(K, t0);
        assert_eq!(s.on_tick(t0 + K / 2), None);
        assert_eq!(s.on_tick(t0 + K), Some(Action::Ping));
        // A pong resets the clock.
        s.on_control(t0 + K + Duration::from_secs(1));
        assert_eq!(s.on_tick(t0 + K * 2), None);
        let late = t0 + K * 3 + Duration::from_secs(1);
        assert!(matches!(s.on_tick(late), Some(Action::Close { code: close::NORMAL, .. })));
    }
}
