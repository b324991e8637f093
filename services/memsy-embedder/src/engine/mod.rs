//! Embedding engines. An engine turns texts into L2-normalised vectors of a
//! fixed dimension; it is synchronous CPU work, so callers run it on a
//! blocking thread.

mod minilm;
mod onnx;

pub use minilm::MiniLm;
pub use onnx::OnnxEngine;

use crate::EmbedError;

pub trait Engine: Send + Sync + 'static {
    /// Embeds every text; the result has one normalised vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn dimension(&self) -> usize;
    /// A name for the model, recorded with the vectors it made.
    fn model_name(&self) -> &str;
}
