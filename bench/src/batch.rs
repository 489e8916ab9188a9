//! Batch sends: `POST /v1/notifications/batch`, one notification per
//! device, [`ITEMS`] to a request and [`IN_FLIGHT`] requests at a time;
//! the gateway answers each item in request order, queued or refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use crate::client::{Api, Reply};
use crate::env::Env;
use crate::gateway::Meter;
use crate::mock::Mock;
use crate::report::{self, Line};
use crate::seed::device_id;
use crate::sends::{await_delivery, BUDGET};
use crate::shares::Shares;
use crate::{BenchError, BenchResult};

const BENCH: &str = "batch";
const PATH: &str = "/v1/notifications/batch";
/// Notifications per request (the gateway takes up to 1,000).
const ITEMS: u64 = 500;
/// Requests in flight.
const IN_FLIGHT: u64 = 4;

/// A request's body: one notification to each of devices `first..first+count`.
fn body(first: u64, count: u64) -> Value {
    let items: Vec<Value> = (first..first + count)
        .map(|i| json!({"to": {"device_ids": [device_id(i)]}, "notification": {"title": "Bench", "body": "batch"}}))
        .collect();
    json!({ "notifications": items })
}

/// Counts over the run.
#[derive(Default)]
struct Tally {
    /// Items answered with a status (queued, …).
    accepted: AtomicU64,
    /// Items answered with an `error`.
    refused: AtomicU64,
    /// Requests that failed whole (not 200, no `results` for every item, transport).
    errors: AtomicU64,
    /// The next chunk to send.
    next: AtomicU64,
    first_error: Mutex<Option<String>>,
    first_refusal: Mutex<Option<Value>>,
}

impl Tally {
    /// Counts one answer to `items` notifications.
    fn count(&self, reply: &Reply, items: u64) {
        let results = reply.body.get("results").and_then(Value::as_array);
        let results = match results {
            Some(results) if reply.status == 200 && results.len() as u64 == items => results,
            Some(results) if reply.status == 200 => {
                return self.error(format!("{} results for {items} notifications", results.len()));
            }
            _ => return self.error(reply.describe()),
        };
        for result in results {
            if let Some(error) = result.get("error") {
                self.refused.fetch_add(1, Ordering::Relaxed);
                lock(&self.first_refusal).get_or_insert_with(|| error.clone());
            } else {
                self.accepted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.first_error).get_or_insert(what);
    }
}

/// A poisoned lock only means another task panicked; its counts still stand.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends to `sends` fresh devices in batches and reports the `batch` line,
/// or a skipped one when the gateway has no batch route.
pub async fn run(env: &mut Env, mock: &Mock, sends: u64) -> BenchResult<()> {
    let first = env.db.seed(&env.api.app_id, "bench-batch", sends, 0).await?;
    let delivered_before = mock.delivered().await?;
    // A batch of one tells whether the route exists and answers as the bench expects.
    let probe = env.api.post(PATH, &env.api.server_key, &body(first, 1)).await?;
    if probe.route_missing() {
        report::skipped(BENCH, Some(env.kind), format!("POST {PATH}: {}", probe.describe()));
        return Ok(());
    }
    let check = Tally::default();
    check.count(&probe, 1);
    if check.accepted.load(Ordering::Relaxed) != 1 {
        return Err(BenchError::msg(format!("a batch of one answered {}", probe.describe())));
    }

    let count = sends - 1;
    let meter = Meter::start(env.gateway.pid())?;
    let shares = Shares::start(mock.pid(), env.db.postgres_name());
    let since_ms = crate::disk::now_ms();
    let start = Instant::now();
    let tally = fire(&env.api, first + 1, count).await;
    let accept_s = start.elapsed().as_secs_f64();
    let accepted = tally.accepted.load(Ordering::Relaxed);
    let delivered = await_delivery(mock, delivered_before, accepted, sends).await?;
    let all_s = start.elapsed().as_secs_f64();
    let usage = meter.finish()?;
    let chunks = count.div_ceil(ITEMS);
    let line = Line::new(BENCH, Some(env.kind))
        .set("sends", count)
        .set("items_per_request", ITEMS)
        .set("requests_in_flight", IN_FLIGHT)
        .set("accepted", accepted)
        .set("refused", tally.refused.load(Ordering::Relaxed))
        .set("errors", tally.errors.load(Ordering::Relaxed))
        .set("time_budget_hit", tally.next.load(Ordering::Relaxed) < chunks)
        .num("sends_per_s", accepted as f64 / accept_s, 0)
        .num("accept_s", accept_s, 3)
        .set("delivered_to_stand_ins", delivered)
        .num("all_delivered_s", all_s, 3)
        .num("gateway_cpu_us_per_send", usage.cpu_s * 1e6 / count.max(1) as f64, 1)
        .num("gateway_peak_rss_mb", usage.peak_rss_mb, 1)
        .num("gateway_cpu_s", usage.cpu_s, 2);
    let first_error = lock(&tally.first_error).clone().map_or(Value::Null, Value::String);
    let first_refusal = lock(&tally.first_refusal).clone().unwrap_or(Value::Null);
    let line = shares
        .finish_per_push(line, env.kind, "postgres_cpu_us_per_send", count)
        .set("first_error", first_error)
        .set("first_refusal", first_refusal);
    crate::disk::add(&env.db, since_ms, line).await.emit();
    Ok(())
}

/// Sends devices `first..first+count` in chunks of [`ITEMS`], [`IN_FLIGHT`] at a time.
async fn fire(api: &Api, first: u64, count: u64) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let chunks = count.div_ceil(ITEMS);
    let stop_at = Instant::now() + BUDGET;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (api, tally) = (api.clone(), Arc::clone(&tally));
        tasks.spawn(async move {
            while Instant::now() < stop_at {
                let chunk = tally.next.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks {
                    break;
                }
                let offset = chunk * ITEMS;
                let items = ITEMS.min(count - offset);
                match api.post(PATH, &api.server_key, &body(first + offset, items)).await {
                    Ok(reply) => tally.count(&reply, items),
                    Err(e) => tally.error(e.to_string()),
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: Value) -> Reply {
        Reply { status, body }
    }

    #[test]
    fn items_are_counted_as_queued_or_refused_and_bad_answers_as_errors() {
        let tally = Tally::default();
        let results = json!({"results": [
            {"id": "n1", "status": "queued", "targeted": 1},
            {"error": {"code": "invalid_field", "message": "no such device", "field": "to.device_ids"}},
        ]});
        tally.count(&reply(200, results.clone()), 2);
        assert_eq!(tally.accepted.load(Ordering::Relaxed), 1);
        assert_eq!(tally.refused.load(Ordering::Relaxed), 1);
        assert_eq!(lock(&tally.first_refusal).as_ref().and_then(|e| e.get("code")), Some(&json!("invalid_field")));

        tally.count(&reply(200, results), 3);
        tally.count(&reply(400, json!({"error": {"code": "invalid_field"}})), 2);
        assert_eq!(tally.errors.load(Ordering::Relaxed), 2);
        assert_eq!(lock(&tally.first_error).as_deref(), Some("2 results for 3 notifications"));
        assert_eq!(tally.accepted.load(Ordering::Relaxed), 1, "a request answered wrong counts no item");
    }

    #[test]
    fn a_request_holds_one_notification_per_device() {
        let items = body(7, 3);
        let items = items["notifications"].as_array().expect("notifications");
        assert_eq!(items.len(), 3);
        assert_eq!(items[2]["to"]["device_ids"], json!([device_id(9)]));
    }
}
