//! The error type of `memsy-status`.

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status store unavailable: {0}")]
    Unavailable(String),
    #[error("invalid status request: {0}")]
    Invalid(String),
}

impl From<redis::RedisError> for StatusError {
    fn from(e: redis::RedisError) -> Self {
        StatusError::Unavailable(e.to_string())
    }
}

impl From<StatusError> for tonic::Status {
    fn from(e: StatusError) -> Self {
        match e {
            StatusError::Unavailable(m) => tonic::Status::unavailable(m),
            StatusError::Invalid(m) => tonic::Status::invalid_argument(m),
        }
    }
}

impl From<tonic::Status> for StatusError {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::InvalidArgument => StatusError::Invalid(s.message().to_string()),
            _ => StatusError::Unavailable(s.message().to_string()),
        }
    }
}
