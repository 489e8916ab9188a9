//! Single-device sends: throughput with 100 concurrent clients and the
//! gateway's CPU per notification, answered 202 and with `?wait=true`;
//! latency of `?wait=true` with a few clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{percentile, Api, Reply};
use crate::env::Env;
use crate::gateway::Meter;
use crate::mock::Mock;
use crate::report::{self, Line};
use crate::seed::device_id;
use crate::shares::Shares;
use crate::{BenchError, BenchResult};

/// Concurrent clients for the throughput run.
const CLIENTS: u64 = 100;
/// Clients for the latency run: few, so queueing in the bench does not count.
const LATENCY_CLIENTS: u64 = 4;
/// No new request starts after this long: a slow gateway ends the run, not the bench.
pub const BUDGET: Duration = Duration::from_secs(120);

fn body() -> Value {
    json!({"notification": {"title": "Bench", "body": "one device"}})
}

/// The 202 run, then the `?wait=true` run at the same concurrency, in
/// the same minutes, each on `sends` fresh devices: lines `sends` (with
/// the disk use of its rows) and `sends_wait` (with `wait_cost_ratio`).
pub async fn throughput(env: &mut Env, mock: &Mock, sends: u64) -> BenchResult<()> {
    let Some(accepted) = run(env, mock, sends, Mode::Accepted).await? else { return Ok(()) };
    // Before the wait run, so that only the 202 run's rows are counted; VACUUM is outside both clocks.
    crate::disk::add(&env.db, accepted.since_ms, accepted.line).await.emit();
    let Some(wait) = run(env, mock, sends, Mode::Wait).await? else { return Ok(()) };
    wait.line.num("wait_cost_ratio", wait.cpu_us_per_send / accepted.cpu_us_per_send, 2).emit();
    Ok(())
}

/// How a throughput run's sends are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 202 once queued.
    Accepted,
    /// `?wait=true`: the answer comes once the provider answered.
    Wait,
}

impl Mode {
    fn bench(self) -> &'static str {
        match self {
            Self::Accepted => "sends",
            Self::Wait => "sends_wait",
        }
    }

    fn query(self) -> &'static str {
        match self {
            Self::Accepted => "",
            Self::Wait => "?wait=true",
        }
    }
}

/// One throughput run's line (not yet emitted) and what the next needs.
struct Run {
    line: Line,
    cpu_us_per_send: f64,
    /// When it started, in the store's milliseconds.
    since_ms: i64,
}

/// `sends` devices, one request each, 100 at a time; then waits until the
/// stand-ins accepted them all (bounded) so the CPU figure includes
/// delivery. `None` (and a skipped line) when the endpoint is missing.
async fn run(env: &mut Env, mock: &Mock, sends: u64, mode: Mode) -> BenchResult<Option<Run>> {
    let first = env.db.seed(&env.api.app_id, &format!("bench-{}", mode.bench()), sends, 0).await?;
    let since_ms = crate::disk::now_ms();
    // Read before the probe, whose delivery is then counted too.
    let delivered_before = mock.delivered().await?;
    if let Some(missing) = probe(&env.api, first, mode.query()).await? {
        report::skipped(mode.bench(), Some(env.kind), missing);
        return Ok(None);
    }
    let meter = Meter::start(env.gateway.pid())?;
    let shares = Shares::start(mock.pid(), env.db.postgres_name());
    let start = Instant::now();
    // The probe sent device `first`; the rest go now.
    let tally = fire(&env.api, first + 1, sends - 1, CLIENTS, mode.query()).await;
    let accept_s = start.elapsed().as_secs_f64();
    let accepted = tally.ok.load(Ordering::Relaxed);
    let delivered = await_delivery(mock, delivered_before, accepted, sends).await?;
    let all_s = start.elapsed().as_secs_f64();
    let usage = meter.finish()?;
    let counted = sends - 1;
    let cpu_us_per_send = usage.cpu_s * 1e6 / counted.max(1) as f64;
    let line = Line::new(mode.bench(), Some(env.kind))
        .set("sends", counted)
        .set("clients", CLIENTS)
        .set("accepted", accepted)
        .set("errors", tally.errors.load(Ordering::Relaxed))
        .set("time_budget_hit", tally.cut_short())
        .num("sends_per_s", accepted as f64 / accept_s, 0)
        .num("accept_s", accept_s, 3)
        .set("delivered_to_stand_ins", delivered)
        .num("all_delivered_s", all_s, 3)
        .num("gateway_cpu_us_per_send", cpu_us_per_send, 1)
        .num("gateway_peak_rss_mb", usage.peak_rss_mb, 1)
        .num("gateway_cpu_s", usage.cpu_s, 2);
    let line = shares.finish_per_push(line, env.kind, "postgres_cpu_us_per_send", counted);
    Ok(Some(Run { line: line.set("first_error", tally.first_error()), cpu_us_per_send, since_ms }))
}

/// Waits (bounded: 30 s and a millisecond per send) until the stand-ins
/// counted more than `accepted` pushes since `before` (the probe's is the
/// one more); returns how many they counted.
pub async fn await_delivery(mock: &Mock, before: u64, accepted: u64, sends: u64) -> BenchResult<u64> {
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_millis(sends);
    let mut delivered = 0;
    while Instant::now() < deadline {
        delivered = mock.delivered().await?.saturating_sub(before);
        if delivered > accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(delivered)
}

/// p50/p99 of `POST …?wait=true` (answer once delivered), `LATENCY_CLIENTS` at a time.
pub async fn latency(env: &mut Env, sends: u64) -> BenchResult<()> {
    let first = env.db.seed(&env.api.app_id, "bench-latency", sends, 0).await?;
    if let Some(missing) = probe(&env.api, first, "?wait=true").await? {
        report::skipped("send_latency", Some(env.kind), missing);
        return Ok(());
    }
    let meter = Meter::start(env.gateway.pid())?;
    let tally = fire(&env.api, first + 1, sends - 1, LATENCY_CLIENTS, "?wait=true").await;
    let usage = meter.finish()?;
    let mut samples = tally.latencies().await;
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Line::new("send_latency", Some(env.kind))
        .set("sends", samples.len())
        .set("clients", LATENCY_CLIENTS)
        .set("errors", tally.errors.load(Ordering::Relaxed))
        .set("time_budget_hit", tally.cut_short())
        .num("p50_ms", ms(percentile(&samples, 50.0)), 2)
        .num("p99_ms", ms(percentile(&samples, 99.0)), 2)
        .num("max_ms", ms(samples.last().copied().unwrap_or_default()), 2)
        .num("gateway_peak_rss_mb", usage.peak_rss_mb, 1)
        .set("first_error", tally.first_error())
        .emit();
    Ok(())
}

/// Sends to device `first` once: `Some(reason)` when the endpoint is missing.
async fn probe(api: &Api, first: u64, query: &str) -> BenchResult<Option<String>> {
    let reply = send(api, first, query).await?;
    if reply.route_missing() {
        return Ok(Some(format!("POST /v1/devices/{{id}}/notifications: {}", reply.describe())));
    }
    if !reply.ok() {
        return Err(BenchError::msg(format!("first send answered {}", reply.describe())));
    }
    Ok(None)
}

async fn send(api: &Api, i: u64, query: &str) -> BenchResult<Reply> {
    let path = format!("/v1/devices/{}/notifications{query}", device_id(i));
    api.post(&path, &api.server_key, &body()).await
}

#[derive(Default)]
struct Tally {
    count: u64,
    next: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    latencies: tokio::sync::Mutex<Vec<Duration>>,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    async fn latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.latencies.lock().await)
    }

    /// Whether the time budget stopped the run before every request was sent.
    fn cut_short(&self) -> bool {
        self.next.load(Ordering::Relaxed) < self.count
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(what);
    }

    /// The first failure, for the report (`null` when none).
    fn first_error(&self) -> Value {
        self.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone().map_or(Value::Null, Value::String)
    }
}

/// Sends to devices `first..first+count`, `clients` requests in flight.
async fn fire(api: &Api, first: u64, count: u64, clients: u64, query: &'static str) -> Arc<Tally> {
    let tally = Arc::new(Tally { count, ..Tally::default() });
    let stop_at = Instant::now() + BUDGET;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (api, tally) = (api.clone(), Arc::clone(&tally));
        tasks.spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < stop_at {
                let i = tally.next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let started = Instant::now();
                match send(&api, first + i, query).await {
                    Ok(reply) if reply.ok() => {
                        mine.push(started.elapsed());
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => tally.error(reply.describe()),
                    Err(e) => tally.error(e.to_string()),
                }
            }
            tally.latencies.lock().await.extend(mine);
        });
    }
    while tasks.join_next().await.is_some() {}
    tally
}
