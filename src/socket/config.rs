//! Settings of the socket channel (`[socket]` in pushgate.toml,
//! `PUSHGATE_SOCKET_*` in the environment, both read by `crate::config`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How sockets are kept alive, buffered and replayed.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketConfig {
    /// A connection silent for this long is pinged; silent for twice this long, closed.
    pub ping_interval_ms: u64,
    /// Messages queued per connection before it counts as too slow and is dropped.
    pub buffer: usize,
    /// How long sent messages are kept for clients reconnecting with `since`.
    pub replay_seconds: u64,
    /// Frames a connection may send per second (bursts of one second's
    /// worth); excess frames get an error frame, and a connection that keeps
    /// on is closed with 1008. 0: no limit.
    pub frame_rate: u32,
    /// Open sockets per client address on one instance (0: no limit).
    pub max_per_address: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self { ping_interval_ms: 30_000, buffer: 256, replay_seconds: 300, frame_rate: 20, max_per_address: 100 }
    }
}

impl SocketConfig {
    /// The keepalive period (at least 10 ms, so a zero in the config cannot spin).
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms.max(10))
    }

    /// Per-connection queue capacity (at least 1: a zero-capacity channel cannot exist).
    pub fn buffer(&self) -> usize {
        self.buffer.max(1)
    }

    /// The replay window.
    pub fn replay_window(&self) -> Duration {
        Duration::from_secs(self.replay_seconds)
    }
}
