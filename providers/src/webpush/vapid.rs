//! VAPID (RFC 8292): the app's P-256 key pair, and the ES256 JWT that
//! proves a push comes from it, signed once per push service origin and
//! reused until near its expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;

use crate::error::ProviderError;

/// How long a VAPID JWT is valid: half of the 24 hours RFC 8292 allows, so
/// push services with a clock ahead still take it.
const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;
/// A cached JWT is signed again when less than this is left of it.
const RENEW_BEFORE_SECS: u64 = 3600;

/// A VAPID key pair (P-256).
pub struct VapidKey {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey").field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}

fn invalid(source: JwtError) -> ProviderError {
    ProviderError::InvalidKey { what: "VAPID", source }
}

impl VapidKey {
    /// A new random key pair.
    pub fn generate() -> Result<Self, ProviderError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| invalid(ErrorKind::InvalidEcdsaKey.into()))?;
        Self::from_pkcs8(doc.as_ref().to_vec())
    }

    /// Reads a PKCS#8 PEM (`BEGIN PRIVATE KEY`) of a P-256 key, as
    /// `openssl genpkey` and the APNs `.p8` files write them.
    pub fn from_pem(pem: &str) -> Result<Self, ProviderError> {
        let body: String = pem
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or_else(|| invalid(ErrorKind::InvalidKeyFormat.into()))?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = STANDARD.decode(body).map_err(|_| invalid(ErrorKind::InvalidKeyFormat.into()))?;
        Self::from_pkcs8(der)
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, ProviderError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &SystemRandom::new())
            .map_err(|_| invalid(ErrorKind::InvalidEcdsaKey.into()))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Self { pkcs8, public })
    }

    /// The private key as PKCS#8 PEM, to store.
    pub fn to_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.pkcs8);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// The public key, uncompressed point in base64url: the browser's
    /// `applicationServerKey` and the `k` of the `Authorization` header.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.public)
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

/// Signs the `Authorization: vapid t=…, k=…` header of one app, cached per
/// push service origin.
pub struct VapidSigner {
    key: EncodingKey,
    public_key: String,
    subject: String,
    /// Origin → (header value, expiry in unix seconds).
    cache: Mutex<HashMap<String, (String, u64)>>,
}

impl std::fmt::Debug for VapidSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidSigner").field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl VapidSigner {
    /// A signer for `key`, naming `subject` (`mailto:` or `https:`) as the contact.
    pub fn new(key: &VapidKey, subject: &str) -> Result<Self, ProviderError> {
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(ProviderError::InvalidField {
                field: "subject",
                reason: "the VAPID subject is a mailto: or https: URL".into(),
            });
        }
        Ok(Self {
            key: EncodingKey::from_ec_der(&key.pkcs8),
            public_key: key.public_key(),
            subject: subject.to_owned(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The `Authorization` header value for pushes to `origin`
    /// (`https://host[:port]`) at `now`.
    pub fn authorization(&self, origin: &str, now: SystemTime) -> Result<String, JwtError> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((header, exp)) = cache.get(origin) {
            if *exp > now + RENEW_BEFORE_SECS {
                return Ok(header.clone());
            }
        }
        let exp = now + TOKEN_LIFETIME_SECS;
        let claims = Claims { aud: origin, exp, sub: &self.subject };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.key)?;
        let header = format!("vapid t={jwt}, k={}", self.public_key);
        cache.insert(origin.to_owned(), (header.clone(), exp));
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use std::time::Duration;

    #[test]
    fn keys_round_trip_through_pem_and_sign_verifiable_tokens() {
        let key = VapidKey::generate().expect("generates");
        let again = VapidKey::from_pem(&key.to_pem()).expect("reads its own PEM");
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(URL_SAFE_NO_PAD.decode(key.public_key()).expect("base64url").len(), 65);
        assert!(VapidKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());

        let signer = VapidSigner::new(&key, "mailto:ops@example.com").expect("signer");
        let now = SystemTime::now();
        let header = signer.authorization("https://push.example", now).expect("signs");
        let (t, k) = header.strip_prefix("vapid t=").and_then(|h| h.split_once(", k=")).expect("vapid t=, k=");
        assert_eq!(k, key.public_key());
        let point = URL_SAFE_NO_PAD.decode(k).expect("k");
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..]));
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://push.example"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            t,
            &DecodingKey::from_ec_components(&x, &y).expect("key"),
            &validation,
        )
        .expect("verifies")
        .claims;
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let exp = claims["exp"].as_u64().expect("exp");
        let now_s = now.duration_since(UNIX_EPOCH).expect("clock").as_secs();
        assert!(exp > now_s && exp <= now_s + 24 * 3600, "exp within 24 h");

        // Cached per origin until an hour before it expires.
        assert_eq!(
            signer.authorization("https://push.example", now + Duration::from_secs(600)).ok(),
            Some(header.clone())
        );
        assert_ne!(signer.authorization("https://other.example", now).ok(), Some(header.clone()));
        let late = now + Duration::from_secs(TOKEN_LIFETIME_SECS - 60);
        assert_ne!(signer.authorization("https://push.example", late).ok(), Some(header));
        assert!(VapidSigner::new(&key, "ops@example.com").is_err());
    }
}
