//! Rate limiting by key: an in-memory token bucket per key, per instance,
//! and a counter of open things per key. Client-key calls use them (client
//! keys are public, so the limits are per client address, with a per-app
//! ceiling behind), as do sends per app and sockets per address. Bursts go
//! up to one second's worth; a rate of 0 turns a limit off. Plain state, no
//! HTTP: the extractors that apply them are in `api`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// A bucket idle this long has refilled (bursts are one second's worth),
/// so it is the same as none: swept, so that keys made by the public client
/// key (one per client address) cannot grow the map without bound.
const REFILLED: Duration = Duration::from_secs(1);

/// Token buckets by key; cheap to clone.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    per_second: u32,
    buckets: Arc<DashMap<String, Bucket>>,
    // When refilled buckets were last swept (at most once per `REFILLED`).
    swept: Arc<Mutex<Instant>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per second per key (0: no limit).
    pub fn new(per_second: u32) -> Self {
        Self { per_second, buckets: Arc::new(DashMap::new()), swept: Arc::new(Mutex::new(Instant::now())) }
    }

    /// Takes one request from `key`'s bucket at `now`, or tells how many
    /// seconds to wait (at least 1) until the next one is allowed.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_second == 0 {
            return Ok(());
        }
        self.sweep(now);
        let rate = f64::from(self.per_second);
        let mut bucket = self.buckets.entry(key.to_string()).or_insert(Bucket { tokens: rate, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - bucket.tokens) / rate).ceil() as u64).max(1))
        }
    }

    /// Drops the buckets idle for [`REFILLED`]: the map then holds only
    /// the keys seen in about the last two seconds.
    fn sweep(&self, now: Instant) {
        {
            let Ok(mut swept) = self.swept.try_lock() else { return };
            if now.saturating_duration_since(*swept) < REFILLED {
                return;
            }
            *swept = now;
        }
        self.buckets.retain(|_, b| now.saturating_duration_since(b.at) < REFILLED);
    }

    /// Keys with a bucket now (tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Counts open things (sockets) per key up to a cap; cheap to clone.
#[derive(Clone, Debug)]
pub struct Counter {
    max: usize,
    counts: Arc<DashMap<String, usize>>,
}

/// One counted thing; dropping it gives its place back.
#[derive(Debug)]
pub struct Counted {
    key: String,
    counts: Arc<DashMap<String, usize>>,
}

impl Counter {
    /// A counter allowing `max` per key (0: no limit).
    pub fn new(max: usize) -> Self {
        Self { max, counts: Arc::new(DashMap::new()) }
    }

    /// Takes a place for `key`, or None when it has `max` already.
    pub fn acquire(&self, key: &str) -> Option<Counted> {
        let mut n = self.counts.entry(key.to_string()).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Counted { key: key.to_string(), counts: self.counts.clone() })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // Entries at zero go, so the map holds only addresses with open sockets.
        self.counts.remove_if_mut(&self.key, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert_eq!(limiter.check("k", t0), Ok(()));
        assert_eq!(limiter.check("k", t0), Ok(()));
        assert_eq!(limiter.check("k", t0), Err(1));
        assert_eq!(limiter.check("other", t0), Ok(()), "buckets are per key");
        assert_eq!(limiter.check("k", t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(limiter.check("k", t0 + Duration::from_millis(500)), Err(1));
    }

    #[test]
    fn counters_cap_and_give_back() {
        let counter = Counter::new(2);
        let a = counter.acquire("ip").expect("first");
        let _b = counter.acquire("ip").expect("second");
        assert!(counter.acquire("ip").is_none());
        assert!(counter.acquire("other").is_some());
        drop(a);
        assert!(counter.acquire("ip").is_some());
    }

    /// Keys idle long enough to have refilled are forgotten, and come back
    /// with a full bucket, as they would have had anyway.
    #[test]
    fn refilled_buckets_are_swept() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        for i in 0..100 {
            limiter.check(&format!("app:10.0.0.{i}"), t0).expect("first request");
        }
        assert_eq!(limiter.tracked(), 100);
        let later = t0 + Duration::from_secs(2);
        limiter.check("app:10.0.1.1", later).expect("first request");
        assert_eq!(limiter.tracked(), 1);
        assert!(limiter.check("app:10.0.0.1", later).is_ok());
        assert!(limiter.check("app:10.0.0.1", later).is_ok());
        assert!(limiter.check("app:10.0.0.1", later).is_err(), "a swept key still has only its burst");
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.check("k", now).is_ok()));
    }
}
