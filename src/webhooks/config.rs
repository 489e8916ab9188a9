//! Settings of webhooks (`[webhook]` in pushgate.toml,
//! `PUSHGATE_WEBHOOK_*` in the environment, both read by `crate::config`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How webhook events are batched, sent and retried.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Allow URLs on loopback, private and link-local addresses (tests, on-premise).
    pub allow_private: bool,
    /// Pauses before each retry, comma-separated (`ms`, `s`, `m`, `h`, `d`); a
    /// message is failed after the last.
    pub retry_schedule: RetrySchedule,
    /// Deadline of one attempt (milliseconds).
    pub timeout_ms: u64,
    /// An endpoint whose attempts have all failed for this long is disabled (seconds).
    pub disable_after_seconds: i64,
    /// How long the first `device.deactivated` / `delivery.failed` item of a
    /// batch waits for more (milliseconds).
    pub batch_wait_ms: u64,
    /// Most items in one batched event.
    pub batch_max: usize,
    /// Attempts in flight at once per instance.
    pub concurrency: usize,
    /// How often an idle webhook worker looks for events (milliseconds).
    pub poll_interval_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_schedule: RetrySchedule::default(),
            timeout_ms: 15_000,
            disable_after_seconds: 5 * 24 * 3600,
            batch_wait_ms: 1000,
            batch_max: 1000,
            concurrency: 32,
            poll_interval_ms: 250,
        }
    }
}

impl WebhookConfig {
    /// The deadline of one attempt.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The idle poll period (at least 10 ms, so a zero cannot spin).
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }
}

/// The pauses before each retry, read from text such as `5s,5m,30m,2h`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct RetrySchedule {
    text: String,
    pauses: Vec<Duration>,
}

impl Default for RetrySchedule {
    /// About 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: a day and a half of tries.
    fn default() -> Self {
        Self::try_from("5s,5m,30m,2h,5h,10h,10h".to_string())
            .unwrap_or(Self { text: String::new(), pauses: Vec::new() })
    }
}

impl RetrySchedule {
    /// The pause after failed attempt number `attempt` (1 for the first);
    /// `None` once the schedule is spent.
    pub fn after(&self, attempt: i32) -> Option<Duration> {
        usize::try_from(attempt).ok().and_then(|n| n.checked_sub(1)).and_then(|i| self.pauses.get(i)).copied()
    }
}

impl TryFrom<String> for RetrySchedule {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let pauses =
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(pause).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { text, pauses })
    }
}

impl From<RetrySchedule> for String {
    fn from(s: RetrySchedule) -> Self {
        s.text
    }
}

/// `250ms`, `5s`, `5m`, `2h`, `1d`.
fn pause(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?} is not a number with a unit (ms, s, m, h, d)"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?} has no unit: use ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_the_documented_one() {
        let s = RetrySchedule::default();
        let hours: Vec<u64> = (1..=7).filter_map(|a| s.after(a)).map(|d| d.as_secs()).collect();
        assert_eq!(hours, [5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
        assert_eq!(s.after(8), None);
        assert_eq!(s.after(0), None);
    }

    #[test]
    fn schedules_are_read_with_their_units() {
        let s = RetrySchedule::try_from("200ms, 1s,2m".to_string()).expect("valid");
        assert_eq!(s.after(1), Some(Duration::from_millis(200)));
        assert_eq!(s.after(3), Some(Duration::from_secs(120)));
        assert!(RetrySchedule::try_from("5".to_string()).is_err());
        assert!(RetrySchedule::try_from("5 minutes".to_string()).is_err());
        assert_eq!(String::from(s), "200ms, 1s,2m");
    }
}
