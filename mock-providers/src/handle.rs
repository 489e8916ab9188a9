//! The test-facing handle of a running mock: credentials, scripting, counts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::behavior::Behavior;
use crate::credentials::{ApnsKey, ServiceAccountKey};
use crate::state::{MockStats, Received, State};
use crate::webpush::{self, WebPushSubscription};
use crate::{apns, fcm, MockError};

/// A running mock. Dropping it stops the listener too.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    ca_pem: String,
    apns_key: ApnsKey,
    account: ServiceAccountKey,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MockHandle {
    pub(crate) fn new(
        addr: SocketAddr,
        ca_pem: String,
        apns_key: ApnsKey,
        account: ServiceAccountKey,
        state: Arc<State>,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    ) -> Self {
        Self { addr, ca_pem, apns_key, account, state, stop, task }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`: the APNs and FCM base URL.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// `https://127.0.0.1:PORT/sandbox`: the APNs sandbox host's base URL.
    pub fn apns_sandbox_url(&self) -> String {
        format!("{}{}", self.state.base_url, self.state.sandbox_path)
    }

    /// `https://127.0.0.1:PORT/token`: the OAuth token endpoint.
    pub fn token_url(&self) -> String {
        self.state.token_url()
    }

    /// PEM of the CA that signed the server certificate: trust it.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// pushgate `apns` credentials for the mock's first key.
    pub fn apns_credentials_json(&self) -> Value {
        self.apns_key.credentials_json()
    }

    /// The mock's first service account, as Google's JSON.
    pub fn service_account_json(&self) -> Value {
        self.account.json(&self.token_url())
    }

    /// Registers another APNs key (a new key id, same team and topic) and
    /// returns its credentials.
    pub fn add_apns_key(&self) -> Result<Value, MockError> {
        self.add_apns_key_for(&self.apns_key.team_id, &self.apns_key.topic)
    }

    /// Registers an APNs key for another team and topic.
    pub fn add_apns_key_for(&self, team_id: &str, topic: &str) -> Result<Value, MockError> {
        let key = ApnsKey::generate(team_id, topic)?;
        let json = key.credentials_json();
        let mut keys = self.state.apns_keys.write().unwrap_or_else(|e| e.into_inner());
        keys.insert(key.key_id.clone(), key);
        Ok(json)
    }

    /// Registers another service account for `project_id` and returns its JSON.
    pub fn add_service_account(&self, project_id: &str) -> Result<Value, MockError> {
        let account = ServiceAccountKey::generate(project_id)?;
        let json = account.json(&self.token_url());
        let mut accounts = self.state.accounts.write().unwrap_or_else(|e| e.into_inner());
        accounts.insert(account.client_email.clone(), account);
        Ok(json)
    }

    /// Issues a Web Push subscription, as a browser's `pushManager.subscribe()`
    /// would: its endpoint is on this stand-in, which keeps its private key
    /// to decrypt what arrives (read with [`received`](Self::received) and
    /// the subscription's [`id`](WebPushSubscription::id)). Its endpoint
    /// followed by `~` and any suffix is another endpoint with the same keys.
    pub fn web_push_subscription(&self) -> WebPushSubscription {
        webpush::subscribe(&self.state, "")
    }

    /// A subscription whose id starts with `prefix`, so the naming
    /// convention of [`crate::behavior`] scripts it (`dead-` answers 410).
    pub fn web_push_subscription_named(&self, prefix: &str) -> WebPushSubscription {
        webpush::subscribe(&self.state, prefix)
    }

    /// Scripts how pushes to `token` are answered (every provider; a Web
    /// Push subscription by its id).
    pub fn set_behavior(&self, token: &str, behavior: Behavior) {
        self.state.behaviors.set(token, behavior);
    }

    /// Back to the default (or the naming convention) for `token`.
    pub fn clear_behavior(&self, token: &str) {
        self.state.behaviors.clear(token);
    }

    /// Removes every scripted behaviour.
    pub fn clear_behaviors(&self) {
        self.state.behaviors.clear_all();
    }

    /// The last pushes accepted for `token` (up to `keep_payloads`), oldest first.
    pub fn received(&self, token: &str) -> Vec<Received> {
        self.state.received(token)
    }

    /// How many pushes to `token` were accepted (200).
    pub fn delivered_count(&self, token: &str) -> u64 {
        self.state.counts(token).1
    }

    /// How many authenticated, well-formed pushes to `token` arrived, answered
    /// 200 or not.
    pub fn attempts(&self, token: &str) -> u64 {
        self.state.counts(token).0
    }

    /// Pushes accepted across all tokens and providers.
    pub fn total_received(&self) -> u64 {
        let stats = self.state.stats();
        stats.apns_delivered + stats.fcm_delivered + stats.webpush_delivered
    }

    /// Requests to the OAuth token endpoint.
    pub fn token_requests(&self) -> u64 {
        self.state.stats().token_requests
    }

    /// Distinct valid APNs provider tokens (JWTs) seen.
    pub fn apns_jwt_count(&self) -> u64 {
        self.state.stats().apns_jwts
    }

    /// Client connections accepted since start (TLS handshake done).
    pub fn connections_opened(&self) -> u64 {
        self.state.stats().connections_opened
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> u64 {
        self.state.stats().connections_open
    }

    /// All totals.
    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// Makes every APNs provider token seen so far answer 403
    /// `ExpiredProviderToken` from now on.
    pub fn expire_apns_jwts(&self) {
        apns::expire_jwts(&self.state);
    }

    /// Refuses (`true`) or accepts again every provider token of APNs key
    /// `key_id`: 403 `InvalidProviderToken`, as for a key revoked in Apple's
    /// developer account.
    pub fn set_apns_key_revoked(&self, key_id: &str, revoked: bool) {
        if revoked {
            self.state.revoked_keys.insert(key_id.to_owned(), ());
        } else {
            self.state.revoked_keys.remove(key_id);
        }
    }

    /// Scripts the OAuth token endpoint: every request fails as `failure`
    /// says, until called again with `None`.
    pub fn set_oauth_failure(&self, failure: Option<crate::OAuthFailure>) {
        *self.state.oauth_failure.write().unwrap_or_else(|e| e.into_inner()) = failure;
    }

    /// Forgets every issued FCM access token: the next sends get 401.
    pub fn revoke_fcm_tokens(&self) {
        fcm::revoke_tokens(&self.state);
    }

    /// Writes `ca.pem`, `apns_key.p8`, `apns.json` and `service_account.json`
    /// into `dir` (created if missing).
    pub fn write_files(&self, dir: &Path) -> Result<(), MockError> {
        std::fs::create_dir_all(dir)?;
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        std::fs::write(dir.join("ca.pem"), &self.ca_pem)?;
        std::fs::write(dir.join("apns_key.p8"), &self.apns_key.private_key_pem)?;
        std::fs::write(dir.join("apns.json"), pretty(&self.apns_credentials_json()))?;
        std::fs::write(dir.join("service_account.json"), pretty(&self.service_account_json()))?;
        Ok(())
    }

    /// Closes every open connection with a GOAWAY (requests in flight
    /// finish), as providers do to idle connections; new ones are accepted.
    pub fn close_connections(&self) {
        self.state.goaway.send_modify(|generation| *generation += 1);
    }

    /// Stops accepting, lets open connections finish, and waits for the listener.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
