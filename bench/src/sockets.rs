//! Sockets: N WebSocket clients held open; the gateway's RSS growth per
//! connection, and how long one broadcast takes to reach every client.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::env::Env;
use crate::gateway::{status_kb, Meter};
use crate::report::{self, Line};
use crate::BenchResult;

const BENCH: &str = "sockets";
/// Connections being opened at once (the listen backlog is finite).
const CONNECTING: usize = 64;
/// Read buffer per client. tungstenite's default (128 KiB) is zero-filled on
/// every read: for 10,000 clients that is over a gigabyte of memset in the
/// bench process, on the cores the gateway is measured on. Frames here are
/// a few hundred bytes.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `n` connections, measures, broadcasts once, closes them.
pub async fn run(env: &mut Env, n: u64) -> BenchResult<()> {
    let pid = env.gateway.pid();
    let meter = Meter::start(pid)?;
    let rss_before_kb = status_kb(pid, "VmRSS")?;
    let base = format!("ws://{}/v1/socket?key={}", env.api.authority(), env.api.client_key);

    let connect_start = Instant::now();
    let mut attempts = futures_util::stream::iter(0..n)
        .map(|i| {
            let user_token = env.api.user_token(&format!("u-{i}")).map(|t| format!("&user_token={t}"));
            let url = format!("{base}&client_id=bench-{i}&user_id=u-{i}{}", user_token.unwrap_or_default());
            let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
            let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), false);
            tokio::time::timeout(Duration::from_secs(10), connect)
        })
        .buffer_unordered(CONNECTING);
    let (mut open, mut failed, mut first_error) = (Vec::new(), 0u64, None);
    while let Some(attempt) = attempts.next().await {
        match attempt {
            Err(_) => {
                failed += 1;
                first_error.get_or_insert_with(|| "connect timed out after 10 s".to_owned());
            }
            Ok(Ok((ws, _))) => open.push(ws),
            Ok(Err(tungstenite::Error::Http(resp))) if open.is_empty() && resp.status() == 404 => {
                report::skipped(BENCH, Some(env.kind), "GET /v1/socket answered 404 (endpoint missing)");
                return Ok(());
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let connect_s = connect_start.elapsed().as_secs_f64();
    // Let the gateway finish its per-connection setup before reading RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after_kb = status_kb(pid, "VmRSS")?;
    let opened = open.len() as u64;

    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let mut holders = tokio::task::JoinSet::new();
    for ws in open {
        holders.spawn(hold(ws, ready_tx.clone(), arrived_tx.clone(), stop.clone()));
    }
    drop((arrived_tx, ready_tx));
    // The clock starts once every client is reading, as real clients would be.
    let listening = async { while ready.recv().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(10), listening).await;

    let start = Instant::now();
    let body = json!({"notification": {"title": "Bench", "body": "broadcast"}});
    let reply = env.api.post("/v1/socket/broadcast", &env.api.server_key, &body).await?;
    let (mut received, mut last) = (0u64, None);
    if reply.ok() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while received < opened {
            match tokio::time::timeout_at(deadline, arrived.recv()).await {
                Ok(Some(at)) => {
                    received += 1;
                    last = Some(at);
                }
                _ => break,
            }
        }
    }
    let usage = meter.finish()?;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while holders.join_next().await.is_some() {} }).await;

    let mut line = Line::new(BENCH, Some(env.kind))
        .set("connections", opened)
        .set("failed", failed)
        .num("connect_s", connect_s, 3)
        .num("rss_delta_mb", (rss_after_kb - rss_before_kb) / 1024.0, 1)
        .num("kb_per_connection", (rss_after_kb - rss_before_kb) / opened.max(1) as f64, 2);
    line = if reply.route_missing() {
        line.set("broadcast_skipped", format!("POST /v1/socket/broadcast: {}", reply.describe()))
    } else if !reply.ok() {
        line.set("broadcast_error", reply.describe())
    } else {
        let ms = last.map(|at: Instant| (at - start).as_secs_f64() * 1000.0);
        line.set("broadcast_delivered", reply.body.get("delivered").cloned().unwrap_or(Value::Null))
            .set("received", received)
            .num("broadcast_ms", ms.unwrap_or(f64::NAN), 1)
    };
    if let Some(e) = first_error {
        line = line.set("first_error", e);
    }
    line.num("gateway_peak_rss_mb", usage.peak_rss_mb, 1).num("gateway_cpu_s", usage.cpu_s, 2).emit();
    Ok(())
}

/// Reads until told to stop; reports that it runs (by dropping `ready`; its
/// first read follows in the same poll), then the arrival of the first
/// notification frame.
async fn hold(
    mut ws: Ws,
    ready: mpsc::UnboundedSender<()>,
    arrived: mpsc::UnboundedSender<Instant>,
    mut stop: watch::Receiver<bool>,
) {
    let mut told = false;
    drop(ready);
    // One task owns the socket whole (no split halves behind a lock); reads first.
    let open = loop {
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) if !told && is_notification(text.as_str()) => {
                    told = true;
                    let _ = arrived.send(Instant::now());
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break false,
            },
            _ = stop.changed() => break true,
        }
    };
    if open {
        let _ = ws.close(None).await;
    }
}

fn is_notification(text: &str) -> bool {
    text.contains("notification")
        && serde_json::from_str::<Value>(text)
            .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("notification"))
}
