//! API keys: stored as SHA-256 hashes; the plain key exists only in the
//! answer that created it.

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::sql::on_pool;
use super::{Store, StoreResult};
use crate::domain::{ids::new_id, time::now_ms};

/// What a key may do (API.md, Keys and apps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Secret key of the application's servers.
    Server,
    /// Publishable key inside the mobile or web app.
    Client,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Server => "pgs_sk_",
            Self::Client => "pgs_ck_",
        }
    }
}

/// A stored key (never the plain text).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    /// Key id, used to revoke it.
    pub id: String,
    /// The app the key belongs to.
    pub app_id: String,
    /// `server` or `client`.
    pub kind: String,
    /// The first characters of the plain key, to recognise it.
    pub prefix: String,
    /// Creation time (ms).
    pub created_at: i64,
}

impl KeyRow {
    /// The kind, parsed.
    pub fn kind(&self) -> KeyKind {
        if self.kind == "client" {
            KeyKind::Client
        } else {
            KeyKind::Server
        }
    }
}

/// A new random key of `kind`: 256 bits, URL-safe text with a readable prefix.
pub fn generate_key(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The stored form of a key. Keys carry 256 random bits, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Creates a key of `kind` for `app_id`; returns the row and the plain key.
    pub async fn create_key(&self, app_id: &str, kind: KeyKind) -> StoreResult<(KeyRow, String)> {
        let plain = generate_key(kind.prefix());
        let row = KeyRow {
            id: new_id(),
            app_id: app_id.to_string(),
            kind: kind.as_str().to_string(),
            prefix: plain[..kind.prefix().len() + 6].to_string(),
            created_at: now_ms(),
        };
        on_pool!(self.pool(), p => sqlx::query(
            "INSERT INTO api_keys (id, app_id, kind, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&row.id).bind(&row.app_id).bind(&row.kind).bind(hash_key(&plain)).bind(&row.prefix).bind(row.created_at)
        .execute(p).await?.rows_affected());
        Ok((row, plain))
    }

    /// Finds the live key whose hash is `key_hash`.
    pub async fn key_by_hash(&self, key_hash: &str) -> StoreResult<Option<KeyRow>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, KeyRow>(
            "SELECT id, app_id, kind, prefix, created_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        ).bind(key_hash).fetch_optional(p).await?))
    }

    /// Live keys of an app, oldest first.
    pub async fn list_keys(&self, app_id: &str) -> StoreResult<Vec<KeyRow>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, KeyRow>(
            "SELECT id, app_id, kind, prefix, created_at FROM api_keys WHERE app_id = $1 AND revoked_at IS NULL ORDER BY id"
        ).bind(app_id).fetch_all(p).await?))
    }

    /// Revokes a key; returns its hash so caches can forget it, or None when
    /// no such live key exists.
    pub async fn revoke_key(&self, app_id: &str, key_id: &str) -> StoreResult<Option<String>> {
        Ok(on_pool!(self.pool(), p => sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = $3 WHERE app_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING key_hash"
        ).bind(app_id).bind(key_id).bind(now_ms()).fetch_optional(p).await?))
    }
}
