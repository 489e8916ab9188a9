//! Apple Push Notification service: token auth, payloads, classification.

pub mod classify;
mod client;
pub mod payload;
pub mod token;

use serde::{Deserialize, Serialize};

pub use client::ApnsClient;
pub use token::{CacheError, MemoryTokenCache, ProviderTokenCache, SharedToken, TokenKey};

use crate::config::{APNS_PRODUCTION_URL, APNS_SANDBOX_URL};

/// Which APNs environment the app's tokens belong to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApnsEnvironment {
    /// Apps from the App Store, TestFlight and ad-hoc builds.
    #[default]
    Production,
    /// Development builds run from Xcode.
    Sandbox,
}

impl ApnsEnvironment {
    /// Apple's host for this environment.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ApnsEnvironment::Production => APNS_PRODUCTION_URL,
            ApnsEnvironment::Sandbox => APNS_SANDBOX_URL,
        }
    }
}

/// Token-based APNs credentials of one app.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApnsCredentials {
    /// The Apple developer team id (JWT `iss`).
    pub team_id: String,
    /// The id of the .p8 key (JWT header `kid`).
    pub key_id: String,
    /// The .p8 key: a PKCS#8 PEM of a P-256 private key.
    pub private_key: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// The app's environment: the host of devices that do not name theirs.
    /// Production unless told otherwise.
    #[serde(default)]
    pub environment: ApnsEnvironment,
}

// The private key must never reach logs.
impl std::fmt::Debug for ApnsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsCredentials")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("private_key", &"<redacted>")
            .field("topic", &self.topic)
            .field("environment", &self.environment)
            .finish()
    }
}
