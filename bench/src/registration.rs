//! Registration: `POST /v1/devices` with the client key, 64 clients at a
//! time, every request a new token (half iOS, half Android).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use serde_json::{json, Value};

use crate::client::Api;
use crate::env::Env;
use crate::gateway::Meter;
use crate::report::{self, Line};
use crate::{BenchError, BenchResult};

const BENCH: &str = "registration";
/// Concurrent clients.
const CLIENTS: u64 = 64;

/// Registration `i`, with a user token as a signed-in client sends when the
/// app is `verified` (the gateway checks it).
fn device(api: &Api, salt: u32, i: u64) -> Value {
    let user = format!("u-{i}");
    // The 'c' prefix keeps tokens clear of the stand-ins' scripted prefixes (dead…, 0bad…).
    let mut body = if i % 2 == 0 {
        json!({"platform": "ios", "token": format!("c{salt:08x}{i:055x}"), "user_id": user})
    } else {
        json!({"platform": "android", "token": format!("reg-{salt:08x}-{i}"), "user_id": user})
    };
    if let Some(token) = api.user_token(&user) {
        body["user_token"] = json!(token);
    }
    body
}

/// Registers `count` new devices and reports requests/s.
pub async fn run(env: &mut Env, count: u64) -> BenchResult<()> {
    let salt: u32 = rand::thread_rng().gen();
    let api = &env.api;
    let probe = api.post("/v1/devices", &api.client_key, &device(api, salt, 0)).await?;
    if probe.route_missing() {
        report::skipped(BENCH, Some(env.kind), format!("POST /v1/devices: {}", probe.describe()));
        return Ok(());
    }
    if !probe.ok() {
        return Err(BenchError::msg(format!("first registration answered {}", probe.describe())));
    }

    let next = Arc::new(AtomicU64::new(1));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let meter = Meter::start(env.gateway.pid())?;
    let start = Instant::now();
    let stop_at = start + crate::sends::BUDGET;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (api, next, ok, errors) = (api.clone(), Arc::clone(&next), Arc::clone(&ok), Arc::clone(&errors));
        let first_error = Arc::clone(&first_error);
        tasks.spawn(async move {
            while Instant::now() < stop_at {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let failure = match api.post("/v1/devices", &api.client_key, &device(&api, salt, i)).await {
                    Ok(reply) if reply.ok() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok(reply) => reply.describe(),
                    Err(e) => e.to_string(),
                };
                errors.fetch_add(1, Ordering::Relaxed);
                first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(failure);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let usage = meter.finish()?;
    let ok = ok.load(Ordering::Relaxed);
    Line::new(BENCH, Some(env.kind))
        .set("registrations", count.saturating_sub(1))
        .set("clients", CLIENTS)
        .set("ok", ok)
        .set("errors", errors.load(Ordering::Relaxed))
        .set("time_budget_hit", next.load(Ordering::Relaxed) < count)
        .num("registrations_per_s", ok as f64 / elapsed, 0)
        .num("elapsed_s", elapsed, 3)
        .num("gateway_peak_rss_mb", usage.peak_rss_mb, 1)
        .num("gateway_cpu_s", usage.cpu_s, 2)
        .set("first_error", first_error.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .emit();
    Ok(())
}
