//! The real binary, stopped by SIGTERM in the middle of a group send: it exits
//! 0 within a bounded time, and a restart on the same database finishes the
//! job with every device served exactly once.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pushgate_mock_providers::Behavior;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{fresh_database, Db};
use crate::pipeline::{ios_token, Mock};

const ADMIN: &str = "shutdown-test-admin";

/// A `pushgate serve` child process.
struct Process {
    child: Child,
    base: String,
}

impl Process {
    async fn start(database_url: &str, mock: &Mock) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushgate"));
        cmd.arg("serve")
            .env("PUSHGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("PUSHGATE_ADMIN_KEY", ADMIN)
            .env("PUSHGATE_FANOUT_BATCH", "25")
            .env("PUSHGATE_CLAIM_BATCH", "20")
            .env("PUSHGATE_SEND_CONCURRENCY", "20")
            .env("PUSHGATE_POLL_INTERVAL_MS", "100")
            .env("PUSHGATE_REGISTRATION_RATE", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in mock.env() {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start pushgate");
        let process = Process { child, base: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = http.get(format!("{}/readyz", process.base)).send().await {
                if res.status() == StatusCode::OK {
                    return process;
                }
            }
            assert!(Instant::now() < deadline, "pushgate did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "pushgate did not exit within 30 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sigterm_mid_fanout_loses_nothing(db: Db) {
    let mock = Mock::start().await;
    let (url, _tmp) = fresh_database(db).await;
    let gw = Process::start(&url, &mock).await;
    let (status, app) = gw.call(reqwest::Method::POST, "/v1/apps", ADMIN, Some(mock.app_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let key = app["server_key"].as_str().expect("server key").to_string();

    let tokens: Vec<String> = (0..300).map(|n| ios_token("5eed", n)).collect();
    for t in &tokens {
        // Slow answers keep provider calls in flight when the signal comes.
        mock.handle.set_behavior(t, Behavior::Slow { delay_ms: 20 });
        let body = json!({"platform": "ios", "token": t, "groups": ["all-fans"]});
        let (status, dev) = gw.call(reqwest::Method::POST, "/v1/devices", &key, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{dev}");
    }
    let (status, sent) = gw
        .call(
            reqwest::Method::POST,
            "/v1/groups/all-fans/notifications",
            &key,
            Some(json!({"notification": {"title": "t"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id").to_string();
    // Let fan-out and the first sends begin, then stop the gateway mid-job.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mock.handle.total_received() < 20 {
        assert!(Instant::now() < deadline, "sending started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = gw.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let sent_before_restart = mock.handle.total_received();
    assert!(sent_before_restart < tokens.len() as u64, "the job was stopped part-way ({sent_before_restart} sent)");

    let gw = Process::start(&url, &mock).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (status, n) = gw.call(reqwest::Method::GET, &format!("/v1/notifications/{id}"), &key, None).await;
        assert_eq!(status, StatusCode::OK, "{n}");
        if n["status"] == "completed" {
            break n;
        }
        assert!(Instant::now() < deadline, "the restarted gateway finished the job: {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["counts"]["delivered"], 300, "{done}");
    for t in &tokens {
        assert_eq!(mock.handle.delivered_count(t), 1, "token {t} got exactly one push");
    }
    drop(gw);
}

crate::store_tests!(sigterm_mid_fanout_loses_nothing);
