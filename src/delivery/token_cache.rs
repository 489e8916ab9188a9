//! The APNs provider token cache of the providers crate, kept in the store
//! so that every instance of the gateway sends with one token per key.

use std::time::{Duration, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use pushgate_providers::apns::{CacheError, ProviderTokenCache, SharedToken, TokenKey};

use crate::store::{ProviderTokenRow, Store};

/// [`ProviderTokenCache`] over the store's `provider_tokens` rows.
#[derive(Clone, Debug)]
pub struct StoreTokenCache {
    store: Store,
}

impl StoreTokenCache {
    /// A cache in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn to_shared(row: ProviderTokenRow) -> SharedToken {
    SharedToken { jwt: row.jwt, issued_at: UNIX_EPOCH + Duration::from_millis(row.issued_at.max(0) as u64) }
}

fn cache_error(e: crate::store::StoreError) -> CacheError {
    CacheError(e.to_string())
}

impl ProviderTokenCache for StoreTokenCache {
    fn get<'a>(&'a self, key: &'a TokenKey) -> BoxFuture<'a, Result<Option<SharedToken>, CacheError>> {
        Box::pin(async move {
            let row = self.store.provider_token((&key.team_id, &key.key_id, &key.fingerprint)).await;
            row.map(|r| r.map(to_shared)).map_err(cache_error)
        })
    }

    fn replace<'a>(
        &'a self,
        key: &'a TokenKey,
        expected: Option<&'a str>,
        new: SharedToken,
    ) -> BoxFuture<'a, Result<SharedToken, CacheError>> {
        Box::pin(async move {
            let issued_at = new.issued_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let row = ProviderTokenRow { jwt: new.jwt, issued_at };
            let stored =
                self.store.replace_provider_token((&key.team_id, &key.key_id, &key.fingerprint), expected, &row);
            stored.await.map(to_shared).map_err(cache_error)
        })
    }
}
