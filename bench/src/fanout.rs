//! Group fan-out: N seeded devices in one group, one `POST
//! /v1/groups/{g}/notifications`, polled until `completed`. Optionally some
//! tokens are dead and a webhook receiver counts the calls they cause.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::env::Env;
use crate::gateway::Meter;
use crate::report::{self, Line};
use crate::shares::Shares;
use crate::webhook::Receiver;
use crate::BenchResult;

const BENCH: &str = "fanout";

/// `--dead-percent` and `--webhook`.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// Share of the seeded devices (Android ones) with dead tokens.
    pub dead_percent: u8,
    /// The receiver the bench app is subscribed to, if any.
    pub webhook: Option<&'a Receiver>,
}

/// Runs one fan-out per size; `ceiling` is the stand-ins' requests/s, when
/// measured; `stand_ins` their process, when a child.
pub async fn run(env: &mut Env, sizes: &[u64], ceiling: Option<f64>, stand_ins: Option<u32>, options: Options<'_>) {
    for &n in sizes {
        match one(env, n, ceiling, stand_ins, options).await {
            Ok(Outcome::Done) => {}
            Ok(Outcome::Missing(why)) => {
                report::skipped(BENCH, Some(env.kind), why);
                return;
            }
            Err(e) => report::failed(BENCH, Some(env.kind), format!("{n} devices: {e}")),
        }
    }
}

enum Outcome {
    Done,
    Missing(String),
}

async fn one(
    env: &mut Env,
    n: u64,
    ceiling: Option<f64>,
    stand_ins: Option<u32>,
    options: Options<'_>,
) -> BenchResult<Outcome> {
    let group = format!("bench-fanout-{n}");
    crate::progress::note(Some(env.kind), &format!("fan-out of {n}: seeding the devices"));
    let seed_start = Instant::now();
    env.db.seed(&env.api.app_id, &group, n, options.dead_percent).await?;
    let seed_s = seed_start.elapsed().as_secs_f64();
    let body = json!({"notification": {"title": "Bench", "body": "fan-out"}});
    let send = Send { bench: BENCH, path: &format!("/v1/groups/{group}/notifications"), body: &body, devices: n };
    let before = options.webhook.map(Receiver::tally);
    let since_ms = crate::disk::now_ms();
    Ok(match measure(env, &send, ceiling, stand_ins).await? {
        Measured::Done { line, id } => {
            let mut line = line.num("seed_s", seed_s, 2).set("dead_percent", options.dead_percent);
            if let (Some(receiver), Some(before)) = (options.webhook, before) {
                // Batches are still on their way when the notification completes: counted after the clock stopped.
                crate::progress::note(Some(env.kind), &format!("fan-out of {n}: waiting for the webhook calls"));
                let lag_s = receiver.settle(&id).await?;
                let tally = receiver.tally().since(before);
                line = line.set("webhook_calls", tally.calls).set("webhook_items", tally.items).num(
                    "webhook_lag_s",
                    lag_s,
                    2,
                );
            }
            // After the clock stopped: VACUUM is not the fan-out's cost.
            crate::disk::add(&env.db, since_ms, line).await.emit();
            Outcome::Done
        }
        Measured::Missing(why) => Outcome::Missing(why),
    })
}

/// One fan-out send to measure: `POST {path}` with `body`, expected to
/// reach `devices` devices.
pub struct Send<'a> {
    /// The scenario's name in the report.
    pub bench: &'static str,
    /// The send endpoint.
    pub path: &'a str,
    /// Its body.
    pub body: &'a Value,
    /// Devices targeted.
    pub devices: u64,
}

/// What a measured send gives.
pub enum Measured {
    /// Its report line, not yet emitted (callers add their fields), and the notification's id.
    Done {
        /// The line.
        line: Line,
        /// The notification sent.
        id: String,
    },
    /// A route the gateway does not have.
    Missing(String),
}

/// Sends `send`, polls the notification until it is final, and reports the
/// deliveries/s with the gateway's CPU and memory over that time.
pub async fn measure(
    env: &Env,
    send: &Send<'_>,
    ceiling: Option<f64>,
    stand_ins: Option<u32>,
) -> BenchResult<Measured> {
    let n = send.devices;
    let meter = Meter::start(env.gateway.pid())?;
    let shares = Shares::start(stand_ins, env.db.postgres_name());
    let start = Instant::now();
    let reply = env.api.post(send.path, &env.api.server_key, send.body).await?;
    if reply.route_missing() {
        return Ok(Measured::Missing(format!("POST {}: {}", send.path, reply.describe())));
    }
    let Some(id) = reply.str("id").map(str::to_owned).filter(|_| reply.ok()) else {
        return Err(crate::BenchError::msg(format!("send answered {}", reply.describe())));
    };

    // Bounded: a minute plus a millisecond per device.
    let deadline = start + Duration::from_secs(60) + Duration::from_millis(n);
    // Each poll counts the delivery rows: poll big fan-outs less often (resolution stays ≤ 1 %).
    let poll = Duration::from_millis(match n {
        0..=10_000 => 25,
        10_001..=100_000 => 100,
        _ => 500,
    });
    let mut ticker = crate::progress::Ticker::new();
    let (status, last) = loop {
        let reply = env.api.get(&format!("/v1/notifications/{id}"), &env.api.server_key).await?;
        if reply.route_missing() {
            return Ok(Measured::Missing(format!("GET /v1/notifications/{{id}}: {}", reply.describe())));
        }
        let status = reply.str("status").unwrap_or("?").to_owned();
        if status == "completed" || status == "cancelled" || Instant::now() > deadline {
            break (status, reply.body);
        }
        if ticker.due() {
            let done = count(&reply.body, "delivered") + count(&reply.body, "failed");
            let elapsed = start.elapsed().as_secs();
            crate::progress::note(Some(env.kind), &format!("fan-out of {n}: {done} sent in {elapsed} s"));
        }
        tokio::time::sleep(poll).await;
    };
    let elapsed = start.elapsed().as_secs_f64();
    let usage = meter.finish()?;
    let delivered = count(&last, "delivered");
    let rate = delivered as f64 / elapsed;
    let mut line = Line::new(send.bench, Some(env.kind))
        .set("devices", n)
        .set("status", status)
        .set("targeted", count(&last, "targeted"))
        .set("delivered", delivered)
        .set("failed", count(&last, "failed"))
        .num("deliveries_per_s", rate, 0)
        .num("elapsed_s", elapsed, 3);
    if let Some(ceiling) = ceiling {
        line = line.num("fraction_of_ceiling", rate / ceiling, 3);
    }
    line = line.num("gateway_peak_rss_mb", usage.peak_rss_mb, 1).num("gateway_cpu_s", usage.cpu_s, 2).num(
        "gateway_cpu_us_per_delivery",
        usage.cpu_s * 1e6 / delivered.max(1) as f64,
        1,
    );
    let line = shares.finish_per_push(line, env.kind, "postgres_cpu_us_per_delivery", delivered);
    Ok(Measured::Done { line, id })
}

/// A count from `{"counts": {...}}` or from the top level.
fn count(body: &Value, key: &str) -> u64 {
    body.pointer(&format!("/counts/{key}")).or_else(|| body.get(key)).and_then(Value::as_u64).unwrap_or(0)
}
