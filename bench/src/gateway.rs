//! Child processes (the gateway, the stand-ins) and what /proc says about them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::client::Api;
use crate::{BenchError, BenchResult, Context};

/// A child process whose output goes to a log file. Killed if dropped.
#[derive(Debug)]
pub struct Proc {
    name: &'static str,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> BenchResult<Self> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating a log file handle")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let pid = child.id().ok_or_else(|| BenchError::msg(format!("the {name} exited at once")))?;
        Ok(Self { name, child, pid, log: log.to_path_buf() })
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// An error if the process has exited, with the end of its log.
    pub fn check_alive(&mut self) -> BenchResult<()> {
        match self.child.try_wait().with_context(|| format!("polling the {}", self.name))? {
            None => Ok(()),
            Some(status) => Err(BenchError::msg(format!(
                "the {} exited ({status}); last log lines:\n{}",
                self.name,
                log_tail(&self.log)
            ))),
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    pub async fn stop(mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// CPU and peak memory of a process over one scenario.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// User + system CPU seconds spent during the scenario.
    pub cpu_s: f64,
    /// Highest resident set size during the scenario (VmHWM), MiB.
    pub peak_rss_mb: f64,
}

/// Measures a process from a starting point: resets its peak RSS and notes its CPU time.
#[derive(Debug)]
pub struct Meter {
    pid: u32,
    cpu_start: f64,
}

impl Meter {
    /// Starts measuring `pid` now.
    pub fn start(pid: u32) -> BenchResult<Self> {
        // "5" resets VmHWM to the current RSS (proc(5), clear_refs).
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting peak RSS (clear_refs)")?;
        Ok(Self { pid, cpu_start: cpu_seconds(pid)? })
    }

    /// What the process used since [`Meter::start`].
    pub fn finish(&self) -> BenchResult<Usage> {
        Ok(Usage {
            cpu_s: cpu_seconds(self.pid)? - self.cpu_start,
            peak_rss_mb: status_kb(self.pid, "VmHWM")? / 1024.0,
        })
    }
}

/// User + system CPU seconds of `pid` so far (fields 14 and 15 of /proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> BenchResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> BenchResult<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64)
            .ok_or_else(|| BenchError::msg(format!("unexpected /proc/{pid}/stat: {stat}")))
    };
    // After ')', index 0 is field 3 (state): utime (14) is 11, stime (15) is 12.
    Ok((field(11)? + field(12)?) / clock_ticks())
}

/// Clock ticks per second, the unit of `/proc` CPU times.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// A `kB` line of /proc/PID/status (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kb(pid: u32, key: &str) -> BenchResult<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .ok_or_else(|| BenchError::msg(format!("no {key} in /proc/{pid}/status")))
}

/// How to start the gateway.
#[derive(Debug)]
pub struct GatewaySpec<'a> {
    /// The gateway binary.
    pub exe: &'a Path,
    /// Working directory (so no stray ./pushgate.toml is read) and log location.
    pub dir: &'a Path,
    /// `PUSHGATE_LISTEN`.
    pub listen: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: &'a str,
    /// `PUSHGATE_ADMIN_KEY`.
    pub admin_key: &'a str,
    /// The stand-ins' base URL, for both providers.
    pub provider_url: &'a str,
    /// The stand-ins' CA certificate.
    pub ca_file: &'a Path,
    /// `PUSHGATE_WEBHOOK_ALLOW_PRIVATE=true`, for `--webhook`'s receiver on 127.0.0.1.
    pub webhook_to_loopback: bool,
}

/// Starts `pushgate serve` and waits until `/readyz` answers 200 (60 s at most).
pub async fn start(spec: &GatewaySpec<'_>, api: &Api, log_name: &str) -> BenchResult<Proc> {
    let mut cmd = Command::new(spec.exe);
    cmd.arg("serve")
        .current_dir(spec.dir)
        .env("PUSHGATE_LISTEN", spec.listen.to_string())
        .env("DATABASE_URL", spec.database_url)
        .env("PUSHGATE_ADMIN_KEY", spec.admin_key)
        .env("PUSHGATE_APNS_URL", spec.provider_url)
        .env("PUSHGATE_FCM_URL", spec.provider_url)
        .env("PUSHGATE_CA_FILE", spec.ca_file)
        // Web Push endpoints must be on an allowed host; the stand-ins' is local.
        .env("PUSHGATE_WEBPUSH_HOSTS", "127.0.0.1")
        // Registration is rate-limited per client key by default; the bench measures the ceiling.
        .env("PUSHGATE_REGISTRATION_RATE", "0")
        .env("PUSHGATE_CLIENT_APP_RATE", "0")
        .env("PUSHGATE_SOCKET_MAX_PER_ADDRESS", "0")
        // Measure the gateway, not its request logging.
        .env("RUST_LOG", "warn");
    if spec.webhook_to_loopback {
        cmd.env("PUSHGATE_WEBHOOK_ALLOW_PRIVATE", "true");
    }
    let mut proc = Proc::spawn("gateway", cmd, &spec.dir.join(log_name))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        proc.check_alive()?;
        if api.ready().await {
            return Ok(proc);
        }
        if Instant::now() > deadline {
            return Err(BenchError::msg(format!("the gateway was not ready within 60 s (log: {log_name})")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free local port (bound, then released for the child to take).
pub fn free_port() -> BenchResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading a bound address")?.port())
}
