//! The memory and the raw event as memsy stores them. Both are flat so that
//! every field a search filters on (`org_id`, `actor_id`, `session_id`,
//! `role_id`, `team_id`, `scope_level`, `type`, `memory_kind`, `status`) is a
//! top-level payload key in the vector store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const EVENT_KINDS: [&str; 4] = ["user_message", "assistant_message", "tool_result", "app_event"];

/// At most this many `source_metadata` entries ride on a memory.
pub const MAX_SOURCE_METADATA: usize = 5;

/// Bounds of `strength`: starts at 1.0, grows with recall, never above 5.0.
pub const INITIAL_STRENGTH: f32 = 1.0;
pub const MAX_STRENGTH: f32 = 5.0;
pub const DEFAULT_DECAY_HALF_LIFE_DAYS: f32 = 30.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    #[serde(rename = "type")]
    pub entity_type: String,
}

/// A long-term memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub memory_id: String,
    pub org_id: String,
    /// actor, role, team or org.
    pub scope_level: String,
    pub actor_id: Option<String>,
    pub role_id: Option<String>,
    pub team_id: Option<String>,
    /// None for memories that belong to no conversation (promoted knowledge).
    pub session_id: Option<String>,
    #[serde(rename = "type")]
    pub memory_type: String,
    pub memory_kind: String,
    /// active, superseded or archived.
    pub status: String,
    pub text: String,
    pub title: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub entities: Vec<Entity>,
    pub confidence: f32,
    pub strength: f32,
    pub recall_count: u64,
    pub last_recalled_at: Option<String>,
    pub decay_half_life_days: f32,
    pub pinned: bool,
    pub source_event_ids: Vec<String>,
    /// `{"event_id", "metadata": {…}}` for JSON-object metadata, else
    /// `{"event_id", "raw": "…"}`; at most [`MAX_SOURCE_METADATA`].
    pub source_metadata: Vec<Value>,
    pub observed_at: String,
    pub effective_from: Option<String>,
    pub effective_to: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A raw event as stored for browsing, `include_source_events` and replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_id: String,
    pub org_id: String,
    pub actor_id: String,
    pub session_id: String,
    pub kind: String,
    pub content: String,
    pub role_id: Option<String>,
    pub team_id: Option<String>,
    pub ts: String,
    pub metadata: Option<String>,
    pub ingested_at: String,
}

/// The `source_metadata` entry for one event's caller metadata, or None
/// when the event carried none.
pub fn source_metadata_entry(event_id: &str, metadata: Option<&str>) -> Option<Value> {
    let raw = metadata?;
    Some(match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => serde_json::json!({ "event_id": event_id, "metadata": v }),
        _ => serde_json::json!({ "event_id": event_id, "raw": raw }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_metadata_keeps_objects_and_raw_strings() {
        let v = source_metadata_entry("e1", Some(r#"{"plan":"pro"}"#)).unwrap();
        assert_eq!(v["metadata"]["plan"], "pro");
        let v = source_metadata_entry("e1", Some("not json")).unwrap();
        assert_eq!(v["raw"], "not json");
        let v = source_metadata_entry("e1", Some("[1,2]")).unwrap();
        assert_eq!(v["raw"], "[1,2]");
        assert!(source_metadata_entry("e1", None).is_none());
    }
}
