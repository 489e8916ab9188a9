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
    /// Hand a client's message to the app's server (webhook).
    Message(Value),
    /// Send a WebSocket ping: the client has been quiet.
    Ping,
    /// Close the connection.
    Close { code: u16, reason: &'static str },
}

/// Keepalive and frame-rate state of one connection.
#[derive(Debug)]
pub struct Session {
    keepalive: Duration,
    last_seen: Instant,
    /// Frames per second allowed (0: no limit), bursts of one second's worth.
    frame_rate: u32,
    tokens: f64,
    refilled: Instant,
    /// Frames refused since the bucket was last full.
    excess: u32,
}

impl Session {
    /// A session that pings after `keepalive` of silence and closes after twice that.
    pub fn new(keepalive: Duration, now: Instant) -> Self {
        Self { keepalive, last_seen: now, frame_rate: 0, tokens: 0.0, refilled: now, excess: 0 }
    }

    /// Limits the client to `per_second` frames (0: no limit).
    pub fn with_frame_rate(mut self, per_second: u32) -> Self {
        self.frame_rate = per_second;
        self.tokens = f64::from(per_second);
        self
    }

    /// Takes a frame from the bucket; the action for a frame over the rate.
    fn over_rate(&mut self, now: Instant) -> Option<Action> {
        if self.frame_rate == 0 {
            return None;
        }
        let rate = f64::from(self.frame_rate);
        self.tokens = (self.tokens + now.saturating_duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        if self.tokens >= rate {
            self.excess = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        self.excess += 1;
        // Sustained: twice a second's worth refused without the client backing off.
        if self.excess > self.frame_rate.saturating_mul(2) {
            return Some(Action::Close { code: close::POLICY_VIOLATION, reason: "too many frames" });
        }
        Some(Action::Reply(frames::error(&SocketError::RateLimited)))
    }

    /// A text frame arrived.
    pub fn on_text(&mut self, text: &str, now: Instant) -> Action {
        self.last_seen = now;
        if let Some(action) = self.over_rate(now) {
            return action;
        }
        match frames::parse(text) {
            Ok(ClientFrame::Ping) => Action::Reply(frames::pong()),
            Ok(ClientFrame::Send { to, notification }) => Action::Relay { to, notification },
            Ok(ClientFrame::Message { data }) => Action::Message(data),
            Err(e) => Action::Reply(frames::error(&e)),
        }
    }

    /// A binary frame arrived: the protocol is JSON text only.
    pub fn on_binary(&mut self, now: Instant) -> Action {
        self.last_seen = now;
        if let Some(action) = self.over_rate(now) {
            return action;
        }
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
    fn frames_over_the_rate_get_errors_then_the_socket_closes() {
        let t0 = Instant::now();
        let mut s = Session::new(K, t0).with_frame_rate(5);
        for _ in 0..5 {
            assert_eq!(reply(s.on_text(r#"{"type":"ping"}"#, t0))["type"], "pong");
        }
        assert_eq!(reply(s.on_text(r#"{"type":"ping"}"#, t0))["error"]["code"], "rate_limited");
        // Backing off refills the bucket.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(reply(s.on_text(r#"{"type":"ping"}"#, later))["type"], "pong");
        let mut last = None;
        for _ in 0..20 {
            last = Some(s.on_text(r#"{"type":"ping"}"#, later));
        }
        assert!(matches!(last, Some(Action::Close { code: close::POLICY_VIOLATION, .. })), "{last:?}");
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
