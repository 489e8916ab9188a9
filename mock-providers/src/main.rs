//! `pushgate-mock-providers`: the APNs, FCM and Web Push stand-ins until Ctrl-C, for
//! trying the gateway without Apple or Google, staging and load tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pushgate_mock_providers::MockConfig;

/// Run local APNs, FCM and Web Push stand-ins (TLS + HTTP/2) for staging and load tests.
#[derive(Parser)]
#[command(name = "pushgate-mock-providers", version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Where to write ca.pem, apns_key.p8, apns.json and service_account.json.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Accepted payloads kept per token for inspection (0: totals only, as benchmarks run them).
    #[arg(long, default_value_t = 16)]
    keep_payloads: usize,
    /// Milliseconds every push waits for its answer, as across the internet to Apple or Google.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// SETTINGS_MAX_CONCURRENT_STREAMS of every connection (Apple's maximum by default).
    #[arg(long, default_value_t = pushgate_mock_providers::APPLE_MAX_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    max_streams: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushgate-mock-providers: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = MockConfig {
        listen: cli.listen,
        out_dir: cli.out_dir,
        keep_payloads: cli.keep_payloads,
        latency: Duration::from_millis(cli.latency_ms),
        max_streams: cli.max_streams,
        ..Default::default()
    };
    match runtime.block_on(pushgate_mock_providers::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushgate-mock-providers: {e}");
            ExitCode::FAILURE
        }
    }
}
