//! The console's read views: an org's memories, browsed and aggregated
//! (`/console/memories…`), the actors derived from them (`/actors…`) and
//! its raw events (`/api/console/events`, one by id at
//! `/api/console/events/{event_id}`). Every view reads a capped scan of
//! the store with the equality filters pushed down, then searches, sorts and
//! pages in memory; `truncated` says when the cap cut the scan short.
//! Also an actor's erasure and export (admin).

mod actors;
mod edits;
mod erase;
mod events;
mod export;
mod memories;

pub use actors::{get_actor, list_actors};
pub use edits::{delete_memory, patch_memory};
pub use erase::erase_actor;
pub use events::{console_events, get_event};
pub use export::export_actor;
pub use memories::{get_memory, list_memories, memory_stats};

use memsy_core::model::{Memory, StoredEvent};
use memsy_store::{EventScan, MemoryScan, Scanned, StoreError};

use crate::fields::Params;
use crate::{ApiError, AppState, Component};

fn store_unavailable(e: StoreError) -> ApiError {
    ApiError::unavailable(Component::VectorStore, e)
}

/// The org's memories matching `scan`, at most the configured cap, with
/// their strength as of now (see [`as_of_now`]).
async fn scan_memories(s: &AppState, scan: &MemoryScan) -> Result<Scanned<Memory>, ApiError> {
    let mut scanned = s.store.scan_memories(scan, s.config.usage.console_scan_cap).await.map_err(store_unavailable)?;
    as_of_now(&mut scanned.items);
    Ok(scanned)
}

/// Strength decays between reinforcements: views, sorts and averages show
/// today's value, as search does.
fn as_of_now(memories: &mut [Memory]) {
    let now = chrono::Utc::now();
    for m in memories {
        m.strength = m.effective_strength(now);
    }
}

/// The org's raw events matching `scan`, at most the configured cap.
async fn scan_events(s: &AppState, scan: &EventScan) -> Result<Scanned<StoredEvent>, ApiError> {
    s.store.scan_events(scan, s.config.usage.console_scan_cap).await.map_err(store_unavailable)
}

/// The `sort` parameter: one of the names in `sorts`, the first when absent.
fn sort_param<T: Copy>(p: &Params, sorts: &[(&str, T)]) -> Result<T, ApiError> {
    let raw = p.str("sort").unwrap_or(sorts[0].0);
    sorts.iter().find(|(name, _)| *name == raw).map(|&(_, sort)| sort).ok_or_else(|| {
        let names: Vec<&str> = sorts.iter().map(|(name, _)| *name).collect();
        ApiError::invalid("sort", format!("'{raw}' is not one of {}", names.join(", ")))
    })
}

/// An f32 as the JSON number it was meant to be (0.85, not 0.8500000238).
fn short(x: f32) -> f64 {
    (x as f64 * 1e6).round() / 1e6
}

#[cfg(test)]
mod testing {
    use std::fmt::Debug;

    use super::*;

    /// Whether `sort=<name>` is accepted.
    pub fn sort_parses<T: Copy>(sorts: &[(&str, T)], name: &str) -> bool {
        sort_param(&Params([("sort".to_string(), name.to_string())].into()), sorts).is_ok()
    }

    /// Each sort puts every rotation of `base` in the order `want` (by id):
    /// the result never depends on the order the scan returned.
    pub fn assert_sorts<T: Clone, S: Copy + Debug, const N: usize>(
        base: &[T],
        cases: &[(S, [&str; N])],
        sort: impl Fn(&mut [T], S),
        id: impl Fn(&T) -> &str,
    ) {
        for &(s, want) in cases {
            for rotation in 0..base.len() {
                let mut items = base.to_vec();
                items.rotate_left(rotation);
                sort(&mut items, s);
                assert_eq!(items.iter().map(&id).collect::<Vec<_>>(), want, "{s:?}");
            }
        }
    }

    #[test]
    fn sort_defaults_to_the_first_and_names_the_choices() {
        let sorts = [("new", 1), ("old", 2)];
        assert_eq!(sort_param(&Params(Default::default()), &sorts).unwrap(), 1);
        assert!(sort_parses(&sorts, "old") && !sort_parses(&sorts, "OLD"));
        let e = sort_param(&Params([("sort".to_string(), "x".to_string())].into()), &sorts).unwrap_err();
        assert_eq!(e.extra["field"], "sort");
        assert!(e.message.ends_with("'x' is not one of new, old"), "{}", e.message);
    }
}
