//! The `pushgate` command line.

#![forbid(unsafe_code)]

mod cli;

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
    /// Send a test notification through a running gateway, or straight to
    /// APNs or FCM with `--direct` (to check credentials).
    Send(Box<cli::send::SendArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve = match cli.command {
        // A client of a gateway or a provider: no configuration, store or logs.
        Command::Send(args) => return send(*args),
        Command::Serve => true,
        Command::Migrate => false,
    };
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
        if serve {
            let gateway = Gateway::build(config).await?;
            tracing::info!(addr = %gateway.addr, "pushgate listening");
            gateway.serve(shutdown_signal()).await
        } else {
            let store = Store::connect(&config.database_url).await?;
            cli::migrate::run(&store).await?;
            Ok(())
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

/// Runs `pushgate send`: 0 when every push was accepted, 1 otherwise.
fn send(args: cli::send::SendArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::send::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushgate send: {e}");
            ExitCode::FAILURE
        }
    }
}
