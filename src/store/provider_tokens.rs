//! APNs provider tokens shared by the gateway's instances: a row per key,
//! replaced only if it still holds the token the caller saw.

use super::sql::on_pool;
use super::{Store, StoreResult};

/// A stored provider token.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ProviderTokenRow {
    /// The JWT.
    pub jwt: String,
    /// Its `iat` (ms).
    pub issued_at: i64,
}

/// Which key a token belongs to: team, key id and the key's fingerprint.
pub type ProviderTokenKey<'a> = (&'a str, &'a str, &'a str);

impl Store {
    /// The token stored for `key`, if any.
    pub async fn provider_token(&self, key: ProviderTokenKey<'_>) -> StoreResult<Option<ProviderTokenRow>> {
        let sql = "SELECT jwt, issued_at FROM provider_tokens WHERE team_id = $1 AND key_id = $2 AND fingerprint = $3";
        Ok(on_pool!(self.pool(), p => sqlx::query_as::<_, ProviderTokenRow>(sql)
            .bind(key.0).bind(key.1).bind(key.2).fetch_optional(p).await?))
    }

    /// Stores `new` for `key` if the row still holds `expected` (`None`:
    /// no row yet), in one statement; returns the row as it is afterwards
    /// (`new`, or the token another instance stored first).
    pub async fn replace_provider_token(
        &self,
        key: ProviderTokenKey<'_>,
        expected: Option<&str>,
        new: &ProviderTokenRow,
    ) -> StoreResult<ProviderTokenRow> {
        // With `expected` NULL the condition is never true: a row present
        // is someone else's, kept.
        let sql = "INSERT INTO provider_tokens (team_id, key_id, fingerprint, jwt, issued_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (team_id, key_id, fingerprint) DO UPDATE SET jwt = excluded.jwt, issued_at = excluded.issued_at \
             WHERE provider_tokens.jwt = $6";
        on_pool!(self.pool(), p => sqlx::query(sql).bind(key.0).bind(key.1).bind(key.2).bind(&new.jwt)
            .bind(new.issued_at).bind(expected).execute(p).await?.rows_affected());
        Ok(self.provider_token(key).await?.unwrap_or_else(|| new.clone()))
    }
}
