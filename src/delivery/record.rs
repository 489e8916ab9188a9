//! What becomes of a delivery, in one place for the fan-out and the worker:
//! the rules that end a delivery without a provider call (unknown platform,
//! no provider, expired, cancelled, app gone), the update a provider's
//! answer makes, and the store write of results: retried, because the
//! provider calls behind it are done, then counted in the metrics.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use super::retry::{self, Decision};
use super::sender::{Job, Prepared, NO_PROVIDER};
use super::Signals;
use crate::domain::{time::now_ms, time::Timestamp, Platform};
use crate::store::{DeadToken, DeliveryStatus, DeliveryUpdate, Providers, StoreResult};

/// Attempts at writing results before giving up on them.
const WRITE_ATTEMPTS: u32 = 8;

/// Why a delivery ends without a provider call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unsent {
    /// The stored platform is neither `ios` nor `android`.
    UnknownPlatform,
    /// The app has no credentials for the device's platform.
    NoProvider,
    /// The notification's TTL passed before it was sent.
    Expired,
    /// The notification was cancelled (or its stored JSON is unreadable).
    Cancelled,
    /// The app was deleted.
    AppGone,
}

impl Unsent {
    /// The final update of the delivery keyed `(id, created_at)` (zeros
    /// for a row not yet created) to `platform`.
    pub(super) fn update(self, (id, created_at): (i64, i64), platform: &str, now: i64) -> DeliveryUpdate {
        let (status, reason) = match self {
            Self::UnknownPlatform => (DeliveryStatus::Failed, Some("unknown platform")),
            Self::NoProvider => (DeliveryStatus::Failed, Some(NO_PROVIDER)),
            Self::Expired => (DeliveryStatus::Expired, None),
            Self::Cancelled => (DeliveryStatus::Cancelled, None),
            Self::AppGone => (DeliveryStatus::Failed, Some("the app no longer exists")),
        };
        DeliveryUpdate {
            id,
            created_at,
            platform: platform_name(platform),
            status,
            inc: 0,
            next_attempt_at: now,
            provider_status: None,
            reason: reason.map(str::to_owned),
            provider_message_id: None,
            delivered_at: None,
            attempt: None,
        }
    }
}

/// Whether a delivery to `platform` of `notification`, after `attempts`,
/// goes to a provider now: its platform, or why not. `providers` is `None`
/// where the store already decided it (deliveries created with their
/// notification are born failed without a provider).
pub(super) fn sendable(
    platform: &str,
    providers: Option<Providers>,
    notification: &Prepared,
    attempts: i32,
    now: i64,
) -> Result<Platform, Unsent> {
    let platform = Platform::parse(platform).ok_or(Unsent::UnknownPlatform)?;
    if providers.is_some_and(|p| !p.has(platform)) {
        return Err(Unsent::NoProvider);
    }
    if retry::expired_before_sending(now, notification.expires_at, notification.ttl_zero, attempts) {
        return Err(Unsent::Expired);
    }
    Ok(platform)
}

/// A delivery left for later (a local-time send): pending, due `at`, with
/// no attempt made; the workers claim it then like any due delivery.
pub(super) fn scheduled(platform: Platform, at: i64) -> DeliveryUpdate {
    DeliveryUpdate {
        id: 0,
        created_at: 0,
        platform: platform.as_str(),
        status: DeliveryStatus::Pending,
        inc: 0,
        next_attempt_at: at,
        provider_status: None,
        reason: None,
        provider_message_id: None,
        delivered_at: None,
        attempt: None,
    }
}

/// The delivery update of a decided job, and its device to deactivate
/// when the provider declared the token dead.
pub(super) fn decided(job: &Job, decision: Decision, latency_ms: u64) -> (DeliveryUpdate, Option<DeadToken>) {
    let dead = match &decision {
        Decision::Failed { deactivate: true, reason, since, .. } => job.device_id.as_ref().map(|device_id| DeadToken {
            app_id: job.app_id.clone(),
            device_id: device_id.clone(),
            token: job.token.clone(),
            reason: reason.clone(),
            since: *since,
            platform: job.platform.as_str(),
        }),
        _ => None,
    };
    (update_for((job.delivery_id, job.created_at), job.platform.as_str(), decision, now_ms(), latency_ms), dead)
}

/// Writes results with `write`, retrying a failing store for a while with
/// a growing pause: the provider calls are done and should not be made
/// again. Once written, they are counted in the metrics and, when some are
/// retries, the workers are woken (one may be due before their next poll).
/// The last error when every attempt failed: the caller says what follows.
pub(super) async fn write<'a, T, Fut>(
    signals: &Signals,
    updates: impl Iterator<Item = &'a DeliveryUpdate> + Clone,
    dead: &[DeadToken],
    mut write: impl FnMut() -> Fut,
) -> StoreResult<T>
where
    Fut: Future<Output = StoreResult<T>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    let written = loop {
        match write().await {
            Ok(written) => break written,
            Err(e) if attempt == WRITE_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, attempt, "writing delivery results failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    };
    count_results(updates.clone(), dead);
    if updates.into_iter().any(|u| u.status == DeliveryStatus::Pending) {
        signals.work.notify_one();
    }
    Ok(written)
}

/// Metrics of recorded results, one counter update per kind of outcome.
fn count_results<'a>(updates: impl IntoIterator<Item = &'a DeliveryUpdate>, dead: &[DeadToken]) {
    let mut kinds: HashMap<(&str, &str, Option<&str>), u64> = HashMap::new();
    // A pending row without a provider call is scheduled, not an outcome.
    for u in updates.into_iter().filter(|u| u.status != DeliveryStatus::Pending || u.inc > 0) {
        let reason = if u.status == DeliveryStatus::Delivered { None } else { u.reason.as_deref() };
        let outcome = if u.status == DeliveryStatus::Pending { "retry" } else { u.status.as_str() };
        *kinds.entry((u.platform, outcome, reason)).or_default() += 1;
    }
    for ((platform, outcome, reason), n) in kinds {
        crate::metrics::deliveries(platform, outcome, reason, n);
    }
    for d in dead {
        crate::metrics::tokens_deactivated(d.platform, 1);
    }
}

/// The static name of a stored platform, for metrics.
fn platform_name(platform: &str) -> &'static str {
    Platform::parse(platform).map_or("unknown", Platform::as_str)
}

fn update_for(
    key: (i64, i64),
    platform: &'static str,
    decision: Decision,
    now: i64,
    latency_ms: u64,
) -> DeliveryUpdate {
    let update = update_of(key, platform, decision, now);
    let attempt = serde_json::json!({
        "at": Timestamp(now),
        "provider_status": update.provider_status,
        "reason": update.reason,
        "latency_ms": latency_ms,
    });
    DeliveryUpdate { attempt: Some(attempt.to_string()), ..update }
}

/// The update of `decision`, without its attempt.
fn update_of((id, created_at): (i64, i64), platform: &'static str, decision: Decision, now: i64) -> DeliveryUpdate {
    let status_of = |s: Option<u16>| s.map(i32::from);
    let base = DeliveryUpdate {
        id,
        created_at,
        platform,
        status: DeliveryStatus::Failed,
        inc: 1,
        next_attempt_at: now,
        provider_status: None,
        reason: None,
        provider_message_id: None,
        delivered_at: None,
        attempt: None,
    };
    match decision {
        Decision::Delivered { provider_message_id, status } => DeliveryUpdate {
            status: DeliveryStatus::Delivered,
            provider_status: Some(i32::from(status)),
            provider_message_id,
            delivered_at: Some(now),
            ..base
        },
        Decision::Failed { reason, status, .. } => {
            DeliveryUpdate { provider_status: status_of(status), reason: Some(reason), ..base }
        }
        Decision::Expired { reason, status } => {
            DeliveryUpdate { status: DeliveryStatus::Expired, provider_status: status_of(status), reason, ..base }
        }
        Decision::Retry { at, reason, status } => DeliveryUpdate {
            status: DeliveryStatus::Pending,
            next_attempt_at: at,
            provider_status: status_of(status),
            reason: Some(reason),
            ..base
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushgate_providers::{DeliveryOptions, NotificationInfo};

    fn notification(expires_at: Option<i64>, ttl_seconds: Option<u32>) -> Prepared {
        let options = DeliveryOptions { ttl_seconds, ..DeliveryOptions::default() };
        Prepared::new("n".into(), NotificationInfo::default(), options, expires_at)
    }

    #[test]
    fn the_unsendable_rules_apply_in_order() {
        let both = Providers { apns: true, fcm: true, web_push: true };
        let ios_only = Providers { apns: true, fcm: false, web_push: false };
        let live = notification(None, None);
        let past = notification(Some(10), Some(1));
        assert_eq!(sendable("huawei", Some(both), &past, 0, 20), Err(Unsent::UnknownPlatform));
        assert_eq!(sendable("android", Some(ios_only), &past, 0, 20), Err(Unsent::NoProvider));
        assert_eq!(sendable("android", None, &live, 0, 20), Ok(Platform::Android));
        assert_eq!(sendable("ios", Some(ios_only), &past, 0, 20), Err(Unsent::Expired));
        assert_eq!(sendable("ios", Some(ios_only), &live, 3, 20), Ok(Platform::Ios));
    }

    #[test]
    fn unsent_deliveries_get_their_final_state_without_an_attempt() {
        let update = Unsent::NoProvider.update((7, 3), "android", 5);
        assert_eq!((update.id, update.created_at, update.status, update.inc), (7, 3, DeliveryStatus::Failed, 0));
        assert_eq!(update.reason.as_deref(), Some(NO_PROVIDER));
        let update = Unsent::UnknownPlatform.update((0, 0), "huawei", 5);
        assert_eq!(
            (update.status, update.platform, update.reason.as_deref()),
            (DeliveryStatus::Failed, "unknown", Some("unknown platform"))
        );
        assert_eq!(Unsent::Expired.update((1, 1), "ios", 5).status, DeliveryStatus::Expired);
        assert_eq!(Unsent::Cancelled.update((1, 1), "ios", 5).status, DeliveryStatus::Cancelled);
    }
}
