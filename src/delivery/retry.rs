//! What a provider's answer means for a delivery: final state, or the next
//! attempt's time (exponential backoff with jitter, `Retry-After` honoured and
//! clamped), bounded by the notification's TTL and `max_attempts`. Pure, so
//! time and randomness are arguments.

use std::time::{Duration, UNIX_EPOCH};

use pushgate_providers::Outcome;

/// Retry settings.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts after which a retried delivery fails.
    pub max_attempts: i32,
    /// First retry delay (ms).
    pub base_ms: u64,
    /// Longest delay, and the clamp of a provider's `Retry-After` (ms).
    pub max_ms: u64,
}

impl RetryPolicy {
    /// From the gateway's configuration.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self { max_attempts: cfg.max_attempts.max(1), base_ms: cfg.retry_base_ms, max_ms: cfg.retry_max_ms.max(1) }
    }

    /// Delay before attempt `attempts + 1`, after `attempts` failed ones:
    /// `base * 2^(attempts-1)` capped at `max`, scaled by `jitter` in [0, 1)
    /// to between half and all of it (spreads retries of one outage).
    pub fn backoff_ms(&self, attempts: i32, jitter: f64) -> u64 {
        let exp = (attempts.max(1) - 1).min(32) as u32;
        let full = self.base_ms.saturating_mul(1u64 << exp.min(62)).min(self.max_ms);
        let jitter = jitter.clamp(0.0, 1.0);
        (full as f64 * (0.5 + jitter / 2.0)) as u64
    }
}

/// The final or next state of one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Accepted by the provider.
    Delivered {
        /// `apns-id` / FCM message name.
        provider_message_id: Option<String>,
        /// HTTP status.
        status: u16,
    },
    /// Failed for good; `deactivate` when the provider said the token is dead.
    Failed {
        /// Provider reason (or ours).
        reason: String,
        /// HTTP status, if an answer came.
        status: Option<u16>,
        /// The token is dead: deactivate the device.
        deactivate: bool,
        /// APNs' `timestamp` of a 410 (ms): the device is deactivated only
        /// if its token was not registered again after it.
        since: Option<i64>,
    },
    /// The TTL passed before the notification could be delivered.
    Expired {
        /// The last failure's reason, if any.
        reason: Option<String>,
        /// HTTP status of the last answer.
        status: Option<u16>,
    },
    /// Try again at `at` (ms).
    Retry {
        /// When.
        at: i64,
        /// Why the last attempt failed.
        reason: String,
        /// HTTP status of the last answer.
        status: Option<u16>,
    },
}

/// Decides what follows an attempt. `attempts` counts this one; `expires_at`
/// is the end of the notification's TTL (ms).
pub fn decide(
    outcome: Outcome,
    attempts: i32,
    now: i64,
    expires_at: Option<i64>,
    policy: &RetryPolicy,
    jitter: f64,
) -> Decision {
    match outcome {
        Outcome::Delivered { provider_message_id, status } => Decision::Delivered { provider_message_id, status },
        Outcome::InvalidToken { reason, status } => {
            Decision::Failed { reason, status: Some(status), deactivate: true, since: None }
        }
        Outcome::Unregistered { reason, status, since } => {
            let since = since.map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64));
            Decision::Failed { reason, status: Some(status), deactivate: true, since }
        }
        Outcome::Rejected { reason, status } => Decision::Failed { reason, status, deactivate: false, since: None },
        // Not this delivery's fault: it waits for the app's credentials to
        // work again, with backoff, until its expiry (not `max_attempts`:
        // failing one by one is what this answer must not do).
        Outcome::CredentialsFailing { reason, status, after } => {
            let delay = match after {
                Some(after) => clamp_retry_after(after, policy.max_ms).max(policy.backoff_ms(attempts, jitter)),
                None => policy.backoff_ms(attempts, jitter),
            };
            let at = now.saturating_add(delay as i64);
            if expires_at.is_some_and(|end| at > end) {
                return Decision::Expired { reason: Some(reason), status };
            }
            Decision::Retry { at, reason, status }
        }
        Outcome::Retry { after, reason, status } => {
            if attempts >= policy.max_attempts {
                return Decision::Failed { reason, status, deactivate: false, since: None };
            }
            let delay = match after {
                Some(after) => clamp_retry_after(after, policy.max_ms),
                None => policy.backoff_ms(attempts, jitter),
            };
            let at = now.saturating_add(delay as i64);
            if expires_at.is_some_and(|end| at > end) {
                return Decision::Expired { reason: Some(reason), status };
            }
            Decision::Retry { at, reason, status }
        }
        // The enum is non-exhaustive: an outcome this version does not know
        // is treated as a permanent failure rather than retried blindly.
        other => Decision::Failed {
            reason: other.reason().unwrap_or("unknown outcome").to_string(),
            status: other.status(),
            deactivate: false,
            since: None,
        },
    }
}

fn clamp_retry_after(after: Duration, max_ms: u64) -> u64 {
    (after.as_millis().min(u128::from(u64::MAX)) as u64).min(max_ms)
}

/// Whether a delivery not yet attempted is past its TTL. A TTL of 0 means
/// "now or never": one attempt is made, none retried.
pub fn expired_before_sending(now: i64, expires_at: Option<i64>, ttl_zero: bool, attempts: i32) -> bool {
    match expires_at {
        Some(end) if ttl_zero => attempts > 0 && now > end,
        Some(end) => now > end,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy { max_attempts: 5, base_ms: 1000, max_ms: 60_000 };

    fn retry(after: Option<u64>) -> Outcome {
        Outcome::Retry { after: after.map(Duration::from_secs), reason: "TooManyRequests".into(), status: Some(429) }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        assert_eq!(POLICY.backoff_ms(1, 1.0), 1000);
        assert_eq!(POLICY.backoff_ms(1, 0.0), 500);
        assert_eq!(POLICY.backoff_ms(3, 1.0), 4000);
        assert_eq!(POLICY.backoff_ms(30, 1.0), 60_000);
        assert_eq!(POLICY.backoff_ms(i32::MAX, 1.0), 60_000);
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        assert_eq!(
            decide(retry(Some(3)), 1, 10_000, None, &POLICY, 0.0),
            Decision::Retry { at: 13_000, reason: "TooManyRequests".into(), status: Some(429) }
        );
        let Decision::Retry { at, .. } = decide(retry(Some(86_400)), 1, 0, None, &POLICY, 0.0) else {
            panic!("retry expected")
        };
        assert_eq!(at, 60_000);
    }

    #[test]
    fn ttl_and_attempts_end_retries() {
        assert!(matches!(decide(retry(Some(3)), 1, 10_000, Some(12_000), &POLICY, 0.0), Decision::Expired { .. }));
        assert!(matches!(decide(retry(None), 5, 0, None, &POLICY, 0.0), Decision::Failed { deactivate: false, .. }));
        assert!(matches!(decide(retry(None), 4, 0, None, &POLICY, 0.0), Decision::Retry { .. }));
    }

    #[test]
    fn final_outcomes_map_directly() {
        let dead = Outcome::InvalidToken { reason: "Unregistered".into(), status: 410 };
        assert_eq!(
            decide(dead, 1, 0, None, &POLICY, 0.5),
            Decision::Failed { reason: "Unregistered".into(), status: Some(410), deactivate: true, since: None }
        );
        let at = UNIX_EPOCH + Duration::from_millis(5_000);
        let gone = Outcome::Unregistered { reason: "Unregistered".into(), status: 410, since: Some(at) };
        assert!(matches!(decide(gone, 1, 0, None, &POLICY, 0.5), Decision::Failed { since: Some(5_000), .. }));
        let refused =
            Outcome::CredentialsFailing { reason: "InvalidProviderToken".into(), status: Some(403), after: None };
        assert!(
            matches!(decide(refused, 9, 0, None, &POLICY, 0.5), Decision::Retry { .. }),
            "refused credentials wait past max_attempts"
        );
        let ok = Outcome::Delivered { provider_message_id: Some("m".into()), status: 200 };
        assert!(matches!(decide(ok, 1, 0, None, &POLICY, 0.5), Decision::Delivered { .. }));
        let rejected = Outcome::Rejected { reason: "TopicDisallowed".into(), status: Some(400) };
        assert!(matches!(decide(rejected, 1, 0, None, &POLICY, 0.5), Decision::Failed { deactivate: false, .. }));
    }

    #[test]
    fn expiry_before_sending() {
        assert!(expired_before_sending(2, Some(1), false, 0));
        assert!(!expired_before_sending(1, Some(1), false, 0));
        assert!(!expired_before_sending(5, Some(1), true, 0), "ttl 0 still gets its one attempt");
        assert!(expired_before_sending(5, Some(1), true, 1));
        assert!(!expired_before_sending(5, None, false, 3));
    }
}
