//! Operations: health, readiness, metrics, request ids, the OpenAPI document.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, fresh_database, postgres_available, Db, TcpProxy, TestApp};
use crate::pipeline::{self, ios_token, register};

/// Every route of API.md, as (method, OpenAPI path).
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/v1/apps"),
    ("get", "/v1/apps"),
    ("get", "/v1/apps/{app_id}"),
    ("patch", "/v1/apps/{app_id}"),
    ("post", "/v1/apps/{app_id}/keys"),
    ("delete", "/v1/apps/{app_id}/keys/{key_id}"),
    ("post", "/v1/devices"),
    ("get", "/v1/devices"),
    ("get", "/v1/devices/{device_id}"),
    ("patch", "/v1/devices/{device_id}"),
    ("delete", "/v1/devices/{device_id}"),
    ("get", "/v1/groups"),
    ("get", "/v1/groups/{name}/devices"),
    ("put", "/v1/groups/{name}/devices/{device_id}"),
    ("delete", "/v1/groups/{name}/devices/{device_id}"),
    ("post", "/v1/devices/{device_id}/notifications"),
    ("post", "/v1/groups/{name}/notifications"),
    ("post", "/v1/notifications"),
    ("get", "/v1/notifications/{id}"),
    ("delete", "/v1/notifications/{id}"),
    ("get", "/v1/deliveries"),
    ("get", "/v1/socket"),
    ("post", "/v1/socket/clients/{client_id}/notifications"),
    ("post", "/v1/socket/users/{user_id}/notifications"),
    ("post", "/v1/socket/broadcast"),
    ("get", "/v1/socket/clients"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/{id}"),
    ("patch", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("post", "/v1/webhooks/{id}/secret"),
    ("post", "/v1/webhooks/{id}/test"),
    ("get", "/v1/webhooks/{id}/attempts"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/web-push/public-key"),
    ("get", "/sdk/pushgate.js"),
    ("get", "/sdk/pushgate-sw.js"),
    ("get", "/demo"),
    ("get", "/v1/stats"),
    ("get", "/v1/notifications"),
];

async fn openapi_lists_every_route_of_the_contract(db: Db) {
    let app = TestApp::spawn(db).await;
    let res = app.http.get(app.url("/v1/openapi.json")).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1: {}", doc["openapi"]);
    let missing: Vec<String> = CONTRACT
        .iter()
        .filter(|(method, path)| doc["paths"][*path][*method].is_null())
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(missing.is_empty(), "routes missing from the OpenAPI document: {missing:?}");

    // And the other way: every documented operation is served (no "no such route").
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let concrete = path.replace('{', "x").replace('}', "");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (status, body) = app.call(method.clone(), &concrete, Some("bogus-key"), None).await;
            let unrouted = status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such route";
            assert!(
                !unrouted && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not served"
            );
        }
    }
}

async fn health_metrics_and_request_ids(db: Db) {
    let app = TestApp::spawn(db).await;
    let res = app.http.get(app.url("/healthz")).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-request-id").is_some_and(|v| !v.is_empty()), "a request id is echoed");
    let res = app.http.get(app.url("/readyz")).header("x-request-id", "req-123").send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-123"));

    let (status, body) = app.get("/v1/apps/missing", &app.admin_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);
    let text = app.http.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("pushgate_http_requests_total")
                && l.contains("route=\"/v1/apps/{app_id}\"")
                && l.contains("status=\"404\"")
        })
        .unwrap_or_else(|| panic!("the 404 is counted by route: {text}"));
    let count: f64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a number");
    assert!(count >= 1.0);
}

/// Readiness flips to 503 while the store is unreachable (its connections
/// reset by a proxy) and back to 200 when it returns; requests meanwhile get
/// 503 `unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_store() {
    if !postgres_available().await {
        return;
    }
    let (url, _) = fresh_database(Db::Postgres).await;
    let (head, db_name) = url.rsplit_once('/').expect("db name");
    let host = head.rsplit_once('@').map(|(_, h)| h).unwrap_or("127.0.0.1:5432").to_string();
    let proxy = TcpProxy::start(host.clone()).await;
    let proxied = format!("{}@{}/{db_name}", head.rsplit_once('@').map(|(u, _)| u).unwrap_or(head), proxy.addr);
    let app = TestApp::spawn_with(Db::Postgres, |c| {
        c.database_url = proxied;
        c.db_acquire_timeout_ms = 1000;
    })
    .await;
    let ready = || async { app.http.get(app.url("/readyz")).send().await.expect("sent").status() };
    assert_eq!(ready().await, StatusCode::OK);

    proxy.cut().await;
    // Both answer within a bounded time: the probe at once, requests within
    // the pool's acquire timeout (1 s here), with `Retry-After`.
    let start = std::time::Instant::now();
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < std::time::Duration::from_secs(1), "readyz took {:?}", start.elapsed());
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let res = app.http.get(app.url("/v1/apps")).bearer_auth(&app.admin_key).send().await.expect("sent");
        assert!(start.elapsed() < std::time::Duration::from_secs(3), "request took {:?}", start.elapsed());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        assert_error(&res.json().await.expect("json"), "unavailable", None);
    }

    proxy.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ready().await != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "readiness came back");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, _) = app.post("/v1/apps", &app.admin_key, json!({"name": "after"})).await;
    assert_eq!(status, StatusCode::CREATED);
}

/// The value of the first sample of `name` whose labels include all of
/// `labels` (0 when absent).
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l.as_bytes().get(name.len()) == Some(&b'{') || l.as_bytes().get(name.len()) == Some(&b' '))
        })
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
        .sum()
}

async fn metrics_move_when_deliveries_happen(db: Db) {
    let (app, _mock, keys) = pipeline::start(db, |_| {}).await;
    let scrape = || async { app.http.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text") };
    let before = scrape().await;
    register(&app, &keys, "ios", &ios_token("c0de", 7), None, &["m"]).await;
    register(&app, &keys, "ios", &ios_token("dead", 7), None, &["m"]).await;
    register(&app, &keys, "android", "metrics-live", None, &["m"]).await;
    let (status, res) = app
        .post("/v1/groups/m/notifications?wait=true", &keys.server_key, json!({"notification": {"title": "m"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let after = scrape().await;

    // The recorder is process-wide (other tests count too): compare deltas.
    let delta = |name: &str, labels: &[&str]| sample(&after, name, labels) - sample(&before, name, labels);
    assert!(delta("pushgate_deliveries_total", &["platform=\"ios\"", "outcome=\"delivered\""]) >= 1.0, "{after}");
    assert!(delta("pushgate_deliveries_total", &["platform=\"android\"", "outcome=\"delivered\""]) >= 1.0);
    assert!(delta("pushgate_deliveries_total", &["outcome=\"failed\"", "reason=\"Unregistered\""]) >= 1.0);
    assert!(delta("pushgate_tokens_deactivated_total", &["platform=\"ios\""]) >= 1.0);
    assert!(delta("pushgate_provider_request_duration_seconds_count", &["platform=\"ios\""]) >= 2.0);
    assert!(after.contains("pushgate_queue_depth{state=\"pending\"}"), "queue depth is exported");
    assert!(after.contains("pushgate_socket_connections"), "socket connections are exported");
}

crate::store_tests!(
    openapi_lists_every_route_of_the_contract,
    health_metrics_and_request_ids,
    metrics_move_when_deliveries_happen
);
