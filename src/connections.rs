//! Accepting and serving HTTP connections: a listen backlog larger than the
//! default 128, a cap on open connections (beyond it a fast `503`), a deadline
//! for the first request's headers, and an idle timeout.
//!
//! `axum::serve` had none of these, and rebuilt the whole router for every
//! accepted connection (about 0.9 MB each, kept by the allocator after the
//! connection closed; BENCHMARKS.md, "Idle connections"). Here every
//! connection shares one router.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits of the HTTP edge (from [`crate::config::Config`]).
#[derive(Clone, Copy, Debug)]
pub struct EdgeLimits {
    /// Open HTTP connections at most; more are answered `503` and closed.
    pub max_connections: usize,
    /// The listen backlog (the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
    /// A connection must complete a request's headers within this time.
    pub header_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
}

/// Binds `addr` with the configured backlog.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // A restarted gateway must not wait for the old sockets' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The answer to a connection over the cap: written without reading the
/// request, so refusing costs no parsing and no task.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 78\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections, retry later\"}}";

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets
/// open connections finish their requests.
pub async fn serve(listener: TcpListener, router: Router, limits: EdgeLimits, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // Headers are timed here (see `Activity`): hyper's own timer also runs
    // between requests, which would close every keep-alive connection after
    // the header timeout rather than the idle timeout.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let builder = Arc::new(builder);
    loop {
        let (stream, _peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, mostly: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        // Small responses go out at once rather than waiting for Nagle.
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            serve_connection(stream, router, &builder, limits, shutdown).await;
            drop(slot);
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Answers `503` and closes, without blocking the accept loop.
fn refuse(stream: TcpStream) {
    crate::metrics::shed("connections");
    // The socket buffer of a fresh connection takes this at once; when it
    // does not, the client gets a plain close, which is refusal enough.
    let _ = stream.try_write(REFUSAL);
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.shutdown()).await;
    });
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    builder: &Builder<TokioExecutor>,
    limits: EdgeLimits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    // The peer's address, for per-address limits (`ConnectInfo`, as axum's own server gives it).
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let service = TowerToHyperService::new(Counted { inner: router, activity: activity.clone(), peer });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    loop {
        let deadline = activity.deadline(limits);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(deadline), if !shutting_down => {
                if activity.deadline(limits) <= Instant::now() && activity.in_flight() == 0 {
                    // Slow headers, or nothing said for too long: nobody is
                    // waiting for an answer here, so the connection just ends.
                    return;
                }
            }
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection did and when, for its timeouts.
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Milliseconds after `start` of the first byte of a request not yet
    /// handed to the router (`NONE` when there is none); a connection starts
    /// waiting for one.
    pending_since_ms: AtomicU64,
    /// Requests the router has not answered yet.
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            pending_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn wrote(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn read(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        // Bytes while no request is being handled begin the next request:
        // its headers are due within the header timeout.
        if self.in_flight() == 0 {
            let _ = self.pending_since_ms.compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.pending_since_ms.store(NONE, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// When the connection is to be closed if nothing happens: the idle
    /// timeout after the last byte, or sooner the header timeout after a
    /// request began (the connection opened, or its first byte arrived)
    /// without reaching the router; trickled bytes do not extend that.
    fn deadline(&self, limits: EdgeLimits) -> Instant {
        let idle = self.start + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed)) + limits.idle_timeout;
        match self.pending_since_ms.load(Ordering::Relaxed) {
            NONE => idle,
            since => idle.min(self.start + Duration::from_millis(since) + limits.header_timeout),
        }
    }
}

/// No time recorded.
const NONE: u64 = u64::MAX;

/// The socket, noting each read and write in [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router, counting requests in [`Activity`].
#[derive(Clone)]
struct Counted {
    inner: Router,
    activity: Arc<Activity>,
    peer: Option<std::net::SocketAddr>,
}

impl<B> tower::Service<axum::http::Request<B>> for Counted
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        self.activity.request_started();
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        }
        let activity = self.activity.clone();
        let fut = tower::Service::call(&mut self.inner, req);
        Box::pin(async move {
            let res = fut.await;
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canned refusal is a well-formed answer in the API's error shape.
    #[test]
    fn refusal_is_an_error_body_of_its_declared_length() {
        let text = std::str::from_utf8(REFUSAL).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        assert_eq!(length, body.len());
        let value: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(value["error"]["code"], "unavailable");
    }
}
