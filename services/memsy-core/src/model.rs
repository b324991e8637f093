//! The memory and the raw event as memsy stores them. Both are flat so that
//! every field a search filters on (`org_id`, `actor_id`, `session_id`,
//! `role_id`, `team_id`, `scope_level`, `type`, `memory_kind`, `status`) is a
//! top-level payload key in the vector store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const EVENT_KINDS: [&str; 4] = ["user_message", "assistant_message", "tool_result", "app_event"];

/// At most this many `source_metadata` entries ride on a memory.
pub const MAX_SOURCE_METADATA: usize = 5;

/// At most this many `source_event_ids` ride on a memory: the first (the
/// event it came from) and the latest. A memory heard thousands of times
/// would otherwise carry every id in its payload, read and rewritten with
/// each reinforcement and returned with every search hit.
pub const MAX_SOURCE_EVENTS: usize = 50;

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
    /// The event the memory came from first, then those that repeated it
    /// (the latest ones when there were more than [`MAX_SOURCE_EVENTS`]).
    pub source_event_ids: Vec<String>,
    /// `{"event_id", "metadata": {…}}` for JSON-object metadata, else
    /// `{"event_id", "raw": "…"}`; at most [`MAX_SOURCE_METADATA`].
    pub source_metadata: Vec<Value>,
    pub observed_at: String,
    pub effective_from: Option<String>,
    pub effective_to: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// What the memory says something about, when only one value can hold at
    /// a time, and whose it is ("residence:user", "employer:olaf",
    /// "favorite:color:user"): a newer memory of the same actor and slot
    /// supersedes an older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The words of the message the memory was taken from (capped), indexed
    /// for keyword search with the memory's own text: a question often names
    /// what the message said around the statement. Never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// A transcript's leading speaker label and what follows it ("Caroline: I
/// moved …" → ("Caroline", "I moved …")): a label of at most three words
/// within the first 40 bytes, followed by ": ". None when there is none.
pub fn split_speaker_label(text: &str) -> Option<(&str, &str)> {
    let i = text.find(": ")?;
    (i <= 40 && text[..i].split_whitespace().count() <= 3).then(|| (&text[..i], &text[i + 2..]))
}

/// `text` without a transcript's leading speaker label ("Caroline: I moved
/// …" → "I moved …"; see [`split_speaker_label`]).
pub fn without_speaker_label(text: &str) -> &str {
    split_speaker_label(text).map_or(text, |(_, said)| said)
}

/// Most characters of a message kept as a memory's `context`.
pub const MAX_CONTEXT_CHARS: usize = 2_000;

impl Memory {
    /// Strength at `now`: the stored strength halves every
    /// `decay_half_life_days` since the memory was last reinforced or
    /// recalled, unless it is pinned.
    pub fn effective_strength(&self, now: chrono::DateTime<chrono::Utc>) -> f32 {
        if self.pinned || self.decay_half_life_days <= 0.0 {
            return self.strength;
        }
        let last = [Some(&self.updated_at), self.last_recalled_at.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|t| crate::time::parse_ts(t))
            .max();
        let Some(last) = last else { return self.strength };
        let days = (now - last).num_milliseconds().max(0) as f64 / 86_400_000.0;
        (f64::from(self.strength) * 0.5f64.powf(days / f64::from(self.decay_half_life_days))) as f32
    }
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

    fn memory(updated_at: &str, pinned: bool) -> Memory {
        Memory {
            memory_id: "m".into(),
            org_id: "o".into(),
            scope_level: "actor".into(),
            actor_id: Some("a".into()),
            role_id: None,
            team_id: None,
            session_id: None,
            memory_type: "fact".into(),
            memory_kind: "semantic".into(),
            status: "active".into(),
            text: "t".into(),
            title: "t".into(),
            summary: "t".into(),
            tags: vec![],
            entities: vec![],
            confidence: 0.9,
            strength: 2.0,
            recall_count: 0,
            last_recalled_at: None,
            decay_half_life_days: 30.0,
            pinned,
            source_event_ids: vec![],
            source_metadata: vec![],
            observed_at: updated_at.into(),
            effective_from: None,
            effective_to: None,
            created_at: updated_at.into(),
            updated_at: updated_at.into(),
            slot: None,
            context: None,
        }
    }

    #[test]
    fn speaker_labels_are_dropped_only_when_short() {
        assert_eq!(without_speaker_label("Caroline: I moved to Denver."), "I moved to Denver.");
        assert_eq!(without_speaker_label("I moved to Denver."), "I moved to Denver.");
        assert_eq!(without_speaker_label("Here is what four people said: yes"), "Here is what four people said: yes");
    }

    #[test]
    fn strength_halves_each_half_life_unless_pinned() {
        let now = crate::time::parse_ts("2026-03-02T00:00:00Z").unwrap();
        let m = memory("2026-01-01T00:00:00Z", false); // 60 days earlier
        assert!((m.effective_strength(now) - 0.5).abs() < 1e-3, "{}", m.effective_strength(now));
        assert_eq!(memory("2026-01-01T00:00:00Z", true).effective_strength(now), 2.0);
        // A recall counts as use: it restarts the clock.
        let recalled = Memory { last_recalled_at: Some("2026-03-02T00:00:00Z".into()), ..m };
        assert!((recalled.effective_strength(now) - 2.0).abs() < 1e-6);
    }

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
