//! The APNs/FCM/Web Push stand-ins: a `pushgate-mock-providers` child process, or the
//! library in this process when that binary has not been built.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pushgate_mock_providers::{MockConfig, MockHandle, MockServer, WebPushSubscription};
use serde_json::Value;
use tokio::process::Command;

use crate::gateway::{free_port, Proc};
use crate::{BenchError, BenchResult, Context};

enum Running {
    Child(Proc),
    InProcess(MockHandle),
}

/// How far away the stand-ins seem: what a provider's network and servers
/// impose on the gateway.
#[derive(Clone, Copy, Debug)]
pub struct Network {
    /// Wait before each push's answer.
    pub latency_ms: u64,
    /// Streams allowed per HTTP/2 connection.
    pub max_streams: u32,
}

/// Running stand-ins and the credentials they wrote.
pub struct Mock {
    running: Running,
    /// `https://127.0.0.1:PORT`, for APNs and FCM.
    pub base_url: String,
    /// `ca.pem` to trust.
    pub ca_file: PathBuf,
    /// pushgate `apns` credentials (apns.json).
    pub apns: Value,
    /// Google service-account JSON (service_account.json).
    pub service_account: Value,
    stats: reqwest::Client,
}

impl Mock {
    /// Starts the stand-ins (the `exe` binary when it runs), writing their files into `dir`.
    pub async fn start(exe: &Path, dir: &Path, network: Network) -> BenchResult<Self> {
        let port = free_port()?;
        let (running, base_url) = if binary_runs(exe).await {
            let mut cmd = Command::new(exe);
            cmd.arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--out-dir")
                .arg(dir)
                // Counts only, as in-process below: the stand-ins' memory and
                // CPU go to answering, not to keeping payloads.
                .args(["--keep-payloads", "0"])
                .arg("--latency-ms")
                .arg(network.latency_ms.to_string())
                .arg("--max-streams")
                .arg(network.max_streams.to_string())
                .current_dir(dir)
                .env("RUST_LOG", "warn");
            let mut proc = Proc::spawn("mock providers", cmd, &dir.join("mock.log"))?;
            wait_for_files(&mut proc, dir).await?;
            (Running::Child(proc), format!("https://127.0.0.1:{port}"))
        } else {
            let cfg = MockConfig {
                keep_payloads: 0,
                latency: Duration::from_millis(network.latency_ms),
                max_streams: network.max_streams,
                ..MockConfig::default()
            };
            let handle = MockServer::start(cfg).await.context("starting the in-process stand-ins")?;
            handle.write_files(dir).context("writing the stand-ins' credentials")?;
            let base = handle.base_url();
            (Running::InProcess(handle), base)
        };
        let ca_file = dir.join("ca.pem");
        let ca_pem = std::fs::read(&ca_file).context("reading the stand-ins' ca.pem")?;
        let ca = reqwest::Certificate::from_pem(&ca_pem).context("parsing the stand-ins' ca.pem")?;
        let stats = reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the stand-ins' HTTP client")?;
        Ok(Self {
            running,
            base_url,
            ca_file,
            apns: read_json(&dir.join("apns.json"))?,
            service_account: read_json(&dir.join("service_account.json"))?,
            stats,
        })
    }

    /// The child's pid, when the stand-ins run in their own process.
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Child(proc) => Some(proc.pid()),
            Running::InProcess(_) => None,
        }
    }

    /// `child` or `in-process`, for reports.
    pub fn mode(&self) -> &'static str {
        match &self.running {
            Running::Child(_) => "child",
            Running::InProcess(_) => "in-process",
        }
    }

    /// Pushes the APNs and FCM stand-ins accepted so far (`GET /mock/stats`).
    pub async fn delivered(&self) -> BenchResult<u64> {
        self.stats_sum(&["apns_delivered", "fcm_delivered"]).await
    }

    /// Pushes the Web Push stand-in accepted (and decrypted) so far.
    pub async fn web_push_delivered(&self) -> BenchResult<u64> {
        self.stats_sum(&["webpush_delivered"]).await
    }

    /// The sum of counters `keys` of `GET /mock/stats`.
    async fn stats_sum(&self, keys: &[&str]) -> BenchResult<u64> {
        let url = format!("{}/mock/stats", self.base_url);
        let stats: Value = self
            .stats
            .get(&url)
            .send()
            .await
            .context("calling the stand-ins' /mock/stats")?
            .json()
            .await
            .context("reading the stand-ins' /mock/stats")?;
        Ok(keys.iter().map(|k| stats.get(*k).and_then(Value::as_u64).unwrap_or(0)).sum())
    }

    /// A new browser subscription of the Web Push stand-in (`POST
    /// /mock/webpush/subscriptions`): `{endpoint}~{anything}` is another
    /// endpoint with the same keys.
    pub async fn web_push_subscription(&self) -> BenchResult<WebPushSubscription> {
        let url = format!("{}/mock/webpush/subscriptions", self.base_url);
        self.stats
            .post(&url)
            .json(&serde_json::json!({}))
            .send()
            .await
            .context("calling the stand-ins' /mock/webpush/subscriptions")?
            .error_for_status()
            .context("asking the stand-ins for a Web Push subscription")?
            .json()
            .await
            .context("reading a Web Push subscription")
    }

    /// Stops the stand-ins.
    pub async fn stop(self) {
        match self.running {
            Running::Child(proc) => proc.stop().await,
            Running::InProcess(handle) => handle.shutdown().await,
        }
    }
}

/// Whether the stand-ins' binary is there and answers `--help`.
async fn binary_runs(exe: &Path) -> bool {
    let status = Command::new(exe)
        .arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    matches!(status, Ok(s) if s.success())
}

/// The child writes its files once it listens; the last one marks it ready.
async fn wait_for_files(proc: &mut Proc, dir: &Path) -> BenchResult<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = dir.join("service_account.json");
    loop {
        proc.check_alive()?;
        if read_json(&last).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::msg("the stand-ins wrote no credentials within 30 s (see mock.log)"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read_json(path: &Path) -> BenchResult<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
