//! Prometheus metrics: every name is prefixed `pushgate_`. Call sites use
//! these functions, so names and labels are defined once.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds buckets shared by the latency histograms (1 ms to 30 s).
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the process-wide recorder once and returns the handle that
/// renders the text format. Later calls (other gateways in one process, as in
/// tests) share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                Err(e) => {
                    // Another recorder is installed (embedding); render an empty registry.
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// One HTTP request answered.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let labels = [("route", route.to_string()), ("method", method.to_string()), ("status", status.to_string())];
    counter!("pushgate_http_requests_total", &labels).increment(1);
    histogram!("pushgate_http_request_duration_seconds", "route" => route.to_string()).record(elapsed.as_secs_f64());
}

/// One batch of device registrations committed (or retried one by one).
pub fn registration_batch(size: usize, elapsed: Duration) {
    histogram!("pushgate_registration_batch_size").record(size as f64);
    histogram!("pushgate_registration_batch_seconds").record(elapsed.as_secs_f64());
}

/// `n` deliveries reached the same final or retry outcome.
pub fn deliveries(platform: &str, outcome: &str, reason: Option<&str>, n: u64) {
    counter!(
        "pushgate_deliveries_total",
        "platform" => platform.to_string(),
        "outcome" => outcome.to_string(),
        "reason" => reason.unwrap_or("").to_string()
    )
    .increment(n);
}

/// Latency of one provider request. Called per request: the handles of
/// the two platforms are looked up once.
pub fn provider_latency(platform: &str, elapsed: Duration) {
    static IOS: OnceLock<Histogram> = OnceLock::new();
    static ANDROID: OnceLock<Histogram> = OnceLock::new();
    let of = |cell: &'static OnceLock<Histogram>, name: &'static str| {
        cell.get_or_init(|| histogram!("pushgate_provider_request_duration_seconds", "platform" => name))
    };
    match platform {
        "ios" => of(&IOS, "ios").record(elapsed.as_secs_f64()),
        "android" => of(&ANDROID, "android").record(elapsed.as_secs_f64()),
        other => histogram!("pushgate_provider_request_duration_seconds", "platform" => other.to_string())
            .record(elapsed.as_secs_f64()),
    }
}

/// Provider requests in flight (+1 on start, -1 on end); its handle is
/// looked up once.
pub fn provider_in_flight(delta: f64) {
    static IN_FLIGHT: OnceLock<Gauge> = OnceLock::new();
    IN_FLIGHT.get_or_init(|| gauge!("pushgate_provider_requests_in_flight")).increment(delta);
}

/// Devices deactivated because a provider said their token is dead.
pub fn tokens_deactivated(platform: &str, n: u64) {
    counter!("pushgate_tokens_deactivated_total", "platform" => platform.to_string()).increment(n);
}

/// Deliveries waiting, by state (`pending`, `scheduled`, `retrying`).
pub fn queue_depth(state: &str, n: i64) {
    gauge!("pushgate_queue_depth", "state" => state.to_string()).set(n as f64);
}

/// One webhook attempt, by outcome (`succeeded` or `failed`), and its duration.
pub fn webhook_attempt(outcome: &'static str, elapsed: Duration) {
    counter!("pushgate_webhook_attempts_total", "outcome" => outcome).increment(1);
    histogram!("pushgate_webhook_attempt_duration_seconds").record(elapsed.as_secs_f64());
}

/// Webhook events not yet delivered (in the outbox, or messages pending).
pub fn webhook_events_pending(n: i64) {
    gauge!("pushgate_webhook_events_pending").set(n as f64);
}

/// Open WebSocket connections on this instance.
pub fn socket_connections(n: usize) {
    gauge!("pushgate_socket_connections").set(n as f64);
}

/// Connections and requests refused because a limit was reached
/// (`connections`: the open-connection cap; `requests`: the API concurrency limit).
pub fn shed(what: &'static str) {
    counter!("pushgate_shed_total", "limit" => what).increment(1);
}
