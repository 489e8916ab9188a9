//! Who is calling: the admin, an app's server, or an app's client
//! (API.md, Keys and apps). Keys are looked up by hash, with a short cache so
//! that a hot send path does not query the store per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts};
use dashmap::DashMap;

use crate::error::ApiError;
use crate::store::{hash_key, KeyKind, Store, StoreResult};

/// How long a looked-up key is trusted before it is checked again; bounds how
/// long a key revoked on another instance still works.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// The caller, as established by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator: manages apps, reads everything.
    Admin,
    /// An application server of `app_id`.
    Server { app_id: String },
    /// A mobile or web client of `app_id`.
    Client { app_id: String },
}

impl Principal {
    /// The app of a server key; other keys are forbidden.
    pub fn server_app(&self) -> Result<&str, ApiError> {
        match self {
            Self::Server { app_id } => Ok(app_id),
            _ => Err(ApiError::Forbidden("this needs an app's server key".into())),
        }
    }

    /// The app of a server or client key (device registration, sockets).
    pub fn app(&self) -> Result<&str, ApiError> {
        match self {
            Self::Server { app_id } | Self::Client { app_id } => Ok(app_id),
            Self::Admin => Err(ApiError::Forbidden("this needs an app's server or client key".into())),
        }
    }

    /// The app of a client key; other keys are forbidden.
    pub fn client_app(&self) -> Result<&str, ApiError> {
        match self {
            Self::Client { app_id } => Ok(app_id),
            _ => Err(ApiError::Forbidden("this needs an app's client key".into())),
        }
    }

    /// Succeeds for the admin key only.
    pub fn admin(&self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            _ => Err(ApiError::Forbidden("this needs the admin key".into())),
        }
    }
}

/// Resolves plain keys to principals.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    admin_hash: Arc<str>,
    cache: Arc<DashMap<String, (Principal, Instant)>>,
}

impl Authenticator {
    /// An authenticator whose admin key hashes to `admin_hash`.
    pub fn new(store: Store, admin_hash: String) -> Self {
        Self { store, admin_hash: admin_hash.into(), cache: Arc::new(DashMap::new()) }
    }

    /// The principal of `key`, or `unauthorized`.
    pub async fn resolve(&self, key: &str) -> Result<Principal, ApiError> {
        let hash = hash_key(key);
        if *hash == *self.admin_hash {
            return Ok(Principal::Admin);
        }
        if let Some(hit) = self.cache.get(&hash) {
            if hit.1.elapsed() < CACHE_TTL {
                return Ok(hit.0.clone());
            }
        }
        let row = self.store.key_by_hash(&hash).await?.ok_or(ApiError::Unauthorized)?;
        let principal = match row.kind() {
            KeyKind::Server => Principal::Server { app_id: row.app_id },
            KeyKind::Client => Principal::Client { app_id: row.app_id },
        };
        self.cache.insert(hash, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    /// Forgets a revoked key at once on this instance.
    pub fn forget(&self, key_hash: &str) {
        self.cache.remove(key_hash);
    }
}

/// The shortest admin key the gateway accepts: an empty key would make an
/// empty `Bearer` the admin, and a short one is guessable.
pub const MIN_ADMIN_KEY_LEN: usize = 16;

/// Refuses a configured admin key that is too short (or empty).
pub fn check_admin_key(key: &str) -> Result<(), String> {
    if key.chars().count() < MIN_ADMIN_KEY_LEN {
        return Err(format!(
            "PUSHGATE_ADMIN_KEY (admin_key) is {} characters; it must be at least {MIN_ADMIN_KEY_LEN} \
             (or unset, to have one generated)",
            key.chars().count()
        ));
    }
    Ok(())
}

/// The admin key's hash: from the configured key, else the stored one, else a
/// new key that is printed once (returned as the second value).
pub async fn admin_key_hash(store: &Store, configured: Option<&str>) -> StoreResult<(String, Option<String>)> {
    if let Some(key) = configured {
        return Ok((hash_key(key), None));
    }
    if let Some(hash) = store.setting("admin_key_hash").await? {
        return Ok((hash, None));
    }
    let key = crate::store::generate_key("pgs_admin_");
    if store.init_setting("admin_key_hash", &hash_key(&key)).await? {
        return Ok((hash_key(&key), Some(key)));
    }
    // Another instance generated one first; it printed it.
    let hash = store.setting("admin_key_hash").await?.unwrap_or_default();
    Ok((hash, None))
}

/// The bearer key of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Extractor: the authenticated caller (`Authorization: Bearer <key>`). It
/// needs only an [`Authenticator`] from the state, so this module does not
/// know the application state (which holds the authenticator).
pub struct Auth(pub Principal);

impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = bearer(parts).ok_or(ApiError::Unauthorized)?;
        Authenticator::from_ref(state).resolve(key).await.map(Auth)
    }
}
