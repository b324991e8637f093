//! The indexer as a pipeline stage: one consolidation plan and one store
//! write per batch; a batch the store refuses as invalid is written event by
//! event, so one bad message fails alone and never drags its neighbours to
//! the dead-letter stream. Events of an erased actor (or org) ingested
//! before its erasure are dropped, checked before the write and again after
//! it (see [`IndexerStage::with_erasures`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use memsy_bus::{Delivery, Erasures, OrgErasures, Outcome, StageHandler};
use memsy_core::model::StoredEvent;
use memsy_proto::EmbeddedEvent;
use memsy_status::{EventState, StatusApi};
use memsy_store::{MemoryPoint, MemoryStore, StoreError};
use prost::Message;
use tracing::{debug, info_span, warn, Instrument};

use crate::{memory_from, stored_event_from, Consolidator, Policy};

pub struct IndexerStage {
    store: Arc<dyn MemoryStore>,
    status: Arc<dyn StatusApi>,
    consolidator: Consolidator,
    erasures: Option<Erasures>,
}

/// One message's writes.
struct Write {
    index: usize,
    event: StoredEvent,
    points: Vec<MemoryPoint>,
}

impl IndexerStage {
    pub fn new(store: Arc<dyn MemoryStore>, status: Arc<dyn StatusApi>, policy: Policy) -> Self {
        let consolidator = Consolidator::new(store.clone(), policy);
        Self { store, status, consolidator, erasures: None }
    }

    /// Drops the events the erasure markers cover. They are read before a
    /// batch is written and again after: an erasure that set its marker
    /// after the first read deletes from the store after setting it, so
    /// either its deletion comes after this write, or the second read sees
    /// the marker and this stage erases what it just wrote.
    pub fn with_erasures(mut self, erasures: Erasures) -> Self {
        self.erasures = Some(erasures);
        self
    }

    /// The markers of every org of `writes` (none without a bucket).
    async fn markers(&self, writes: &[Write]) -> Result<HashMap<String, OrgErasures>, String> {
        let mut out = HashMap::new();
        let Some(erasures) = &self.erasures else { return Ok(out) };
        let orgs: BTreeSet<&str> = writes.iter().map(|w| w.event.org_id.as_str()).collect();
        for org in orgs {
            let m = erasures.of_org(org).await.map_err(|e| e.to_string())?;
            if !m.is_empty() {
                out.insert(org.to_string(), m);
            }
        }
        Ok(out)
    }

    /// The events and the memories go to different shards, each write
    /// ending in its own flush: they run at once, and the batch counts as
    /// written only when both are.
    ///
    /// Under load the indexer sets the pipeline's pace, so each part of a
    /// batch's work is logged with its time (debug level).
    async fn write(&self, writes: &[&Write]) -> Result<(), StoreError> {
        let events: Vec<StoredEvent> = writes.iter().map(|w| w.event.clone()).collect();
        let points: Vec<MemoryPoint> = writes.iter().flat_map(|w| w.points.iter().cloned()).collect();
        let events_write = async {
            let t = Instant::now();
            let r = self.store.upsert_events(&events).await;
            debug!(events = events.len(), ms = ms_since(t), "events written");
            r
        };
        futures::try_join!(events_write, self.write_memories(points)).map(|_| ())
    }

    async fn write_memories(&self, points: Vec<MemoryPoint>) -> Result<(), StoreError> {
        let t = Instant::now();
        let n = points.len();
        let plan = self.consolidator.plan(points).await?;
        debug!(memories = n, ms = ms_since(t), "consolidation planned");
        // Changes to stored memories first: if we stop before the inserts,
        // the redelivery finds the new memories missing and plans again,
        // while the reverse order would leave them stored and the changes
        // they imply (a supersession, a reinforcement) lost.
        let t = Instant::now();
        let r = self.store.write_memories(&plan.replaces, &plan.inserts).await;
        debug!(inserts = plan.inserts.len(), replaces = plan.replaces.len(), ms = ms_since(t), "memories written");
        r
    }
}

fn covered(markers: &HashMap<String, OrgErasures>, e: &StoredEvent) -> bool {
    markers.get(&e.org_id).is_some_and(|m| m.covers(&e.actor_id, &e.ingested_at))
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Decodes one message into its writes, or says why it never can be.
fn decode(index: usize, d: &Delivery) -> Result<Write, String> {
    let x = EmbeddedEvent::decode(d.payload.as_ref()).map_err(|e| format!("undecodable embedded event: {e}"))?;
    let event = x.event.ok_or("embedded event carries no event")?;
    let mut points = Vec::with_capacity(x.memories.len());
    for m in &x.memories {
        let Some(c) = &m.memory else { continue };
        if m.vector.is_empty() {
            return Err(format!("memory {} has no vector", c.memory_id));
        }
        points.push(MemoryPoint { memory: memory_from(&event, c), vector: m.vector.clone() });
    }
    debug!(event_id = event.event_id, memories = points.len(), "indexing");
    Ok(Write { index, event: stored_event_from(&event), points })
}

impl IndexerStage {
    /// The second read of the markers (see [`Self::with_erasures`]): what
    /// the batch wrote for an actor erased meanwhile is erased again, and
    /// its events are acked without a status.
    /// Answers the indexes of those messages.
    async fn undo_erased(&self, writes: &[Write], outcomes: &[Outcome]) -> Result<BTreeSet<usize>, String> {
        let mut undone = BTreeSet::new();
        if self.erasures.is_none() || writes.is_empty() {
            return Ok(undone);
        }
        let markers = self.markers(writes).await?;
        let mut erased: BTreeSet<(&str, &str)> = BTreeSet::new();
        for w in writes.iter().filter(|w| outcomes[w.index] == Outcome::Done && covered(&markers, &w.event)) {
            erased.insert((w.event.org_id.as_str(), w.event.actor_id.as_str()));
            undone.insert(w.index);
        }
        for (org, actor) in erased {
            self.store.erase(org, Some(actor)).await.map_err(|e| e.to_string())?;
            debug!(org_id = org, actor_id = actor, "erased what a batch wrote while the actor was being erased");
        }
        Ok(undone)
    }
}

#[async_trait]
impl StageHandler for IndexerStage {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Done; batch.len()];
        let mut writes: Vec<Write> = Vec::with_capacity(batch.len());
        for (i, d) in batch.iter().enumerate() {
            match decode(i, d) {
                Ok(w) => writes.push(w),
                Err(reason) => outcomes[i] = Outcome::Fail(reason),
            }
        }
        let markers = match self.markers(&writes).await {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "reading the erasure markers failed");
                Outcome::backoff_done(&mut outcomes, &e);
                return outcomes;
            }
        };
        writes.retain(|w| {
            let erased = covered(&markers, &w.event);
            if erased {
                debug!(event_id = w.event.event_id, "dropped: its actor was erased after it was ingested");
            }
            !erased
        });
        let all: Vec<&Write> = writes.iter().collect();
        let span = info_span!("store write", events = all.len());
        match self.write(&all).instrument(span).await {
            Ok(()) => {}
            Err(StoreError::Invalid(_)) => {
                // Find the culprit(s): write each message on its own.
                for w in &writes {
                    match self.write(&[w]).await {
                        Ok(()) => {}
                        Err(StoreError::Invalid(reason)) => outcomes[w.index] = Outcome::Fail(reason),
                        Err(e) => outcomes[w.index] = Outcome::Backoff(e.to_string()),
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "store write failed");
                Outcome::backoff_done(&mut outcomes, &e.to_string());
                return outcomes;
            }
        }
        let undone = match self.undo_erased(&writes, &outcomes).await {
            Ok(undone) => undone,
            Err(e) => {
                warn!(error = %e, "erasing what an erasure raced with failed");
                Outcome::backoff_done(&mut outcomes, &e);
                return outcomes;
            }
        };
        // org → event ids, for one status call per org.
        let mut completed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for w in writes.iter().filter(|w| outcomes[w.index] == Outcome::Done && !undone.contains(&w.index)) {
            completed.entry(w.event.org_id.as_str()).or_default().push(w.event.event_id.clone());
        }
        for (org, ids) in &completed {
            if let Err(e) = self.status.mark(org, ids, EventState::Completed, "").await {
                warn!(error = %e, "marking events completed failed");
                Outcome::backoff_done(&mut outcomes, &e.to_string());
                return outcomes;
            }
        }
        let now = chrono::Utc::now();
        for w in writes.iter().filter(|w| outcomes[w.index] == Outcome::Done) {
            if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&w.event.ingested_at) {
                let age = (now - at.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64 / 1e3;
                metrics::histogram!(memsy_core::metrics::EVENT_FRESHNESS).record(age);
            }
        }
        outcomes
    }

    fn events_of(&self, payload: &[u8]) -> Option<(String, Vec<String>)> {
        EmbeddedEvent::decode(payload).ok().and_then(|x| x.event).map(|e| (e.org_id, vec![e.event_id]))
    }

    async fn mark_failed(&self, org_id: &str, event_ids: &[String], reason: &str) -> Result<(), String> {
        self.status.mark(org_id, event_ids, EventState::Failed, reason).await.map_err(|e| e.to_string())
    }
}
