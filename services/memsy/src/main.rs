//! The `memsy` binary: parse the command line, hand over to the library.

use clap::Parser;

// Every request, stage batch and store operation allocates and frees many
// small buffers from several threads at once; glibc's allocator spent about
// a tenth of the gateway's CPU doing that (perf, bench-pipeline), mimalloc
// far less.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = memsy::cli::Cli::parse();
    let telemetry = memsy_core::telemetry::init(cli.command.service_name());
    memsy_core::metrics::init();
    let result = memsy::run(cli).await;
    // Every service has drained: send the spans still queued.
    telemetry.shutdown().await;
    result
}
