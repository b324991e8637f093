//! The error type of `memsy-store`.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine or server could not be reached or refused the operation;
    /// callers answer 503 and retry later.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back into the model.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("invalid store request: {0}")]
    Invalid(String),
}
