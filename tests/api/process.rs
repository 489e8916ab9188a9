//! A real `pushgate serve` child process on a free port, for tests that
//! stop it as an operator or a crash would (SIGTERM, SIGKILL).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::pipeline::Mock;

/// The admin key of every such process.
pub const ADMIN: &str = "process-test-admin";

/// A `pushgate serve` child process; dropping it kills it (SIGKILL).
pub struct Process {
    pub child: Child,
    base: String,
}

impl Process {
    /// Starts the gateway on `database_url` against `mock`, with `extra`
    /// settings over the defaults, and waits until it is ready.
    pub async fn start(database_url: &str, mock: &Mock, extra: &[(&str, &str)]) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushgate"));
        cmd.arg("serve")
            .env("PUSHGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("PUSHGATE_ADMIN_KEY", ADMIN)
            .env("PUSHGATE_POLL_INTERVAL_MS", "100")
            .env("PUSHGATE_REGISTRATION_RATE", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in mock.env().iter().map(|(k, v)| (*k, v.as_str())).chain(extra.iter().copied()) {
            cmd.env(k, v);
        }
        let process = Process { child: cmd.spawn().expect("start pushgate"), base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(format!("{}/readyz", process.base)).await.is_ok_and(|r| r.status() == StatusCode::OK) {
            assert!(Instant::now() < deadline, "pushgate did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
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

    /// One request as `key`; answers the status and the JSON body (null when none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
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
