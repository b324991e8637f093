//! The extractor's one error type.

use memsy_llm::LlmError;

#[derive(Debug, thiserror::Error)]
pub enum ExtractorError {
    /// The language model could not give a usable answer (down through its
    /// retries, refusing the request, or answering outside the schema).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Our own infrastructure (the hierarchy bucket in JetStream) could not
    /// be read: waited out, never a reason to fail an event.
    #[error("{0}")]
    Unavailable(String),
}
