//! The bench database: a fresh one per store, and devices written straight
//! into it with one SQL statement (the API would be the bottleneck).

use std::path::Path;
use std::str::FromStr;

use rand::Rng;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::{BenchResult, Context, StoreKind};

/// Device `i`'s id: UUIDv7-shaped, so it sorts like a real one.
pub fn device_id(i: u64) -> String {
    format!("01900000-0000-7000-8000-{i:012x}")
}

/// Devices `$3..=$4`: even ones iOS, odd ones Android. Android device `i`
/// has a dead token (the stand-ins answer UNREGISTERED) when `(i / 2) % 100
/// < $5`, so `$5` = 2 × the dead percentage of all devices.
const PG_DEVICES: &str =
    "INSERT INTO devices (id, app_id, platform, token, environment, active, created_at, updated_at, last_seen_at) \
     SELECT '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), $1, \
       CASE WHEN i % 2 = 0 THEN 'ios' ELSE 'android' END, \
       CASE WHEN i % 2 = 0 THEN 'a' || lpad(to_hex(i), 63, '0') \
         WHEN (i / 2) % 100 < $5::bigint THEN 'dead-fcm-' || i ELSE 'bench-fcm-' || i END, \
       CASE WHEN i % 2 = 0 THEN 'production' END, TRUE, $2, $2, $2 \
     FROM generate_series($3::bigint, $4::bigint) AS i";
const PG_MEMBERS: &str = "INSERT INTO device_groups (app_id, name, device_id) \
     SELECT $1, $2, '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0') \
     FROM generate_series($3::bigint, $4::bigint) AS i";
const LITE_DEVICES: &str = "WITH RECURSIVE seq(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM seq WHERE i < $4) \
     INSERT INTO devices (id, app_id, platform, token, environment, active, created_at, updated_at, last_seen_at) \
     SELECT printf('01900000-0000-7000-8000-%012x', i), $1, \
       CASE WHEN i % 2 = 0 THEN 'ios' ELSE 'android' END, \
       CASE WHEN i % 2 = 0 THEN 'a' || printf('%063x', i) \
         WHEN (i / 2) % 100 < $5 THEN 'dead-fcm-' || i ELSE 'bench-fcm-' || i END, \
       CASE WHEN i % 2 = 0 THEN 'production' END, TRUE, $2, $2, $2 \
     FROM seq";
const LITE_MEMBERS: &str = "WITH RECURSIVE seq(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM seq WHERE i < $4) \
     INSERT INTO device_groups (app_id, name, device_id) \
     SELECT $1, $2, printf('01900000-0000-7000-8000-%012x', i) FROM seq";

/// The segment registry (see [`Database::seed_segment`]): devices as
/// [`PG_DEVICES`] with a tag, every `$5`th tagged `in`.
const PG_SEGMENT_DEVICES: &str = "INSERT INTO devices (id, app_id, platform, token, environment, active, created_at, \
     updated_at, last_seen_at, tags) \
     SELECT '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), $1, \
       CASE WHEN i % 2 = 0 THEN 'ios' ELSE 'android' END, \
       CASE WHEN i % 2 = 0 THEN 'a' || lpad(to_hex(i), 63, '0') ELSE 'bench-fcm-' || i END, \
       CASE WHEN i % 2 = 0 THEN 'production' END, TRUE, $2, $2, $2, \
       CASE WHEN i % $5::bigint = 0 THEN '{\"segment\": \"in\"}' ELSE '{\"segment\": \"out\"}' END \
     FROM generate_series($3::bigint, $4::bigint) AS i";
const PG_SEGMENT_MEMBERS: &str = "INSERT INTO device_groups (app_id, name, device_id) \
     SELECT $1, $2, '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0') \
     FROM generate_series($3::bigint, $4::bigint) AS i WHERE i % $5::bigint = 0";
const LITE_SEGMENT_DEVICES: &str = "WITH RECURSIVE seq(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM seq WHERE i < $4) \
     INSERT INTO devices (id, app_id, platform, token, environment, active, created_at, updated_at, last_seen_at, tags) \
     SELECT printf('01900000-0000-7000-8000-%012x', i), $1, \
       CASE WHEN i % 2 = 0 THEN 'ios' ELSE 'android' END, \
       CASE WHEN i % 2 = 0 THEN 'a' || printf('%063x', i) ELSE 'bench-fcm-' || i END, \
       CASE WHEN i % 2 = 0 THEN 'production' END, TRUE, $2, $2, $2, \
       CASE WHEN i % $5 = 0 THEN '{\"segment\": \"in\"}' ELSE '{\"segment\": \"out\"}' END \
     FROM seq";
const LITE_SEGMENT_MEMBERS: &str = "WITH RECURSIVE seq(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM seq WHERE i < $4) \
     INSERT INTO device_groups (app_id, name, device_id) \
     SELECT $1, $2, printf('01900000-0000-7000-8000-%012x', i) FROM seq WHERE i % $5 = 0";

/// Web browsers (see [`Database::seed_web`]): endpoint `$5~i`, keys `$6`
/// (`p256dh.auth`, as the gateway stores a subscription's); members as [`PG_MEMBERS`].
const PG_WEB_DEVICES: &str =
    "INSERT INTO devices (id, app_id, platform, token, environment, active, created_at, updated_at, last_seen_at) \
     SELECT '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), $1, 'web', $5::text || '~' || i, $6, TRUE, \
       $2, $2, $2 \
     FROM generate_series($3::bigint, $4::bigint) AS i";
const LITE_WEB_DEVICES: &str = "WITH RECURSIVE seq(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM seq WHERE i < $4) \
     INSERT INTO devices (id, app_id, platform, token, environment, active, created_at, updated_at, last_seen_at) \
     SELECT printf('01900000-0000-7000-8000-%012x', i), $1, 'web', $5 || '~' || i, $6, TRUE, $2, $2, $2 \
     FROM seq";

/// What the devices of one seeding are.
#[derive(Clone, Copy)]
enum Kind<'a> {
    /// Half iOS, half Android, all in the group; `dead_percent` % of all
    /// with dead Android tokens (at most 50).
    Mixed { dead_percent: u8 },
    /// Tagged: every `n`th `in` the segment and in the group, the others `out`.
    Segment(i64),
    /// Browsers, all in the group: endpoints `{endpoint}~i` of one
    /// subscription whose keys are `p256dh.auth`.
    Web { endpoint: &'a str, keys: &'a str },
}

enum Conn {
    Postgres { pool: PgPool, admin: PgPool, name: String },
    Sqlite(SqlitePool),
}

/// A database made for one bench run, dropped by [`Database::drop`].
pub struct Database {
    /// Which store.
    pub kind: StoreKind,
    /// `DATABASE_URL` for the gateway.
    pub url: String,
    conn: Option<Conn>,
    next: u64,
}

impl Database {
    /// A new SQLite file in `dir`, or `CREATE DATABASE pushgate_bench_<random>` via `postgres`.
    pub fn new(kind: StoreKind, dir: &Path, postgres: &str) -> Self {
        let url = match kind {
            StoreKind::Sqlite => format!("sqlite://{}", dir.join("bench.db").display()),
            StoreKind::Postgres => postgres.to_owned(),
        };
        Self { kind, url, conn: None, next: 1 }
    }

    /// Creates the Postgres database (SQLite's file is created by the gateway).
    pub async fn create(&mut self) -> BenchResult<()> {
        if self.kind == StoreKind::Postgres {
            let admin =
                PgPoolOptions::new().max_connections(1).connect(&self.url).await.context("connecting to --postgres")?;
            let name = format!("pushgate_bench_{:08x}", rand::thread_rng().gen::<u32>());
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.context("CREATE DATABASE")?;
            let url = with_database(&self.url, &name);
            self.conn =
                Some(Conn::Postgres { pool: PgPool::connect_lazy(&url).context("bench database URL")?, admin, name });
            self.url = url;
        }
        Ok(())
    }

    /// Connects for seeding, once the gateway has applied its migrations.
    pub async fn connect_sqlite(&mut self) -> BenchResult<()> {
        if self.kind == StoreKind::Sqlite && self.conn.is_none() {
            let opts = SqliteConnectOptions::from_str(&self.url)
                .context("bench database URL")?
                .busy_timeout(std::time::Duration::from_secs(30));
            let pool =
                SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.context("opening bench.db")?;
            self.conn = Some(Conn::Sqlite(pool));
        }
        Ok(())
    }

    /// Writes `n` active devices (half iOS, half Android) of `app_id`, all
    /// in `group`, `dead_percent` % of them (at most 50: Android ones only)
    /// with tokens the stand-ins answer as unregistered; returns the index
    /// of the first (ids: [`device_id`]).
    pub async fn seed(&mut self, app_id: &str, group: &str, n: u64, dead_percent: u8) -> BenchResult<u64> {
        let first = self.next;
        self.seed_with(app_id, group, n, Kind::Mixed { dead_percent }).await?;
        Ok(first)
    }

    /// Writes `n` active web devices of `app_id`, all in `group`: the
    /// endpoints `{endpoint}~i` of one browser subscription, each with its
    /// keys (`p256dh`, `auth`), as the Web Push stand-in serves them.
    pub async fn seed_web(
        &mut self,
        app_id: &str,
        group: &str,
        n: u64,
        endpoint: &str,
        (p256dh, auth): (&str, &str),
    ) -> BenchResult<()> {
        let keys = format!("{p256dh}.{auth}");
        self.seed_with(app_id, group, n, Kind::Web { endpoint, keys: &keys }).await
    }

    /// Writes `n` active devices of `app_id` with a `segment` tag: every
    /// `every`-th is tagged `in` and is in `group`, the others are tagged
    /// `out`. Then refreshes the planner's statistics (and the GIN index's
    /// pending entries), as autovacuum would on a registry built over time.
    /// Returns how many are in the segment.
    pub async fn seed_segment(&mut self, app_id: &str, group: &str, n: u64, every: u64) -> BenchResult<u64> {
        let (first, last) = (self.next, self.next + n - 1);
        let every_i = i64::try_from(every.max(1)).context("segment spacing")?;
        self.seed_with(app_id, group, n, Kind::Segment(every_i)).await?;
        match &self.conn {
            Some(Conn::Postgres { pool, .. }) => {
                sqlx::query("VACUUM ANALYZE devices").execute(pool).await.context("VACUUM ANALYZE")?;
                sqlx::query("ANALYZE device_groups").execute(pool).await.context("ANALYZE")?;
            }
            Some(Conn::Sqlite(pool)) => {
                sqlx::query("ANALYZE").execute(pool).await.context("ANALYZE")?;
            }
            None => {}
        }
        Ok(last / every - (first - 1) / every)
    }

    /// The next `n` devices, of `kind`.
    async fn seed_with(&mut self, app_id: &str, group: &str, n: u64, kind: Kind<'_>) -> BenchResult<()> {
        self.connect_sqlite().await?;
        let (first, last) = (self.next, self.next + n - 1);
        let (first_i, last_i) =
            (i64::try_from(first).context("device index")?, i64::try_from(last).context("device index")?);
        let now = chrono::Utc::now().timestamp_millis();
        // The same two statements in one transaction; only the SQL dialect
        // differs. Mixed devices also bind their dead share (`$5`), a
        // segment's statements its spacing (`$5`), a web seeding's devices
        // their subscription (`$5`, `$6`).
        macro_rules! seed_range {
            ($pool:expr, $devices:expr, $members:expr) => {{
                let mut tx = $pool.begin().await.context("seeding: BEGIN")?;
                let mut devices = sqlx::query($devices).bind(app_id).bind(now).bind(first_i).bind(last_i);
                let mut members = sqlx::query($members).bind(app_id).bind(group).bind(first_i).bind(last_i);
                match kind {
                    // Dead tokens are Android's, half the devices: 2 % of them per percent.
                    Kind::Mixed { dead_percent } => devices = devices.bind(2 * i64::from(dead_percent.min(50))),
                    Kind::Segment(every) => {
                        devices = devices.bind(every);
                        members = members.bind(every);
                    }
                    Kind::Web { endpoint, keys } => devices = devices.bind(endpoint).bind(keys),
                }
                devices.execute(&mut *tx).await.context("seeding devices")?;
                members.execute(&mut *tx).await.context("seeding group")?;
                tx.commit().await.context("seeding: COMMIT")?;
            }};
        }
        match (&self.conn, kind) {
            (Some(Conn::Postgres { pool, .. }), Kind::Mixed { .. }) => seed_range!(pool, PG_DEVICES, PG_MEMBERS),
            (Some(Conn::Postgres { pool, .. }), Kind::Segment(_)) => {
                seed_range!(pool, PG_SEGMENT_DEVICES, PG_SEGMENT_MEMBERS)
            }
            (Some(Conn::Postgres { pool, .. }), Kind::Web { .. }) => seed_range!(pool, PG_WEB_DEVICES, PG_MEMBERS),
            (Some(Conn::Sqlite(pool)), Kind::Mixed { .. }) => seed_range!(pool, LITE_DEVICES, LITE_MEMBERS),
            (Some(Conn::Sqlite(pool)), Kind::Segment(_)) => {
                seed_range!(pool, LITE_SEGMENT_DEVICES, LITE_SEGMENT_MEMBERS)
            }
            (Some(Conn::Sqlite(pool)), Kind::Web { .. }) => seed_range!(pool, LITE_WEB_DEVICES, LITE_MEMBERS),
            (None, _) => return Err(crate::BenchError::msg("seeding before the database exists")),
        }
        self.next = last + 1;
        Ok(())
    }

    /// The pool to the bench's Postgres database, when on Postgres.
    pub fn postgres(&self) -> Option<&PgPool> {
        match &self.conn {
            Some(Conn::Postgres { pool, .. }) => Some(pool),
            _ => None,
        }
    }

    /// The pool to the SQLite file, once connected (seeding connects it).
    pub fn sqlite(&self) -> Option<&SqlitePool> {
        match &self.conn {
            Some(Conn::Sqlite(pool)) => Some(pool),
            _ => None,
        }
    }

    /// The Postgres database's name (`pushgate_bench_…`), when on Postgres.
    pub fn postgres_name(&self) -> Option<&str> {
        match &self.conn {
            Some(Conn::Postgres { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// Closes connections and drops the Postgres database. Call after the gateway stopped.
    pub async fn drop(self) -> BenchResult<()> {
        match self.conn {
            Some(Conn::Postgres { pool, admin, name }) => {
                pool.close().await;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await
                    .with_context(|| format!("DROP DATABASE {name}"))?;
                admin.close().await;
            }
            Some(Conn::Sqlite(pool)) => pool.close().await,
            None => {}
        }
        Ok(())
    }
}

/// `url` with its database name replaced (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(with_database("postgres://h/test?sslmode=disable", "b"), "postgres://h/b?sslmode=disable");
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
    }

    #[tokio::test]
    async fn dead_tokens_are_the_given_share_of_android_devices() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut db = Database::new(StoreKind::Sqlite, dir.path(), "");
        // The gateway's migrations make these tables; the columns seeding writes are enough here.
        let opts = SqliteConnectOptions::from_str(&db.url).expect("url").create_if_missing(true);
        let schema = SqlitePoolOptions::new().connect_with(opts).await.expect("creating bench.db");
        for table in [
            "CREATE TABLE devices (id TEXT, app_id TEXT, platform TEXT, token TEXT, environment TEXT, active BOOLEAN, \
             created_at INTEGER, updated_at INTEGER, last_seen_at INTEGER)",
            "CREATE TABLE device_groups (app_id TEXT, name TEXT, device_id TEXT)",
        ] {
            sqlx::query(table).execute(&schema).await.expect("creating a table");
        }
        schema.close().await;
        db.seed("app", "g", 1000, 10).await.expect("seeding");
        db.seed("app", "live", 1000, 0).await.expect("seeding");
        let Some(Conn::Sqlite(pool)) = &db.conn else { panic!("seeding connected to SQLite") };
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.expect("counting")
        };
        let dead_in_g = "SELECT count(*) FROM devices d JOIN device_groups m ON m.device_id = d.id \
                         WHERE m.name = 'g' AND d.token LIKE 'dead%'";
        assert_eq!(count(dead_in_g).await, 100);
        assert_eq!(count("SELECT count(*) FROM devices WHERE token LIKE 'dead%'").await, 100);
        assert_eq!(count("SELECT count(*) FROM devices WHERE token LIKE 'dead%' AND platform <> 'android'").await, 0);
        assert_eq!(count("SELECT count(*) FROM devices WHERE platform = 'android'").await, 1000);
        db.drop().await.expect("closing");
    }

    #[test]
    fn device_ids_look_like_uuids() {
        assert_eq!(device_id(255), "01900000-0000-7000-8000-0000000000ff");
    }
}
