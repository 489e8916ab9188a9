//! `--webhook`: a small HTTP receiver inside the bench that the gateway's
//! webhook calls go to. It answers 204 at once and counts calls and items
//! (`data.items` of batched events), so a fan-out line can say how many calls
//! its dead tokens and its completion made while deliveries went on.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::client::Api;
use crate::{BenchError, BenchResult, Context};

/// The events a fan-out with dead tokens causes.
const EVENTS: [&str; 3] = ["device.deactivated", "delivery.failed", "notification.completed"];
/// Batches wait up to 1 s for more items: this long without a call means the
/// gateway has sent what it had.
const QUIET: Duration = Duration::from_millis(1500);
/// At most this long after a fan-out completed for its calls to arrive.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// The receiver, listening on 127.0.0.1 until the bench exits.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`, to subscribe.
    pub url: String,
    counts: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    calls: AtomicU64,
    items: AtomicU64,
    last_call: Mutex<Option<Instant>>,
    /// Ids of the notifications a `notification.completed` event came for.
    completed: Mutex<HashSet<String>>,
}

/// Calls and items received so far.
#[derive(Clone, Copy, Debug)]
pub struct Tally {
    /// HTTP requests.
    pub calls: u64,
    /// `data.items` entries over all of them.
    pub items: u64,
}

impl Receiver {
    /// Binds a port on 127.0.0.1 and serves HTTP/1.1 there from a background task.
    pub async fn start() -> BenchResult<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the webhook receiver")?;
        let addr: SocketAddr = listener.local_addr().context("reading the webhook receiver's address")?;
        let counts = Arc::new(Counts {
            calls: AtomicU64::new(0),
            items: AtomicU64::new(0),
            last_call: Mutex::new(None),
            completed: Mutex::new(HashSet::new()),
        });
        tokio::spawn(accept_loop(listener, counts.clone()));
        Ok(Self { url: format!("http://{addr}/hook"), counts })
    }

    /// Subscribes the bench app to [`EVENTS`] with its server key.
    pub async fn subscribe(&self, api: &Api) -> BenchResult<()> {
        let body = json!({"url": self.url, "events": EVENTS, "description": "bench receiver"});
        let reply = api.post("/v1/webhooks", &api.server_key, &body).await?;
        if !reply.ok() {
            return Err(BenchError::msg(format!("POST /v1/webhooks answered {}", reply.describe())));
        }
        Ok(())
    }

    /// Calls and items so far.
    pub fn tally(&self) -> Tally {
        Tally { calls: self.counts.calls.load(Ordering::Relaxed), items: self.counts.items.load(Ordering::Relaxed) }
    }

    /// Waits until `notification.completed` for `id` has arrived and no call
    /// came for [`QUIET`] (at most [`SETTLE_LIMIT`]); returns the seconds
    /// from now until the last call, or an error if the completion never came.
    pub async fn settle(&self, id: &str) -> BenchResult<f64> {
        let start = Instant::now();
        loop {
            let completed = lock(&self.counts.completed).contains(id);
            let last = *lock(&self.counts.last_call);
            if completed && last.is_some_and(|t| t.elapsed() >= QUIET) {
                return Ok(last.map_or(0.0, |t| t.saturating_duration_since(start).as_secs_f64()));
            }
            if start.elapsed() > SETTLE_LIMIT {
                return Err(BenchError::msg(format!(
                    "no notification.completed webhook call for {id} within {} s",
                    SETTLE_LIMIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Tally {
    /// What was received between `before` and `self`.
    pub fn since(self, before: Tally) -> Tally {
        Tally { calls: self.calls - before.calls, items: self.items - before.items }
    }
}

/// A poisoned lock only means a handler panicked mid-count: the counts are still worth reading.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, counts: Arc<Counts>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or the like: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| receive(req, counts.clone()));
            // A connection the gateway drops mid-request is its retry to make, not ours to report.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn receive(req: Request<Incoming>, counts: Arc<Counts>) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let items = event.pointer("/data/items").and_then(Value::as_array).map_or(0, Vec::len);
    if event.get("type").and_then(Value::as_str) == Some("notification.completed") {
        if let Some(id) = event.pointer("/data/id").and_then(Value::as_str) {
            lock(&counts.completed).insert(id.to_owned());
        }
    }
    counts.items.fetch_add(items as u64, Ordering::Relaxed);
    counts.calls.fetch_add(1, Ordering::Relaxed);
    *lock(&counts.last_call) = Some(Instant::now());
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_calls_and_items_and_settles_once_completed() {
        let receiver = Receiver::start().await.expect("receiver starts");
        let http = reqwest::Client::new();
        let before = receiver.tally();
        let events = [
            json!({"type": "delivery.failed", "data": {"items": [{"device_id": "a"}, {"device_id": "b"}]}}),
            json!({"type": "device.deactivated", "data": {"items": [{"device_id": "a"}]}}),
            json!({"type": "notification.completed", "data": {"id": "n1", "counts": {"failed": 2}}}),
        ];
        for event in &events {
            let resp = http.post(&receiver.url).json(event).send().await.expect("receiver answers");
            assert_eq!(resp.status().as_u16(), 204);
        }
        let tally = receiver.tally().since(before);
        assert_eq!((tally.calls, tally.items), (3, 3));
        let lag_s = receiver.settle("n1").await.expect("n1 completed");
        assert_eq!(lag_s, 0.0, "every call came before settling started");
    }
}
