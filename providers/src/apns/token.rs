//! The provider token: an ES256 JWT signed with the app's .p8 key, shared.
//!
//! Apple wants the same token reused for up to an hour and refuses updates
//! more often than every 20 minutes per key (`TooManyProviderTokenUpdates`),
//! also when several gateway instances each sign their own. So one token per
//! key lives in a [`ProviderTokenCache`] (in memory by default, process-wide;
//! a shared store when several instances send), is renewed at 50 minutes by
//! whichever instance notices first, and is adopted by every other one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
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

impl ProviderToken {
    fn from_shared(shared: &SharedToken) -> Option<Self> {
        let authorization = http::HeaderValue::try_from(format!("bearer {}", shared.jwt)).ok()?;
        Some(Self { jwt: shared.jwt.clone(), issued_at: shared.issued_at, authorization })
    }

    fn shared(&self) -> SharedToken {
        SharedToken { jwt: self.jwt.clone(), issued_at: self.issued_at }
    }

    fn fresh_at(&self, now: SystemTime) -> bool {
        now.duration_since(self.issued_at).unwrap_or_default() < RENEW_AFTER
    }
}

/// Which key a provider token is signed with: Apple counts updates per
/// (team, key id). `fingerprint` tells two different .p8 files under one key
/// id apart (a key replaced after a typo), so a token signed with the wrong
/// one is never handed to the right one; it is stable across builds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// Apple team id (JWT `iss`).
    pub team_id: String,
    /// Key id (JWT `kid`).
    pub key_id: String,
    /// FNV-1a 64 of the .p8 PEM, in hex.
    pub fingerprint: String,
}

impl TokenKey {
    fn new(team_id: &str, key_id: &str, private_key_pem: &str) -> Self {
        let hash = private_key_pem
            .trim()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
        Self { team_id: team_id.to_owned(), key_id: key_id.to_owned(), fingerprint: format!("{hash:016x}") }
    }
}

/// A provider token as kept in a [`ProviderTokenCache`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedToken {
    /// The JWT.
    pub jwt: String,
    /// Its `iat`.
    pub issued_at: SystemTime,
}

/// The cache could not be read or written; the client then signs for itself.
#[derive(Debug, thiserror::Error)]
#[error("provider token cache: {0}")]
pub struct CacheError(pub String);

/// Where the provider token of each key is kept, so every client (and every
/// instance) sending with that key uses the same one. The default,
/// [`MemoryTokenCache::shared`], covers one process; a gateway run as several
/// instances backs this with its store (a row per key, replaced under a lock).
pub trait ProviderTokenCache: Send + Sync + std::fmt::Debug {
    /// The token stored for `key`, if any (however old).
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<SharedToken>, CacheError>>;

    /// Stores `new` for `key` if the stored token is still `expected` (by
    /// JWT; `None`: nothing stored), atomically. Returns the token stored
    /// afterwards: `new`, or the one another client stored first.
    fn replace<'a>(
        &'a self,
        key: &'a TokenKey,
        expected: Option<&'a str>,
        new: SharedToken,
    ) -> BoxFuture<'a, Result<SharedToken, CacheError>>;
}

/// An in-memory [`ProviderTokenCache`].
#[derive(Debug, Default)]
pub struct MemoryTokenCache {
    tokens: Mutex<HashMap<TokenKey, SharedToken>>,
}

impl MemoryTokenCache {
    /// The process-wide cache every client uses unless given another: two
    /// apps (or a rebuilt client) with one key share its token.
    pub fn shared() -> Arc<dyn ProviderTokenCache> {
        static SHARED: OnceLock<Arc<MemoryTokenCache>> = OnceLock::new();
        SHARED.get_or_init(Default::default).clone()
    }
}

impl ProviderTokenCache for MemoryTokenCache {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<SharedToken>, CacheError>> {
        let found = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn replace<'a>(
        &'a self,
        key: &'a TokenKey,
        expected: Option<&'a str>,
        new: SharedToken,
    ) -> BoxFuture<'a, Result<SharedToken, CacheError>> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let stored = match tokens.get(key) {
            Some(current) if Some(current.jwt.as_str()) != expected => current.clone(),
            _ => {
                tokens.insert(key.clone(), new.clone());
                new
            }
        };
        Box::pin(async move { Ok(stored) })
    }
}

#[derive(Debug, Default)]
struct State {
    current: Option<Arc<ProviderToken>>,
    last_forced: Option<SystemTime>,
}

/// Signs provider tokens for one key and keeps the current one, shared
/// through a [`ProviderTokenCache`].
pub struct TokenSigner {
    key: EncodingKey,
    cache_key: TokenKey,
    cache: Arc<dyn ProviderTokenCache>,
    state: RwLock<State>,
    // Renews one at a time: a burst of sends finding the token stale asks
    // the cache (and signs) once.
    renewing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("key", &self.cache_key).finish()
    }
}

impl TokenSigner {
    /// Reads the .p8 PEM and signs one token to prove the key works.
    pub fn new(
        private_key_pem: &str,
        key_id: &str,
        team_id: &str,
        cache: Arc<dyn ProviderTokenCache>,
    ) -> Result<Self, ProviderError> {
        let invalid = |source| ProviderError::InvalidKey { what: "APNs .p8", source };
        let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes()).map_err(invalid)?;
        let signer = Self {
            key,
            cache_key: TokenKey::new(team_id, key_id, private_key_pem),
            cache,
            state: RwLock::new(State::default()),
            renewing: tokio::sync::Mutex::new(()),
        };
        signer.sign(SystemTime::now()).map_err(invalid)?;
        Ok(signer)
    }

    /// The key tokens are cached under.
    pub fn key(&self) -> &TokenKey {
        &self.cache_key
    }

    fn sign(&self, now: SystemTime) -> Result<ProviderToken, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.cache_key.key_id.clone());
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let jwt = jsonwebtoken::encode(&header, &Claims { iss: &self.cache_key.team_id, iat }, &self.key)?;
        // A JWT is base64url and dots: always a valid header value.
        let authorization = http::HeaderValue::try_from(format!("bearer {jwt}"))
            .map_err(|_| jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidToken))?;
        Ok(ProviderToken { jwt, issued_at: UNIX_EPOCH + Duration::from_secs(iat), authorization })
    }

    fn local(&self, now: SystemTime) -> Option<Arc<ProviderToken>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.current.as_ref().filter(|t| t.fresh_at(now)).cloned()
    }

    fn adopt(&self, token: ProviderToken) -> Arc<ProviderToken> {
        let token = Arc::new(token);
        self.state.write().unwrap_or_else(|e| e.into_inner()).current = Some(Arc::clone(&token));
        token
    }

    /// Stores a token signed now in place of `expected`, and adopts whichever
    /// the cache holds afterwards; without a cache, the new one.
    async fn sign_and_share(
        &self,
        expected: Option<&str>,
        now: SystemTime,
    ) -> Result<Arc<ProviderToken>, jsonwebtoken::errors::Error> {
        let signed = self.sign(now)?;
        match self.cache.replace(&self.cache_key, expected, signed.shared()).await {
            Ok(stored) if stored.jwt != signed.jwt => match ProviderToken::from_shared(&stored) {
                Some(theirs) => Ok(self.adopt(theirs)),
                None => Ok(self.adopt(signed)),
            },
            Ok(_) => Ok(self.adopt(signed)),
            Err(e) => {
                tracing::warn!(error = %e, key_id = %self.cache_key.key_id, "using an unshared APNs provider token");
                Ok(self.adopt(signed))
            }
        }
    }

    async fn cached(&self) -> Option<SharedToken> {
        self.cache
            .get(&self.cache_key)
            .await
            .map_err(|e| tracing::warn!(error = %e, "cannot read the shared APNs provider token"))
            .ok()
            .flatten()
    }

    /// The token to use at `now`: this client's while younger than
    /// [`RENEW_AFTER`], else the cache's if fresh, else a new one stored in
    /// the cache (made once, even when many requests ask at the same moment).
    pub async fn current(&self, now: SystemTime) -> Result<Arc<ProviderToken>, jsonwebtoken::errors::Error> {
        if let Some(token) = self.local(now) {
            return Ok(token);
        }
        let _one = self.renewing.lock().await;
        if let Some(token) = self.local(now) {
            return Ok(token);
        }
        let stored = self.cached().await;
        if let Some(token) = stored.as_ref().and_then(ProviderToken::from_shared).filter(|t| t.fresh_at(now)) {
            return Ok(self.adopt(token));
        }
        self.sign_and_share(stored.as_ref().map(|s| s.jwt.as_str()), now).await
    }

    /// Apple said `rejected` expired: replace it, unless another request (or
    /// instance) already did or a forced renewal happened less than
    /// [`MIN_FORCED_INTERVAL`] ago. Returns the token to retry with, or `None`
    /// when retrying would only repeat the rejection.
    pub async fn renew_rejected(
        &self,
        rejected: &ProviderToken,
        now: SystemTime,
    ) -> Result<Option<Arc<ProviderToken>>, jsonwebtoken::errors::Error> {
        let _one = self.renewing.lock().await;
        if let Some(current) = self.local(now).filter(|c| c.jwt != rejected.jwt) {
            return Ok(Some(current));
        }
        let stored = self.cached().await;
        if let Some(theirs) = stored.as_ref().filter(|s| s.jwt != rejected.jwt).and_then(ProviderToken::from_shared) {
            return Ok(Some(self.adopt(theirs)));
        }
        let last_forced = self.state.read().unwrap_or_else(|e| e.into_inner()).last_forced;
        if last_forced.is_some_and(|at| now.duration_since(at).unwrap_or_default() < MIN_FORCED_INTERVAL) {
            return Ok(None);
        }
        let token = self.sign_and_share(Some(&rejected.jwt), now).await?;
        self.state.write().unwrap_or_else(|e| e.into_inner()).last_forced = Some(now);
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> pushgate_mock_providers::credentials::ApnsKey {
        // Keys are generated per test by the mock's credential helper, never committed.
        pushgate_mock_providers::credentials::ApnsKey::generate("TEAM123456", "com.example.app").expect("key")
    }

    fn signer_with(
        key: &pushgate_mock_providers::credentials::ApnsKey,
        cache: Arc<dyn ProviderTokenCache>,
    ) -> TokenSigner {
        TokenSigner::new(&key.private_key_pem, &key.key_id, "TEAM123456", cache).expect("valid key")
    }

    fn signer() -> TokenSigner {
        signer_with(&key(), Arc::new(MemoryTokenCache::default()))
    }

    #[test]
    fn refuses_a_key_that_is_not_p256_pkcs8() {
        let cache = || -> Arc<dyn ProviderTokenCache> { Arc::new(MemoryTokenCache::default()) };
        let err = TokenSigner::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k", "t", cache());
        assert!(matches!(err, Err(ProviderError::InvalidKey { .. })));
        assert!(TokenSigner::new("not a pem", "k", "t", cache()).is_err());
    }

    #[tokio::test]
    async fn token_has_kid_iss_and_iat() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let signer = signer();
        let token = signer.current(now).await.expect("signs");
        let header = jsonwebtoken::decode_header(&token.jwt).expect("header");
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(signer.cache_key.key_id.as_str()));
        let payload = token.jwt.split('.').nth(1).expect("payload part");
        use base64::Engine as _;
        let claims: serde_json::Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
                .expect("json");
        assert_eq!(claims, serde_json::json!({"iss": "TEAM123456", "iat": 1_700_000_000}));
    }

    #[tokio::test]
    async fn reuses_the_token_until_fifty_minutes_then_renews() {
        let signer = signer();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = signer.current(t0).await.expect("signs");
        let later = signer.current(t0 + Duration::from_secs(49 * 60)).await.expect("signs");
        assert_eq!(first.jwt, later.jwt);
        let renewed = signer.current(t0 + Duration::from_secs(50 * 60)).await.expect("signs");
        assert_ne!(first.jwt, renewed.jwt);
    }

    #[tokio::test]
    async fn forced_renewal_happens_once_and_not_again_within_twenty_minutes() {
        let signer = signer();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = signer.current(t0).await.expect("signs");
        let second = signer.renew_rejected(&first, t0).await.expect("signs").expect("renewed");
        assert_ne!(first.jwt, second.jwt);
        // A concurrent request rejected with the old token gets the new one.
        let again = signer.renew_rejected(&first, t0).await.expect("signs").expect("current");
        assert_eq!(again.jwt, second.jwt);
        // The new one rejected too, ten minutes later: no third token yet.
        let t10 = t0 + Duration::from_secs(600);
        assert_eq!(signer.renew_rejected(&second, t10).await.expect("no error"), None);
        let t21 = t0 + Duration::from_secs(21 * 60);
        let third = signer.renew_rejected(&second, t21).await.expect("signs").expect("renewed");
        assert_ne!(third.jwt, second.jwt);
    }

    #[tokio::test]
    async fn clients_of_one_key_share_the_token_through_the_cache() {
        let apns_key = key();
        let cache: Arc<dyn ProviderTokenCache> = Arc::new(MemoryTokenCache::default());
        let (a, b) = (signer_with(&apns_key, Arc::clone(&cache)), signer_with(&apns_key, Arc::clone(&cache)));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let first = a.current(t0).await.expect("signs");
        assert_eq!(b.current(t0 + Duration::from_secs(60)).await.expect("adopts").jwt, first.jwt);
        // At 50 minutes, whichever renews first stores the token the other adopts.
        let t50 = t0 + Duration::from_secs(50 * 60);
        let renewed = b.current(t50).await.expect("renews");
        assert_ne!(renewed.jwt, first.jwt);
        assert_eq!(a.current(t50 + Duration::from_secs(1)).await.expect("adopts").jwt, renewed.jwt);
        // A forced renewal by one is adopted by the other, not repeated.
        let forced = a.renew_rejected(&renewed, t50).await.expect("signs").expect("renewed");
        assert_eq!(b.renew_rejected(&renewed, t50).await.expect("no error"), Some(forced));
        // Another .p8 under the same key id never gets these tokens.
        let other = key();
        let stranger = TokenSigner::new(&other.private_key_pem, &apns_key.key_id, "TEAM123456", cache).expect("valid");
        assert_ne!(stranger.current(t50).await.expect("signs").jwt, renewed.jwt);
    }
}
