//! One send: the device it goes to and the notification's absolute expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::apns::ApnsEnvironment;

/// When a notification stops being worth delivering (API.md, "Expiry and
/// duplicates"). It is absolute: every attempt, first or retry, tells the
/// provider the same instant, so a retry never extends a notification's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    /// No TTL given: the provider's default (APNs and FCM keep it 4 weeks).
    #[default]
    ProviderDefault,
    /// `ttl_seconds: 0`: one attempt now, not stored by the provider
    /// (`apns-expiration: 0`, `android.ttl: "0s"`).
    NowOrNever,
    /// Deliverable until this instant (`created_at + ttl_seconds`).
    At(SystemTime),
}

impl Expiry {
    /// The expiry of a notification created at `created_at` with `ttl_seconds`.
    pub fn from_ttl(created_at: SystemTime, ttl_seconds: Option<u32>) -> Self {
        match ttl_seconds {
            None => Expiry::ProviderDefault,
            Some(0) => Expiry::NowOrNever,
            Some(ttl) => Expiry::At(created_at + Duration::from_secs(u64::from(ttl))),
        }
    }

    /// Whether a delivery is past its expiry at `now` and must not be sent
    /// (it is `expired`). `attempts_made` counts earlier attempts: a
    /// now-or-never notification gets its one attempt, never a retry.
    pub fn has_passed(&self, now: SystemTime, attempts_made: u32) -> bool {
        match self {
            Expiry::ProviderDefault => false,
            Expiry::NowOrNever => attempts_made > 0,
            Expiry::At(at) => now >= *at,
        }
    }

    /// `apns-expiration` in unix seconds: the same instant on every attempt;
    /// `None` leaves Apple's default.
    pub fn apns_expiration(&self) -> Option<u64> {
        match self {
            Expiry::ProviderDefault => None,
            Expiry::NowOrNever => Some(0),
            Expiry::At(at) => Some(at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()),
        }
    }

    /// FCM `android.ttl` at `now`: what remains of the notification's life,
    /// rounded up to whole seconds (`"0s"` once nothing remains).
    pub fn fcm_ttl(&self, now: SystemTime) -> Option<String> {
        match self {
            Expiry::ProviderDefault => None,
            Expiry::NowOrNever => Some("0s".to_owned()),
            Expiry::At(at) => {
                let left = at.duration_since(now).unwrap_or_default();
                Some(format!("{}s", left.as_secs() + u64::from(left.subsec_nanos() > 0)))
            }
        }
    }
}

/// Where one send goes, beside the notification and its options.
#[derive(Clone, Copy, Debug)]
pub struct Push<'a> {
    /// The device token (APNs) or registration token (FCM).
    pub token: &'a str,
    /// The APNs host to use (the device's environment, else the app's);
    /// ignored by FCM.
    pub environment: ApnsEnvironment,
    /// The notification's absolute expiry.
    pub expiry: Expiry,
}

impl<'a> Push<'a> {
    /// A push to `token` in the production environment with the provider's default expiry.
    pub fn to(token: &'a str) -> Self {
        Self { token, environment: ApnsEnvironment::Production, expiry: Expiry::ProviderDefault }
    }

    /// The same push to another APNs environment.
    pub fn environment(self, environment: ApnsEnvironment) -> Self {
        Self { environment, ..self }
    }

    /// The same push with an absolute expiry.
    pub fn expiry(self, expiry: Expiry) -> Self {
        Self { expiry, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_absolute_and_ttl_zero_is_now_or_never() {
        let created = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = Expiry::from_ttl(created, Some(3600));
        assert_eq!(at.apns_expiration(), Some(1_003_600));
        // A retry ten minutes later tells Apple the same instant, Google what remains.
        assert_eq!(at.fcm_ttl(created), Some("3600s".into()));
        assert_eq!(at.fcm_ttl(created + Duration::from_secs(600)), Some("3000s".into()));
        assert_eq!(at.fcm_ttl(created + Duration::from_secs(7200)), Some("0s".into()));
        assert!(!at.has_passed(created + Duration::from_secs(3599), 3));
        assert!(at.has_passed(created + Duration::from_secs(3600), 0));

        let zero = Expiry::from_ttl(created, Some(0));
        assert_eq!((zero.apns_expiration(), zero.fcm_ttl(created)), (Some(0), Some("0s".into())));
        assert!(!zero.has_passed(created + Duration::from_secs(5), 0), "the one attempt is made");
        assert!(zero.has_passed(created + Duration::from_secs(5), 1), "but never retried");

        let none = Expiry::from_ttl(created, None);
        assert_eq!((none.apns_expiration(), none.fcm_ttl(created)), (None, None));
        assert!(!none.has_passed(created + Duration::from_secs(1 << 30), 9));
    }
}
