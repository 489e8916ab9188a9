//! Provider credentials given by the admin: checked before they are stored,
//! so a send never meets a key that cannot be read.

use serde_json::Value;

use crate::config::Config;
use crate::error::ApiError;

/// Checks APNs credentials and returns them as JSON text to store.
pub fn apns(value: Value, _cfg: &Config) -> Result<String, ApiError> {
    require_fields(&value, "apns", &["team_id", "key_id", "private_key", "topic"])?;
    if let Some(env) = value.get("environment") {
        if !matches!(env.as_str(), Some("production") | Some("sandbox")) {
            return Err(ApiError::field("apns.environment", "environment is \"production\" or \"sandbox\""));
        }
    }
    Ok(value.to_string())
}

/// Checks FCM credentials and returns them as JSON text to store.
pub fn fcm(value: Value, _cfg: &Config) -> Result<String, ApiError> {
    let account = value
        .get("service_account")
        .ok_or_else(|| ApiError::field("fcm.service_account", "missing field `service_account`"))?;
    require_fields(account, "fcm.service_account", &["project_id", "private_key", "client_email"])?;
    Ok(value.to_string())
}

fn require_fields(value: &Value, prefix: &str, names: &[&str]) -> Result<(), ApiError> {
    let obj = value.as_object().ok_or_else(|| ApiError::field(prefix, format!("{prefix} must be an object")))?;
    for name in names {
        match obj.get(*name) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(ApiError::field(format!("{prefix}.{name}"), format!("{name} must be a non-empty string"))),
        }
    }
    Ok(())
}
