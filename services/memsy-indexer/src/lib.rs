//! The indexer: consumes embedded memories from `MEMSY_EMBEDDED`, writes
//! the raw events and their memories to the [`MemoryStore`] (idempotent
//! upserts by deterministic id), and only then marks the events completed
//! and acks. A store outage means retry, never a lost event.
//!
//! [`MemoryStore`]: memsy_store::MemoryStore

mod records;
mod stage;

pub use records::{memory_from, stored_event_from};
pub use stage::IndexerStage;
