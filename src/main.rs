//! The `pushgate` command line.

mod bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pushgate::config::Config;
use pushgate::server::{shutdown_signal, Gateway};
use pushgate::store::Store;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// pushgate: one HTTP API for APNs, FCM and WebSocket notifications.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (default: ./pushgate.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run delivery workers (applies migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Benchmark a gateway against local stand-ins; prints JSON lines (BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Run local APNs and FCM stand-ins (TLS + HTTP/2) for staging and load tests.
    MockProviders {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Where to write ca.pem, apns_key.p8, apns.json and service_account.json.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Accepted payloads kept per token for inspection (0: totals only, as benchmarks run them).
        #[arg(long, default_value_t = 16)]
        keep_payloads: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The bench starts its own gateways with their own settings: no config here.
    if let Command::Bench(args) = &cli.command {
        return bench::main(args.clone());
    }
    if let Command::MockProviders { listen, out_dir, keep_payloads } = &cli.command {
        return mock_providers(*listen, out_dir.clone(), *keep_payloads);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pushgate: {e}");
            return ExitCode::from(2);
        }
    };
    pushgate::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => {
                let gateway = Gateway::build(config).await?;
                tracing::info!(addr = %gateway.addr, "pushgate listening");
                gateway.serve(shutdown_signal()).await
            }
            Command::Migrate => {
                let store = Store::connect(&config.database_url).await?;
                store.migrate().await?;
                println!("pushgate: migrations applied");
                Ok(())
            }
            // Dispatched above, before the configuration is loaded.
            Command::Bench(_) | Command::MockProviders { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pushgate mock-providers`: the stand-ins until Ctrl-C.
fn mock_providers(listen: std::net::SocketAddr, out_dir: Option<PathBuf>, keep_payloads: usize) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = pushgate_mock_providers::MockConfig { listen, out_dir, keep_payloads, ..Default::default() };
    match runtime.block_on(pushgate_mock_providers::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushgate: mock providers: {e}");
            ExitCode::FAILURE
        }
    }
}
