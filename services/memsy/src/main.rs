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
    memsy_core::telemetry::init_logging();
    memsy_core::metrics::init();
    memsy::run(memsy::cli::Cli::parse()).await
}
