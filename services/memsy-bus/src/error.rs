//! The error type of `memsy-bus`.

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker could not be reached or did not confirm in time; nothing
    /// may be reported as stored.
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    #[error("broker rejected the request: {0}")]
    Rejected(String),
}

impl BusError {
    pub(crate) fn unavailable(e: impl std::fmt::Display) -> Self {
        BusError::Unavailable(e.to_string())
    }
}
