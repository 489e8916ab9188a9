//! Firebase Cloud Messaging HTTP v1: OAuth2, messages, classification.

pub mod classify;
mod client;
pub mod message;
pub mod oauth;

use serde::{Deserialize, Serialize};

pub use client::FcmClient;

/// Google's OAuth2 token endpoint, used when the service account names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// FCM credentials of one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcmCredentials {
    /// The Google service-account JSON, as downloaded from the console.
    pub service_account: ServiceAccount,
}

/// The fields of a Google service-account JSON that FCM needs; the others
/// are ignored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    /// The Firebase project the messages are sent for.
    pub project_id: String,
    /// RSA private key, PKCS#8 PEM.
    pub private_key: String,
    /// The account's email, the JWT assertion's `iss`.
    pub client_email: String,
    /// Where assertions are exchanged for access tokens.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    DEFAULT_TOKEN_URI.to_owned()
}

// The private key must never reach logs.
impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("private_key", &"<redacted>")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_googles_json_ignoring_other_fields() {
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
            "type": "service_account", "project_id": "p", "private_key_id": "k",
            "private_key": "-----BEGIN PRIVATE KEY-----\n...", "client_email": "a@p.iam.gserviceaccount.com",
            "client_id": "1", "auth_uri": "https://accounts.google.com/o/oauth2/auth"
        }))
        .expect("parses");
        assert_eq!(sa.token_uri, DEFAULT_TOKEN_URI);
        assert_eq!(sa.client_email, "a@p.iam.gserviceaccount.com");
        assert!(!format!("{sa:?}").contains("BEGIN"));
    }
}
