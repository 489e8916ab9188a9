//! The store: one interface over Postgres (production, scale-out) and SQLite
//! (embedded default). Both share schema shape and SQL text; the dialect
//! lives in `sql.rs`, and the pool never leaves the store: the rest of the
//! gateway asks for capabilities ([`Store::listen`],
//! [`Store::write_parallelism`], [`Store::shared_by_instances`]).

mod apps;
mod deliveries;
mod device_sends;
mod devices;
mod dry_run;
mod fanout;
mod filters;
mod groups;
mod keys;
mod notifications;
mod partitions;
mod provider_tokens;
mod registrations;
mod socket;
mod sql;
mod stats;
mod status;
mod version_keys;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use apps::{AppPatch, AppRow, NewApp};
pub use deliveries::{ClaimedDelivery, DeadToken, DeliveryFilter, DeliveryRow, DeliveryUpdate, QueueDepth};
pub use device_sends::{AcceptedSend, DeviceSendResult, NewDeviceSend};
pub use devices::{DeviceFilter, DevicePatch, DeviceRow, NewDevice, RegisteredDevice};
pub use fanout::{FanoutCommit, FanoutDevice, FanoutJob, NewDeliveryRow};
pub use groups::GroupRow;
pub use keys::{generate_key, hash_key, KeyKind, KeyRow};
pub use notifications::{Accepted, Created, DeliveryResult, NewNotification, NotificationRow, Providers};
pub use partitions::day_start;
pub use provider_tokens::{ProviderTokenKey, ProviderTokenRow};
pub use registrations::Registration;
pub use socket::{ClientPresence, SocketTarget, StoredSocketMessage};
pub use stats::{DeviceCount, StatRow, StatsWindow, MINUTE_MS};
pub use status::{DeliveryStatus, NotificationStatus, UnknownStatus};
pub use webhooks::{
    AttemptRecord, ClaimedMessage, NewWebhook, NewWebhookMessage, OutboxItem, WebhookAttemptRow, WebhookPatch,
    WebhookRow,
};

use sql::{on_pool, Dialect, Pool};

/// Errors of the store, classified so the API can answer 503 vs 404 vs 409.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timed out).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The row asked for does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// A uniqueness rule was broken.
    #[error("{0}")]
    Conflict(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored JSON column could not be read back.
    #[error("stored JSON is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A batched write went unanswered: the gateway is stopping, or its batch failed to run.
    #[error(transparent)]
    Dropped(#[from] crate::batcher::BatchDropped),
    /// The DATABASE_URL is not one we know.
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            // A connection cut during its handshake surfaces as a protocol
            // error (EOF read as a reply): the store is unreachable, not wrong.
            | sqlx::Error::Protocol(_) => Self::Unavailable(e),
            // Postgres refusing connections: connection exceptions (class 08),
            // shutting down or starting up (57P01-57P03), too many connections.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P0") || c == "53300") =>
            {
                Self::Unavailable(e)
            }
            sqlx::Error::RowNotFound => Self::NotFound("row"),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(format!("already exists: {}", db.message()))
            }
            _ => Self::Database(e),
        }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Whether TLS to Postgres would protect nothing: the server is on this
/// host (loopback or a Unix socket) and neither the URL nor `PGSSLMODE`
/// asks for a mode. libpq's default (`prefer`) would still encrypt every
/// statement there, which cost the gateway a sixth of its CPU in the send
/// profile (BENCHMARKS.md). An explicit `sslmode` is always obeyed.
fn tls_pointless(url: &str, host: &str, env_mode: bool) -> bool {
    let asked = url.split_once('?').is_some_and(|(_, q)| {
        q.split('&').any(|kv| kv.split('=').next().is_some_and(|k| k.eq_ignore_ascii_case("sslmode")))
    });
    let loopback = host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback && !asked && !env_mode
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// The instance named in the leases this store takes (see
    /// [`Store::owned_by`]).
    owner: Arc<str>,
}

impl Store {
    /// Connects to `url` (`sqlite://path` creates the file; `postgres://…`).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::open(url, Duration::from_secs(3)).await
    }

    /// Connects to `url`; a query waits at most `acquire_timeout` for a
    /// connection, so a database outage fails requests quickly (`503`)
    /// instead of holding them.
    pub async fn open(url: &str, acquire_timeout: Duration) -> StoreResult<Self> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut opts = PgConnectOptions::from_str(url)?;
            if tls_pointless(url, opts.get_host(), std::env::var_os("PGSSLMODE").is_some()) {
                opts = opts.ssl_mode(PgSslMode::Disable);
            }
            let pool = PgPoolOptions::new()
                .max_connections(24)
                .min_connections(1)
                .acquire_timeout(acquire_timeout)
                .connect_with(opts)
                .await?;
            Pool::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool =
                SqlitePoolOptions::new().max_connections(8).acquire_timeout(acquire_timeout).connect_with(opts).await?;
            Pool::Sqlite(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        Ok(Self { pool, owner: Arc::from(uuid::Uuid::new_v4().simple().to_string()) })
    }

    /// Names the instance in the leases this store takes: a restarted
    /// instance with the same name takes its leases back at once
    /// ([`Store::take_back_leases`]).
    pub fn owned_by(mut self, instance: &str) -> Self {
        self.owner = Arc::from(instance);
        self
    }

    /// The instance named in this store's leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Applies pending migrations (the folder of this store's dialect), then
    /// fills in what their SQL cannot compute (devices' version keys).
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
            Pool::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await?,
        }
        self.backfill_version_keys().await?;
        Ok(())
    }

    /// The migrations not yet applied, `(version, description)` in order.
    pub async fn pending_migrations(&self) -> StoreResult<Vec<(i64, String)>> {
        let migrator = match &self.pool {
            Pool::Postgres(_) => sqlx::migrate!("migrations/postgres"),
            Pool::Sqlite(_) => sqlx::migrate!("migrations/sqlite"),
        };
        let applied: Result<Vec<i64>, sqlx::Error> = on_pool!(&self.pool, p => sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE"
        ).fetch_all(p).await);
        let applied = match applied {
            Ok(versions) => versions,
            // No table yet (Postgres 42P01, SQLite's message): a new database.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P01") || e.message().starts_with("no such table") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// How long each applied migration of `versions` took (ms), as recorded.
    pub async fn migration_times(&self, versions: &[i64]) -> StoreResult<Vec<(i64, i64)>> {
        let sql = format!(
            "SELECT version, execution_time / 1000000 FROM _sqlx_migrations WHERE {} ORDER BY version",
            self.dialect().in_ints("version", 1)
        );
        let versions = serde_json::to_string(versions)?;
        Ok(on_pool!(&self.pool, p => sqlx::query_as(&sql).bind(&versions).fetch_all(p).await?))
    }

    /// True when the store answers and every known migration is applied.
    pub async fn ready(&self) -> StoreResult<bool> {
        let expected = match &self.pool {
            Pool::Postgres(_) => sqlx::migrate!("migrations/postgres").iter().count(),
            Pool::Sqlite(_) => sqlx::migrate!("migrations/sqlite").iter().count(),
        } as i64;
        let applied: i64 = on_pool!(&self.pool, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE"
        ).fetch_one(p).await?);
        Ok(applied >= expected)
    }

    /// The pool, for the store's modules.
    fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The dialect of the pool, for the store's modules.
    fn dialect(&self) -> Dialect {
        Dialect::of(&self.pool)
    }

    /// True when several gateway instances may share this store (Postgres):
    /// wake-ups and socket presence must then cross instances. SQLite serves
    /// one instance, whose memory is the whole truth.
    pub fn shared_by_instances(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// How many batched writes are worth running at once. SQLite has one
    /// writer: a second batch would only wait for its lock. On Postgres a few
    /// overlap, so one batch's commit does not idle the next.
    pub fn write_parallelism(&self) -> usize {
        match self.pool {
            Pool::Postgres(_) => 4,
            Pool::Sqlite(_) => 1,
        }
    }

    /// Listens to `channel` (Postgres `LISTEN`) on a connection of its own;
    /// `None` when this store has no notifications between instances
    /// (SQLite). A notification published with [`notify`](Self::notify) by
    /// any instance arrives at every listener.
    pub async fn listen(&self, channel: &str) -> StoreResult<Option<Listener>> {
        let Pool::Postgres(p) = &self.pool else { return Ok(None) };
        let mut listener = sqlx::postgres::PgListener::connect_with(p).await?;
        listener.listen(channel).await?;
        Ok(Some(Listener(listener)))
    }

    /// Reads a setting (e.g. the admin key's hash).
    pub async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(on_pool!(&self.pool, p => sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(p)
            .await?))
    }

    /// Writes a setting unless it is already set; returns whether it wrote.
    pub async fn init_setting(&self, name: &str, value: &str) -> StoreResult<bool> {
        let res = on_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
        ).bind(name).bind(value).execute(p).await?.rows_affected());
        Ok(res == 1)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await)
    }
}

/// A `LISTEN` connection (see [`Store::listen`]).
pub struct Listener(sqlx::postgres::PgListener);

impl Listener {
    /// The payload of the next notification. An error means the connection
    /// was lost; the next call reconnects (and misses what came meanwhile).
    pub async fn recv(&mut self) -> StoreResult<String> {
        Ok(self.0.recv().await?.payload().to_string())
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

#[cfg(test)]
mod tests {
    use super::tls_pointless;

    #[test]
    fn tls_is_skipped_only_for_this_host_when_no_mode_is_asked() {
        assert!(tls_pointless("postgres://u@127.0.0.1:5432/db", "127.0.0.1", false));
        assert!(tls_pointless("postgres://u@localhost/db", "localhost", false));
        assert!(tls_pointless("postgres://u@[::1]/db", "[::1]", false));
        assert!(tls_pointless("postgres:///db?host=/var/run/postgresql", "/var/run/postgresql", false));
        assert!(!tls_pointless("postgres://u@db.internal/db", "db.internal", false));
        assert!(!tls_pointless("postgres://u@10.0.0.5/db", "10.0.0.5", false));
        assert!(!tls_pointless("postgres://u@127.0.0.1/db?sslmode=require", "127.0.0.1", false));
        assert!(!tls_pointless("postgres://u@127.0.0.1/db?application_name=x&SSLMODE=prefer", "127.0.0.1", false));
        assert!(!tls_pointless("postgres://u@127.0.0.1/db", "127.0.0.1", true));
    }
}
