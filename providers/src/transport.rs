//! A thin HTTP/2 client for pushes: a few TLS connections per provider
//! host, opened as demand needs them, shared by every request and replaced
//! when one fails (see [`pool`] for which one a request uses).
//!
//! Pushes are small POSTs multiplexed on a connection, which is all this
//! does, on the `h2` crate directly. reqwest (still used for the OAuth token
//! endpoint) parsed a URL, checked a connection out of its pool and converted
//! its request per push: with hyper-util's pool and the `http`/`url` work
//! under it, that was a third of the gateway's CPU per delivery in the
//! fan-out profile (BENCHMARKS.md).

mod pool;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::header::HeaderMap;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

use self::pool::{Checkout, Lease, Pool};
use crate::config::ProviderConfig;
use crate::error::ProviderError;

/// Longest answer body kept: provider errors are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;
/// How often an idle connection is pinged, and how long a pong may take
/// before the connection is dropped (a silent peer or a dead NAT entry).
const PING_EVERY: Duration = Duration::from_secs(60);
const PONG_WITHIN: Duration = Duration::from_secs(20);

/// A request that did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection: refused, unreachable, TLS or HTTP/2 handshake failed.
    #[error("connection error: {0}")]
    Connect(String),
    /// No answer within the request timeout.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The stream or the connection failed mid-request.
    #[error("transport error: {0}")]
    Stream(#[from] h2::Error),
    /// The request cannot be written (a token that is not a URL path segment).
    #[error("invalid request: {0}")]
    Request(String),
}

/// A provider's answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers (`apns-id`, `retry-after`).
    pub headers: HeaderMap,
    /// Response body (empty on success for APNs).
    pub body: Bytes,
}

/// One provider host over HTTP/2 and TLS.
pub(crate) struct Transport {
    host: String,
    port: u16,
    authority: Authority,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    timeout: Duration,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("authority", &self.authority).finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport to `url`'s host (https only: providers speak HTTP/2 over
    /// TLS), with `cfg`'s request timeout and connection cap.
    pub(crate) fn new(
        url: &reqwest::Url,
        tls: Arc<rustls::ClientConfig>,
        cfg: &ProviderConfig,
    ) -> Result<Self, ProviderError> {
        let invalid = |reason: &str| ProviderError::InvalidUrl { url: url.to_string(), reason: reason.to_owned() };
        if url.scheme() != "https" {
            return Err(invalid("providers are reached over https"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?.to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let authority: Authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        }
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let server_name = ServerName::try_from(bare).map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            host,
            port,
            authority,
            server_name,
            tls: TlsConnector::from(tls),
            timeout: cfg.request_timeout,
            pool: Pool::new(cfg.max_connections_per_host),
        })
    }

    /// POSTs `body` to `path` with `headers`, within the request timeout.
    pub(crate) async fn post(&self, path: &str, headers: HeaderMap, body: Bytes) -> Result<Answer, TransportError> {
        let path = PathAndQuery::try_from(path).map_err(|e| TransportError::Request(e.to_string()))?;
        let uri = Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| TransportError::Request(e.to_string()))?;
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        tokio::time::timeout(self.timeout, self.exchange(request, body))
            .await
            .map_err(|_| TransportError::Timeout(self.timeout))?
    }

    async fn exchange(&self, request: Request<()>, body: Bytes) -> Result<Answer, TransportError> {
        // `conn` is held until the answer is read: its stream is busy till then.
        let (conn, ready) = loop {
            let conn = self.checkout().await?;
            match conn.sender.clone().ready().await {
                // The connection died while idle (GOAWAY, reset): nothing
                // was sent on it, so the request goes to another at once.
                // Each one found dead leaves the pool; a new one is not retried.
                Err(_) if !conn.fresh => self.pool.remove(conn.id),
                ready => break (conn, ready),
            }
        };
        let id = conn.id;
        let mut ready = ready.map_err(|e| self.failed(id, e))?;
        let (response, mut stream) = ready.send_request(request, body.is_empty()).map_err(|e| self.failed(id, e))?;
        if !body.is_empty() {
            // Buffered by h2 until the peer's flow-control window has room.
            stream.send_data(body, true).map_err(|e| self.failed(id, e))?;
        }
        let (parts, mut recv) = response.await.map_err(|e| self.failed(id, e))?.into_parts();
        let mut body = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            // The status is the answer: a body cut short still classifies by it.
            let Ok(chunk) = chunk else { break };
            // Gives the window back so the connection keeps receiving.
            let _ = recv.flow_control().release_capacity(chunk.len());
            if body.len() < MAX_BODY {
                body.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY - body.len())]);
            }
        }
        drop(conn);
        Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body: body.freeze() })
    }

    /// A connection with a stream for this request: an open one, one opened
    /// by another request, or one this request opens.
    async fn checkout(&self) -> Result<Lease, TransportError> {
        loop {
            match self.pool.checkout() {
                Checkout::Ready(lease) => return Ok(lease),
                Checkout::Open(opening) => {
                    let sender = self.connect(opening.id()).await?;
                    return Ok(opening.finish(sender));
                }
                Checkout::Wait(waiting) => waiting.wait().await,
            }
        }
    }

    /// Maps an h2 error; anything but a reset of this one stream means the
    /// connection is unusable, and it leaves the pool.
    fn failed(&self, id: u64, e: h2::Error) -> TransportError {
        if !e.is_reset() {
            self.pool.remove(id);
        }
        TransportError::Stream(e)
    }

    /// Opens connection `id`; it is ready once the server's settings (its
    /// stream limit) are in.
    async fn connect(&self, id: u64) -> Result<SendRequest<Bytes>, TransportError> {
        let connect = |e: &dyn std::fmt::Display| TransportError::Connect(format!("{}: {e}", self.authority));
        let tcp = TcpStream::connect((self.host.trim_start_matches('[').trim_end_matches(']'), self.port))
            .await
            .map_err(|e| connect(&e))?;
        // Pushes are small and latency-bound.
        tcp.set_nodelay(true).map_err(|e| connect(&e))?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await.map_err(|e| connect(&e))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(connect(&"the server did not agree to HTTP/2 (ALPN h2)"));
        }
        let (sender, mut connection) = h2::client::Builder::new()
            // Answers are small; a large window just avoids stalls when
            // thousands are in flight.
            .initial_connection_window_size(1 << 24)
            .handshake::<_, Bytes>(tls)
            .await
            .map_err(|e| connect(&e))?;
        let pings = connection.ping_pong();
        let (settled, settings_in) = oneshot::channel();
        let authority = self.authority.clone();
        let pool = Arc::downgrade(&self.pool);
        tokio::spawn(async move {
            tokio::select! {
                result = &mut connection => {
                    if let Err(e) = result {
                        tracing::debug!(%authority, error = %e, "provider connection closed");
                    }
                }
                () = keepalive(pings, settled) => {
                    tracing::warn!(%authority, "provider connection did not answer a ping; dropped");
                }
            }
            if let Some(pool) = pool.upgrade() {
                pool.remove(id);
            }
        });
        settings_in.await.map_err(|_| connect(&"the connection closed before the server's settings"))?;
        Ok(sender)
    }
}

/// Pings at once and tells `settled` when the pong is in (the server's
/// SETTINGS come before it, and h2 applies them before reading on); then
/// pings every `PING_EVERY`. Returns when a pong is late or pinging fails.
async fn keepalive(pings: Option<h2::PingPong>, settled: oneshot::Sender<()>) {
    let Some(mut pings) = pings else {
        // Never for a new connection (the pinger is taken once); the first
        // request then runs on h2's assumed limit.
        let _ = settled.send(());
        return std::future::pending().await;
    };
    let mut settled = Some(settled);
    loop {
        match tokio::time::timeout(PONG_WITHIN, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        if let Some(settled) = settled.take() {
            let _ = settled.send(());
        }
        tokio::time::sleep(PING_EVERY).await;
    }
}
