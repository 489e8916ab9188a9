//! Local stand-ins for APNs, FCM and a Web Push service, on one TLS port
//! with HTTP/2.
//!
//! They answer as Apple and Google do (auth checks, limits, error bodies),
//! can be scripted per device token ([`Behavior`], or the naming convention
//! in [`behavior`]), and count what they receive. Tests start one with
//! [`MockServer::start`]; staging and benchmarks run [`run`] from the CLI
//! (the `pushgate-mock-providers` binary).

pub mod behavior;
pub mod credentials;

mod apns;
mod control;
mod fcm;
mod handle;
mod http;
mod oauth;
mod server;
mod state;
mod tls;
mod webpush;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use behavior::Behavior;
pub use handle::MockHandle;
pub use server::MockServer;
pub use state::{MockStats, Provider, Received};
pub use webpush::{SubscriptionKeys, WebPushSubscription};

/// How to run the mock.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// With [`run`]: where to write `ca.pem`, `apns_key.p8`, `apns.json`,
    /// `service_account.json`.
    pub out_dir: Option<PathBuf>,
    /// Team id of the generated APNs key.
    pub apns_team_id: String,
    /// The bundle id pushes must name in `apns-topic`.
    pub apns_topic: String,
    /// The Firebase project of the generated service account.
    pub fcm_project_id: String,
    /// How many accepted payloads to keep per token. 0 (benchmarks) keeps
    /// no per-token records at all: only the totals of [`MockStats`] count.
    pub keep_payloads: usize,
    /// The path the APNs sandbox host is served under, on the same port:
    /// its base URL is `https://HOST:PORT{apns_sandbox_path}`.
    pub apns_sandbox_path: String,
    /// Least time between two new provider tokens of one APNs key; a newer
    /// one sooner is refused with 429 `TooManyProviderTokenUpdates`, as
    /// Apple does ([`APPLE_TOKEN_UPDATE_WINDOW`]). Zero (the default) lets
    /// clients renew at will: a benchmark runs several gateways, each with
    /// its own store, against one stand-in and one key.
    pub provider_token_update_window: Duration,
    /// How long every push waits for its answer, as across the internet to
    /// Apple or Google (zero: at once).
    pub latency: Duration,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of every connection: how many
    /// pushes a client may have in flight on one.
    pub max_streams: u32,
}

/// The streams per connection Apple allows at most, and the stand-ins by default.
pub const APPLE_MAX_STREAMS: u32 = 1000;

/// How often Apple lets a key's provider token change: once per 20 minutes.
pub const APPLE_TOKEN_UPDATE_WINDOW: Duration = Duration::from_secs(20 * 60);

/// How the OAuth token endpoint stand-in answers, when scripted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthFailure {
    /// The service account is refused: 400 `invalid_grant` (a deleted or
    /// disabled key).
    InvalidGrant,
    /// The endpoint is down: 503 with `Retry-After`.
    Unavailable,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            out_dir: None,
            apns_team_id: "MOCKTEAM01".to_owned(),
            apns_topic: "com.example.pushgate".to_owned(),
            fcm_project_id: "pushgate-mock".to_owned(),
            keep_payloads: 16,
            apns_sandbox_path: "/sandbox".to_owned(),
            provider_token_update_window: Duration::ZERO,
            latency: Duration::ZERO,
            max_streams: APPLE_MAX_STREAMS,
        }
    }
}

/// Why the mock could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MockError {
    /// Binding, or writing the out-dir files.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Certificate or EC key generation.
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A generated key could not be loaded for verification.
    #[error("key: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
    /// RSA key generation or encoding.
    #[error("RSA key generation: {0}")]
    Rsa(String),
}

impl MockError {
    pub(crate) fn rsa(err: impl std::fmt::Display) -> Self {
        MockError::Rsa(err.to_string())
    }
}

/// Runs the mock until Ctrl-C: the `pushgate-mock-providers` binary.
pub async fn run(cfg: MockConfig) -> Result<(), MockError> {
    let out_dir = cfg.out_dir.clone();
    let handle = MockServer::start(cfg).await?;
    if let Some(dir) = &out_dir {
        handle.write_files(dir)?;
    }
    println!("mock APNs + FCM + Web Push listening on {}", handle.base_url());
    println!(
        "  PUSHGATE_APNS_URL={0} PUSHGATE_APNS_SANDBOX_URL={1} PUSHGATE_FCM_URL={0}",
        handle.base_url(),
        handle.apns_sandbox_url()
    );
    println!(
        "  Web Push: PUSHGATE_WEBPUSH_HOSTS={}; POST /mock/webpush/subscriptions issues a subscription",
        handle.addr().ip()
    );
    match &out_dir {
        Some(dir) => println!("  credentials and ca.pem written to {}", dir.display()),
        None => println!("  (pass --out-dir DIR to get ca.pem and credentials)"),
    }
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
