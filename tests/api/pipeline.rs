//! Shared setup of the delivery tests: a gateway pointed at the local APNs
//! and FCM stand-ins, an app with credentials for both, and small helpers.

use std::time::{Duration, Instant};

use pushgate::config::Config;
use pushgate_mock_providers::{MockConfig, MockHandle, MockServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Db, TestApp, TestAppKeys};

/// The stand-ins and the CA file the gateway trusts.
pub struct Mock {
    pub handle: MockHandle,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

impl Mock {
    pub async fn start() -> Self {
        Self::start_with(MockConfig::default()).await
    }

    /// Stand-ins with `config`.
    pub async fn start_with(config: MockConfig) -> Self {
        let handle = MockServer::start(config).await.expect("mock providers start");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, handle.ca_pem()).expect("write ca.pem");
        Mock { handle, _dir: dir, ca_file }
    }

    /// Points `config` at the stand-ins, with fast retries and polling.
    pub fn configure(&self, config: &mut Config) {
        config.apns_url = Some(self.handle.base_url());
        config.apns_sandbox_url = Some(self.handle.apns_sandbox_url());
        config.fcm_url = Some(self.handle.base_url());
        config.ca_file = Some(self.ca_file.clone());
        config.retry_base_ms = 20;
        config.retry_max_ms = 2_000;
        config.poll_interval_ms = 100;
        config.lease_seconds = 5;
    }

    /// The environment that points a gateway process at the stand-ins.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PUSHGATE_APNS_URL", self.handle.base_url()),
            ("PUSHGATE_APNS_SANDBOX_URL", self.handle.apns_sandbox_url()),
            ("PUSHGATE_FCM_URL", self.handle.base_url()),
            ("PUSHGATE_CA_FILE", self.ca_file.display().to_string()),
        ]
    }

    /// `POST /v1/apps` body with credentials for both providers.
    pub fn app_body(&self) -> Value {
        json!({"name": "pipeline", "apns": self.handle.apns_credentials_json(),
               "fcm": {"service_account": self.handle.service_account_json()}})
    }
}

/// A gateway on a fresh database of kind `db`, wired to a new mock, with an
/// app that has credentials for both providers.
pub async fn start(db: Db, tweak: impl FnOnce(&mut Config)) -> (TestApp, Mock, TestAppKeys) {
    let mock = Mock::start().await;
    let app = TestApp::spawn_with(db, |c| {
        mock.configure(c);
        tweak(c);
    })
    .await;
    let keys = app.create_app_with(mock.app_body()).await;
    (app, mock, keys)
}

/// A 64-hex APNs token starting with `prefix` (hex), unique by `n`.
pub fn ios_token(prefix: &str, n: usize) -> String {
    let tail = format!("{n:x}");
    format!("{prefix}{}{tail}", "0".repeat(64 - prefix.len() - tail.len()))
}

/// Registers a device; returns its id.
pub async fn register(
    app: &TestApp,
    keys: &TestAppKeys,
    platform: &str,
    token: &str,
    user: Option<&str>,
    groups: &[&str],
) -> String {
    let mut body = json!({"platform": platform, "token": token, "groups": groups});
    if let Some(user) = user {
        body["user_id"] = json!(user);
    }
    let (status, device) = app.post("/v1/devices", &keys.server_key, body).await;
    assert_eq!(status, StatusCode::CREATED, "register {token}: {device}");
    device["id"].as_str().expect("device id").to_string()
}

/// Polls `GET /v1/notifications/{id}` until it is completed or cancelled.
pub async fn wait_final(app: &TestApp, keys: &TestAppKeys, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, n) = app.get(&format!("/v1/notifications/{id}"), &keys.server_key).await;
        assert_eq!(status, StatusCode::OK, "{n}");
        if n["status"] == "completed" || n["status"] == "cancelled" {
            return n;
        }
        assert!(Instant::now() < deadline, "notification {id} not final in time: {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row of `GET /v1/deliveries?{query}`, following the cursor.
pub async fn deliveries(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/deliveries?{query}&limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.get(&path, key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        rows.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return rows,
        }
    }
}
