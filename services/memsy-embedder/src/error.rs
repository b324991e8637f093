//! The error type of `memsy-embedder`.

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model files could not be loaded from {path}: {reason}")]
    Model { path: String, reason: String },
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("embedding failed: {0}")]
    Compute(String),
    /// A remote embedder could not be reached.
    #[error("embedder unavailable: {0}")]
    Unavailable(String),
    /// A remote embedding API (an OpenAI-compatible `/embeddings` endpoint)
    /// failed or answered something unusable.
    #[error("remote embedding API: {0}")]
    Remote(String),
}
