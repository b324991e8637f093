//! The embedder: consumes candidate memories from `MEMSY_EXTRACTED`, embeds
//! them in batches with a local all-MiniLM-L6-v2 engine, publishes them to
//! `MEMSY_EMBEDDED`; and serves `Embed` over gRPC so that the gateway can
//! embed search queries with the same model.

mod batcher;
pub mod engine;
mod error;
mod grpc;
mod query;
mod stage;

pub use batcher::{Batcher, Priority};
pub use engine::{Engine, MiniLm, OnnxEngine, OnnxThreads, RemoteEngine};
pub use error::EmbedError;
pub use grpc::{serve, EmbedGrpcServer};
pub use query::{GrpcEmbedder, LocalEmbedder, QueryEmbedder};
pub use stage::EmbedderStage;

/// The name of every thread that runs the model: the batcher's worker, the
/// scoped threads it starts per call, and ONNX Runtime's own threads (their
/// sessions are created on a thread of this name, whose name they inherit),
/// so that `top -H`, `perf` and benchmarks can tell the model's CPU time
/// from the rest of the process.
pub const MODEL_THREAD_NAME: &str = "memsy-embed";
