//! The embedder: local all-MiniLM-L6-v2 inference on the CPU.

pub mod engine;
mod error;

pub use engine::{Engine, MiniLm};
pub use error::EmbedError;
