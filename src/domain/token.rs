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
    /// Browsers, through their push service (Web Push).
    Web,
}

impl Platform {
    /// The name stored and shown (`ios`, `android`, `web`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::Android => "android",
            Self::Web => "web",
        }
    }

    /// Parses a stored or queried platform name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ios" => Some(Self::Ios),
            "android" => Some(Self::Android),
            "web" => Some(Self::Web),
            _ => None,
        }
    }
}

/// Longest Web Push endpoint accepted.
const MAX_ENDPOINT: usize = 2048;

/// The host of an `https://` Web Push endpoint, lower-cased; `None` when
/// it is not one.
pub fn web_push_host(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether `host` is one of `allowed`: a name, or `*.suffix` for its
/// subdomains.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| match a.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1 && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.')
        }
        None => a.eq_ignore_ascii_case(host),
    })
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
            Platform::Web => {
                // The push service's URL; which hosts are allowed is the
                // configuration's to say (the API layer checks it).
                let ok = raw.len() <= MAX_ENDPOINT
                    && web_push_host(raw).is_some()
                    && raw.bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    return Err(invalid("a Web Push endpoint is an https URL of at most 2048 characters"));
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
    fn web_tokens_are_https_endpoints_on_allowed_hosts() {
        let endpoint = "https://fcm.googleapis.com/fcm/send/abc:def";
        assert!(DeviceToken::parse(Platform::Web, endpoint, "token").is_ok());
        assert!(DeviceToken::parse(Platform::Web, "http://fcm.googleapis.com/x", "token").is_err());
        assert!(DeviceToken::parse(Platform::Web, "https://user@evil.example/x", "token").is_err());
        assert!(DeviceToken::parse(Platform::Web, &format!("https://e.x/{}", "a".repeat(2048)), "token").is_err());
        assert_eq!(web_push_host("https://[::1]:8443/wp/x").as_deref(), Some("::1"));
        assert_eq!(web_push_host("https://Web.Push.Apple.com/x").as_deref(), Some("web.push.apple.com"));
        let allowed = vec!["web.push.apple.com".to_owned(), "*.notify.windows.com".to_owned()];
        assert!(host_allowed("web.push.apple.com", &allowed));
        assert!(host_allowed("wns2-by3p.notify.windows.com", &allowed));
        assert!(!host_allowed("notify.windows.com", &allowed));
        assert!(!host_allowed("evilnotify.windows.com", &allowed));
        assert!(!host_allowed("push.apple.com", &allowed));
    }

    #[test]
    fn fcm_tokens_are_limited_charset() {
        assert!(DeviceToken::parse(Platform::Android, "dXk:APA91b-_x", "token").is_ok());
        assert!(DeviceToken::parse(Platform::Android, "", "token").is_err());
        assert!(DeviceToken::parse(Platform::Android, "has space", "token").is_err());
        assert!(DeviceToken::parse(Platform::Android, &"a".repeat(4097), "token").is_err());
    }
}
