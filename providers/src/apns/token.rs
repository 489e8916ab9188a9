//! The provider token: an ES256 JWT signed with the app's .p8 key, cached.
//!
//! Apple wants the same token reused for up to an hour and refuses updates
//! more often than every 20 minutes (`TooManyProviderTokenUpdates`), so one
//! token is shared by every request of a client and renewed at 50 minutes.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::error::ProviderError;

/// Age at which a token is renewed before use.
pub const RENEW_AFTER: Duration = Duration::from_secs(50 * 60);
/// Least time between two renewals forced by `ExpiredProviderToken`.
pub const MIN_FORCED_INTERVAL: Duration = Duration::from_secs(20 * 60);

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

/// A signed provider token and when it was made.
#[derive(Debug, PartialEq, Eq)]
pub struct ProviderToken {
    /// The JWT, as sent after `bearer `.
    pub jwt: String,
    /// Its `iat`.
    pub issued_at: SystemTime,
    /// `bearer <jwt>`, made once for every request that sends it.
    pub authorization: http::HeaderValue,
}

#[derive(Debug, Default)]
struct State {
    current: Option<Arc<ProviderToken>>,
    last_forced: Option<SystemTime>,
}

/// Signs and caches provider tokens for one key.
pub struct TokenSigner {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    state: RwLock<State>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("key_id", &self.key_id).field("team_id", &self.team_id).finish()
    }
}

impl TokenSigner {
    /// Reads the .p8 PEM and signs one token to prove the key works.
    pub fn new(private_key_pem: &str, key_id: &str, team_id: &str) -> Result<Self, ProviderError> {
        let invalid = |source| ProviderError::InvalidKey { what: "APNs .p8", source };
        let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes()).map_err(invalid)?;
        let signer =
            Self { key, key_id: key_id.to_owned(), team_id: team_id.to_owned(), state: RwLock::new(State::default()) };
        signer.sign(SystemTime::now()).map_err(invalid)?;
        Ok(signer)
    }

    fn sign(&self, now: SystemTime) -> Result<ProviderToken, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let jwt = jsonwebtoken::encode(&header, &Claims { iss: &self.team_id, iat }, &self.key)?;
        // A JWT is base64url and dots: always a valid header value.
        let authorization = http::HeaderValue::try_from(format!("bearer {jwt}"))
            .map_err(|_| jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidToken))?;
        Ok(ProviderToken { jwt, issued_at: UNIX_EPOCH + Duration::from_secs(iat), authorization })
    }

    /// The token to use at `now`: the cached one while younger than
    /// [`RENEW_AFTER`], else a new one (made once, under the write lock, even
    /// when many requests ask at the same moment).
    pub fn current(&self, now: SystemTime) -> Result<Arc<ProviderToken>, jsonwebtoken::errors::Error> {
        let fresh = |t: &ProviderToken| now.duration_since(t.issued_at).unwrap_or_default() < RENEW_AFTER;
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(token) = state.current.as_ref().filter(|t| fresh(t)) {
                return Ok(Arc::clone(token));
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = state.current.as_ref().filter(|t| fresh(t)) {
            return Ok(Arc::clone(token));
        }
        let token = Arc::new(self.sign(now)?);
        state.current = Some(Arc::clone(&token));
        Ok(token)
    }

    /// Apple said `rejected` expired: replace it, unless another request
    /// already did or a forced renewal happened less than
    /// [`MIN_FORCED_INTERVAL`] ago. Returns the token to retry with, or `None`
    /// when retrying would only repeat the rejection.
    pub fn renew_rejected(
        &self,
        rejected: &ProviderToken,
        now: SystemTime,
    ) -> Result<Option<Arc<ProviderToken>>, jsonwebtoken::errors::Error> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = state.current.as_ref().filter(|c| c.jwt != rejected.jwt) {
            return Ok(Some(Arc::clone(current)));
        }
        let too_soon =
            state.last_forced.is_some_and(|at| now.duration_since(at).unwrap_or_default() < MIN_FORCED_INTERVAL);
        if too_soon {
            return Ok(None);
        }
        let token = Arc::new(self.sign(now)?);
        state.current = Some(Arc::clone(&token));
        state.last_forced = Some(now);
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys are generated per test by the mock's credential helper, never committed.
    fn signer() -> TokenSigner {
        let key = pushgate_mock_providers::credentials::ApnsKey::generate("TEAM123456", "com.example.app")
            .expect("key generation");
        TokenSigner::new(&key.private_key_pem, &key.key_id, "TEAM123456").expect("valid key")
    }

    #[test]
    fn refuses_a_key_that_is_not_p256_pkcs8() {
        let err = TokenSigner::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k", "t");
        assert!(matches!(err, Err(ProviderError::InvalidKey { .. })));
        assert!(TokenSigner::new("not a pem", "k", "t").is_err());
    }

    #[test]
    fn token_has_kid_iss_and_iat() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let signer = signer();
        let token = signer.current(now).expect("signs");
        let header = jsonwebtoken::decode_header(&token.jwt).expect("header");
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(signer.key_id.as_str()));
        let payload = token.jwt.split('.').nth(1).expect("payload part");
        use base64::Engine as _;
        let claims: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
                .expect("json");
        assert_eq!(claims, serde_json::json!({"iss": "TEAM123456", "iat": 1_700_000_000}));
    }

    #[test]
    fn reuses_the_token_until_fifty_minutes_then_renews() {
        let signer = signer();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = signer.current(t0).expect("signs");
        let later = signer.current(t0 + Duration::from_secs(49 * 60)).expect("signs");
        assert_eq!(first.jwt, later.jwt);
        let renewed = signer.current(t0 + Duration::from_secs(50 * 60)).expect("signs");
        assert_ne!(first.jwt, renewed.jwt);
    }

    #[test]
    fn forced_renewal_happens_once_and_not_again_within_twenty_minutes() {
        let signer = signer();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = signer.current(t0).expect("signs");
        let second = signer.renew_rejected(&first, t0).expect("signs").expect("renewed");
        assert_ne!(first.jwt, second.jwt);
        // A concurrent request rejected with the old token gets the new one.
        let again = signer.renew_rejected(&first, t0).expect("signs").expect("current");
        assert_eq!(again.jwt, second.jwt);
        // The new one rejected too, ten minutes later: no third token yet.
        let t10 = t0 + Duration::from_secs(600);
        assert_eq!(signer.renew_rejected(&second, t10).expect("no error"), None);
        let t21 = t0 + Duration::from_secs(21 * 60);
        let third = signer.renew_rejected(&second, t21).expect("signs").expect("renewed");
        assert_ne!(third.jwt, second.jwt);
    }
}
