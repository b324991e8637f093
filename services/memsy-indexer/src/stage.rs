//! The indexer as a pipeline stage: one consolidation plan and one store
//! write per batch; a batch the store refuses as invalid is written event by
//! event, so one bad message fails alone and never drags its neighbours to
//! the dead-letter stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use memsy_bus::{Delivery, Outcome, StageHandler};
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
        Self { store, status, consolidator }
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

#[async_trait]
impl StageHandler for IndexerStage {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Done; batch.len()];
        let mut writes = Vec::with_capacity(batch.len());
        for (i, d) in batch.iter().enumerate() {
            match decode(i, d) {
                Ok(w) => writes.push(w),
                Err(reason) => outcomes[i] = Outcome::Fail(reason),
            }
        }
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
        // org → event ids, for one status call per org.
        let mut completed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for w in writes.iter().filter(|w| outcomes[w.index] == Outcome::Done) {
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
