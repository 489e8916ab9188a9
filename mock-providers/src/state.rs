//! What the mock knows and counts, shared by every connection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::behavior::Behaviors;
use crate::credentials::{ApnsKey, ServiceAccountKey};

/// Which stand-in a request reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The APNs stand-in.
    Apns,
    /// The FCM stand-in.
    Fcm,
    /// The Web Push service stand-in.
    #[serde(rename = "webpush")]
    WebPush,
}

/// A push the mock accepted, as it arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// Which stand-in accepted it.
    pub provider: Provider,
    /// Whether it reached the APNs sandbox host (development builds).
    #[serde(default)]
    pub sandbox: bool,
    /// The `apns-*` request headers (APNs); `ttl`, `urgency` and `topic` (Web Push).
    pub headers: BTreeMap<String, String>,
    /// The APNs payload, the FCM `message`, or the decrypted Web Push payload.
    pub payload: Value,
}

/// Totals since start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Authenticated, well-formed APNs requests.
    pub apns_requests: u64,
    /// APNs requests answered 200.
    pub apns_delivered: u64,
    /// Authenticated, well-formed FCM requests.
    pub fcm_requests: u64,
    /// FCM requests answered 200.
    pub fcm_delivered: u64,
    /// Requests to the OAuth token endpoint.
    pub token_requests: u64,
    /// Distinct valid APNs provider tokens (JWTs) seen.
    pub apns_jwts: u64,
    /// Web Push requests with a valid VAPID token and headers.
    #[serde(default)]
    pub webpush_requests: u64,
    /// Web Push requests answered 201 (decrypted and kept).
    #[serde(default)]
    pub webpush_delivered: u64,
    /// Client connections accepted (TLS handshake done) since start.
    pub connections_opened: u64,
    /// Client connections open now.
    pub connections_open: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) apns_requests: AtomicU64,
    pub(crate) apns_delivered: AtomicU64,
    pub(crate) fcm_requests: AtomicU64,
    pub(crate) fcm_delivered: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) apns_jwts: AtomicU64,
    pub(crate) webpush_requests: AtomicU64,
    pub(crate) webpush_delivered: AtomicU64,
    pub(crate) connections_opened: AtomicU64,
    pub(crate) connections_open: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Per-token counts and the last payloads.
#[derive(Debug, Default)]
pub(crate) struct TokenRecord {
    pub(crate) attempts: u64,
    pub(crate) delivered: u64,
    pub(crate) kept: VecDeque<Received>,
}

/// A verified APNs provider token.
#[derive(Debug)]
pub(crate) struct JwtEntry {
    pub(crate) iat: u64,
    pub(crate) topic: String,
    pub(crate) kid: String,
    pub(crate) expired: bool,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) base_url: String,
    pub(crate) apns_keys: RwLock<HashMap<String, ApnsKey>>,
    pub(crate) accounts: RwLock<HashMap<String, ServiceAccountKey>>,
    /// Verified JWTs, so the ECDSA check runs once per token, not per push.
    pub(crate) jwts: DashMap<String, JwtEntry>,
    /// When each APNs key last got a new provider token.
    pub(crate) key_updates: DashMap<String, Option<Instant>>,
    /// Least time between two new provider tokens of one key.
    pub(crate) token_update_window: Duration,
    /// APNs key ids whose tokens are refused (`InvalidProviderToken`).
    pub(crate) revoked_keys: DashMap<String, ()>,
    /// The path under which the APNs sandbox host is served.
    pub(crate) sandbox_path: String,
    /// How the OAuth token endpoint answers every request, when scripted.
    pub(crate) oauth_failure: RwLock<Option<crate::OAuthFailure>>,
    /// Issued access tokens → project id.
    pub(crate) access_tokens: DashMap<String, String>,
    pub(crate) behaviors: Behaviors,
    pub(crate) records: DashMap<String, TokenRecord>,
    pub(crate) keep_payloads: usize,
    pub(crate) counters: Counters,
    /// Issued Web Push subscriptions by id, with the browser's private key.
    pub(crate) subscribers: DashMap<String, Subscriber>,
    /// Verified VAPID tokens (`token|key`) → expiry, so the ECDSA check runs
    /// once per token, not per push.
    pub(crate) vapid_tokens: DashMap<String, u64>,
    /// Bumped to close every open connection with a GOAWAY, as Apple and
    /// Google do to idle connections and during maintenance.
    pub(crate) goaway: tokio::sync::watch::Sender<u64>,
    /// How long every push waits for its answer.
    pub(crate) latency: Duration,
}

impl State {
    pub(crate) fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// Counts an attempt for `token`; returns its 1-based number. With
    /// `keep_payloads: 0` (load tests) only tokens whose answer depends on
    /// the attempt by name are counted (scripted ones count their own): a
    /// map entry per token was a large share of the stand-ins' CPU in a big
    /// fan-out. Others answer the same whatever the attempt.
    pub(crate) fn record_attempt(&self, token: &str) -> u64 {
        if self.keep_payloads == 0 && !crate::behavior::depends_on_attempt(token) {
            return 1;
        }
        let mut record = self.records.entry(token.to_owned()).or_default();
        record.attempts += 1;
        record.attempts
    }

    /// Counts a delivery for `token` and keeps its payload; with
    /// `keep_payloads: 0`, only the totals (in `counters`) count it.
    pub(crate) fn record_delivery(&self, token: &str, received: Received) {
        if self.keep_payloads == 0 {
            return;
        }
        let mut record = self.records.entry(token.to_owned()).or_default();
        record.delivered += 1;
        if record.kept.len() >= self.keep_payloads {
            record.kept.pop_front();
        }
        record.kept.push_back(received);
    }

    pub(crate) fn received(&self, token: &str) -> Vec<Received> {
        self.records.get(token).map(|r| r.kept.iter().cloned().collect()).unwrap_or_default()
    }

    pub(crate) fn counts(&self, token: &str) -> (u64, u64) {
        self.records.get(token).map(|r| (r.attempts, r.delivered)).unwrap_or_default()
    }

    pub(crate) fn stats(&self) -> MockStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MockStats {
            apns_requests: get(&c.apns_requests),
            apns_delivered: get(&c.apns_delivered),
            fcm_requests: get(&c.fcm_requests),
            fcm_delivered: get(&c.fcm_delivered),
            token_requests: get(&c.token_requests),
            apns_jwts: get(&c.apns_jwts),
            webpush_requests: get(&c.webpush_requests),
            webpush_delivered: get(&c.webpush_delivered),
            connections_opened: get(&c.connections_opened),
            connections_open: get(&c.connections_open),
        }
    }
}

/// What the Web Push stand-in keeps of a subscription: the browser's keys
/// (its private key, so that it can decrypt).
pub(crate) struct Subscriber {
    pub(crate) secret: p256::SecretKey,
    pub(crate) public: Vec<u8>,
    pub(crate) auth: [u8; 16],
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}
