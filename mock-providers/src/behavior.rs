//! Scripted answers per device token, and the naming convention that
//! scripts tokens without asking.
//!
//! | token starts with        | APNs answer                     | FCM answer                              |
//! |--------------------------|---------------------------------|-----------------------------------------|
//! | `dead` (`dead…`/`dead-`) | 410 `Unregistered`              | 404 `NOT_FOUND` + `UNREGISTERED` detail |
//! | `0bad` / `bad-`          | 400 `BadDeviceToken`            | 400 `INVALID_ARGUMENT` (registration token) |
//! | `0429` / `r429-`         | first attempt 429, `Retry-After: 1`, then 200 | same                      |
//! | `0503` / `r503-`         | first attempt 503, `Retry-After: 1`, then 200 | same                      |
//! | `5a4d` ("sand")          | a development build's token: the production host answers 400 `BadDeviceToken`, the sandbox host accepts it | — |
//!
//! APNs tokens must still be 64 hex characters, hence the hex prefixes. The
//! stand-in does not know in which environment other tokens were
//! registered: both hosts accept them.
//! A behaviour set with [`crate::MockHandle::set_behavior`] wins over the name.

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

/// How the mock answers pushes to one token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Behavior {
    /// Accept (200).
    Ok,
    /// The app was uninstalled: APNs 410 `Unregistered`, FCM 404 `UNREGISTERED`.
    Dead,
    /// Malformed token: APNs 400 `BadDeviceToken`, FCM 400 `INVALID_ARGUMENT`.
    BadToken,
    /// Fail the next `times` attempts with `status` (429, 500, 503…), then accept.
    Status {
        /// HTTP status to answer.
        status: u16,
        /// `Retry-After` seconds to send, if any.
        #[serde(default)]
        retry_after: Option<u64>,
        /// How many attempts fail before one succeeds.
        #[serde(default = "one")]
        times: u32,
    },
    /// Accept after a delay (for timeouts and back-pressure).
    Slow {
        /// Delay before answering, in milliseconds.
        delay_ms: u64,
    },
    /// The app was uninstalled at `timestamp_ms` (ms since the epoch): APNs
    /// 410 `Unregistered` with that `timestamp`, FCM 404 `UNREGISTERED`.
    UnregisteredSince {
        /// Apple's `timestamp`.
        timestamp_ms: u64,
    },
    /// The token belongs to another sender: FCM 403 `PERMISSION_DENIED` with
    /// `SENDER_ID_MISMATCH`; APNs (same meaning) 400 `DeviceTokenNotForTopic`.
    SenderIdMismatch,
    /// The app's APNs credentials in Firebase are refused: FCM 401
    /// `UNAUTHENTICATED` with `THIRD_PARTY_AUTH_ERROR`; APNs 403 `InvalidProviderToken`.
    ThirdPartyAuthError,
    /// The sender may not send for the project: FCM 403 `PERMISSION_DENIED`
    /// (IAM); APNs (the key may not use the topic) 400 `BadTopic`.
    PermissionDenied,
    /// Always answer `status` with `reason` (APNs `reason`, FCM `status`
    /// with no details), e.g. 403 `InvalidProviderToken`, 400 `BadTopic`,
    /// 403 `ExpiredProviderToken` or 404 `NOT_FOUND`.
    Fail {
        /// HTTP status to answer.
        status: u16,
        /// APNs reason / Google status string.
        reason: String,
    },
}

fn one() -> u32 {
    1
}

/// What to answer to one request, decided from the behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Accept,
    Dead,
    BadToken,
    Status { status: u16, retry_after: Option<u64> },
    Delay(u64),
    UnregisteredSince(u64),
    SenderIdMismatch,
    ThirdPartyAuthError,
    PermissionDenied,
    Fail { status: u16, reason: String },
}

#[derive(Debug)]
struct Scripted {
    behavior: Behavior,
    attempts: u32,
}

/// Behaviours by token.
#[derive(Debug, Default)]
pub(crate) struct Behaviors {
    scripted: DashMap<String, Scripted>,
}

impl Behaviors {
    pub(crate) fn set(&self, token: &str, behavior: Behavior) {
        self.scripted.insert(token.to_owned(), Scripted { behavior, attempts: 0 });
    }

    pub(crate) fn clear(&self, token: &str) {
        self.scripted.remove(token);
    }

    pub(crate) fn clear_all(&self) {
        self.scripted.clear();
    }

    /// Decides the answer to a token's `attempt`-th request (1-based, counted
    /// by the caller for the naming convention).
    pub(crate) fn decide(&self, token: &str, attempt: u64) -> Decision {
        if let Some(mut scripted) = self.scripted.get_mut(token) {
            scripted.attempts = scripted.attempts.saturating_add(1);
            return match &scripted.behavior {
                Behavior::Ok => Decision::Accept,
                Behavior::Dead => Decision::Dead,
                Behavior::BadToken => Decision::BadToken,
                Behavior::Status { status, retry_after, times } if scripted.attempts <= *times => {
                    Decision::Status { status: *status, retry_after: *retry_after }
                }
                Behavior::Status { .. } => Decision::Accept,
                Behavior::Slow { delay_ms } => Decision::Delay(*delay_ms),
                Behavior::UnregisteredSince { timestamp_ms } => Decision::UnregisteredSince(*timestamp_ms),
                Behavior::SenderIdMismatch => Decision::SenderIdMismatch,
                Behavior::ThirdPartyAuthError => Decision::ThirdPartyAuthError,
                Behavior::PermissionDenied => Decision::PermissionDenied,
                Behavior::Fail { status, reason } => Decision::Fail { status: *status, reason: reason.clone() },
            };
        }
        by_name(token, attempt)
    }
}

/// Whether the naming convention answers `token` by attempt number.
pub(crate) fn depends_on_attempt(token: &str) -> bool {
    ["0429", "r429-", "0503", "r503-"].iter().any(|p| token.starts_with(p))
}

/// Whether `token` is, by name, a sandbox (development build) APNs token.
pub(crate) fn is_sandbox_token(token: &str) -> bool {
    token.starts_with("5a4d")
}

fn by_name(token: &str, attempt: u64) -> Decision {
    let first_fails = |status| {
        if attempt <= 1 {
            Decision::Status { status, retry_after: Some(1) }
        } else {
            Decision::Accept
        }
    };
    if token.starts_with("dead") {
        Decision::Dead
    } else if token.starts_with("0bad") || token.starts_with("bad-") {
        Decision::BadToken
    } else if token.starts_with("0429") || token.starts_with("r429-") {
        first_fails(429)
    } else if token.starts_with("0503") || token.starts_with("r503-") {
        first_fails(503)
    } else {
        Decision::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fails_the_first_times_then_accepts() {
        let b = Behaviors::default();
        b.set("t", Behavior::Status { status: 503, retry_after: Some(2), times: 2 });
        let fail = Decision::Status { status: 503, retry_after: Some(2) };
        assert_eq!([b.decide("t", 1), b.decide("t", 2), b.decide("t", 3)], [fail.clone(), fail, Decision::Accept]);
    }

    #[test]
    fn names_script_tokens_and_scripts_win() {
        let b = Behaviors::default();
        assert_eq!(b.decide(&format!("dead{}", "0".repeat(60)), 1), Decision::Dead);
        assert_eq!(b.decide("bad-x", 1), Decision::BadToken);
        assert_eq!(b.decide("r429-x", 1), Decision::Status { status: 429, retry_after: Some(1) });
        assert_eq!(b.decide("r429-x", 2), Decision::Accept);
        assert_eq!(b.decide("plain", 1), Decision::Accept);
        b.set("dead-x", Behavior::Ok);
        assert_eq!(b.decide("dead-x", 1), Decision::Accept);
    }

    #[test]
    fn behaviors_read_from_json() {
        let b: Behavior = serde_json::from_str(r#"{"kind":"status","status":429,"retry_after":3}"#).expect("parses");
        assert_eq!(b, Behavior::Status { status: 429, retry_after: Some(3), times: 1 });
        let b: Behavior = serde_json::from_str(r#"{"kind":"dead"}"#).expect("parses");
        assert_eq!(b, Behavior::Dead);
        let b: Behavior = serde_json::from_str(r#"{"kind":"unregistered_since","timestamp_ms":5}"#).expect("parses");
        assert_eq!(b, Behavior::UnregisteredSince { timestamp_ms: 5 });
        let b: Behavior = serde_json::from_str(r#"{"kind":"sender_id_mismatch"}"#).expect("parses");
        assert_eq!(b, Behavior::SenderIdMismatch);
    }
}
