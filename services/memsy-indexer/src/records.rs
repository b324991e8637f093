//! From stage messages to stored records. Every field is derived from the
//! message alone (times included), so a redelivered message writes exactly
//! the same record.

use memsy_core::model::{self, Entity, Memory, StoredEvent};
use memsy_proto::{CandidateMemory, Event};

pub fn stored_event_from(e: &Event) -> StoredEvent {
    StoredEvent {
        event_id: e.event_id.clone(),
        org_id: e.org_id.clone(),
        actor_id: e.actor_id.clone(),
        session_id: e.session_id.clone(),
        kind: e.kind.clone(),
        content: e.content.clone(),
        role_id: e.role_id.clone(),
        team_id: e.team_id.clone(),
        ts: e.ts.clone(),
        metadata: e.metadata.clone(),
        ingested_at: e.ingested_at.clone(),
    }
}

/// The memory an actor-scoped candidate becomes.
pub fn memory_from(e: &Event, c: &CandidateMemory) -> Memory {
    Memory {
        memory_id: c.memory_id.clone(),
        org_id: e.org_id.clone(),
        scope_level: "actor".into(),
        actor_id: Some(e.actor_id.clone()),
        role_id: e.role_id.clone(),
        team_id: e.team_id.clone(),
        session_id: Some(e.session_id.clone()).filter(|s| !s.is_empty()),
        memory_type: c.r#type.clone(),
        memory_kind: c.memory_kind.clone(),
        status: "active".into(),
        text: c.text.clone(),
        title: c.title.clone(),
        summary: c.summary.clone(),
        tags: c.tags.clone(),
        entities: c.entities.iter().map(|x| Entity { name: x.name.clone(), entity_type: x.r#type.clone() }).collect(),
        confidence: c.confidence.clamp(0.0, 1.0),
        strength: model::INITIAL_STRENGTH,
        recall_count: 0,
        last_recalled_at: None,
        decay_half_life_days: model::DEFAULT_DECAY_HALF_LIFE_DAYS,
        pinned: false,
        source_event_ids: vec![e.event_id.clone()],
        source_metadata: model::source_metadata_entry(&e.event_id, e.metadata.as_deref()).into_iter().collect(),
        observed_at: e.ts.clone(),
        effective_from: Some(e.ts.clone()),
        effective_to: None,
        created_at: e.ingested_at.clone(),
        updated_at: e.ingested_at.clone(),
        slot: crate::slots::slot_of(&c.text),
        context: Some(e.content.chars().take(model::MAX_CONTEXT_CHARS).collect()),
    }
}
