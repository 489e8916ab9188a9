//! Provider credentials given by the admin: parsed and turned into a working
//! client before they are stored, so a bad key is `invalid_field` at
//! `POST`/`PATCH /v1/apps` time and a send never meets a key that cannot sign.

use std::time::Duration;

use pushgate_providers::webpush::{VapidKey, VapidSigner};
use pushgate_providers::{
    ApnsClient, ApnsCredentials, FcmClient, FcmCredentials, ProviderConfig, ProviderError, WebPushCredentials,
};
use serde_json::Value;

use crate::config::Config;
use crate::domain::{json, FieldError};

/// Checks APNs credentials and returns them as JSON text to store.
pub fn apns(value: Value, cfg: &Config) -> Result<String, FieldError> {
    if let Some(env) = value.get("environment") {
        if !matches!(env.as_str(), Some("production") | Some("sandbox")) {
            return Err(FieldError::new("apns.environment", "environment is \"production\" or \"sandbox\""));
        }
    }
    let creds: ApnsCredentials = parse(value, "apns")?;
    ApnsClient::new(creds.clone(), &client_check_config(cfg)).map_err(|e| refused(e, "apns", "private_key"))?;
    serde_json::to_string(&creds).map_err(|e| FieldError::new("apns", e.to_string()))
}

/// Checks FCM credentials and returns them as JSON text to store.
pub fn fcm(value: Value, cfg: &Config) -> Result<String, FieldError> {
    let creds: FcmCredentials = parse(value, "fcm")?;
    FcmClient::new(creds.clone(), &client_check_config(cfg))
        .map_err(|e| refused(e, "fcm.service_account", "private_key"))?;
    serde_json::to_string(&creds).map_err(|e| FieldError::new("fcm", e.to_string()))
}

/// `web_push` of an app, `{subject, private_key?}`: checks it and returns
/// the credentials as JSON text to store, with the public key. Without a
/// `private_key` the app keeps the key it has (`existing`, its stored
/// credentials), so changing the contact does not orphan every browser
/// subscribed; an app with none gets a new one.
pub fn web_push(value: Value, existing: Option<&str>) -> Result<(String, String), FieldError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Given {
        subject: String,
        private_key: Option<String>,
    }
    let given: Given = parse(value, "web_push")?;
    let kept = existing.and_then(|json| serde_json::from_str::<WebPushCredentials>(json).ok()).map(|c| c.private_key);
    let key = match given.private_key.or(kept) {
        Some(pem) => VapidKey::from_pem(&pem).map_err(|e| refused(e, "web_push", "private_key"))?,
        None => VapidKey::generate().map_err(|e| FieldError::new("web_push", e.to_string()))?,
    };
    VapidSigner::new(&key, &given.subject).map_err(|e| FieldError::new("web_push.subject", e.to_string()))?;
    let creds = WebPushCredentials { subject: given.subject, private_key: key.to_pem() };
    let json = serde_json::to_string(&creds).map_err(|e| FieldError::new("web_push", e.to_string()))?;
    Ok((json, key.public_key()))
}

/// The provider settings of the gateway's configuration. The extra root
/// certificates are read from `ca_file` here, once per call.
pub fn provider_config(cfg: &Config) -> Result<ProviderConfig, std::io::Error> {
    let extra_root_pem = cfg.ca_file.as_ref().map(std::fs::read).transpose()?;
    Ok(ProviderConfig {
        apns_base_url: cfg.apns_url.clone(),
        apns_sandbox_base_url: cfg.apns_sandbox_url.clone(),
        fcm_base_url: cfg.fcm_url.clone(),
        extra_root_pem,
        request_timeout: Duration::from_millis(cfg.provider_timeout_ms.max(1)),
        max_connections_per_host: cfg.provider_max_connections.max(1),
    })
}

/// For checking credentials only: an unreadable CA file is the operator's
/// problem (reported at startup), not the credentials'.
fn client_check_config(cfg: &Config) -> ProviderConfig {
    provider_config(cfg).unwrap_or_else(|_| ProviderConfig {
        apns_base_url: cfg.apns_url.clone(),
        apns_sandbox_base_url: cfg.apns_sandbox_url.clone(),
        fcm_base_url: cfg.fcm_url.clone(),
        ..ProviderConfig::default()
    })
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, prefix: &str) -> Result<T, FieldError> {
    if !value.is_object() {
        return Err(FieldError::new(prefix, format!("{prefix} must be an object")));
    }
    json::from_value(value).map_err(|e| e.within(prefix))
}

fn refused(e: ProviderError, prefix: &str, key_field: &str) -> FieldError {
    match e {
        ProviderError::MissingField(name) => FieldError::new(format!("{prefix}.{name}"), e.to_string()),
        ProviderError::InvalidKey { .. } => FieldError::new(format!("{prefix}.{key_field}"), e.to_string()),
        other => FieldError::new(prefix, other.to_string()),
    }
}
