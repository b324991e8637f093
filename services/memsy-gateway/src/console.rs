//! The console's read views over an org's memories: browsing and
//! aggregates (`/console/memories…`) and the actors derived from them
//! (`/actors…`). Every view reads a capped scan of the store with the
//! equality filters pushed down, then searches, sorts and pages in memory;
//! `truncated` says when the cap cut the scan short.

mod actors;
mod memories;

pub use actors::{get_actor, list_actors};
pub use memories::{get_memory, list_memories, memory_stats};

use memsy_core::model::Memory;
use memsy_store::{MemoryScan, Scanned};

use crate::{ApiError, AppState};

/// The org's memories matching `scan`, at most the configured cap.
async fn scan(s: &AppState, scan: &MemoryScan) -> Result<Scanned<Memory>, ApiError> {
    s.store
        .scan_memories(scan, s.config.usage.console_scan_cap)
        .await
        .map_err(|e| ApiError::unavailable("vector store", e))
}

/// An f32 as the JSON number it was meant to be (0.85, not 0.8500000238).
fn short(x: f32) -> f64 {
    (x as f64 * 1e6).round() / 1e6
}
