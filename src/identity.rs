//! Who a client key's caller is (API.md, Identity). The client key is
//! public, so a user id it names is believed only with a user token: an
//! HS256 JWT `{"sub": user_id, "exp": …}` signed by the app's server with the
//! app's identity secret. Apps in `open` mode skip the check. The app's
//! settings are cached briefly per instance, so a registration or socket
//! connection does not read the app row each time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::time::now_ms;
use crate::store::{AppRow, Store, StoreResult};

/// How long cached app settings are trusted; bounds how long a change made
/// on another instance (mode, rotation) takes to apply here.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// Clock skew allowed on a user token's `exp`.
pub const LEEWAY_SECONDS: u64 = 5;

/// Whether client keys must prove user ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// A `user_id` given with a client key needs a matching user token.
    Verified,
    /// Client keys set `user_id` freely (anyone holding the key can act as any user).
    Open,
}

impl IdentityMode {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Open => "open",
        }
    }

    /// Parses a stored name; unknown names are taken as the safe one.
    pub fn parse(s: &str) -> Self {
        if s == "open" {
            Self::Open
        } else {
            Self::Verified
        }
    }
}

/// Whom a client's `{"type": "send"}` frame may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientRelay {
    /// Clients may not relay.
    None,
    /// Only connections of the sender's own user.
    SameUser,
    /// Any client of the app.
    All,
}

impl ClientRelay {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SameUser => "same_user",
            Self::All => "all",
        }
    }

    /// Parses a stored name; unknown names are taken as the default.
    pub fn parse(s: &str) -> Self {
        match s {
            "none" => Self::None,
            "all" => Self::All,
            _ => Self::SameUser,
        }
    }
}

/// Why a user token is refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A user id was named with a client key and no token.
    #[error("a user_id given with a client key needs a user_token signed by the app's server")]
    Missing,
    /// Bad signature, expired, malformed, or no secret to check it with.
    #[error("the user_token is invalid or expired")]
    Invalid,
    /// A valid token of another user.
    #[error("the user_token is not for this user_id")]
    WrongUser,
}

/// An app's identity settings, as this instance uses them.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Verified or open.
    pub mode: IdentityMode,
    /// The socket relay setting.
    pub relay: ClientRelay,
    /// Keys that verify tokens now: the current one, then the previous one
    /// while its grace period lasts (ms deadline).
    secrets: Vec<(String, Option<i64>)>,
}

impl Policy {
    /// The policy of a stored app.
    pub fn of(row: &AppRow) -> Self {
        let mut secrets = Vec::new();
        if let Some(s) = &row.identity_secret {
            secrets.push((s.clone(), None));
        }
        if let (Some(s), Some(until)) = (&row.previous_identity_secret, row.previous_identity_secret_until) {
            secrets.push((s.clone(), Some(until)));
        }
        Self { mode: IdentityMode::parse(&row.identity), relay: ClientRelay::parse(&row.client_relay), secrets }
    }

    /// The user a client-key call acts as: `user_id` when the app is open or
    /// when `token` proves it; the token's user when only a token is given.
    pub fn client_user(&self, user_id: Option<&str>, token: Option<&str>) -> Result<Option<String>, IdentityError> {
        match (self.mode, user_id, token) {
            (IdentityMode::Open, user, _) => Ok(user.map(str::to_string)),
            (IdentityMode::Verified, None, None) => Ok(None),
            (IdentityMode::Verified, Some(_), None) => Err(IdentityError::Missing),
            (IdentityMode::Verified, user, Some(token)) => {
                let sub = self.verify(token)?;
                match user {
                    Some(u) if u != sub => Err(IdentityError::WrongUser),
                    _ => Ok(Some(sub)),
                }
            }
        }
    }

    /// The `sub` of a token signed with a live secret.
    fn verify(&self, token: &str) -> Result<String, IdentityError> {
        let now = now_ms();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        self.secrets
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| u > now))
            .find_map(|(secret, _)| {
                decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation).ok()
            })
            .map(|data| data.claims.sub)
            .ok_or(IdentityError::Invalid)
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// App policies by app id, cached; cheap to clone.
#[derive(Clone)]
pub struct Identities {
    store: Store,
    cache: Arc<DashMap<String, (Arc<Policy>, Instant)>>,
}

impl Identities {
    /// An empty cache over `store`.
    pub fn new(store: Store) -> Self {
        Self { store, cache: Arc::new(DashMap::new()) }
    }

    /// The policy of `app_id`; None when there is no such app.
    pub async fn policy(&self, app_id: &str) -> StoreResult<Option<Arc<Policy>>> {
        if let Some(hit) = self.cache.get(app_id) {
            if hit.1.elapsed() < CACHE_TTL {
                return Ok(Some(hit.0.clone()));
            }
        }
        let Some(row) = self.store.app(app_id).await? else { return Ok(None) };
        let policy = Arc::new(Policy::of(&row));
        self.cache.insert(app_id.to_string(), (policy.clone(), Instant::now()));
        Ok(Some(policy))
    }

    /// Takes a changed app's settings at once on this instance.
    pub fn refresh(&self, row: &AppRow) {
        self.cache.insert(row.id.clone(), (Arc::new(Policy::of(row)), Instant::now()));
    }
}

/// A new identity secret: 256 random bits as text.
pub fn generate_secret() -> String {
    crate::store::generate_key("pgis_")
}

/// A new device secret and the hash that is stored of it.
pub fn device_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("pgds_{}", hex::encode(bytes));
    let hash = hash_secret(&secret);
    (secret, hash)
}

/// The stored form of a device secret (256 random bits: a fast hash suffices).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets (or hashes) in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    fn policy(secrets: Vec<(String, Option<i64>)>) -> Policy {
        Policy { mode: IdentityMode::Verified, relay: ClientRelay::SameUser, secrets }
    }

    fn token(secret: &str, sub: &str, exp_from_now: i64) -> String {
        let exp = now_ms() / 1000 + exp_from_now;
        encode(&Header::default(), &json!({"sub": sub, "exp": exp}), &EncodingKey::from_secret(secret.as_bytes()))
            .expect("sign")
    }

    #[test]
    fn tokens_prove_their_user_only() {
        let p = policy(vec![("s1".into(), None)]);
        assert_eq!(p.client_user(Some("u"), Some(&token("s1", "u", 60))).expect("valid"), Some("u".into()));
        assert_eq!(p.client_user(None, Some(&token("s1", "u", 60))).expect("valid"), Some("u".into()));
        assert!(matches!(p.client_user(Some("v"), Some(&token("s1", "u", 60))), Err(IdentityError::WrongUser)));
        assert!(matches!(p.client_user(Some("u"), Some(&token("other", "u", 60))), Err(IdentityError::Invalid)));
        assert!(matches!(p.client_user(Some("u"), Some(&token("s1", "u", -60))), Err(IdentityError::Invalid)));
        assert!(matches!(p.client_user(Some("u"), None), Err(IdentityError::Missing)));
        assert_eq!(p.client_user(None, None).expect("anonymous"), None);
        // Within the leeway, a just-expired token still passes.
        assert!(p.client_user(Some("u"), Some(&token("s1", "u", -2))).is_ok());
    }

    #[test]
    fn tokens_without_exp_are_refused() {
        let p = policy(vec![("s1".into(), None)]);
        let t = encode(&Header::default(), &json!({"sub": "u"}), &EncodingKey::from_secret(b"s1")).expect("sign");
        assert!(matches!(p.client_user(Some("u"), Some(&t)), Err(IdentityError::Invalid)));
    }

    #[test]
    fn the_previous_secret_verifies_until_its_grace_ends() {
        let now = now_ms();
        let live = policy(vec![("new".into(), None), ("old".into(), Some(now + 60_000))]);
        assert!(live.client_user(Some("u"), Some(&token("old", "u", 60))).is_ok());
        let over = policy(vec![("new".into(), None), ("old".into(), Some(now - 1))]);
        assert!(over.client_user(Some("u"), Some(&token("old", "u", 60))).is_err());
    }

    #[test]
    fn open_apps_take_user_ids_as_given() {
        let p = Policy { mode: IdentityMode::Open, relay: ClientRelay::All, secrets: vec![] };
        assert_eq!(p.client_user(Some("u"), None).expect("open"), Some("u".into()));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
