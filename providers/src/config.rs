//! Where the providers are and how to reach them.

use std::time::Duration;

use crate::error::ProviderError;

/// Apple's production host.
pub const APNS_PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's sandbox (development) host.
pub const APNS_SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";
/// Google's FCM host.
pub const FCM_URL: &str = "https://fcm.googleapis.com";

/// Settings shared by every provider client of the service.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// APNs base URL; `None` uses Apple's host for the credentials' environment.
    pub apns_base_url: Option<String>,
    /// FCM base URL; `None` uses Google's host.
    pub fcm_base_url: Option<String>,
    /// Extra PEM root certificates to trust (test doubles, TLS proxies).
    pub extra_root_pem: Option<Vec<u8>>,
    /// Deadline for one request, connection included.
    pub request_timeout: Duration,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self { apns_base_url: None, fcm_base_url: None, extra_root_pem: None, request_timeout: Duration::from_secs(30) }
    }
}

impl ProviderConfig {
    /// Builds an HTTP client trusting the built-in web roots plus
    /// `extra_root_pem`. `http2_only` forces HTTP/2 (ALPN `h2` only), which
    /// APNs requires; otherwise HTTP/2 is negotiated when the server offers it.
    pub fn http_client(&self, http2_only: bool) -> Result<reqwest::Client, ProviderError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(self.request_timeout)
            .connect_timeout(self.request_timeout.min(Duration::from_secs(10)))
            // Providers multiplex thousands of streams on one connection; a
            // few idle spares are enough and keep reconnects rare.
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(600))
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_timeout(Duration::from_secs(20))
            .http2_keep_alive_while_idle(true)
            .tcp_nodelay(true);
        if http2_only {
            builder = builder.http2_prior_knowledge();
        }
        if let Some(pem) = &self.extra_root_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(ProviderError::InvalidRootCertificate)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().map_err(ProviderError::HttpClient)
    }
}

/// Removes trailing slashes so paths can be appended with `format!`.
pub(crate) fn trim_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// Parses a provider URL once, at client creation: per-request URLs are
/// then derived from it without parsing a host again.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url, crate::ProviderError> {
    reqwest::Url::parse(url)
        .map_err(|e| crate::ProviderError::InvalidUrl { url: url.to_owned(), reason: e.to_string() })
}
