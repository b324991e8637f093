//! The `memsy` binary: parse the command line, hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    memsy_core::telemetry::init_logging();
    memsy::run(memsy::cli::Cli::parse()).await
}
