//! `comfyui-bridge`: reads its configuration and serves.

use clap::Parser;
use server::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Simulator(args)) => server::run_simulator(args).await,
        None => server::run(cli.config).await,
    }
}
