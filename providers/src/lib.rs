//! APNs, FCM and Web Push clients for pushgate.
//!
//! This crate turns a provider-neutral [`NotificationInfo`] plus
//! [`DeliveryOptions`] into requests to Apple and Google, sends them over
//! HTTP/2 and classifies every answer into one [`Outcome`]. It knows nothing of
//! databases or HTTP servers: the service decides what to do with the outcome.

pub mod apns;
pub mod config;
pub mod error;
pub mod fcm;
pub mod info;
pub mod outcome;
pub mod push;
pub mod retry_after;
mod transport;
pub mod webpush;

mod json;

pub use apns::{ApnsClient, ApnsCredentials, ApnsEnvironment, MemoryTokenCache, ProviderTokenCache};
pub use config::ProviderConfig;
pub use error::{PayloadError, ProviderError};
pub use fcm::{FcmClient, FcmCredentials, ServiceAccount};
pub use info::{DeliveryOptions, NotificationInfo, Priority};
pub use outcome::Outcome;
pub use push::{Expiry, Push};
pub use webpush::{WebPushClient, WebPushCredentials};
