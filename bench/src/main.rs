//! `pushgate-bench`: starts the stand-ins and the gateway as child
//! processes, drives them over HTTP and WebSocket from this process, reads
//! the gateway's CPU and memory from /proc, and prints one JSON object per
//! line on stdout. It measures; it never asserts. See BENCHMARKS.md.
//!
//! It lives outside the gateway crate so that the gateway ships none of it:
//! no stand-ins, no WebSocket client, no scratch directories, no `unsafe`.

mod batch;
mod ceiling;
mod client;
mod disk;
mod env;
mod fanout;
mod gateway;
mod mock;
mod progress;
mod registration;
mod report;
mod seed;
mod segment;
mod sends;
mod shares;
mod sockets;
mod webhook;
mod webpush;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use env::Env;
use mock::{Mock, Network};
use report::Line;

/// Benchmark a pushgate gateway against local stand-ins; prints JSON lines (BENCHMARKS.md).
#[derive(Clone, Debug, Parser)]
#[command(name = "pushgate-bench", version, about)]
pub struct BenchArgs {
    /// Small sizes, done in under a minute: fan-outs of 2,000 devices (and
    /// browsers), 2,000 sends and registrations, 1,000 sockets.
    #[arg(long)]
    quick: bool,
    /// Stores to run on.
    #[arg(long, value_enum, default_value_t = StoreChoice::Both)]
    store: StoreChoice,
    /// Fan-out group sizes [default: 10000,100000,1000000; 2000 with --quick].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    sizes: Vec<u64>,
    /// Devices of the `segment` scenario's registry; every 10th is in the
    /// segment [default: 1000000; 20000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..))]
    segment_registry: Option<u64>,
    /// Scenarios to run [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Postgres server: a `pushgate_bench_*` database is created there and dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Single-device sends, and the `batch` scenario's notifications [default: 50000; 2000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    sends: Option<u64>,
    /// `?wait=true` sends timed for latency [default: 2000; 500 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    latency_sends: Option<u64>,
    /// Registrations [default: 50000; 2000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    registrations: Option<u64>,
    /// Browsers of the `webpush` fan-out [default: 100000; 2000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    web_devices: Option<u64>,
    /// WebSocket connections [default: 10000; 1000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    sockets: Option<u64>,
    /// Requests h2load sends to the stand-ins [default: 200000; 20000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    h2load_requests: Option<u64>,
    /// Keep the scratch directory (gateway and stand-in logs, SQLite file) and print its path on stderr.
    #[arg(long)]
    keep: bool,
    /// The gateway binary to run [default: `pushgate` beside this binary, as cargo builds it].
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Milliseconds the stand-ins wait before answering each push, as Apple and Google are far away.
    #[arg(long, default_value_t = 0)]
    mock_latency_ms: u64,
    /// Streams the stand-ins allow per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, default_value_t = pushgate_mock_providers::APPLE_MAX_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    mock_max_streams: u32,
    /// The bench app's identity mode: `verified` (registrations and sockets
    /// carry user tokens the gateway checks) or `open` (no user tokens), to
    /// measure what checking them costs.
    #[arg(long, value_enum, default_value_t = Identity::Verified)]
    identity: Identity,
    /// Percentage of the fan-out's devices seeded with dead tokens (Android
    /// tokens the stand-ins answer UNREGISTERED; half the devices are
    /// Android, hence at most 50).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=50))]
    dead_percent: u8,
    /// Run a webhook receiver in the bench (on 127.0.0.1, answering 204) and
    /// subscribe the app to device.deactivated, delivery.failed and
    /// notification.completed; fan-out lines then count its calls and items.
    #[arg(long)]
    webhook: bool,
    /// Talk to the gateway's API over HTTP/2 cleartext (h2c, prior
    /// knowledge): concurrent requests share connections instead of one
    /// HTTP/1.1 connection each.
    #[arg(long)]
    api_h2c: bool,
}

/// `--identity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Identity {
    Verified,
    Open,
}

/// `--store`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreChoice {
    Sqlite,
    Postgres,
    Both,
}

/// A store the gateway runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Embedded SQLite file.
    Sqlite,
    /// A Postgres database.
    Postgres,
}

impl StoreKind {
    /// `sqlite` / `postgres`, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// `--only` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// The stand-ins' ceiling, with h2load.
    Ceiling,
    /// Group fan-out.
    Fanout,
    /// Fan-out to a tag segment beside a group of the same devices.
    Segment,
    /// Single-device send throughput and CPU per send, answered 202 and
    /// with `?wait=true`; and the disk use of their rows.
    Sends,
    /// Batch sends (`POST /v1/notifications/batch`), one device per notification.
    Batch,
    /// Single-device send latency with `?wait=true`.
    Latency,
    /// Device registration throughput.
    Registration,
    /// WebSocket memory per connection and broadcast time.
    Sockets,
    /// Web Push group fan-out through the stand-in, and encryption CPU per push.
    Webpush,
}

/// Why the harness itself could not go on (scenario failures are printed instead).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something failed, with what the bench was doing.
    #[error("{context}: {source}")]
    Caused {
        /// What the bench was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A condition the bench checks itself.
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    /// An error without an underlying cause.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// `source`, while doing `context`.
    pub fn caused(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Caused { context: context.into(), source: source.into() }
    }
}

/// Result of a harness step.
pub type BenchResult<T> = Result<T, BenchError>;

/// Adds what the bench was doing to an error.
pub trait Context<T> {
    /// With a fixed description.
    fn context(self, context: &str) -> BenchResult<T>;
    /// With a description built only on error.
    fn with_context(self, context: impl FnOnce() -> String) -> BenchResult<T>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>>> Context<T> for Result<T, E> {
    fn context(self, context: &str) -> BenchResult<T> {
        self.map_err(|e| BenchError::caused(context, e))
    }

    fn with_context(self, context: impl FnOnce() -> String) -> BenchResult<T> {
        self.map_err(|e| BenchError::caused(context(), e))
    }
}

/// What to run, with `--quick` defaults applied.
struct Plan {
    quick: bool,
    stores: Vec<StoreKind>,
    scenarios: Vec<Scenario>,
    sizes: Vec<u64>,
    segment_registry: u64,
    sends: u64,
    latency_sends: u64,
    registrations: u64,
    web_devices: u64,
    sockets: u64,
    h2load_requests: u64,
    postgres: String,
    keep: bool,
    gateway: Option<PathBuf>,
    identity: Identity,
    network: Network,
    dead_percent: u8,
    webhook: bool,
    api_h2c: bool,
}

impl Plan {
    fn new(args: BenchArgs) -> Self {
        let pick = |given: Option<u64>, full: u64, quick: u64| given.unwrap_or(if args.quick { quick } else { full });
        let sizes = match (args.sizes.is_empty(), args.quick) {
            (false, _) => args.sizes.clone(),
            (true, true) => vec![2_000],
            (true, false) => vec![10_000, 100_000, 1_000_000],
        };
        let stores = match args.store {
            StoreChoice::Sqlite => vec![StoreKind::Sqlite],
            StoreChoice::Postgres => vec![StoreKind::Postgres],
            StoreChoice::Both => vec![StoreKind::Sqlite, StoreKind::Postgres],
        };
        let scenarios = if args.only.is_empty() { Scenario::value_variants().to_vec() } else { args.only.clone() };
        Self {
            quick: args.quick,
            stores,
            scenarios,
            sizes,
            segment_registry: pick(args.segment_registry, 1_000_000, 20_000),
            sends: pick(args.sends, 50_000, 2_000),
            latency_sends: pick(args.latency_sends, 2_000, 500),
            registrations: pick(args.registrations, 50_000, 2_000),
            web_devices: pick(args.web_devices, 100_000, 2_000),
            sockets: pick(args.sockets, 10_000, 1_000),
            h2load_requests: pick(args.h2load_requests, 200_000, 20_000),
            postgres: args.postgres,
            keep: args.keep,
            gateway: args.gateway,
            identity: args.identity,
            network: Network { latency_ms: args.mock_latency_ms, max_streams: args.mock_max_streams },
            dead_percent: args.dead_percent,
            webhook: args.webhook,
            api_h2c: args.api_h2c,
        }
    }

    fn has(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
}

/// Runs the benchmark; the exit code says whether the harness could run, not how fast things were.
fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushgate-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Plan::new(args))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(plan: Plan) -> BenchResult<()> {
    // Before any child starts: children inherit the limit (sockets need ~1 fd each, on both ends).
    let nofile = raise_nofile();
    let exe = match plan.gateway.clone() {
        Some(path) => path,
        None => sibling("pushgate")?,
    };
    if !exe.is_file() {
        return Err(BenchError::msg(format!(
            "no gateway binary at {} (build it first: cargo build --release --workspace --bins; or pass --gateway PATH)",
            exe.display()
        )));
    }
    let dir = tempfile::Builder::new().prefix("pushgate-bench-").tempdir().context("creating a temp dir")?;
    let mock = Mock::start(&sibling("pushgate-mock-providers")?, dir.path(), plan.network).await?;
    let receiver = if plan.webhook { Some(webhook::Receiver::start().await?) } else { None };
    machine_line(&plan, &mock, nofile);
    let ceiling =
        if plan.has(Scenario::Ceiling) { ceiling::run(&mock, dir.path(), plan.h2load_requests).await } else { None };
    // Before any gateway runs: the timing has the bench's own thread to itself.
    if plan.has(Scenario::Webpush) {
        webpush::encryption_cost(&mock).await;
    }
    let mut sockets_done = false;
    for &kind in &plan.stores {
        let mut env =
            match Env::start(kind, &exe, dir.path(), &plan.postgres, &mock, receiver.as_ref(), plan.api_h2c).await {
                Ok(env) => env,
                Err(e) => {
                    report::skipped("setup", Some(kind), e);
                    continue;
                }
            };
        if plan.identity == Identity::Open {
            if let Err(e) = env.api.open_identity().await {
                report::failed("setup", Some(kind), e);
            }
        }
        let fanout = fanout::Options { dead_percent: plan.dead_percent, webhook: receiver.as_ref() };
        run_scenarios(&plan, &mut env, &mock, ceiling, fanout, &mut sockets_done).await;
        if let Err(e) = env.stop().await {
            report::failed("teardown", Some(kind), e);
        }
    }
    mock.stop().await;
    if plan.keep {
        eprintln!("pushgate-bench: logs kept in {}", dir.keep().display());
    }
    Ok(())
}

async fn run_scenarios(
    plan: &Plan,
    env: &mut Env,
    mock: &Mock,
    ceiling: Option<f64>,
    fanout: fanout::Options<'_>,
    sockets_done: &mut bool,
) {
    let kind = Some(env.kind);
    if plan.has(Scenario::Fanout) {
        progress::note(kind, "fan-out");
        fanout::run(env, &plan.sizes, ceiling, mock.pid(), fanout).await;
    }
    if plan.has(Scenario::Segment) {
        segment::run(env, plan.segment_registry, ceiling, mock.pid()).await;
    }
    if plan.has(Scenario::Sends) {
        progress::note(kind, "single-device sends");
        if let Err(e) = sends::throughput(env, mock, plan.sends).await {
            report::failed("sends", kind, e);
        }
    }
    if plan.has(Scenario::Batch) {
        progress::note(kind, "batch sends");
        if let Err(e) = batch::run(env, mock, plan.sends).await {
            report::failed("batch", kind, e);
        }
    }
    if plan.has(Scenario::Latency) {
        progress::note(kind, "send latency");
        if let Err(e) = sends::latency(env, plan.latency_sends).await {
            report::failed("send_latency", kind, e);
        }
    }
    if plan.has(Scenario::Registration) {
        progress::note(kind, "registrations");
        if let Err(e) = registration::run(env, plan.registrations).await {
            report::failed("registration", kind, e);
        }
    }
    if plan.has(Scenario::Webpush) {
        progress::note(kind, "web push fan-out");
        webpush::run(env, mock, plan.web_devices).await;
    }
    // Sockets do not touch the store after the handshake: once is enough.
    if plan.has(Scenario::Sockets) && !*sockets_done {
        *sockets_done = true;
        progress::note(kind, "sockets");
        if let Err(e) = sockets::run(env, plan.sockets).await {
            report::failed("sockets", kind, e);
        }
    }
}

/// `name` in this binary's directory: cargo puts every binary of the
/// workspace in the same `target/<profile>/`, so the bench runs the gateway
/// and the stand-ins of its own build profile.
fn sibling(name: &str) -> BenchResult<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let dir = exe.parent().ok_or_else(|| BenchError::msg("this binary has no directory"))?;
    Ok(dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}

/// Sets this process's soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
fn raise_nofile() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return None;
        }
    }
    Some(limit.rlim_cur)
}

/// First line: what machine and settings the figures come from.
fn machine_line(plan: &Plan, mock: &Mock, nofile: Option<u64>) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim()));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb = meminfo_kb(Path::new("/proc/meminfo"));
    Line::new("machine", None)
        .set("cpus", cpus)
        .set("cpu_model", model.unwrap_or("unknown"))
        .num("mem_total_gb", mem_kb / 1024.0 / 1024.0, 1)
        .set("mode", if plan.quick { "quick" } else { "full" })
        // Figures of a debug build (as CI runs it, to stay fast) only show the harness works.
        .set("build", if cfg!(debug_assertions) { "debug" } else { "release" })
        .set("stand_ins", mock.mode())
        .set("stand_ins_latency_ms", plan.network.latency_ms)
        .set("stand_ins_max_streams", plan.network.max_streams)
        .set("api_http", if plan.api_h2c { "h2c" } else { "http/1.1" })
        .set("nofile_limit", nofile)
        .set("date", chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .emit();
}

fn meminfo_kb(path: &Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}
