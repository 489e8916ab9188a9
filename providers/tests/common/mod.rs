//! Shared set-up: a mock provider per test and clients pointed at it.
#![allow(dead_code)]

use std::time::Duration;

use pushgate_mock_providers::{MockConfig, MockHandle, MockServer};
use pushgate_providers::{ApnsClient, ApnsCredentials, FcmClient, FcmCredentials, ProviderConfig};

pub async fn mock() -> MockHandle {
    MockServer::start(MockConfig::default()).await.expect("mock starts")
}

/// A mock with settings changed by `edit`.
pub async fn mock_with(edit: impl FnOnce(&mut MockConfig)) -> MockHandle {
    let mut cfg = MockConfig::default();
    edit(&mut cfg);
    MockServer::start(cfg).await.expect("mock starts")
}

pub fn config(mock: &MockHandle) -> ProviderConfig {
    ProviderConfig {
        apns_base_url: Some(mock.base_url()),
        apns_sandbox_base_url: Some(mock.apns_sandbox_url()),
        fcm_base_url: Some(mock.base_url()),
        extra_root_pem: Some(mock.ca_pem().as_bytes().to_vec()),
        request_timeout: Duration::from_secs(20),
        ..ProviderConfig::default()
    }
}

pub fn apns_credentials(mock: &MockHandle) -> ApnsCredentials {
    serde_json::from_value(mock.apns_credentials_json()).expect("mock APNs credentials parse")
}

pub fn apns(mock: &MockHandle) -> ApnsClient {
    ApnsClient::new(apns_credentials(mock), &config(mock)).expect("APNs client")
}

pub fn fcm_credentials(mock: &MockHandle) -> FcmCredentials {
    FcmCredentials {
        service_account: serde_json::from_value(mock.service_account_json()).expect("service account parses"),
    }
}

pub fn fcm(mock: &MockHandle) -> FcmClient {
    FcmClient::new(fcm_credentials(mock), &config(mock)).expect("FCM client")
}

/// A 64-hex APNs token starting with `prefix`.
pub fn hex_token(prefix: &str, n: u32) -> String {
    let tail = format!("{n:x}");
    format!("{prefix}{}{tail}", "0".repeat(64 - prefix.len() - tail.len()))
}

/// An address where nothing listens.
pub fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("https://{addr}")
}
