//! The error type of `memsy-core`.

/// What can go wrong in the shared pieces.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("configuration is invalid: {0}")]
    Config(String),
}
