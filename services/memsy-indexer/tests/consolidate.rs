//! Consolidation against the embedded Qdrant engine, with hand-made
//! vectors so that "near-duplicate" is exact: reinforcement instead of
//! twins, supersession by `observed_at` in either order, promotion once
//! enough actors of a role hold the same memory, and redelivery changing
//! nothing.

use std::sync::Arc;

use memsy_core::config::IndexerConfig;
use memsy_core::model::{Memory, StoredEvent};
use memsy_indexer::{slots::slot_of, Consolidator, Plan};
use memsy_store::{
    DenseQuery, EdgeStore, EventScan, MemoryEdit, MemoryPoint, MemoryScan, MemoryStore, Scanned, ScoredId,
    SearchFilter, SearchHit, StoreError,
};
use memsy_testkit::sample_memory;

const DIM: usize = 4;

async fn new_store() -> (tempfile::TempDir, Arc<EdgeStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(dir.path(), DIM).unwrap();
    store.ensure_schema().await.unwrap();
    (dir, Arc::new(store))
}

fn consolidator(store: &Arc<EdgeStore>) -> Consolidator {
    Consolidator::new(store.clone(), (&IndexerConfig::default()).into())
}

fn point(actor: &str, event: &str, text: &str, observed: &str, vector: [f32; DIM]) -> MemoryPoint {
    let mut m: Memory = sample_memory("org", actor, text, observed);
    m.memory_id = memsy_core::ids::memory_id("org", event, 0).to_string();
    m.source_event_ids = vec![event.to_string()];
    m.source_metadata = vec![serde_json::json!({"event_id": event, "raw": event})];
    m.slot = slot_of(text);
    m.created_at = observed.into();
    m.updated_at = observed.into();
    MemoryPoint { memory: m, vector: vector.to_vec() }
}

async fn apply(store: &Arc<EdgeStore>, points: Vec<MemoryPoint>) -> Plan {
    let plan = consolidator(store).plan(points).await.unwrap();
    store.replace_memories(&plan.replaces).await.unwrap();
    store.upsert_memories(&plan.inserts).await.unwrap();
    plan
}

async fn all(store: &Arc<EdgeStore>) -> Vec<Memory> {
    let mut v = store.scan_memories(&MemoryScan::org("org"), 100).await.unwrap().items;
    v.sort_by(|a, b| a.observed_at.cmp(&b.observed_at));
    v
}

#[tokio::test]
async fn a_repetition_reinforces_instead_of_adding_a_twin() {
    let (_dir, store) = new_store().await;
    apply(&store, vec![point("alice", "e1", "I prefer green tea.", "2026-01-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0])])
        .await;
    let plan =
        apply(&store, vec![point("alice", "e2", "I prefer green tea.", "2026-02-01T00:00:00Z", [1.0, 0.01, 0.0, 0.0])])
            .await;
    assert!(plan.inserts.is_empty() && plan.replaces.len() == 1);
    let ms = all(&store).await;
    assert_eq!(ms.len(), 1, "{ms:#?}");
    let m = &ms[0];
    assert_eq!(m.strength, 1.5);
    assert!(m.confidence > 0.8);
    assert_eq!(m.source_event_ids, vec!["e1", "e2"]);
    assert_eq!(m.source_metadata.len(), 2);
    assert_eq!(m.observed_at, "2026-02-01T00:00:00Z");

    // Redelivering either event changes nothing.
    for (event, at) in [("e1", "2026-01-01T00:00:00Z"), ("e2", "2026-02-01T00:00:00Z")] {
        let plan = apply(&store, vec![point("alice", event, "I prefer green tea.", at, [1.0, 0.0, 0.0, 0.0])]).await;
        assert!(plan.inserts.is_empty() && plan.replaces.is_empty(), "{event}: {plan:?}");
    }
    assert_eq!(all(&store).await[0].strength, 1.5);

    // Another actor's identical memory is theirs, not a reinforcement.
    apply(&store, vec![point("bob", "e3", "I prefer green tea.", "2026-03-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0])]).await;
    assert_eq!(all(&store).await.len(), 2);
    // Five reinforcements at most add up to the 5.0 bound.
    for i in 0..12 {
        let at = format!("2026-04-{:02}T00:00:00Z", i + 1);
        apply(&store, vec![point("bob", &format!("r{i}"), "I prefer green tea.", &at, [1.0, 0.0, 0.0, 0.0])]).await;
    }
    let bob = all(&store).await.into_iter().find(|m| m.actor_id.as_deref() == Some("bob")).unwrap();
    assert_eq!(bob.strength, 5.0);
    assert_eq!(bob.source_metadata.len(), memsy_core::model::MAX_SOURCE_METADATA);
}

#[tokio::test]
async fn a_memory_lists_its_first_and_latest_sources_only() {
    let (_dir, store) = new_store().await;
    let cap = memsy_core::model::MAX_SOURCE_EVENTS;
    let points = (0..cap + 10)
        .map(|i| {
            let at = format!("2026-01-01T{:02}:{:02}:00Z", i / 60, i % 60);
            point("alice", &format!("e{i:03}"), "I prefer green tea.", &at, [1.0, 0.0, 0.0, 0.0])
        })
        .collect();
    apply(&store, points).await;
    let ms = all(&store).await;
    assert_eq!(ms.len(), 1, "{ms:#?}");
    let ids = &ms[0].source_event_ids;
    assert_eq!(ids.len(), cap);
    assert_eq!(ids[0], "e000", "the origin stays");
    assert_eq!(ids[1], "e011", "the oldest repetitions go");
    assert_eq!(ids[cap - 1], format!("e{:03}", cap + 9));
    // Later reinforcements keep the bound.
    let late = point("alice", "late", "I prefer green tea.", "2026-02-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0]);
    apply(&store, vec![late]).await;
    let ids = &all(&store).await[0].source_event_ids;
    assert_eq!((ids.len(), ids[0].as_str(), ids[cap - 1].as_str()), (cap, "e000", "late"));
}

async fn residence(store: &Arc<EdgeStore>) -> Vec<(String, String, Option<String>)> {
    all(store).await.into_iter().map(|m| (m.text, m.status, m.effective_to)).collect()
}

#[tokio::test]
async fn a_newer_value_of_a_slot_supersedes_in_either_order() {
    let paris = || point("alice", "p", "I live in Paris.", "2025-01-01T00:00:00Z", [0.0, 1.0, 0.0, 0.0]);
    let berlin = || point("alice", "b", "I moved to Berlin.", "2025-06-01T00:00:00Z", [0.0, 0.97, 0.2, 0.0]);
    let expected = vec![
        ("I live in Paris.".to_string(), "superseded".to_string(), Some("2025-06-01T00:00:00Z".to_string())),
        ("I moved to Berlin.".to_string(), "active".to_string(), None),
    ];
    for order in [[paris(), berlin()], [berlin(), paris()]] {
        // One after the other, in separate batches …
        let (_dir, store) = new_store().await;
        for p in order.clone() {
            apply(&store, vec![p]).await;
        }
        assert_eq!(residence(&store).await, expected);
        // … and both in one batch.
        let (_dir, store) = new_store().await;
        apply(&store, order.to_vec()).await;
        assert_eq!(residence(&store).await, expected);
        // Redelivery of the older one does not revive it.
        apply(&store, vec![paris()]).await;
        assert_eq!(residence(&store).await, expected);
    }
    // A third, oldest value slots in before both.
    let (_dir, store) = new_store().await;
    apply(&store, vec![paris(), berlin()]).await;
    apply(&store, vec![point("alice", "l", "I live in Lisbon.", "2024-01-01T00:00:00Z", [0.0, 0.9, 0.0, 0.3])]).await;
    let r = residence(&store).await;
    assert_eq!(r[0], ("I live in Lisbon.".into(), "superseded".into(), Some("2025-01-01T00:00:00Z".into())));
    assert_eq!(r[2].1, "active");
}

#[tokio::test]
async fn three_members_of_a_role_promote_a_memory_once() {
    let (_dir, store) = new_store().await;
    let member = |actor: &str, event: &str| {
        let mut p = point(actor, event, "I prefer tabs over spaces.", "2026-01-01T00:00:00Z", [0.0, 0.0, 1.0, 0.0]);
        p.memory.role_id = Some("role_eng".into());
        p
    };
    apply(&store, vec![member("e1", "x1"), member("e2", "x2")]).await;
    let promoted = |ms: &[Memory]| ms.iter().filter(|m| m.scope_level != "actor").cloned().collect::<Vec<_>>();
    assert!(promoted(&all(&store).await).is_empty(), "two members are not enough");
    apply(&store, vec![member("e3", "x3")]).await;
    let ms = all(&store).await;
    let p = promoted(&ms);
    assert_eq!(p.len(), 1, "one role-level memory, and no org-level one for a single role: {p:#?}");
    let role = &p[0];
    assert_eq!((role.scope_level.as_str(), role.role_id.as_deref()), ("role", Some("role_eng")));
    assert!(role.actor_id.is_none() && role.session_id.is_none());
    let mut sources = role.source_event_ids.clone();
    sources.sort();
    assert_eq!(sources, vec!["x1", "x2", "x3"]);
    assert_eq!(role.text, "I prefer tabs over spaces.");

    // A fourth member reinforces it; a redelivery does not.
    apply(&store, vec![member("e4", "x4")]).await;
    apply(&store, vec![member("e4", "x4")]).await;
    let role = promoted(&all(&store).await).remove(0);
    assert_eq!((role.strength, role.source_event_ids.len()), (1.5, 4));

    // A search for a new engineer finds it through role_ids.
    let f = SearchFilter {
        org_id: "org".into(),
        actor_id: Some("newbie".into()),
        role_ids: vec!["role_eng".into()],
        status: Some("active".into()),
        ..SearchFilter::default()
    };
    let hits = store.search(&[0.0, 0.0, 1.0, 0.0], None, &f, 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory.memory_id, role.memory_id);
}

#[tokio::test]
async fn members_of_several_roles_promote_to_the_org() {
    let (_dir, store) = new_store().await;
    let member = |actor: &str, role: &str| {
        let mut p = point(actor, actor, "We deploy on Fridays.", "2026-01-01T00:00:00Z", [0.0, 0.0, 0.0, 1.0]);
        p.memory.role_id = Some(role.into());
        p
    };
    apply(&store, vec![member("a", "r1"), member("b", "r2"), member("c", "r3")]).await;
    let levels: Vec<String> = all(&store).await.into_iter().map(|m| m.scope_level).filter(|l| l != "actor").collect();
    assert_eq!(levels, vec!["org"]);
}

/// The embedded store, counting the memories `get_memories` returns, to
/// see how often a plan reads each one.
struct Counting {
    inner: Arc<EdgeStore>,
    returned: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl MemoryStore for Counting {
    async fn ensure_schema(&self) -> Result<(), StoreError> {
        self.inner.ensure_schema().await
    }
    async fn upsert_memories(&self, points: &[MemoryPoint]) -> Result<(), StoreError> {
        self.inner.upsert_memories(points).await
    }
    async fn replace_memories(&self, memories: &[Memory]) -> Result<(), StoreError> {
        self.inner.replace_memories(memories).await
    }
    async fn edit_memory(&self, org: &str, id: &str, edit: &MemoryEdit) -> Result<Option<Memory>, StoreError> {
        self.inner.edit_memory(org, id, edit).await
    }
    async fn delete_memories(&self, org: &str, ids: &[String]) -> Result<Vec<String>, StoreError> {
        self.inner.delete_memories(org, ids).await
    }
    async fn erase(&self, org: &str, actor: Option<&str>) -> Result<memsy_store::Erased, StoreError> {
        self.inner.erase(org, actor).await
    }
    async fn upsert_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.inner.upsert_events(events).await
    }
    async fn search(
        &self,
        vector: &[f32],
        text: Option<&str>,
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.inner.search(vector, text, filter, limit).await
    }
    async fn search_dense_ids(&self, queries: &[DenseQuery]) -> Result<Vec<Vec<ScoredId>>, StoreError> {
        self.inner.search_dense_ids(queries).await
    }
    async fn get_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError> {
        let found = self.inner.get_memories(org_id, memory_ids).await?;
        self.returned.lock().unwrap().extend(found.iter().map(|m| m.memory_id.clone()));
        Ok(found)
    }
    async fn get_events(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.get_events(org_id, event_ids).await
    }
    async fn scan_memories(&self, scan: &MemoryScan, cap: usize) -> Result<Scanned<Memory>, StoreError> {
        self.inner.scan_memories(scan, cap).await
    }
    async fn scan_events(&self, scan: &EventScan, cap: usize) -> Result<Scanned<StoredEvent>, StoreError> {
        self.inner.scan_events(scan, cap).await
    }
    async fn count_memories(&self, org_id: &str) -> Result<u64, StoreError> {
        self.inner.count_memories(org_id).await
    }
    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
}

/// Every new memory of a fact held across the org looks up the same
/// holders; the plan reads each stored memory once however many lookups
/// return it (reading and decoding payloads is most of a lookup's cost).
#[tokio::test]
async fn a_plan_reads_each_stored_memory_once() {
    let (_dir, store) = new_store().await;
    let fact = |actor: &str| {
        point(actor, &format!("ev-{actor}"), "We deploy on Fridays.", "2026-01-01T00:00:00Z", [0.0, 1.0, 0.0, 0.0])
    };
    apply(&store, ["a1", "a2", "a3", "a4"].map(fact).to_vec()).await;
    let stored = all(&store).await;
    assert_eq!(stored.len(), 5, "four holders and the org-level memory: {stored:#?}");

    let counting = Arc::new(Counting { inner: store.clone(), returned: Default::default() });
    let plan = Consolidator::new(counting.clone(), (&IndexerConfig::default()).into())
        .plan(["a5", "a6", "a7", "a8"].map(fact).to_vec())
        .await
        .unwrap();
    // The plan is what it was: four new holders, the org-level memory reinforced.
    assert_eq!(plan.inserts.len(), 4, "{plan:#?}");
    assert_eq!(plan.replaces.len(), 1, "{plan:#?}");
    assert_eq!(plan.replaces[0].scope_level, "org");
    let mut returned = counting.returned.lock().unwrap().clone();
    returned.sort();
    let mut expected: Vec<String> = stored.iter().map(|m| m.memory_id.clone()).collect();
    expected.sort();
    assert_eq!(returned, expected, "each stored memory read once");
}

/// One batch holds several orgs' memories: the same actor id and the same
/// slot in another org is another person, whose memories never supersede
/// these (an earlier version let the overlay of one org's batch retire
/// another org's newest memory).
#[tokio::test]
async fn a_batch_of_several_orgs_keeps_each_orgs_slots_apart() {
    let (_dir, store) = new_store().await;
    let in_org = |org: &str, event: &str, text: &str, at: &str, v: [f32; DIM]| {
        let mut p = point("alice", event, text, at, v);
        p.memory.org_id = org.into();
        p.memory.memory_id = memsy_core::ids::memory_id(org, event, 0).to_string();
        p
    };
    let batch = vec![
        in_org("org", "a1", "I live in Paris.", "2026-01-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0]),
        in_org("other", "b1", "I live in Paris.", "2026-01-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0]),
        in_org("org", "a2", "I live in Rome now.", "2026-02-01T00:00:00Z", [0.0, 1.0, 0.0, 0.0]),
        in_org("other", "b2", "I live in Rome now.", "2026-02-01T00:00:00Z", [0.0, 1.0, 0.0, 0.0]),
    ];
    apply(&store, batch).await;
    for org in ["org", "other"] {
        let ms = store.scan_memories(&MemoryScan::org(org), 100).await.unwrap().items;
        let active: Vec<&str> = ms.iter().filter(|m| m.status == "active").map(|m| m.text.as_str()).collect();
        assert_eq!(active, vec!["I live in Rome now."], "{org}: {ms:#?}");
        assert_eq!(ms.len(), 2, "{org}: {ms:#?}");
    }
}

/// A slot is someone's: the user's sister moving does not retire where the
/// user's brother lives, and the current value in other words ("I'm based
/// in Berlin" after "I moved to Berlin") reinforces instead of superseding.
#[tokio::test]
async fn a_slot_is_one_persons_and_a_restated_value_reinforces() {
    let (_dir, store) = new_store().await;
    let v = [0.0, 1.0, 0.0, 0.0];
    apply(&store, vec![point("alice", "o", "My brother Olaf lives in Bergen.", "2026-01-01T00:00:00Z", v)]).await;
    apply(&store, vec![point("alice", "i", "My sister Ingrid lives in Tromso.", "2026-02-01T00:00:00Z", v)]).await;
    apply(&store, vec![point("alice", "b", "I moved to Berlin.", "2026-03-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0])]).await;
    let plan =
        apply(&store, vec![point("alice", "b2", "I'm based in Berlin.", "2026-04-01T00:00:00Z", [0.0, 0.0, 1.0, 0.0])])
            .await;
    assert!(plan.inserts.is_empty(), "{plan:#?}");
    let ms = all(&store).await;
    assert!(ms.iter().all(|m| m.status == "active"), "{ms:#?}");
    let berlin = ms.iter().find(|m| m.text == "I moved to Berlin.").unwrap();
    assert_eq!(berlin.source_event_ids, vec!["b", "b2"]);
    assert_eq!(berlin.slot.as_deref(), Some("residence:user"));
    assert_eq!(ms.len(), 3);
}

/// Memories stored before slots had a subject carry the bare kind
/// (`residence`); a new value of the user's slot still supersedes them, and
/// they take the new name.
#[tokio::test]
async fn a_memory_with_a_slot_of_before_subjects_is_superseded() {
    let (_dir, store) = new_store().await;
    let mut old = point("alice", "p", "I live in Paris.", "2025-01-01T00:00:00Z", [0.0, 1.0, 0.0, 0.0]);
    old.memory.slot = Some("residence".into());
    let mut brother = point("alice", "o", "Olaf lives in Bergen.", "2025-01-01T00:00:00Z", [0.0, 0.0, 1.0, 0.0]);
    brother.memory.slot = Some("residence".into());
    store.upsert_memories(&[old, brother]).await.unwrap();
    apply(&store, vec![point("alice", "b", "I moved to Berlin.", "2025-06-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0])]).await;
    let ms = all(&store).await;
    let status = |text: &str| {
        let m = ms.iter().find(|m| m.text == text).unwrap();
        (m.status.as_str(), m.slot.as_deref())
    };
    assert_eq!(status("I live in Paris."), ("superseded", Some("residence:user")));
    assert_eq!(status("Olaf lives in Bergen."), ("active", Some("residence")));
    assert_eq!(status("I moved to Berlin."), ("active", Some("residence:user")));
}

/// Near-identical vectors of two different facts (another number) make two
/// memories; the same fact again still reinforces.
#[tokio::test]
async fn near_identical_vectors_of_different_facts_stay_apart() {
    let (_dir, store) = new_store().await;
    let v = [1.0, 0.0, 0.0, 0.0];
    apply(&store, vec![point("alice", "a", "My locker code is 4821.", "2026-01-01T00:00:00Z", v)]).await;
    apply(&store, vec![point("alice", "b", "My locker code is 4812.", "2026-01-02T00:00:00Z", v)]).await;
    apply(&store, vec![point("alice", "c", "My locker code is 4821!", "2026-01-03T00:00:00Z", v)]).await;
    let ms = all(&store).await;
    assert_eq!(ms.len(), 2, "{ms:#?}");
    let sources = |text: &str| ms.iter().find(|m| m.text == text).unwrap().source_event_ids.clone();
    assert_eq!(sources("My locker code is 4821."), vec!["a", "c"]);
    assert_eq!(sources("My locker code is 4812."), vec!["b"]);
}

/// A stored raw event, as the indexer writes it beside an event's memories.
fn indexed(event_id: &str) -> StoredEvent {
    StoredEvent {
        event_id: event_id.into(),
        org_id: "org".into(),
        actor_id: "alice".into(),
        session_id: "s".into(),
        kind: "user_message".into(),
        content: "I prefer green tea.".into(),
        role_id: None,
        team_id: None,
        ts: "2026-01-01T00:00:00Z".into(),
        metadata: None,
        ingested_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// `memsy replay` sends every event of an org again, the ones that have
/// dropped out of a full source list included: an event indexed before
/// counts no second time, so the memory stays exactly as it was.
#[tokio::test]
async fn a_replayed_event_never_counts_twice() {
    let (_dir, store) = new_store().await;
    let cap = memsy_core::model::MAX_SOURCE_EVENTS;
    let events: Vec<(String, String)> =
        (0..cap + 10).map(|i| (format!("01J{i:023}"), format!("2026-01-01T{:02}:{:02}:00Z", i / 60, i % 60))).collect();
    let tea = |(id, at): &(String, String)| point("alice", id, "I prefer green tea.", at, [1.0, 0.0, 0.0, 0.0]);
    for e in &events {
        apply(&store, vec![tea(e)]).await;
        store.upsert_events(&[indexed(&e.0)]).await.unwrap();
    }
    let before = all(&store).await;
    assert_eq!(before.len(), 1, "{before:#?}");
    assert!(!before[0].source_event_ids.contains(&events[1].0), "the second event has dropped out");
    // Replayed one by one, and all in one batch.
    for e in &events {
        let plan = apply(&store, vec![tea(e)]).await;
        assert!(plan.inserts.is_empty() && plan.replaces.is_empty(), "{}: {plan:?}", e.0);
    }
    let plan = apply(&store, events.iter().map(tea).collect()).await;
    assert!(plan.inserts.is_empty() && plan.replaces.is_empty(), "{plan:?}");
    let after = all(&store).await;
    assert_eq!(after[0].source_event_ids, before[0].source_event_ids);
    assert_eq!((after[0].strength, after[0].confidence), (before[0].strength, before[0].confidence));
    // A new event still counts.
    let new = (format!("01J{:023}", cap + 10), "2026-01-02T00:00:00Z".to_string());
    let plan = apply(&store, vec![tea(&new)]).await;
    assert_eq!(plan.replaces.len(), 1, "{plan:?}");
    assert_eq!(all(&store).await[0].source_event_ids.last(), Some(&new.0));
}

/// An event extracted again after a change of model, rules or prompt: the
/// memory it made (same id) takes the new text and vector and keeps what
/// consolidation and the user made of it; extracted the same, nothing is
/// written.
#[tokio::test]
async fn a_re_extraction_rewrites_the_text_and_keeps_the_counts() {
    let (_dir, store) = new_store().await;
    let first = point("alice", "e1", "I like tea.", "2026-01-01T00:00:00Z", [1.0, 0.0, 0.0, 0.0]);
    apply(&store, vec![first.clone()]).await;
    apply(&store, vec![point("alice", "e2", "I like tea.", "2026-01-02T00:00:00Z", [1.0, 0.0, 0.0, 0.0])]).await;
    let edit = MemoryEdit { pinned: Some(true), status: None, at: "2026-01-03T00:00:00Z".into() };
    store.edit_memory("org", &first.memory.memory_id, &edit).await.unwrap();
    let before = all(&store).await;
    assert_eq!(before.len(), 1, "{before:#?}");

    let plan = apply(&store, vec![first.clone()]).await;
    assert!(plan.inserts.is_empty() && plan.replaces.is_empty(), "same extraction: {plan:?}");

    let mut again = point("alice", "e1", "I like green tea.", "2026-01-01T00:00:00Z", [0.0, 1.0, 0.0, 0.0]);
    again.memory.tags = vec!["tea".into()];
    apply(&store, vec![again.clone()]).await;
    let after = all(&store).await;
    assert_eq!(after.len(), 1, "{after:#?}");
    let (b, a) = (&before[0], &after[0]);
    assert_eq!((a.text.as_str(), a.tags.clone()), ("I like green tea.", vec!["tea".to_string()]));
    assert_eq!((a.strength, a.confidence, a.pinned), (b.strength, b.confidence, true));
    assert_eq!(a.source_event_ids, b.source_event_ids);
    let query = DenseQuery {
        vector: vec![0.0, 1.0, 0.0, 0.0],
        filter: SearchFilter { org_id: "org".into(), min_score: Some(0.99), ..SearchFilter::default() },
        limit: 5,
    };
    let hits = store.search_dense_ids(&[query]).await.unwrap();
    assert_eq!(hits[0].len(), 1, "the new vector is stored");
    // Twice is once.
    let plan = apply(&store, vec![again]).await;
    assert!(plan.inserts.is_empty() && plan.replaces.is_empty(), "{plan:?}");
}
