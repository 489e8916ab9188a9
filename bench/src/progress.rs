//! Progress on stderr while the bench runs: a fan-out of a million devices
//! takes minutes, and stdout carries only the JSON result lines.

use std::time::{Duration, Instant};

use crate::StoreKind;

/// Prints one progress line about `kind`'s store.
pub fn note(kind: Option<StoreKind>, what: &str) {
    eprintln!("pushgate-bench [{}]: {what}", kind.map_or("-", StoreKind::as_str));
}

/// Says when a long wait is due for another progress line.
pub struct Ticker {
    last: Instant,
    every: Duration,
}

impl Ticker {
    /// A line every five seconds.
    pub fn new() -> Self {
        Self { last: Instant::now(), every: Duration::from_secs(5) }
    }

    /// True at most once per interval.
    pub fn due(&mut self) -> bool {
        let due = self.last.elapsed() >= self.every;
        if due {
            self.last = Instant::now();
        }
        due
    }
}
