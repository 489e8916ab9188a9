//! Credentials the mock makes for itself and checks requests against.

use jsonwebtoken::DecodingKey;
use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{json, Value};

use crate::MockError;

/// An APNs .p8 key (P-256, PKCS#8 PEM) with its key id, team and topic.
#[derive(Clone)]
pub struct ApnsKey {
    /// Apple team id (JWT `iss`).
    pub team_id: String,
    /// Key id (JWT `kid`).
    pub key_id: String,
    /// Bundle id the key may send to (`apns-topic`).
    pub topic: String,
    /// The .p8: PKCS#8 PEM private key.
    pub private_key_pem: String,
    pub(crate) verifier: DecodingKey,
}

impl std::fmt::Debug for ApnsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsKey").field("team_id", &self.team_id).field("key_id", &self.key_id).finish()
    }
}

fn upper_id(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| {
            let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            char::from(chars[rng.gen_range(0..chars.len())])
        })
        .collect()
}

impl ApnsKey {
    /// Makes a new P-256 key with a random 10-character key id.
    pub fn generate(team_id: &str, topic: &str) -> Result<Self, MockError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let verifier = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())?;
        Ok(Self {
            team_id: team_id.to_owned(),
            key_id: upper_id(10),
            topic: topic.to_owned(),
            private_key_pem: pair.serialize_pem(),
            verifier,
        })
    }

    /// Ready-to-use pushgate `apns` credentials.
    pub fn credentials_json(&self) -> Value {
        json!({
            "team_id": self.team_id, "key_id": self.key_id, "private_key": self.private_key_pem,
            "topic": self.topic, "environment": "production"
        })
    }
}

/// A Google service account (RSA-2048) of one Firebase project.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// Firebase project id.
    pub project_id: String,
    /// The account's email (assertion `iss`).
    pub client_email: String,
    /// PKCS#8 PEM private key.
    pub private_key_pem: String,
    /// Private key id, as Google's JSON has one.
    pub private_key_id: String,
    pub(crate) verifier: DecodingKey,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey").field("client_email", &self.client_email).finish()
    }
}

impl ServiceAccountKey {
    /// Makes a new RSA-2048 service account for `project_id`.
    pub fn generate(project_id: &str) -> Result<Self, MockError> {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(MockError::rsa)?;
        let private_key_pem = private.to_pkcs8_pem(LineEnding::LF).map_err(MockError::rsa)?.to_string();
        let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).map_err(MockError::rsa)?;
        let suffix = Alphanumeric.sample_string(&mut rand::thread_rng(), 6).to_lowercase();
        Ok(Self {
            project_id: project_id.to_owned(),
            client_email: format!("firebase-adminsdk-{suffix}@{project_id}.iam.gserviceaccount.com"),
            private_key_pem,
            private_key_id: uuid::Uuid::new_v4().simple().to_string(),
            verifier: DecodingKey::from_rsa_pem(public_pem.as_bytes())?,
        })
    }

    /// The service-account JSON, as Google's console gives it, pointing at `token_uri`.
    pub fn json(&self, token_uri: &str) -> Value {
        json!({
            "type": "service_account", "project_id": self.project_id,
            "private_key_id": self.private_key_id, "private_key": self.private_key_pem,
            "client_email": self.client_email, "client_id": "100000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "universe_domain": "googleapis.com"
        })
    }
}
