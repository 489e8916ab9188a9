//! A lean HTTP client for the gateway's API: one pooled connection per
//! concurrent caller, JSON in and out.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{BenchError, BenchResult, Context};

/// A gateway answer.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`null` when empty or not JSON).
    pub body: Value,
}

impl Reply {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `404 {"error":…}`, for reports.
    pub fn describe(&self) -> String {
        format!("{} {}", self.status, self.body)
    }

    /// The gateway has no such route yet (404 "no such route", or 405).
    pub fn route_missing(&self) -> bool {
        let message = self.body.pointer("/error/message").and_then(Value::as_str);
        self.status == 405 || (self.status == 404 && message == Some("no such route"))
    }

    /// A string field of the body.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }
}

/// The gateway's API with the bench app's keys.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    admin_key: String,
    /// The bench app's id.
    pub app_id: String,
    /// Sends, groups, socket pushes.
    pub server_key: String,
    /// Registrations and sockets.
    pub client_key: String,
    /// The app's identity secret: the bench signs user tokens as an app server would.
    pub identity_secret: String,
    /// The app is `open`: clients send no user tokens.
    open: bool,
}

impl Api {
    /// A client for the gateway at `addr`, over HTTP/1.1 or, with `h2c`,
    /// HTTP/2 without TLS (prior knowledge); keys are filled by [`Api::create_app`].
    pub fn new(addr: SocketAddr, admin_key: &str, h2c: bool) -> BenchResult<Self> {
        let mut builder =
            reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).timeout(Duration::from_secs(60));
        if h2c {
            builder = builder.http2_prior_knowledge();
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Self {
            http,
            base: format!("http://{addr}"),
            admin_key: admin_key.to_owned(),
            app_id: String::new(),
            server_key: String::new(),
            client_key: String::new(),
            identity_secret: String::new(),
            open: false,
        })
    }

    /// `host:port` of the gateway.
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// True when `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        match self.http.get(format!("{}/readyz", self.base)).send().await {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        }
    }

    /// `PATCH path` with `body`, as `key`.
    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> BenchResult<Reply> {
        Self::send(self.http.patch(format!("{}{path}", self.base)).bearer_auth(key).json(body), path).await
    }

    /// `POST path` with `body`, as `key`.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> BenchResult<Reply> {
        let req = self.http.post(format!("{}{path}", self.base)).bearer_auth(key).json(body);
        Self::send(req, path).await
    }

    /// `GET path`, as `key`.
    pub async fn get(&self, path: &str, key: &str) -> BenchResult<Reply> {
        Self::send(self.http.get(format!("{}{path}", self.base)).bearer_auth(key), path).await
    }

    async fn send(req: reqwest::RequestBuilder, path: &str) -> BenchResult<Reply> {
        let resp = req.send().await.with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.with_context(|| format!("reading the answer of {path}"))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }

    /// Creates the bench app with the stand-ins' credentials and keeps its keys.
    pub async fn create_app(&mut self, apns: &Value, service_account: &Value) -> BenchResult<()> {
        let body = json!({"name": "bench", "apns": apns, "fcm": {"service_account": service_account}});
        let admin_key = self.admin_key.clone();
        let reply = self.post("/v1/apps", &admin_key, &body).await?;
        let field = |name: &str| {
            reply
                .str(name)
                .map(str::to_owned)
                .ok_or_else(|| BenchError::msg(format!("POST /v1/apps answered {}", reply.describe())))
        };
        self.app_id = field("id")?;
        self.server_key = field("server_key")?;
        self.client_key = field("client_key")?;
        self.identity_secret = field("identity_secret")?;
        Ok(())
    }

    /// Puts the bench app in `open` identity mode: from then on clients
    /// send no user tokens ([`Api::user_token`] is `None`).
    pub async fn open_identity(&mut self) -> BenchResult<()> {
        let path = format!("/v1/apps/{}", self.app_id);
        let admin_key = self.admin_key.clone();
        let reply = self.patch(&path, &admin_key, &json!({"identity": "open"})).await?;
        if !reply.ok() {
            return Err(BenchError::msg(format!("PATCH {path} answered {}", reply.describe())));
        }
        self.open = true;
        Ok(())
    }

    /// Gives the bench app a VAPID key pair (generated by the gateway) with `subject` as contact.
    pub async fn enable_web_push(&self, subject: &str) -> BenchResult<()> {
        let path = format!("/v1/apps/{}", self.app_id);
        let reply = self.patch(&path, &self.admin_key, &json!({"web_push": {"subject": subject}})).await?;
        if !reply.ok() {
            return Err(BenchError::msg(format!("PATCH {path} answered {}", reply.describe())));
        }
        Ok(())
    }

    /// A user token for `user_id` (HS256, one hour), signed as the app's
    /// server would; `None` for an `open` app. Signing a JSON object cannot
    /// fail; were it to, the empty token shows up as the gateway's 401 in
    /// the bench's errors.
    pub fn user_token(&self, user_id: &str) -> Option<String> {
        use jsonwebtoken::{encode, EncodingKey, Header};
        if self.open {
            return None;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = json!({"sub": user_id, "exp": now + 3600});
        Some(
            encode(&Header::default(), &claims, &EncodingKey::from_secret(self.identity_secret.as_bytes()))
                .unwrap_or_default(),
        )
    }
}

/// Percentile `p` (0–100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
