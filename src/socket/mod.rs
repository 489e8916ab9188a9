//! Web notifications: WebSockets to running clients (API.md, Web
//! notifications).
//!
//! - [`registry`]: this instance's connections, app → client → connections,
//!   with a user index; delivery never waits on a client.
//! - [`session`]: the per-connection protocol as a state machine without I/O;
//!   [`conn`] drives it over a real WebSocket (one task per connection).
//! - [`hub`]: the entry point: sends (store for replay, deliver here, publish
//!   to other instances), joins, lists, background upkeep.
//! - [`bus`]: Postgres `LISTEN/NOTIFY` between instances; presence rows make
//!   counts and `not_found` answers right across instances. On SQLite there
//!   is one instance and the registry is the whole truth.

pub mod bus;
pub mod config;
pub mod conn;
pub mod error;
pub mod frames;
pub mod hub;
pub mod identity;
pub mod registry;
pub mod session;

pub use config::SocketConfig;
pub use error::SocketError;
pub use hub::Hub;

/// Who a message is for, within one app.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Every connection of one client id.
    Client(String),
    /// Every connection opened with this user id.
    User(String),
    /// Every connection of the app.
    All,
}

impl Target {
    /// The stored (kind, target) pair of the replay log.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::Client(id) => ("client", id),
            Self::User(id) => ("user", id),
            Self::All => ("all", ""),
        }
    }
}

/// Close codes the gateway uses (RFC 6455 §7.4.1).
pub mod close {
    /// Closed normally (idle timeout).
    pub const NORMAL: u16 = 1000;
    /// The instance is shutting down: reconnect, to another one if need be.
    pub const GOING_AWAY: u16 = 1001;
    /// A message over the size limit (the body limit).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client broke the rules (kept sending over its frame rate).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// The client did not keep up with its messages: reconnect with `since`.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}
