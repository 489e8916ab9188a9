//! Where the providers are and how to reach them.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

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
    /// APNs base URL of production devices; `None` uses Apple's production host.
    pub apns_base_url: Option<String>,
    /// APNs base URL of sandbox (development build) devices; `None` uses
    /// Apple's sandbox host.
    pub apns_sandbox_base_url: Option<String>,
    /// FCM base URL; `None` uses Google's host.
    pub fcm_base_url: Option<String>,
    /// Extra PEM root certificates to trust (test doubles, TLS proxies).
    pub extra_root_pem: Option<Vec<u8>>,
    /// Deadline for one request, connection included.
    pub request_timeout: Duration,
    /// Most HTTP/2 connections open to one provider host per client; more
    /// are opened only when the open ones have no free stream.
    pub max_connections_per_host: usize,
}

/// [`ProviderConfig::max_connections_per_host`] by default: the gateway's
/// 960 requests in flight fit when the provider allows 100 streams per
/// connection (as FCM does, and APNs under load).
pub const DEFAULT_MAX_CONNECTIONS_PER_HOST: usize = 10;

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            apns_base_url: None,
            apns_sandbox_base_url: None,
            fcm_base_url: None,
            extra_root_pem: None,
            request_timeout: Duration::from_secs(30),
            max_connections_per_host: DEFAULT_MAX_CONNECTIONS_PER_HOST,
        }
    }
}

impl ProviderConfig {
    /// The TLS settings of push connections: the built-in web roots plus
    /// `extra_root_pem`, ALPN `h2` only (APNs requires HTTP/2).
    pub(crate) fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, ProviderError> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(pem) = &self.extra_root_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ProviderError::InvalidRootCertificate(e.to_string()))?;
                roots.add(cert).map_err(|e| ProviderError::InvalidRootCertificate(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(ProviderError::InvalidRootCertificate("no certificate in the PEM".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProviderError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// Builds the HTTP client of OAuth token requests, trusting the
    /// built-in web roots plus `extra_root_pem`.
    pub fn http_client(&self) -> Result<reqwest::Client, ProviderError> {
        self.http_builder()?.build().map_err(ProviderError::HttpClient)
    }

    /// Builds the HTTP client of Web Push, as [`http_client`](Self::http_client)
    /// but following no redirect: a push goes to its endpoint's host (one the
    /// gateway allows), never where an answer points.
    pub fn web_push_client(&self) -> Result<reqwest::Client, ProviderError> {
        self.http_builder()?.redirect(reqwest::redirect::Policy::none()).build().map_err(ProviderError::HttpClient)
    }

    fn http_builder(&self) -> Result<reqwest::ClientBuilder, ProviderError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(self.request_timeout)
            .connect_timeout(self.request_timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true);
        if let Some(pem) = &self.extra_root_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ProviderError::InvalidRootCertificate(e.to_string()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(builder)
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
