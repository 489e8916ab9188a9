//! Web Push to browsers: VAPID (RFC 8292), `aes128gcm` payload encryption
//! (RFC 8291) and the push service's answers (RFC 8030).
//!
//! The cryptography is `ring`'s (ECDH P-256, HKDF-SHA256, AES-128-GCM,
//! ECDSA P-256): it is already compiled for TLS, so Web Push adds no crate.

mod client;
pub mod encrypt;
pub mod vapid;

use serde::{Deserialize, Serialize};

pub use client::{payload, WebPushClient};
pub use encrypt::{Subscription, MAX_PAYLOAD};
pub use vapid::{VapidKey, VapidSigner};

/// Web Push credentials of one app: its VAPID key pair and contact.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushCredentials {
    /// Who push services may contact about this sender: `mailto:…` or `https://…` (JWT `sub`).
    pub subject: String,
    /// The VAPID private key: PKCS#8 PEM of a P-256 key.
    pub private_key: String,
}

impl std::fmt::Debug for WebPushCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushCredentials").field("subject", &self.subject).finish_non_exhaustive()
    }
}
