//! Test harness: a real gateway on port 0 against a fresh database of either
//! kind, and small HTTP helpers that return what a user would see.

use std::net::SocketAddr;

use pushgate::config::Config;
use pushgate::server::Gateway;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The server holding test databases (`PUSHGATE_TEST_POSTGRES`).
pub fn postgres_admin_url() -> String {
    std::env::var("PUSHGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether Postgres tests run: when the server is unreachable they are
/// skipped locally, but fail under CI (`CI=true`).
pub async fn postgres_available() -> bool {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(&postgres_admin_url()).await {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and Postgres is unreachable at {}: {e}", postgres_admin_url())
        }
        Err(e) => {
            eprintln!("skipping Postgres test: {e}");
            false
        }
    }
}

/// A fresh, empty database URL of kind `db` (a temp file, or a new Postgres
/// database with a random name); the guard keeps the temp dir alive.
pub async fn fresh_database(db: Db) -> (String, Option<tempfile::TempDir>) {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("pushgate.db").display());
            (url, Some(dir))
        }
        Db::Postgres => {
            use sqlx::{Connection, Executor};
            let admin = postgres_admin_url();
            let name = format!("pushgate_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("Postgres reachable");
            conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
            (format!("{base}/{name}"), None)
        }
    }
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub admin_key: String,
    pub http: reqwest::Client,
    pub config: Config,
    pub db: Db,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    tmp: Option<tempfile::TempDir>,
}

/// A created app with its keys.
#[derive(Clone, Debug)]
pub struct TestAppKeys {
    pub id: String,
    pub server_key: String,
    pub client_key: String,
    pub identity_secret: String,
}

impl TestAppKeys {
    /// A user token for `user_id`, signed as the app's server would, valid
    /// for `ttl_seconds` (negative: expired that long ago).
    pub fn user_token(&self, user_id: &str, ttl_seconds: i64) -> String {
        sign_user_token(&self.identity_secret, user_id, ttl_seconds)
    }
}

/// A user token for `user_id` signed with `secret` (HS256), expiring `ttl_seconds` from now.
pub fn sign_user_token(secret: &str, user_id: &str, ttl_seconds: i64) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let exp = i64::try_from(now).expect("time") + ttl_seconds;
    encode(&Header::default(), &json!({"sub": user_id, "exp": exp}), &EncodingKey::from_secret(secret.as_bytes()))
        .expect("sign user token")
}

/// Every gateway the tests start logs into one file (the gateway's own
/// events at DEBUG, its libraries' at INFO), which CI searches for secrets
/// after the whole run (`.ci/run`).
fn log_to_file() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-test.log");
        let Ok(file) = std::fs::File::create(&path) else { return };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,pushgate=debug"))
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    });
}

impl TestApp {
    /// A gateway on a fresh database of kind `db`.
    pub async fn spawn(db: Db) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Like [`spawn`](Self::spawn), after `tweak` adjusts the configuration.
    pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Self {
        let (url, tmp) = fresh_database(db).await;
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: url,
            admin_key: Some(format!("test-admin-{}", uuid::Uuid::new_v4().simple())),
            ..Config::default()
        };
        tweak(&mut config);
        Self::start(db, config, tmp).await
    }

    /// Starts a gateway with exactly `config` (e.g. a second instance on the
    /// same database).
    pub async fn start(db: Db, config: Config, tmp: Option<tempfile::TempDir>) -> Self {
        log_to_file();
        let gateway = Gateway::build(config.clone()).await.expect("gateway starts");
        let addr = gateway.addr;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = gateway.serve(shutdown).await {
                eprintln!("gateway stopped with error: {e}");
            }
        });
        TestApp {
            addr,
            admin_key: config.admin_key.clone().unwrap_or_default(),
            http: reqwest::Client::new(),
            config,
            db,
            stop: Some(stop),
            task: Some(task),
            tmp,
        }
    }

    /// Another instance on the same database (its own port).
    pub async fn another_instance(&self) -> TestApp {
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().expect("addr");
        TestApp::start(self.db, config, None).await
    }

    /// Stops the gateway gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops and starts again on the same database.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().expect("addr");
        let tmp = self.tmp.take();
        TestApp::start(self.db, config, tmp).await
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request with an optional bearer key and JSON body; returns the
    /// status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, key, &[], body).await
    }

    /// Like [`call`](Self::call), with a device's `X-Device-Secret`.
    pub async fn as_device(
        &self,
        method: Method,
        path: &str,
        key: &str,
        secret: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, Some(key), &[("x-device-secret", secret)], body).await
    }

    /// Like [`call`](Self::call), with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let bytes = res.bytes().await.expect("body read");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn put(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(key), None).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Creates an app (optionally with provider credentials) and returns its
    /// keys. Unless `body` says otherwise, the app is `open` with relay to
    /// `all` (the behaviour most tests were written against); the identity
    /// tests create `verified` apps.
    pub async fn create_app_with(&self, mut body: Value) -> TestAppKeys {
        if body.get("identity").is_none() {
            body["identity"] = json!("open");
        }
        if body.get("socket").is_none() {
            body["socket"] = json!({"client_relay": "all"});
        }
        let (status, app) = self.post("/v1/apps", &self.admin_key, body).await;
        assert_eq!(status, StatusCode::CREATED, "create app: {app}");
        TestAppKeys {
            id: app["id"].as_str().expect("id").to_string(),
            server_key: app["server_key"].as_str().expect("server_key").to_string(),
            client_key: app["client_key"].as_str().expect("client_key").to_string(),
            identity_secret: app["identity_secret"].as_str().expect("identity_secret").to_string(),
        }
    }

    /// Creates an app with no provider credentials.
    pub async fn create_app(&self) -> TestAppKeys {
        self.create_app_with(json!({"name": "test app"})).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts an API error body with `code` (and `field` when given).
pub fn assert_error(body: &Value, code: &str, field: Option<&str>) {
    assert_eq!(body["error"]["code"], code, "error body: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {body}");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "error body: {body}");
    }
}

/// Declares each listed `async fn name(db: Db)` as two tests: `sqlite::name`
/// and `postgres::name` (skipped locally, failing under CI, without Postgres).
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::postgres_available().await {
                        super::$name($crate::helpers::Db::Postgres).await
                    }
                }
            )*
        }
    };
}

/// A TCP proxy in front of a database, so a test can make the store
/// unreachable (connections reset) and reachable again without touching the
/// shared server.
pub struct TcpProxy {
    pub addr: SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    accept: JoinHandle<()>,
}

/// Whether the proxy forwards, and its live tunnels: one lock for both, so a
/// connection accepted while `cut` runs cannot outlive it.
#[derive(Default)]
struct ProxyState {
    cut: bool,
    tunnels: Vec<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts forwarding a local port to `upstream` (host:port).
    pub async fn start(upstream: String) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut st = shared.lock().expect("proxy state");
                if st.cut {
                    continue; // dropping `inbound` resets it
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                st.tunnels.push(task);
            }
        });
        TcpProxy { addr, state, accept }
    }

    /// Resets every connection and refuses new ones until [`resume`](Self::resume);
    /// returns once every tunnel is closed.
    pub async fn cut(&self) {
        let tunnels = {
            let mut st = self.state.lock().expect("proxy state");
            st.cut = true;
            std::mem::take(&mut st.tunnels)
        };
        for t in tunnels {
            t.abort();
            let _ = t.await;
        }
    }

    /// Forwards again.
    pub fn resume(&self) {
        self.state.lock().expect("proxy state").cut = false;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(mut st) = self.state.lock() {
            st.tunnels.drain(..).for_each(|t| t.abort());
        }
    }
}
