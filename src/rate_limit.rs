//! Rate limiting by key: an in-memory token bucket per key, per instance.
//! Device registration by client keys uses it (client keys are publishable,
//! so a leaked one must not flood the registry): `config.registration_rate`
//! per second, bursts up to one second's worth, 0 turns it off. Plain state,
//! no HTTP: the extractor that applies it is `api::rate_limit`.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

/// Token buckets by key; cheap to clone.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    per_second: u32,
    buckets: Arc<DashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per second per key (0: no limit).
    pub fn new(per_second: u32) -> Self {
        Self { per_second, buckets: Arc::new(DashMap::new()) }
    }

    /// Takes one request from `key`'s bucket at `now`, or tells how many
    /// seconds to wait (at least 1) until the next one is allowed.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_second == 0 {
            return Ok(());
        }
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.check("k", now).is_ok()));
    }
}
