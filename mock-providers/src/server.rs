//! The listener: TLS, HTTP/2 (and HTTP/1.1), routing, shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::credentials::{ApnsKey, ServiceAccountKey};
use crate::handle::MockHandle;
use crate::http::{self, Body};
use crate::state::{bump, State};
use crate::{apns, control, fcm, oauth, tls, webpush, MockConfig, MockError};

/// Starts APNs, FCM and Web Push stand-ins.
#[derive(Debug)]
pub struct MockServer;

impl MockServer {
    /// Generates credentials and a certificate, binds `cfg.listen` and serves
    /// until [`MockHandle::shutdown`] (or until the handle is dropped).
    pub async fn start(cfg: MockConfig) -> Result<MockHandle, MockError> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let identity = tls::generate()?;
        let apns_key = ApnsKey::generate(&cfg.apns_team_id, &cfg.apns_topic)?;
        let account = ServiceAccountKey::generate(&cfg.fcm_project_id)?;
        let state = Arc::new(State {
            base_url: format!("https://{addr}"),
            apns_keys: RwLock::new(HashMap::from([(apns_key.key_id.clone(), apns_key.clone())])),
            accounts: RwLock::new(HashMap::from([(account.client_email.clone(), account.clone())])),
            jwts: Default::default(),
            key_updates: Default::default(),
            token_update_window: cfg.provider_token_update_window,
            revoked_keys: Default::default(),
            sandbox_path: format!("/{}", cfg.apns_sandbox_path.trim_matches('/')),
            oauth_failure: RwLock::new(None),
            access_tokens: Default::default(),
            behaviors: Default::default(),
            records: Default::default(),
            keep_payloads: cfg.keep_payloads,
            counters: Default::default(),
            subscribers: Default::default(),
            vapid_tokens: Default::default(),
            goaway: watch::Sender::new(0),
            latency: cfg.latency,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, identity.acceptor, Arc::clone(&state), cfg.max_streams, stopped));
        tracing::info!(%addr, "mock providers listening");
        Ok(MockHandle::new(addr, identity.ca_pem, apns_key, account, state, stop, task))
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    max_streams: u32,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(max_streams).adaptive_window(true);
    let builder = Arc::new(builder);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, state, builder, mut stop) =
            (acceptor.clone(), Arc::clone(&state), Arc::clone(&builder), stop.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
            };
            let _open = OpenConnection::count(&state);
            let mut goaway = state.goaway.subscribe();
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                _ = goaway.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// One accepted connection in the counters, while it is open.
struct OpenConnection(Arc<State>);

impl OpenConnection {
    fn count(state: &Arc<State>) -> Self {
        bump(&state.counters.connections_opened);
        bump(&state.counters.connections_open);
        Self(Arc::clone(state))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.counters.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a push after the configured latency.
async fn after_latency(state: &State, answer: impl std::future::Future<Output = Response<Body>>) -> Response<Body> {
    let answer = answer.await;
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    answer
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let post = req.method() == Method::POST;
    let sandbox_device = path.strip_prefix(state.sandbox_path.as_str()).and_then(|p| p.strip_prefix("/3/device/"));
    let apns = match (path.strip_prefix("/3/device/"), sandbox_device) {
        (Some(token), _) => Some((token, false)),
        (None, Some(token)) => Some((token, true)),
        (None, None) => None,
    };
    if let Some((token, sandbox)) = apns {
        if !post {
            return http::json(405, &serde_json::json!({"reason": "MethodNotAllowed"}));
        }
        return after_latency(state, apns::push(state, token, sandbox, req)).await;
    }
    if let Some(project) = path.strip_prefix("/v1/projects/").and_then(|p| p.strip_suffix("/messages:send")) {
        if post {
            return after_latency(state, fcm::send(state, project, req)).await;
        }
    }
    if let Some(id) = path.strip_prefix("/wp/") {
        if post {
            return webpush::push(state, id, req).await;
        }
    }
    if path == "/token" && post {
        return oauth::token(state, req).await;
    }
    if let Some(rest) = path.strip_prefix("/mock/") {
        return control::handle(state, rest, req).await;
    }
    if path.starts_with("/3/") {
        return http::json(404, &serde_json::json!({"reason": "BadPath"}));
    }
    http::json(
        404,
        &serde_json::json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}),
    )
}
