//! Configuration: defaults, then an optional `pushgate.toml`, then the
//! environment (API.md, Configuration). Every option is in the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The config file is not valid TOML for these options.
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    /// An environment variable has an invalid value.
    #[error("invalid value for {name}: {value:?} ({why})")]
    Env { name: &'static str, value: String, why: String },
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// The gateway's settings. Field names are the TOML keys; each has an
/// environment variable `PUSHGATE_<NAME>` (and `DATABASE_URL`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// `sqlite://…` (default) or `postgres://…`.
    pub database_url: String,
    /// The admin key; generated and printed once when unset.
    pub admin_key: Option<String>,
    /// Base URL for APNs requests (default: Apple's host for the app's environment).
    pub apns_url: Option<String>,
    /// Base URL for FCM v1 requests (default: Google's host).
    pub fcm_url: Option<String>,
    /// Extra PEM root certificates trusted for provider connections.
    pub ca_file: Option<PathBuf>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// `plain` or `json` logs.
    pub log_format: LogFormat,
    /// Delivery workers' concurrent provider requests.
    pub send_concurrency: usize,
    /// Deliveries claimed per batch.
    pub claim_batch: i64,
    /// How long a claimed delivery is leased before another worker may take it (seconds).
    pub lease_seconds: i64,
    /// Attempts before a retried delivery fails.
    pub max_attempts: i32,
    /// First retry delay in milliseconds; doubles per attempt (with jitter).
    pub retry_base_ms: u64,
    /// Longest retry delay, and the clamp for a provider's `Retry-After` (milliseconds).
    pub retry_max_ms: u64,
    /// Devices expanded per fan-out transaction (group, user and `all` targets).
    pub fanout_batch: i64,
    /// How often idle workers look for due work when no wake-up arrives (milliseconds).
    pub poll_interval_ms: u64,
    /// Deadline of one provider request (milliseconds).
    pub provider_timeout_ms: u64,
    /// Delivery log rows older than this many days are removed.
    pub retention_days: i64,
    /// Device registrations a client key may make per second (0 = no limit).
    pub registration_rate: u32,
    /// Device registrations committed together at most (1: a transaction each).
    pub registration_batch: usize,
    /// Whether this instance runs delivery workers.
    pub workers: bool,
    /// Client-key calls (registration, PATCH, DELETE) of all clients of one
    /// app per second, whatever their addresses (0: no limit).
    pub client_app_rate: u32,
    /// Sends (`POST` of notifications) per app per second (0: no limit).
    pub send_rate: u32,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed (comma-separated in the environment).
    pub trusted_proxies: Vec<String>,
    /// How long an identity secret keeps verifying user tokens after it was rotated.
    pub identity_grace_seconds: i64,
    /// WebSocket keepalive, buffering and replay (`[socket]`).
    pub socket: crate::socket::SocketConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://pushgate.db".into(),
            admin_key: None,
            apns_url: None,
            fcm_url: None,
            ca_file: None,
            body_limit: 1024 * 1024,
            log_format: LogFormat::Plain,
            // Under the 1,000 streams APNs (and the stand-ins) allow per HTTP/2
            // connection even when every delivery goes to one provider: past
            // that, requests queue for streams and throughput collapses.
            send_concurrency: 960,
            claim_batch: 500,
            lease_seconds: 60,
            max_attempts: 10,
            retry_base_ms: 1000,
            retry_max_ms: 3_600_000,
            fanout_batch: 1000,
            poll_interval_ms: 1000,
            provider_timeout_ms: 30_000,
            retention_days: 30,
            registration_rate: 100,
            registration_batch: 256,
            workers: true,
            identity_grace_seconds: 86_400,
            client_app_rate: 2000,
            send_rate: 0,
            trusted_proxies: Vec::new(),
            socket: crate::socket::SocketConfig::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then `path` (or `./pushgate.toml` when present), then
    /// the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let default_path = Path::new("pushgate.toml");
        let path = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        let mut cfg = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?
            }
            None => Config::default(),
        };
        cfg.apply_env(|name| std::env::var(name).ok())?;
        Ok(cfg)
    }

    /// Overrides settings from environment variables read by `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env { name, value, why: e.to_string() })
        }
        if let Some(v) = get("PUSHGATE_LISTEN") {
            self.listen = parse("PUSHGATE_LISTEN", v)?;
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("PUSHGATE_ADMIN_KEY") {
            self.admin_key = Some(v);
        }
        if let Some(v) = get("PUSHGATE_APNS_URL") {
            self.apns_url = Some(v);
        }
        if let Some(v) = get("PUSHGATE_FCM_URL") {
            self.fcm_url = Some(v);
        }
        if let Some(v) = get("PUSHGATE_CA_FILE") {
            self.ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("PUSHGATE_BODY_LIMIT") {
            self.body_limit = parse("PUSHGATE_BODY_LIMIT", v)?;
        }
        if let Some(v) = get("PUSHGATE_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "plain" => LogFormat::Plain,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env { name: "PUSHGATE_LOG_FORMAT", value: v, why: "plain or json".into() })
                }
            };
        }
        if let Some(v) = get("PUSHGATE_SEND_CONCURRENCY") {
            self.send_concurrency = parse("PUSHGATE_SEND_CONCURRENCY", v)?;
        }
        if let Some(v) = get("PUSHGATE_CLAIM_BATCH") {
            self.claim_batch = parse("PUSHGATE_CLAIM_BATCH", v)?;
        }
        if let Some(v) = get("PUSHGATE_LEASE_SECONDS") {
            self.lease_seconds = parse("PUSHGATE_LEASE_SECONDS", v)?;
        }
        if let Some(v) = get("PUSHGATE_MAX_ATTEMPTS") {
            self.max_attempts = parse("PUSHGATE_MAX_ATTEMPTS", v)?;
        }
        if let Some(v) = get("PUSHGATE_RETRY_BASE_MS") {
            self.retry_base_ms = parse("PUSHGATE_RETRY_BASE_MS", v)?;
        }
        if let Some(v) = get("PUSHGATE_RETRY_MAX_MS") {
            self.retry_max_ms = parse("PUSHGATE_RETRY_MAX_MS", v)?;
        }
        if let Some(v) = get("PUSHGATE_FANOUT_BATCH") {
            self.fanout_batch = parse("PUSHGATE_FANOUT_BATCH", v)?;
        }
        if let Some(v) = get("PUSHGATE_POLL_INTERVAL_MS") {
            self.poll_interval_ms = parse("PUSHGATE_POLL_INTERVAL_MS", v)?;
        }
        if let Some(v) = get("PUSHGATE_PROVIDER_TIMEOUT_MS") {
            self.provider_timeout_ms = parse("PUSHGATE_PROVIDER_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("PUSHGATE_RETENTION_DAYS") {
            self.retention_days = parse("PUSHGATE_RETENTION_DAYS", v)?;
        }
        if let Some(v) = get("PUSHGATE_REGISTRATION_RATE") {
            self.registration_rate = parse("PUSHGATE_REGISTRATION_RATE", v)?;
        }
        if let Some(v) = get("PUSHGATE_REGISTRATION_BATCH") {
            self.registration_batch = parse("PUSHGATE_REGISTRATION_BATCH", v)?;
        }
        if let Some(v) = get("PUSHGATE_CLIENT_APP_RATE") {
            self.client_app_rate = parse("PUSHGATE_CLIENT_APP_RATE", v)?;
        }
        if let Some(v) = get("PUSHGATE_SEND_RATE") {
            self.send_rate = parse("PUSHGATE_SEND_RATE", v)?;
        }
        if let Some(v) = get("PUSHGATE_TRUSTED_PROXIES") {
            if let Err(e) = crate::client_addr::parse_list(std::slice::from_ref(&v)) {
                return Err(ConfigError::Env { name: "PUSHGATE_TRUSTED_PROXIES", value: v, why: e.to_string() });
            }
            self.trusted_proxies = vec![v];
        }
        if let Some(v) = get("PUSHGATE_IDENTITY_GRACE_SECONDS") {
            self.identity_grace_seconds = parse("PUSHGATE_IDENTITY_GRACE_SECONDS", v)?;
        }
        if let Some(v) = get("PUSHGATE_WORKERS") {
            self.workers = parse("PUSHGATE_WORKERS", v)?;
        }
        self.socket.apply_env(&get)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_values() {
        let mut cfg: Config = toml::from_str("listen = \"0.0.0.0:9000\"\nretention_days = 7").expect("valid toml");
        assert_eq!(cfg.retention_days, 7);
        cfg.apply_env(|n| (n == "PUSHGATE_LISTEN").then(|| "127.0.0.1:9001".to_string())).expect("valid env");
        assert_eq!(cfg.listen.port(), 9001);
        assert_eq!(cfg.database_url, "sqlite://pushgate.db");
        let err = cfg.apply_env(|n| (n == "PUSHGATE_MAX_ATTEMPTS").then(|| "many".to_string()));
        assert!(matches!(err, Err(ConfigError::Env { name: "PUSHGATE_MAX_ATTEMPTS", .. })));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }
}
