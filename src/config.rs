//! Configuration: defaults, then an optional `pushgate.toml`, then the
//! environment (API.md, Configuration). Every option is in the README.
//!
//! [`Config`] is the one declaration of the options: its fields (and those of
//! the tables in it, such as `[socket]`) are the TOML keys, and each has the
//! environment variable `PUSHGATE_<PATH>` (`[socket] buffer` is
//! `PUSHGATE_SOCKET_BUFFER`), save the few in [`ENV_NAMES`]. The environment
//! layer is generic: it walks the settings as serde writes them, and a value
//! is parsed as the kind of value it replaces. Adding an option is adding a
//! field with its default (and its README line: a test compares the two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    Env { name: String, value: String, why: String },
    /// Settings built in code hold a value the environment layer cannot
    /// carry (a path that is not UTF-8).
    #[error("cannot apply the environment over these settings: {0}")]
    Layer(serde_json::Error),
}

/// Options whose variable is not `PUSHGATE_<PATH>`: the database URL is
/// read where other tools (sqlx, hosting platforms) put it.
const ENV_NAMES: &[(&str, &str)] = &[("database_url", "DATABASE_URL")];

/// The push services of Chrome (FCM), Firefox (Mozilla's autopush), Safari
/// (Apple) and Edge (Windows Push Notification Services).
pub const DEFAULT_WEBPUSH_HOSTS: &[&str] =
    &["fcm.googleapis.com", "updates.push.services.mozilla.com", "web.push.apple.com", "*.notify.windows.com"];

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// The gateway's settings. Field names are the TOML keys; each has an
/// environment variable `PUSHGATE_<NAME>` (see the module's doc).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// `sqlite://…` (default) or `postgres://…`.
    pub database_url: String,
    /// The admin key; generated and printed once when unset.
    pub admin_key: Option<String>,
    /// Base URL for APNs requests to production devices (default: Apple's production host).
    pub apns_url: Option<String>,
    /// Base URL for APNs requests to sandbox devices (default: Apple's sandbox host).
    pub apns_sandbox_url: Option<String>,
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
    /// Most HTTP/2 connections to one provider host per app; more open only
    /// when the open ones have no free stream.
    pub provider_max_connections: usize,
    /// Delivery log rows older than this many days are removed.
    pub retention_days: i64,
    /// Device registrations a client key may make per second (0 = no limit).
    pub registration_rate: u32,
    /// Device registrations committed together at most (1: a transaction each).
    pub registration_batch: usize,
    /// Whether this instance runs delivery workers.
    pub workers: bool,
    /// This instance's name in the leases it takes; stable across restarts so
    /// that a restarted instance takes back its own leases at once (default:
    /// host name and listen port).
    pub instance_id: Option<String>,
    /// Open HTTP connections at most; beyond it a connection is answered `503` and closed.
    pub max_connections: usize,
    /// The listen backlog (capped by the kernel's `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// A client must send a request's headers within this time (milliseconds).
    pub header_timeout_ms: u64,
    /// A connection with no traffic for this long is closed (milliseconds).
    pub idle_timeout_ms: u64,
    /// API requests handled at once at most; beyond it `503 unavailable` with `Retry-After`.
    pub api_concurrency: usize,
    /// How long a request waits for a database connection before `503 unavailable` (milliseconds).
    pub db_acquire_timeout_ms: u64,
    /// Client-key calls (registration, PATCH, DELETE) of all clients of one
    /// app per second, whatever their addresses (0: no limit).
    pub client_app_rate: u32,
    /// Sends (`POST` of notifications) per app per second (0: no limit).
    pub send_rate: u32,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed (comma-separated in the environment).
    pub trusted_proxies: Vec<String>,
    /// How long an identity secret keeps verifying user tokens after it was rotated.
    pub identity_grace_seconds: i64,
    /// Hosts a Web Push subscription endpoint may point at (`*.domain` for its
    /// subdomains; comma-separated in the environment): the gateway POSTs to
    /// no other address.
    pub webpush_hosts: Vec<String>,
    /// WebSocket keepalive, buffering and replay (`[socket]`).
    pub socket: crate::socket::SocketConfig,
    /// Webhook batching, retries and address checks (`[webhook]`).
    pub webhook: crate::webhooks::WebhookConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://pushgate.db".into(),
            admin_key: None,
            apns_url: None,
            apns_sandbox_url: None,
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
            provider_max_connections: pushgate_providers::config::DEFAULT_MAX_CONNECTIONS_PER_HOST,
            retention_days: 30,
            registration_rate: 100,
            registration_batch: 256,
            workers: true,
            instance_id: None,
            max_connections: 10_000,
            listen_backlog: 1024,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            api_concurrency: 512,
            db_acquire_timeout_ms: 3_000,
            identity_grace_seconds: 86_400,
            client_app_rate: 2000,
            send_rate: 0,
            trusted_proxies: Vec::new(),
            webpush_hosts: DEFAULT_WEBPUSH_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            socket: crate::socket::SocketConfig::default(),
            webhook: crate::webhooks::WebhookConfig::default(),
        }
    }
}

impl Config {
    /// The instance's lease name: `instance_id`, or the host name and listen
    /// port, which a restarted instance shares with its crashed self. With
    /// port 0 (tests) nothing is stable, so the name is random.
    pub fn instance_name(&self) -> String {
        if let Some(id) = self.instance_id.as_deref().filter(|id| !id.is_empty()) {
            return id.to_string();
        }
        if self.listen.port() == 0 {
            return uuid::Uuid::new_v4().simple().to_string();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}:{}", self.listen.port())
    }

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
        let mut tree = serde_json::to_value(&*self).map_err(ConfigError::Layer)?;
        let mut read = Vec::new();
        overlay_env(&mut tree, &mut Vec::new(), &get, &mut read)?;
        if read.is_empty() {
            return Ok(());
        }
        // A value that parsed as its kind can still be out of range for its
        // field (`-1` for a count, a port of 70000): the path names the variable.
        *self = serde_path_to_error::deserialize(tree).map_err(|e| {
            let path: Vec<String> = e.path().iter().map(ToString::to_string).collect();
            let name = env_name(&path);
            let value = read.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap_or_default();
            ConfigError::Env { name, value, why: e.inner().to_string() }
        })?;
        Ok(())
    }

    /// Every environment variable the settings read.
    pub fn env_names() -> Result<Vec<String>, ConfigError> {
        let tree = serde_json::to_value(Config::default()).map_err(ConfigError::Layer)?;
        let mut names = Vec::new();
        leaf_paths(&tree, &mut Vec::new(), &mut |path: &[String]| names.push(env_name(path)));
        Ok(names)
    }
}

/// The variable of the setting at `path` (TOML keys from the top).
fn env_name(path: &[String]) -> String {
    let dotted = path.join(".");
    match ENV_NAMES.iter().find(|(key, _)| *key == dotted) {
        Some((_, name)) => (*name).to_owned(),
        None => format!("PUSHGATE_{}", path.join("_").to_uppercase()),
    }
}

/// Calls `each` with the path of every setting: tables are walked into,
/// anything else (`null` for an unset optional one included) is a setting.
fn leaf_paths(tree: &Value, path: &mut Vec<String>, each: &mut impl FnMut(&[String])) {
    match tree {
        Value::Object(table) => {
            for (key, value) in table {
                path.push(key.clone());
                leaf_paths(value, path, each);
                path.pop();
            }
        }
        _ => each(path),
    }
}

/// Replaces each setting of `tree` whose variable `get` finds, parsed as the
/// kind of value it replaces; notes what was read in `read`.
fn overlay_env(
    tree: &mut Value,
    path: &mut Vec<String>,
    get: &impl Fn(&str) -> Option<String>,
    read: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    if let Value::Object(table) = tree {
        for (key, value) in table.iter_mut() {
            path.push(key.clone());
            overlay_env(value, path, get, read)?;
            path.pop();
        }
        return Ok(());
    }
    let name = env_name(path);
    let Some(text) = get(&name) else { return Ok(()) };
    *tree = parse_like(tree, &text).map_err(|why| ConfigError::Env { name: name.clone(), value: text.clone(), why })?;
    read.push((name, text));
    Ok(())
}

/// `text` as the same kind of value as `current`: booleans and numbers are
/// parsed, anything else (strings, unset optional settings) is taken as is.
fn parse_like(current: &Value, text: &str) -> Result<Value, String> {
    match current {
        Value::Bool(_) => text.parse::<bool>().map(Value::from).map_err(|e| e.to_string()),
        Value::Number(n) if n.is_f64() => text.parse::<f64>().map(Value::from).map_err(|e| e.to_string()),
        Value::Number(_) => match text.parse::<u64>() {
            Ok(v) => Ok(Value::from(v)),
            // A negative number: the field's type decides whether it fits.
            Err(e) => text.parse::<i64>().map(Value::from).map_err(|_| e.to_string()),
        },
        // A list: comma-separated (`PUSHGATE_TRUSTED_PROXIES=10.0.0.0/8,192.168.0.0/16`).
        Value::Array(_) => Ok(Value::Array(
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned())).collect(),
        )),
        _ => Ok(Value::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn environment_overrides_file_values() {
        let mut cfg: Config = toml::from_str("listen = \"0.0.0.0:9000\"\nretention_days = 7").expect("valid toml");
        assert_eq!(cfg.retention_days, 7);
        cfg.apply_env(|n| (n == "PUSHGATE_LISTEN").then(|| "127.0.0.1:9001".to_string())).expect("valid env");
        assert_eq!(cfg.listen.port(), 9001);
        assert_eq!(cfg.retention_days, 7);
        assert_eq!(cfg.database_url, "sqlite://pushgate.db");
        let err = cfg.apply_env(|n| (n == "PUSHGATE_MAX_ATTEMPTS").then(|| "many".to_string()));
        assert!(matches!(&err, Err(ConfigError::Env { name, .. }) if name == "PUSHGATE_MAX_ATTEMPTS"), "{err:?}");
    }

    #[test]
    fn every_kind_of_setting_is_read_from_its_variable() {
        let mut cfg = Config::default();
        cfg.apply_env(env(&[
            ("DATABASE_URL", "postgres://db/pushgate"),
            ("PUSHGATE_ADMIN_KEY", "12345"),
            ("PUSHGATE_CA_FILE", "certs/ca.pem"),
            ("PUSHGATE_LOG_FORMAT", "json"),
            ("PUSHGATE_WORKERS", "false"),
            ("PUSHGATE_CLAIM_BATCH", "7"),
            ("PUSHGATE_SOCKET_BUFFER", "3"),
        ]))
        .expect("valid env");
        assert_eq!(cfg.database_url, "postgres://db/pushgate");
        assert_eq!(cfg.admin_key.as_deref(), Some("12345"));
        assert_eq!(cfg.ca_file, Some(PathBuf::from("certs/ca.pem")));
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert!(!cfg.workers);
        assert_eq!(cfg.claim_batch, 7);
        assert_eq!(cfg.socket.buffer, 3);
        // Settings without a variable keep their values.
        assert_eq!(cfg.socket.replay_seconds, 300);
        assert_eq!(cfg.send_concurrency, 960);
        // The database URL has one name, without the prefix.
        let mut cfg = Config::default();
        cfg.apply_env(env(&[("PUSHGATE_DATABASE_URL", "postgres://elsewhere")])).expect("not read");
        assert_eq!(cfg.database_url, "sqlite://pushgate.db");
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("PUSHGATE_LOG_FORMAT", "xml"),
            ("PUSHGATE_WORKERS", "yes"),
            ("PUSHGATE_BODY_LIMIT", "-1"),
            ("PUSHGATE_REGISTRATION_RATE", "5000000000"),
            ("PUSHGATE_LISTEN", "localhost"),
            ("PUSHGATE_SOCKET_PING_INTERVAL_MS", "1.5"),
        ] {
            let err = Config::default().apply_env(env(&[(name, value)])).expect_err(name);
            let text = err.to_string();
            assert!(text.starts_with(&format!("invalid value for {name}: {value:?} (")), "{text}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }

    /// The README's configuration table lists every variable, and only those.
    #[test]
    fn readme_documents_every_option() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
        let section = readme.split("\n## Configuration\n").nth(1).expect("a Configuration section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut documented: Vec<String> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split_once('`').map(|(name, _)| name.to_owned()))
            .collect();
        let mut real = Config::env_names().expect("the defaults serialize");
        documented.sort();
        real.sort();
        assert_eq!(documented, real, "README.md's configuration table against Config");
    }
}
