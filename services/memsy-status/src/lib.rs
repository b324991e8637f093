//! The status service. Every event is `pending` from the moment the gateway
//! has it durably in JetStream until the indexer marks it `completed` (or a
//! stage dead-letters it as `failed` with a reason). State lives in Redis
//! with a TTL; ids never seen, expired or of another org read as
//! `not_found`, which pollers treat as a final failure so they terminate.
//!
//! [`StatusApi`] is what callers use: [`StatusStore`] talks to Redis
//! directly (single process), [`GrpcStatus`] reaches a status service in
//! another process; [`serve`] exposes a store over gRPC. The gateway writes
//! the `pending` marks itself ([`mark_pending`]), in the same Redis round
//! trip as the usage count of the events it accepts.

mod error;
mod grpc;
mod store;

pub use error::StatusError;
pub use grpc::{serve, serve_on, GrpcStatus, StatusGrpcServer};
pub use memsy_proto::EventState;
pub use store::{delete_matching, forget, forget_org, glob_escape, mark_pending, redis_connection, StatusStore};

use async_trait::async_trait;

/// One event's state as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub event_id: String,
    pub state: EventState,
    pub reason: String,
}

#[async_trait]
pub trait StatusApi: Send + Sync + 'static {
    /// Records `state` for every id. `Pending` never overwrites a state
    /// already recorded, so a fast pipeline cannot be rolled back by a slow
    /// gateway.
    async fn mark(
        &self,
        org_id: &str,
        event_ids: &[String],
        state: EventState,
        reason: &str,
    ) -> Result<(), StatusError>;

    /// The state of every id, in order.
    async fn get(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<Status>, StatusError>;

    async fn ready(&self) -> Result<(), StatusError>;
}
