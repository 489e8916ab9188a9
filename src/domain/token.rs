//! Platforms and device tokens, validated per platform.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// A device platform and the provider that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple devices, through APNs.
    Ios,
    /// Android devices, through FCM.
    Android,
}

impl Platform {
    /// The name stored and shown (`ios`, `android`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::Android => "android",
        }
    }

    /// Parses a stored or queried platform name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ios" => Some(Self::Ios),
            "android" => Some(Self::Android),
            _ => None,
        }
    }
}

/// A device token valid for its platform (normalised: APNs tokens lower-case
/// hex without spaces or angle brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// Validates and normalises `raw` for `platform`; `field` names the input.
    pub fn parse(platform: Platform, raw: &str, field: &str) -> Result<Self, FieldError> {
        let invalid = |message: &str| FieldError::token(field, message);
        match platform {
            Platform::Ios => {
                let hex: String = raw
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '<' && *c != '>')
                    .map(|c| c.to_ascii_lowercase())
                    .collect();
                if hex.len() < 64
                    || hex.len() > 200
                    || hex.len() % 2 != 0
                    || !hex.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(invalid("APNs device tokens are hex: 64 characters (up to 200 accepted)"));
                }
                Ok(Self(hex))
            }
            Platform::Android => {
                let ok = !raw.is_empty()
                    && raw.len() <= 4096
                    && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b));
                if !ok {
                    return Err(invalid("FCM registration tokens are 1-4096 characters of A-Z a-z 0-9 _ : -"));
                }
                Ok(Self(raw.to_string()))
            }
        }
    }

    /// The normalised token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apns_tokens_are_normalised_hex() {
        let raw = format!("<{} {}>", "AB".repeat(16), "cd".repeat(16));
        let t = DeviceToken::parse(Platform::Ios, &raw, "token").expect("valid");
        assert_eq!(t.as_str(), format!("{}{}", "ab".repeat(16), "cd".repeat(16)));
        assert!(DeviceToken::parse(Platform::Ios, "abc", "token").is_err());
        assert!(DeviceToken::parse(Platform::Ios, &"zz".repeat(32), "token").is_err());
        assert!(DeviceToken::parse(Platform::Ios, &"ab".repeat(101), "token").is_err());
        assert!(DeviceToken::parse(Platform::Ios, &"ab".repeat(100), "token").is_ok());
    }

    #[test]
    fn fcm_tokens_are_limited_charset() {
        assert!(DeviceToken::parse(Platform::Android, "dXk:APA91b-_x", "token").is_ok());
        assert!(DeviceToken::parse(Platform::Android, "", "token").is_err());
        assert!(DeviceToken::parse(Platform::Android, "has space", "token").is_err());
        assert!(DeviceToken::parse(Platform::Android, &"a".repeat(4097), "token").is_err());
    }
}
