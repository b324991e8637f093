//! Erasure: everything memsy holds of one actor (`DELETE /actors/{id}`), or
//! of a whole org (`memsy orgs purge`). In this order, so that nothing in
//! flight can bring anything back:
//! 1. the erasure marker, with its time: from then on the indexer drops any
//!    event of the actor (org) ingested before it (see `memsy_bus::Erasures`);
//! 2. the messages still in the streams (raw-event log, work queues, dead
//!    letters), deleted one by one (see `Bus::scrub`);
//! 3. the actor's part in promoted memories (actor erasure only);
//! 4. the events and memories in the store;
//! 5. what is keyed by event in Redis: status entries and de-duplication
//!    claims (for an org also its usage), then an org's keys and hierarchy.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use memsy_bus::{Bus, Erasures};
use memsy_core::model::{Memory, StoredEvent};
use memsy_proto::Event;
use memsy_store::{EventScan, MemoryScan, MemoryStore, ARCHIVED};
use redis::aio::ConnectionManager;
use serde::Serialize;

use crate::hierarchy::Hierarchy;
use crate::{dedup, ApiError, Component, Dedup, KeyRegistry};

/// Most events (memories) of one actor or org an erasure reads to find what
/// is keyed by them; past it the store still deletes them all, and only
/// their status entries and claims are left to expire (both have a TTL).
const READ_CAP: usize = 1_000_000;

/// What one actor's erasure removed (`DELETE /actors/{id}`'s answer).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ActorErasure {
    pub actor_id: String,
    /// When the erasure marker was set: events ingested until then never
    /// come back.
    pub erased_at: String,
    /// Raw events and memories deleted from the store.
    pub events: u64,
    pub memories: u64,
    /// Role, team or org memories the actor helped promote: rewritten
    /// without the actor's events, or removed when too few holders are left.
    pub promoted_updated: u64,
    pub promoted_removed: u64,
    /// Event status entries and ingest de-duplication claims deleted.
    pub status_entries: u64,
    pub dedup_claims: u64,
    /// Messages deleted from the streams (events still queued, work in
    /// flight, dead letters).
    pub stream_messages: u64,
}

impl ActorErasure {
    /// Whether anything of the actor was found.
    pub fn found_any(&self) -> bool {
        self.events + self.memories + self.promoted_updated + self.promoted_removed + self.stream_messages > 0
    }
}

/// What an org's purge removed (`memsy orgs purge`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OrgPurge {
    pub org_id: String,
    pub purged_at: String,
    pub events: u64,
    pub memories: u64,
    pub status_entries: u64,
    pub dedup_claims: u64,
    pub stream_messages: u64,
    pub api_keys: u64,
    pub usage_keys: u64,
    pub hierarchy_records: u64,
}

/// What an erasure reaches.
#[derive(Clone)]
pub struct Eraser {
    pub bus: Bus,
    pub store: Arc<dyn MemoryStore>,
    pub erasures: Erasures,
    pub dedup: Dedup,
    /// Distinct actors a promoted memory needs (the indexer's
    /// `promotion_min_actors`, at least 2).
    pub min_holders: usize,
}

fn nats(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(Component::Nats, e)
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(Component::VectorStore, e)
}

fn redis_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(Component::Redis, e)
}

/// The de-duplication key an event claimed at ingest.
fn fingerprint_of(e: &StoredEvent) -> String {
    dedup::fingerprint(&e.org_id, &e.actor_id, &e.session_id, &e.kind, &e.content)
}

fn fingerprint_of_message(e: &Event) -> String {
    dedup::fingerprint(&e.org_id, &e.actor_id, &e.session_id, &e.kind, &e.content)
}

impl Eraser {
    /// Erases `actor_id` of `org_id`; see the module documentation.
    pub async fn erase_actor(&self, org_id: &str, actor_id: &str) -> Result<ActorErasure, ApiError> {
        let at = chrono::Utc::now();
        self.erasures.mark_actor(org_id, actor_id, at).await.map_err(nats)?;
        let scrubbed = self.bus.scrub(org_id, Some(actor_id)).await.map_err(nats)?;

        let scan = EventScan { org_id: org_id.into(), actor_id: Some(actor_id.into()), ..Default::default() };
        let stored = self.store.scan_events(&scan, READ_CAP).await.map_err(store_error)?.items;
        let memories = MemoryScan { actor_id: Some(actor_id.into()), ..MemoryScan::org(org_id) };
        let memories = self.store.scan_memories(&memories, READ_CAP).await.map_err(store_error)?.items;
        // Every event id of the actor: those stored, those only in the
        // streams, and those its memories name (older than the log).
        let mut event_ids: BTreeSet<String> = stored.iter().map(|e| e.event_id.clone()).collect();
        event_ids.extend(scrubbed.events.iter().map(|e| e.event_id.clone()));
        event_ids.extend(memories.iter().flat_map(|m| m.source_event_ids.iter().cloned()));
        let mut fingerprints: BTreeSet<String> = stored.iter().map(fingerprint_of).collect();
        fingerprints.extend(scrubbed.events.iter().map(fingerprint_of_message));

        let (promoted_updated, promoted_removed) = self.unpromote(org_id, actor_id, &event_ids).await?;
        let erased = self.store.erase(org_id, Some(actor_id)).await.map_err(store_error)?;
        let ids: Vec<String> = event_ids.into_iter().collect();
        let status_entries =
            memsy_status::forget(&mut self.dedup.connection(), org_id, &ids).await.map_err(redis_error)?;
        let fingerprints: Vec<String> = fingerprints.into_iter().collect();
        let dedup_claims = self.dedup.release(&fingerprints).await.map_err(redis_error)?;
        Ok(ActorErasure {
            actor_id: actor_id.into(),
            erased_at: memsy_core::time::format_rfc3339(at),
            events: erased.events,
            memories: erased.memories,
            promoted_updated,
            promoted_removed,
            status_entries,
            dedup_claims,
            stream_messages: scrubbed.messages,
        })
    }

    /// Takes the actor's events out of the org's promoted memories. One
    /// left with fewer distinct holders (actors of its remaining source
    /// events) than promotion needs is removed, as is an archived one (a
    /// rewrite leaves archived memories alone); the others lose the actor's
    /// event ids and metadata and say how many hold them now.
    async fn unpromote(
        &self,
        org_id: &str,
        actor_id: &str,
        event_ids: &BTreeSet<String>,
    ) -> Result<(u64, u64), ApiError> {
        let mut rewrite: Vec<Memory> = Vec::new();
        let mut remove: Vec<String> = Vec::new();
        for level in ["role", "team", "org"] {
            let scan = MemoryScan { scope_level: Some(level.into()), ..MemoryScan::org(org_id) };
            let promoted = self.store.scan_memories(&scan, READ_CAP).await.map_err(store_error)?.items;
            for mut p in promoted {
                if !p.source_event_ids.iter().any(|id| event_ids.contains(id)) {
                    continue;
                }
                p.source_event_ids.retain(|id| !event_ids.contains(id));
                p.source_metadata.retain(|meta| {
                    meta.get("event_id").and_then(|v| v.as_str()).is_none_or(|id| !event_ids.contains(id))
                });
                let sources = self.store.get_events(org_id, &p.source_event_ids).await.map_err(store_error)?;
                let holders: HashSet<&str> =
                    sources.iter().map(|e| e.actor_id.as_str()).filter(|a| *a != actor_id).collect();
                if holders.len() < self.min_holders || p.status == ARCHIVED {
                    remove.push(p.memory_id);
                    continue;
                }
                p.summary = recount(&p.summary, holders.len());
                p.updated_at = memsy_core::time::now_rfc3339();
                rewrite.push(p);
            }
        }
        self.store.replace_memories(&rewrite).await.map_err(store_error)?;
        let removed = self.store.delete_memories(org_id, &remove).await.map_err(store_error)?;
        Ok((rewrite.len() as u64, removed.len() as u64))
    }

    /// Erases everything of `org_id`; see the module documentation.
    pub async fn purge_org(
        &self,
        org_id: &str,
        keys: &KeyRegistry,
        hierarchy: &Hierarchy,
    ) -> Result<OrgPurge, ApiError> {
        let at = chrono::Utc::now();
        self.erasures.mark_org(org_id, at).await.map_err(nats)?;
        let scrubbed = self.bus.scrub(org_id, None).await.map_err(nats)?;
        let scan = EventScan { org_id: org_id.into(), ..Default::default() };
        let stored = self.store.scan_events(&scan, READ_CAP).await.map_err(store_error)?.items;
        let mut fingerprints: BTreeSet<String> = stored.iter().map(fingerprint_of).collect();
        fingerprints.extend(scrubbed.events.iter().map(fingerprint_of_message));
        let erased = self.store.erase(org_id, None).await.map_err(store_error)?;

        let mut conn: ConnectionManager = self.dedup.connection();
        let status_entries = memsy_status::forget_org(&mut conn, org_id).await.map_err(redis_error)?;
        let fingerprints: Vec<String> = fingerprints.into_iter().collect();
        let dedup_claims = self.dedup.release(&fingerprints).await.map_err(redis_error)?;
        let removed_keys = keys.remove_org(org_id).await.map_err(nats)?;
        let key_ids: Vec<String> = removed_keys.iter().map(|k| k.key_id.clone()).collect();
        let mut usage_keys = 0;
        for prefix in memsy_usage::org_key_prefixes(org_id, &key_ids) {
            let pattern = format!("{}*", memsy_status::glob_escape(&prefix));
            usage_keys += memsy_status::delete_matching(&mut conn, &pattern).await.map_err(redis_error)?;
        }
        let hierarchy_records = hierarchy.purge_org(org_id).await?;
        Ok(OrgPurge {
            org_id: org_id.into(),
            purged_at: memsy_core::time::format_rfc3339(at),
            events: erased.events,
            memories: erased.memories,
            status_entries,
            dedup_claims,
            stream_messages: scrubbed.messages,
            api_keys: key_ids.len() as u64,
            usage_keys,
            hierarchy_records,
        })
    }
}

/// A promoted memory's summary ("Held by 3 members of …: …") with the
/// holders counted again; any other summary as it is.
fn recount(summary: &str, holders: usize) -> String {
    let Some(rest) = summary.strip_prefix("Held by ") else { return summary.to_string() };
    match rest.split_once(' ') {
        Some((n, tail)) if n.parse::<usize>().is_ok() => format!("Held by {holders} {tail}"),
        _ => summary.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_counts_the_remaining_holders() {
        assert_eq!(recount("Held by 3 members of role r1: We ship.", 2), "Held by 2 members of role r1: We ship.");
        assert_eq!(recount("Something else", 2), "Something else");
        assert_eq!(recount("Held by many: x", 2), "Held by many: x");
    }
}
