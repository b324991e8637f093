//! The indexer: consumes embedded memories from `MEMSY_EMBEDDED`,
//! consolidates them with what is stored (reinforcement, supersession,
//! promotion: see [`Consolidator`]), writes the raw events and the resulting
//! memories to the [`MemoryStore`] (idempotent by deterministic id), and
//! only then marks the events completed and acks. A store outage means
//! retry, never a lost event.
//!
//! [`MemoryStore`]: memsy_store::MemoryStore

mod consolidate;
pub mod facts;
mod records;
pub mod slots;
mod stage;
mod words;

pub use consolidate::{Consolidator, Plan, Policy};
pub use records::{memory_from, stored_event_from};
pub use stage::IndexerStage;
