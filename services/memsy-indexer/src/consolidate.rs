//! Consolidation: what a batch of new actor memories does to what is stored.
//!
//! For each new memory, in batch order:
//! 1. **Redelivery**: a memory already stored under its id, or an event
//!    already counted in the memory it reinforced, changes nothing. An
//!    event counts once however often it comes (`memsy replay` sends an
//!    org's events again): when a memory's source list is full it may have
//!    dropped the event, and then the event counts only if its raw event is
//!    not stored yet (the store holds it once it has been indexed).
//!    **Re-extraction**: a memory stored under its id whose event, extracted
//!    again (after a model, rules or prompt change), now reads differently
//!    takes the new text (and vector), keeping what consolidation and users
//!    made of it (strength, sources, status, pin, recalls).
//! 2. **Reinforcement**: a near-duplicate (cosine ≥ `duplicate_similarity`)
//!    of an active memory of the same actor that states the same fact (the
//!    texts do not disagree on a number, code, name, negation or word of
//!    substance: [`crate::facts`]) strengthens that memory (strength,
//!    confidence, source events, source metadata ≤ 5) instead of adding a
//!    twin.
//! 3. **Supersession**: a memory that fills the same slot (kind and
//!    subject: [`crate::slots`]) as others of the actor ("I moved to
//!    Berlin" after "I live in Paris") leaves only the one observed last
//!    active; the others become `superseded` with `effective_to` set to the
//!    next one's `observed_at`. Decided by `observed_at` (then id), so
//!    redelivery order cannot flip it. The active value stated again in
//!    other words reinforces instead.
//! 4. **Promotion**: when at least `promotion_min_actors` distinct actors of
//!    a role (team, org) hold near-identical active memories of one fact, one memory at
//!    that level, with no actor and no session, is created or reinforced.
//!
//! Every decision reads the store plus what this batch already decided (the
//! overlay), so two related memories in one batch are handled as if they had
//! come one after the other. Two indexer replicas deciding about the same
//! actor at the same instant may both insert; the next memory of that actor
//! reconciles supersession, and near-duplicates then reinforce the first.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memsy_core::config::IndexerConfig;
use memsy_core::model::{without_speaker_label, Memory, MAX_SOURCE_EVENTS, MAX_SOURCE_METADATA, MAX_STRENGTH};
use memsy_store::{
    cosine, DenseQuery, MemoryPoint, MemoryScan, MemoryStore, ScoredId, SearchFilter, StoreError, ARCHIVED,
};
use tracing::debug;
use uuid::Uuid;

use crate::facts::different_facts;
use crate::slots;

/// Namespace of promoted memories' ids (derived from the memory that
/// triggered the promotion, so a redelivery promotes to the same id).
const PROMOTED_NS: Uuid = Uuid::from_u128(0x6d65_6d73_795f_7072_6f6d_6f74_6564_0001);

#[derive(Debug, Clone)]
pub struct Policy {
    pub duplicate_similarity: f32,
    pub promotion_similarity: f32,
    pub promotion_min_actors: usize,
    pub reinforce_step: f32,
}

impl From<&IndexerConfig> for Policy {
    fn from(c: &IndexerConfig) -> Self {
        Self {
            duplicate_similarity: c.duplicate_similarity,
            promotion_similarity: c.promotion_similarity,
            promotion_min_actors: c.promotion_min_actors.max(2),
            reinforce_step: c.reinforce_step,
        }
    }
}

/// What a batch writes: new points, and new versions of stored memories.
#[derive(Debug, Default)]
pub struct Plan {
    pub inserts: Vec<MemoryPoint>,
    pub replaces: Vec<Memory>,
}

/// A memory as this batch sees it.
#[derive(Debug, Clone)]
struct Working {
    memory: Memory,
    vector: Option<Vec<f32>>,
    /// Not stored yet: written as an insert.
    new: bool,
    /// Changed by this batch.
    dirty: bool,
}

impl Working {
    /// A stored memory the batch has not changed.
    fn stored(memory: Memory) -> Self {
        Working { memory, vector: None, new: false, dirty: false }
    }
}

/// A memory of a lookup's answer where the batch keeps it.
enum Held<'a> {
    /// In the overlay: decided by this batch.
    Decided(&'a Working),
    /// As read from the store in this plan.
    Read(&'a Memory),
}

impl Held<'_> {
    fn memory(&self) -> &Memory {
        match self {
            Held::Decided(w) => &w.memory,
            Held::Read(m) => m,
        }
    }

    fn to_working(&self) -> Working {
        match self {
            Held::Decided(w) => (*w).clone(),
            Held::Read(m) => Working::stored((*m).clone()),
        }
    }
}

pub struct Consolidator {
    store: Arc<dyn MemoryStore>,
    policy: Policy,
}

impl Consolidator {
    pub fn new(store: Arc<dyn MemoryStore>, policy: Policy) -> Self {
        Self { store, policy }
    }

    /// Decides what `points` (new actor memories, in event order) do.
    pub async fn plan(&self, points: Vec<MemoryPoint>) -> Result<Plan, StoreError> {
        let mut batch = Batch::default();
        // Ids already stored were consolidated by an earlier delivery.
        let mut by_org: HashMap<String, Vec<String>> = HashMap::new();
        for p in &points {
            by_org.entry(p.memory.org_id.clone()).or_default().push(p.memory.memory_id.clone());
        }
        let mut stored = HashMap::new();
        for (org, ids) in &by_org {
            for m in self.store.get_memories(org, ids).await? {
                stored.insert(m.memory_id.clone(), m);
            }
        }
        // Each id once (a repeat within the batch is a redelivery), and not
        // the ones stored already: those only take a re-extraction's text.
        let mut seen = BTreeSet::new();
        let mut fresh = Vec::with_capacity(points.len());
        for p in points {
            if !seen.insert(p.memory.memory_id.clone()) {
                continue;
            }
            match stored.get(&p.memory.memory_id) {
                None => fresh.push(p),
                Some(m) => {
                    if let Some(r) = reextracted(m, &p.memory) {
                        debug!(memory_id = r.memory_id, "re-extracted");
                        batch.put(Working { memory: r, vector: Some(p.vector), new: true, dirty: true });
                    }
                }
            }
        }
        let points = fresh;
        if points.is_empty() {
            return Ok(batch.into_plan());
        }
        // Every new memory's near-duplicate lookup, asked of the store at
        // once: this plan writes nothing until it is made, and what the
        // batch decides before each memory is applied to that memory's
        // answer when its turn comes (`Batch::correct`), as it was when each
        // lookup was asked in turn. (Other writers — recalls, other
        // replicas — were never isolated from a plan, per lookup or not.)
        // One blocking call instead of one per memory took ~10 % of
        // `memsy serve`'s CPU per event off (docs/BENCHMARKS.md, 2026-12-03).
        // The answers are ids; each memory among them is read once per plan.
        let queries: Vec<DenseQuery> = points
            .iter()
            .map(|p| DenseQuery {
                vector: p.vector.clone(),
                filter: thresholded(&actor_filter(&p.memory), self.policy.duplicate_similarity),
                limit: NEAREST_LIMIT,
            })
            .collect();
        let started = Instant::now();
        let answers = self.store.search_dense_ids(&queries).await?;
        let mut unread: HashMap<&str, Vec<&ScoredId>> = HashMap::new();
        for (q, answer) in queries.iter().zip(&answers) {
            unread.entry(q.filter.org_id.as_str()).or_default().extend(answer);
        }
        for (org, hits) in unread {
            self.read(&mut batch, org, hits).await?;
        }
        batch.lookups.add_many(Lookup::Duplicate, started, answers.len(), answers.iter().map(Vec::len).sum());
        for (p, stored_dups) in points.into_iter().zip(answers) {
            // An id the batch has decided about already is not decided twice.
            if batch.overlay.contains_key(&p.memory.memory_id) {
                continue;
            }
            self.consolidate(&mut batch, p, stored_dups).await?;
        }
        let l = &batch.lookups;
        debug!(
            duplicate_lookups = l.count(Lookup::Duplicate),
            duplicate_hits = l.hits(Lookup::Duplicate),
            duplicate_ms = l.ms(Lookup::Duplicate),
            holders_lookups = l.count(Lookup::Holders),
            holders_hits = l.hits(Lookup::Holders),
            holders_ms = l.ms(Lookup::Holders),
            promoted_lookups = l.count(Lookup::Promoted),
            promoted_hits = l.hits(Lookup::Promoted),
            promoted_ms = l.ms(Lookup::Promoted),
            memories_read = l.read,
            "consolidation lookups"
        );
        Ok(batch.into_plan())
    }

    /// `stored_dups`: the store's answer to the near-duplicate lookup of
    /// `p` (see `plan`).
    async fn consolidate(
        &self,
        batch: &mut Batch,
        p: MemoryPoint,
        stored_dups: Vec<ScoredId>,
    ) -> Result<(), StoreError> {
        let event_id = p.memory.source_event_ids.first().cloned().unwrap_or_default();

        // 2. Reinforcement of a near-duplicate.
        let same_actor = actor_filter(&p.memory);
        let min = self.policy.duplicate_similarity;
        // The nearest one that states the same fact: a near-identical text
        // that disagrees on a number, a name or a word of substance is
        // another fact (`facts`), and is left to the next candidate.
        let dup = batch
            .corrected(&stored_dups, &p.vector, &same_actor, min)
            .into_iter()
            .find(|h| same_fact(h.memory(), &p.memory))
            .map(|h| h.to_working());
        if let Some(target) = dup {
            self.reinforce_with(batch, target, &p.memory, &event_id, "reinforced a near-duplicate").await?;
            return Ok(());
        }

        // 3. Supersession within the slot.
        let mut memory = p.memory.clone();
        if let Some(slot) = memory.slot.clone() {
            // Memories stored before slots had a subject carry the bare
            // kind; their text says whether they are this slot.
            let mut stored = Vec::new();
            for name in [slot.as_str(), slots::unsubjected(&slot)] {
                let scan = MemoryScan {
                    actor_id: memory.actor_id.clone(),
                    scope_level: Some("actor".into()),
                    slot: Some(name.to_string()),
                    ..MemoryScan::org(&memory.org_id)
                };
                stored.extend(self.store.scan_memories(&scan, 1_000).await?.items);
            }
            let mut group: Vec<Working> = stored
                .into_iter()
                .map(|m| batch.current(m))
                .chain(batch.order.iter().filter_map(|id| batch.overlay.get(id)).cloned())
                // The batch holds every org's memories: the same actor id in
                // another org is another person.
                .filter(|w| {
                    w.memory.org_id == memory.org_id
                        && w.memory.actor_id == memory.actor_id
                        && slots::slot_of(&w.memory.text).as_deref() == Some(&slot)
                })
                .filter(|w| w.memory.status == "active" || w.memory.status == "superseded")
                .collect();
            group.sort_by(|a, b| order_key(&a.memory).cmp(&order_key(&b.memory)));
            group.dedup_by(|a, b| a.memory.memory_id == b.memory.memory_id);
            // The current value stated again in other words ("I moved to
            // Berlin" / "I'm based in Berlin") is a repetition, not an update.
            let value = slots::read(&memory.text);
            let restated = group.iter().find(|w| {
                w.memory.status == "active"
                    && slots::read(&w.memory.text).zip(value.as_ref()).is_some_and(|(a, b)| a.same_value(b))
            });
            if let Some(target) = restated.cloned() {
                self.reinforce_with(batch, target, &memory, &event_id, "reinforced the slot's current value").await?;
                return Ok(());
            }
            // Where the new memory falls among the others.
            let key = (memsy_core::time::parse_ts(&memory.observed_at), memory.memory_id.clone());
            let position = |w: &Working| order_key(&w.memory).cmp(&(key.0, key.1.as_str()));
            let next_after_new =
                group.iter().find(|w| position(w) == std::cmp::Ordering::Greater).map(|w| w.memory.observed_at.clone());
            if let Some(next) = next_after_new {
                memory.status = "superseded".into();
                memory.effective_to = Some(next);
            }
            // Every active one observed before the new memory ends where it starts.
            let earlier: Vec<Working> = group
                .into_iter()
                .filter(|w| position(w) == std::cmp::Ordering::Less && w.memory.status == "active")
                .collect();
            for w in earlier {
                let mut m = w.memory.clone();
                m.slot = Some(slot.clone());
                m.status = "superseded".into();
                m.effective_to = Some(memory.observed_at.clone());
                m.updated_at = memory.created_at.clone();
                debug!(memory_id = m.memory_id, by = memory.memory_id, slot, "superseded");
                batch.put(Working { memory: m, dirty: true, ..w });
            }
        }
        let active = memory.status == "active";
        batch.put(Working { memory: memory.clone(), vector: Some(p.vector.clone()), new: true, dirty: true });

        // 4. Promotion.
        if active {
            for level in ["role", "team", "org"] {
                self.promote(batch, &memory, &p.vector, level).await?;
            }
        }
        Ok(())
    }

    /// Folds `new` into `target` unless `event_id` is counted there already.
    async fn reinforce_with(
        &self,
        batch: &mut Batch,
        target: Working,
        new: &Memory,
        event_id: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        // A redelivered or replayed event counts once.
        if self.counted(batch, &target.memory, event_id).await? {
            return Ok(());
        }
        let mut m = target.memory.clone();
        reinforce(&mut m, new, self.policy.reinforce_step);
        debug!(memory_id = m.memory_id, event_id, strength = m.strength, "{what}");
        batch.put(Working { memory: m, dirty: true, ..target });
        Ok(())
    }

    /// Creates or reinforces the `level` memory `m` belongs to once enough
    /// distinct actors of that role (team, org) hold the same memory.
    async fn promote(&self, batch: &mut Batch, m: &Memory, vector: &[f32], level: &str) -> Result<(), StoreError> {
        let scope_id = match level {
            "role" => m.role_id.clone(),
            "team" => m.team_id.clone(),
            _ => Some(m.org_id.clone()),
        };
        let Some(scope_id) = scope_id.filter(|s| !s.is_empty()) else { return Ok(()) };
        let mut members = SearchFilter {
            org_id: m.org_id.clone(),
            status: Some("active".into()),
            exact: vec![("scope_level".into(), "actor".into())],
            ..SearchFilter::default()
        };
        if level != "org" {
            members.exact.push((format!("{level}_id"), scope_id.clone()));
        }
        // The holders are looked at where the batch keeps them, not
        // copied: a fact held by many actors has many holders, each with
        // up to 50 source event ids; only their ids are kept across the
        // promoted-memory lookup below.
        let min = self.policy.promotion_similarity;
        let hits = self.lookup(batch, Lookup::Holders, vector, &members, min, 100).await?;
        // Holders of another fact in the same words are not holders.
        let holders: Vec<Held<'_>> =
            batch.corrected(&hits, vector, &members, min).into_iter().filter(|h| same_fact(h.memory(), m)).collect();
        let actors = holders.iter().filter_map(|h| h.memory().actor_id.as_deref()).collect::<BTreeSet<&str>>().len();
        if actors < self.policy.promotion_min_actors {
            return Ok(());
        }
        // What only the members of one role hold is that role's knowledge:
        // the org level needs holders from more than one role (or without one).
        if level == "org" {
            let roles: BTreeSet<Option<&str>> = holders.iter().map(|h| h.memory().role_id.as_deref()).collect();
            if roles.len() < 2 && !roles.contains(&None) {
                return Ok(());
            }
        }
        let holders: Vec<String> = holders.iter().map(|h| h.memory().memory_id.clone()).collect();
        let mut promoted_filter = SearchFilter {
            org_id: m.org_id.clone(),
            status: Some("active".into()),
            exact: vec![("scope_level".into(), level.into())],
            ..SearchFilter::default()
        };
        if level != "org" {
            promoted_filter.exact.push((format!("{level}_id"), scope_id.clone()));
        }
        let event_id = m.source_event_ids.first().cloned().unwrap_or_default();
        match self
            .nearest(batch, Lookup::Promoted, vector, &promoted_filter, self.policy.duplicate_similarity, m)
            .await?
        {
            Some(existing) => {
                if !self.counted(batch, &existing.memory, &event_id).await? {
                    let mut p = existing.memory.clone();
                    reinforce(&mut p, m, self.policy.reinforce_step);
                    p.summary = promoted_summary(level, &scope_id, actors, m);
                    debug!(memory_id = p.memory_id, level, scope_id, "reinforced promoted memory");
                    batch.put(Working { memory: p, dirty: true, ..existing });
                }
            }
            None => {
                // The promoted-memory lookup only read: the holders are
                // where they were.
                let holders: Vec<&Memory> = holders.iter().filter_map(|id| batch.memory(id)).collect();
                let mut sources: Vec<String> = Vec::new();
                for h in &holders {
                    for id in &h.source_event_ids {
                        if !sources.contains(id) && sources.len() < MAX_SOURCE_EVENTS {
                            sources.push(id.clone());
                        }
                    }
                }
                let confidence = holders.iter().map(|h| h.confidence).sum::<f32>() / holders.len() as f32;
                let name = format!("{}\u{1f}{level}\u{1f}{scope_id}\u{1f}{}", m.org_id, m.memory_id);
                let p = Memory {
                    memory_id: Uuid::new_v5(&PROMOTED_NS, name.as_bytes()).to_string(),
                    scope_level: level.into(),
                    actor_id: None,
                    session_id: None,
                    role_id: if level == "role" { Some(scope_id.clone()) } else { None },
                    team_id: if level == "team" { Some(scope_id.clone()) } else { None },
                    text: without_speaker_label(&m.text).to_string(),
                    summary: promoted_summary(level, &scope_id, actors, m),
                    confidence: confidence.clamp(0.0, 1.0),
                    strength: memsy_core::model::INITIAL_STRENGTH,
                    recall_count: 0,
                    last_recalled_at: None,
                    pinned: false,
                    source_event_ids: sources,
                    source_metadata: Vec::new(),
                    slot: None,
                    context: None,
                    status: "active".into(),
                    effective_to: None,
                    ..m.clone()
                };
                debug!(memory_id = p.memory_id, level, scope_id, actors, "promoted");
                batch.put(Working { memory: p, vector: Some(vector.to_vec()), new: true, dirty: true });
            }
        }
        Ok(())
    }

    /// Whether `m` counted `event_id` already: among its sources, or, when
    /// those are full (the oldest repetitions drop out), indexed before —
    /// its raw event stored. The raw events are written beside the
    /// memories, so a batch whose memories failed and events did not is
    /// not counted again on its redelivery by such a memory: one repetition
    /// less on a memory with 50 already, never one too many.
    async fn counted(&self, batch: &mut Batch, m: &Memory, event_id: &str) -> Result<bool, StoreError> {
        if m.source_event_ids.iter().any(|id| id == event_id) {
            return Ok(true);
        }
        if m.source_event_ids.len() < MAX_SOURCE_EVENTS || event_id.is_empty() {
            return Ok(false);
        }
        if let Some(known) = batch.indexed.get(event_id) {
            return Ok(*known);
        }
        let known = !self.store.get_events(&m.org_id, &[event_id.to_string()]).await?.is_empty();
        batch.indexed.insert(event_id.to_string(), known);
        Ok(known)
    }

    /// The closest memory within `filter` at `min` similarity or more that
    /// states the same fact as `m`, stored or decided in this batch, as this
    /// batch sees it.
    async fn nearest(
        &self,
        batch: &mut Batch,
        kind: Lookup,
        vector: &[f32],
        filter: &SearchFilter,
        min: f32,
        m: &Memory,
    ) -> Result<Option<Working>, StoreError> {
        let hits = self.lookup(batch, kind, vector, filter, min, NEAREST_LIMIT).await?;
        Ok(batch
            .corrected(&hits, vector, filter, min)
            .into_iter()
            .find(|h| same_fact(h.memory(), m))
            .map(|h| h.to_working()))
    }

    /// The store's hits within `filter` at `min` or more, each one's memory
    /// read into the batch if it was not there yet.
    async fn lookup(
        &self,
        batch: &mut Batch,
        kind: Lookup,
        vector: &[f32],
        filter: &SearchFilter,
        min: f32,
        limit: usize,
    ) -> Result<Vec<ScoredId>, StoreError> {
        let started = Instant::now();
        let query = DenseQuery { vector: vector.to_vec(), filter: thresholded(filter, min), limit };
        let hits = self.store.search_dense_ids(std::slice::from_ref(&query)).await?.pop().unwrap_or_default();
        self.read(batch, &filter.org_id, &hits).await?;
        batch.lookups.add(kind, started, hits.len());
        Ok(hits)
    }

    /// Reads the memories of `org_id` among `hits` that the plan holds
    /// neither as read before nor as decided. The store does not change
    /// while a plan is made (it writes nothing until it is made), so a
    /// memory read once serves every later lookup of the plan: the holders
    /// of a fact are the same for each new memory of it.
    async fn read(
        &self,
        batch: &mut Batch,
        org_id: &str,
        hits: impl IntoIterator<Item = &ScoredId>,
    ) -> Result<(), StoreError> {
        let unread: BTreeSet<&str> = hits
            .into_iter()
            .map(|h| h.memory_id.as_str())
            .filter(|id| !batch.stored.contains_key(*id) && !batch.overlay.contains_key(*id))
            .collect();
        if unread.is_empty() {
            return Ok(());
        }
        let unread: Vec<String> = unread.into_iter().map(str::to_string).collect();
        let memories = self.store.get_memories(org_id, &unread).await?;
        batch.lookups.read += memories.len();
        for m in memories {
            batch.stored.insert(m.memory_id.clone(), m);
        }
        Ok(())
    }
}

/// `filter` for a consolidation lookup: dense only (no text), since
/// consolidation asks "is this the same fact?", which is what the cosine
/// threshold measures; the engine leaves out what falls below it.
fn thresholded(filter: &SearchFilter, min: f32) -> SearchFilter {
    SearchFilter { min_score: Some(min), ..filter.clone() }
}

/// Store hits asked for per near-duplicate lookup: the nearest one may have
/// left `filter` in this batch, and then the next one counts.
const NEAREST_LIMIT: usize = 5;

#[derive(Default)]
struct Batch {
    overlay: HashMap<String, Working>,
    /// Ids in the order they entered the overlay (for deterministic plans).
    order: Vec<String>,
    /// Stored memories the plan's lookups found, as read from the store.
    stored: HashMap<String, Memory>,
    /// Whether an event's raw event is stored (it was indexed before), as
    /// asked by [`Consolidator::counted`].
    indexed: HashMap<String, bool>,
    lookups: Lookups,
}

/// The store lookups a plan makes, by kind.
#[derive(Clone, Copy)]
enum Lookup {
    Duplicate = 0,
    Holders = 1,
    Promoted = 2,
}

/// How many lookups of each kind a plan made, how many hits the store
/// returned and how long they took (reading the memories included), and
/// how many memories were read (each one's payload decoded), for the
/// plan's debug log: where a plan's time goes, by kind.
#[derive(Default)]
struct Lookups {
    count: [u32; 3],
    hits: [usize; 3],
    time: [Duration; 3],
    read: usize,
}

impl Lookups {
    fn add(&mut self, kind: Lookup, started: Instant, hits: usize) {
        self.add_many(kind, started, 1, hits);
    }

    fn add_many(&mut self, kind: Lookup, started: Instant, lookups: usize, hits: usize) {
        self.count[kind as usize] += lookups as u32;
        self.hits[kind as usize] += hits;
        self.time[kind as usize] += started.elapsed();
    }

    fn count(&self, kind: Lookup) -> u32 {
        self.count[kind as usize]
    }

    fn hits(&self, kind: Lookup) -> usize {
        self.hits[kind as usize]
    }

    fn ms(&self, kind: Lookup) -> f64 {
        self.time[kind as usize].as_secs_f64() * 1e3
    }
}

impl Batch {
    fn put(&mut self, w: Working) {
        let id = w.memory.memory_id.clone();
        if !self.overlay.contains_key(&id) {
            self.order.push(id.clone());
        }
        self.overlay.insert(id, w);
    }

    /// The store's `hits` for a lookup as this batch sees them: hits the
    /// batch has since moved out of `filter` dropped, memories the batch
    /// added within `filter` at `min` or more included; best first.
    /// A hit on a memory that is gone by the time it is read (deleted in
    /// between) is left out, as a lookup a moment later would.
    fn corrected(&self, hits: &[ScoredId], vector: &[f32], filter: &SearchFilter, min: f32) -> Vec<Held<'_>> {
        let mut scored: Vec<(f32, Held<'_>)> = Vec::new();
        for hit in hits.iter().filter(|h| h.score >= min) {
            let held = match (self.overlay.get(&hit.memory_id), self.stored.get(&hit.memory_id)) {
                (Some(w), _) => Held::Decided(w),
                (None, Some(m)) => Held::Read(m),
                (None, None) => continue,
            };
            if matches_filter(held.memory(), filter) {
                scored.push((hit.score, held));
            }
        }
        for id in &self.order {
            let w = &self.overlay[id];
            let Some(v) = w.vector.as_deref() else { continue };
            if !w.new || !matches_filter(&w.memory, filter) {
                continue;
            }
            let score = cosine(vector, v);
            if score >= min && !scored.iter().any(|(_, s)| s.memory().memory_id == w.memory.memory_id) {
                scored.push((score, Held::Decided(w)));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.memory().memory_id.cmp(&b.1.memory().memory_id)));
        scored.into_iter().map(|(_, h)| h).collect()
    }

    /// A memory as the batch holds it: decided by it, or read.
    fn memory(&self, id: &str) -> Option<&Memory> {
        self.overlay.get(id).map(|w| &w.memory).or_else(|| self.stored.get(id))
    }

    /// A stored memory as this batch left it.
    fn current(&self, stored: Memory) -> Working {
        match self.overlay.get(&stored.memory_id) {
            Some(w) => w.clone(),
            None => Working::stored(stored),
        }
    }

    fn into_plan(mut self) -> Plan {
        let mut plan = Plan::default();
        for id in self.order {
            let Some(w) = self.overlay.remove(&id) else { continue };
            match (w.new, w.dirty, w.vector) {
                (true, _, Some(vector)) => plan.inserts.push(MemoryPoint { memory: w.memory, vector }),
                (false, true, _) => plan.replaces.push(w.memory),
                _ => {}
            }
        }
        plan
    }
}

/// The actor's own active memories. The actor is an exact condition, not
/// `SearchFilter::actor_id`: that one widens to every org-level memory
/// (what a search shows an actor), and the engine would score all of those
/// only to drop them on `scope_level` (a quarter of each lookup's time in
/// an org with many promoted memories; docs/BENCHMARKS.md, 2026-12-03).
fn actor_filter(m: &Memory) -> SearchFilter {
    // A memory without an actor has no actor duplicates: `matches_filter`
    // and the store both match no stored memory on an empty actor id.
    let exact = vec![
        ("scope_level".to_string(), "actor".to_string()),
        ("actor_id".to_string(), m.actor_id.clone().unwrap_or_default()),
    ];
    SearchFilter { org_id: m.org_id.clone(), status: Some("active".into()), exact, ..SearchFilter::default() }
}

/// Whether an in-batch memory meets a consolidation filter (which only
/// ever uses org, actor, status and exact conditions).
fn matches_filter(m: &Memory, f: &SearchFilter) -> bool {
    if m.org_id != f.org_id {
        return false;
    }
    if f.actor_id.is_some() && m.actor_id != f.actor_id {
        return false;
    }
    if f.status.as_deref().is_some_and(|s| s != m.status) {
        return false;
    }
    f.exact.iter().all(|(k, v)| {
        let field = match k.as_str() {
            "scope_level" => Some(m.scope_level.as_str()),
            "actor_id" => m.actor_id.as_deref(),
            "role_id" => m.role_id.as_deref(),
            "team_id" => m.team_id.as_deref(),
            "slot" => m.slot.as_deref(),
            _ => None,
        };
        field == Some(v.as_str())
    })
}

/// Whether two near-identical memories state one fact: they do not
/// disagree (`facts`), and, filling one slot, they state one value (two
/// values of a slot are an update, not a duplicate, however close their
/// vectors: "I live in Paris" / "… Berlin").
fn same_fact(a: &Memory, b: &Memory) -> bool {
    if different_facts(&a.text, &b.text) {
        return false;
    }
    match (slots::read(&a.text), slots::read(&b.text)) {
        (Some(x), Some(y)) if x.name == y.name => x.same_value(&y),
        _ => true,
    }
}

/// `stored` with what its event's new extraction `new` (same id: same event
/// and position) says, when that differs; None when it does not, or when a
/// user archived it (the pipeline leaves those alone). Confidence is not
/// compared: reinforcement raises it. A slot that changes with the text
/// takes effect on the next memory of the slot, which reconciles it.
fn reextracted(stored: &Memory, new: &Memory) -> Option<Memory> {
    let same = stored.text == new.text
        && stored.title == new.title
        && stored.summary == new.summary
        && stored.memory_type == new.memory_type
        && stored.memory_kind == new.memory_kind
        && stored.tags == new.tags
        && stored.entities == new.entities
        && stored.slot == new.slot;
    if same || stored.status == ARCHIVED {
        return None;
    }
    Some(Memory {
        text: new.text.clone(),
        title: new.title.clone(),
        summary: new.summary.clone(),
        memory_type: new.memory_type.clone(),
        memory_kind: new.memory_kind.clone(),
        tags: new.tags.clone(),
        entities: new.entities.clone(),
        slot: new.slot.clone(),
        ..stored.clone()
    })
}

fn order_key(m: &Memory) -> (Option<chrono::DateTime<chrono::Utc>>, &str) {
    (memsy_core::time::parse_ts(&m.observed_at), m.memory_id.as_str())
}

/// Folds `new` (a repetition of `m`) into `m`.
fn reinforce(m: &mut Memory, new: &Memory, step: f32) {
    m.strength = (m.strength + step).min(MAX_STRENGTH);
    // Hearing the same thing again makes it more certain, never less.
    m.confidence = (m.confidence.max(new.confidence) + (1.0 - m.confidence.max(new.confidence)) * 0.2).min(1.0);
    for id in &new.source_event_ids {
        if !m.source_event_ids.contains(id) {
            m.source_event_ids.push(id.clone());
        }
    }
    // The first event (where the memory came from) and the latest ones; an
    // event that has dropped out is not counted again (`counted`).
    if m.source_event_ids.len() > MAX_SOURCE_EVENTS {
        let excess = m.source_event_ids.len() - MAX_SOURCE_EVENTS;
        m.source_event_ids.drain(1..=excess);
    }
    for meta in &new.source_metadata {
        if m.source_metadata.len() < MAX_SOURCE_METADATA && !m.source_metadata.contains(meta) {
            m.source_metadata.push(meta.clone());
        }
    }
    if order_key(new) > order_key(m) {
        m.observed_at = new.observed_at.clone();
    }
    if new.updated_at > m.updated_at {
        m.updated_at = new.updated_at.clone();
    }
}

fn promoted_summary(level: &str, scope_id: &str, actors: usize, m: &Memory) -> String {
    let whom = match level {
        "role" => format!("members of role {scope_id}"),
        "team" => format!("members of team {scope_id}"),
        _ => "members of the organisation".to_string(),
    };
    format!("Held by {actors} {whom}: {}", without_speaker_label(&m.text))
}
