//! The HTTP edge: timeouts, the connection cap, load shedding, the admin key
//! check, media types.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{assert_error, fresh_database, Db, TestApp};

/// Reads until the server closes the connection (or `within` passes, which
/// fails the test); returns what was read and when the close came.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(start.elapsed()).expect("the server closed the connection in time");
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, start.elapsed()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {
                panic!("connection still open after {within:?}; read so far: {:?}", String::from_utf8_lossy(&seen))
            }
        }
    }
}

/// The JSON body of a raw HTTP/1.1 answer.
fn body_of(answer: &[u8]) -> Value {
    let text = String::from_utf8_lossy(answer);
    let (_, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    serde_json::from_str(body).expect("a JSON body")
}

#[tokio::test]
async fn idle_connections_and_slow_headers_are_closed() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.header_timeout_ms = 400;
        c.idle_timeout_ms = 800;
    })
    .await;

    // Silent from the start: closed at the header deadline.
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    let (_, after) = read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(after >= Duration::from_millis(300), "closed after {after:?}");

    // Headers trickled a byte every 50 ms never finish: closed at the deadline too.
    let mut slow = TcpStream::connect(app.addr).await.expect("connect");
    let start = Instant::now();
    let trickle =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in trickle {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !closed {
        read_until_closed(&mut slow, Duration::from_secs(2)).await;
    }
    assert!(start.elapsed() < Duration::from_secs(2), "slow headers held the connection {:?}", start.elapsed());

    // A keep-alive connection is served, then closed once idle.
    let mut idle = TcpStream::connect(app.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let (_, after) = read_until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(after >= Duration::from_millis(600), "idle connection closed after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_refused_fast_while_a_client_keeps_working() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.max_connections = 10).await;
    // A client already connected (reqwest keeps its connection alive).
    let (status, _) = app.get("/healthz", &app.admin_key).await;
    assert_eq!(status, StatusCode::OK);

    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    let start = Instant::now();
    let mut refused = 0;
    for stream in flood.iter_mut().skip(9) {
        let (answer, _) = read_until_closed(stream, Duration::from_secs(2)).await;
        assert!(answer.starts_with(b"HTTP/1.1 503"), "{}", String::from_utf8_lossy(&answer));
        assert!(String::from_utf8_lossy(&answer).to_ascii_lowercase().contains("retry-after: 1"));
        assert_error(&body_of(&answer), "unavailable", None);
        refused += 1;
    }
    assert_eq!(refused, 191);
    assert!(start.elapsed() < Duration::from_secs(2), "refusals took {:?}", start.elapsed());

    // The connected client is still served while the flood holds the rest.
    for _ in 0..5 {
        let (status, body) = app.get("/v1/apps", &app.admin_key).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn api_requests_over_the_concurrency_limit_get_503() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.api_concurrency = 1).await;
    // A request whose body never finishes holds the one slot.
    let mut held = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /v1/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.admin_key
    );
    held.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let res = app.http.get(app.url("/v1/apps")).bearer_auth(&app.admin_key).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_error(&res.json().await.expect("json"), "unavailable", None);
    // Probes are never shed.
    let (status, _) = app.get("/healthz", &app.admin_key).await;
    assert_eq!(status, StatusCode::OK);

    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = app.get("/v1/apps", &app.admin_key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_empty_or_short_admin_key_stops_the_start() {
    for key in ["", "short-key"] {
        let (url, _dir) = fresh_database(Db::Sqlite).await;
        let config = pushgate::config::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: url,
            admin_key: Some(key.into()),
            ..Default::default()
        };
        let err = match pushgate::server::Gateway::build(config).await {
            Ok(_) => panic!("a gateway started with the admin key {key:?}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("at least 16"), "{err}");
    }
}

#[tokio::test]
async fn media_types_are_case_insensitive() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let res = app
        .http
        .post(app.url("/v1/apps"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "Application/JSON; Charset=UTF-8")
        .body(json!({"name": "cased"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::CREATED);
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let res = app
            .http
            .post(app.url("/v1/apps"))
            .bearer_auth(&app.admin_key)
            .header("content-type", content_type)
            .body(json!({"name": "typed"}).to_string())
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_error(&res.json().await.expect("json"), "unsupported_media_type", None);
    }
}

#[tokio::test]
async fn odd_requests_get_the_json_error_body() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let cases = [
        (reqwest::Method::GET, "/v1/no-such-thing".to_string(), StatusCode::NOT_FOUND, "not_found"),
        (reqwest::Method::DELETE, "/healthz".to_string(), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (reqwest::Method::GET, format!("/v1/apps?name={}", "a".repeat(9000)), StatusCode::URI_TOO_LONG, "uri_too_long"),
        (reqwest::Method::GET, "/v1/apps/%C3%28".to_string(), StatusCode::NOT_FOUND, "not_found"),
    ];
    for (method, path, status, code) in cases {
        let res = app.http.request(method, app.url(&path)).bearer_auth(&app.admin_key).send().await.expect("sent");
        assert_eq!(res.status(), status, "{}", &path[..path.len().min(40)]);
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(content_type.starts_with("application/json"), "{content_type}");
        assert_error(&res.json().await.expect("json"), code, None);
    }
}
