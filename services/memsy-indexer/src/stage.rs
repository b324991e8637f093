//! The indexer as a pipeline stage: one store write per batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use memsy_bus::{Delivery, Outcome, StageHandler};
use memsy_proto::EmbeddedEvent;
use memsy_status::{EventState, StatusApi};
use memsy_store::{MemoryPoint, MemoryStore};
use prost::Message;
use tracing::{debug, warn};

use crate::{memory_from, stored_event_from};

pub struct IndexerStage {
    store: Arc<dyn MemoryStore>,
    status: Arc<dyn StatusApi>,
}

impl IndexerStage {
    pub fn new(store: Arc<dyn MemoryStore>, status: Arc<dyn StatusApi>) -> Self {
        Self { store, status }
    }
}

#[async_trait]
impl StageHandler for IndexerStage {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Done; batch.len()];
        let mut events = Vec::new();
        let mut points = Vec::new();
        // org → event ids, for one status call per org.
        let mut completed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, d) in batch.iter().enumerate() {
            let x = match EmbeddedEvent::decode(d.payload.as_ref()) {
                Ok(x) => x,
                Err(e) => {
                    outcomes[i] = Outcome::Fail(format!("undecodable embedded event: {e}"));
                    continue;
                }
            };
            let Some(event) = x.event else {
                outcomes[i] = Outcome::Fail("embedded event carries no event".into());
                continue;
            };
            for m in &x.memories {
                let Some(c) = &m.memory else { continue };
                if m.vector.is_empty() {
                    outcomes[i] = Outcome::Fail(format!("memory {} has no vector", c.memory_id));
                    break;
                }
                points.push(MemoryPoint { memory: memory_from(&event, c), vector: m.vector.clone() });
            }
            if outcomes[i] != Outcome::Done {
                continue;
            }
            debug!(event_id = event.event_id, memories = x.memories.len(), "indexing");
            events.push(stored_event_from(&event));
            completed.entry(event.org_id.clone()).or_default().push(event.event_id.clone());
        }
        let write = async {
            self.store.upsert_events(&events).await?;
            self.store.upsert_memories(&points).await
        };
        if let Err(e) = write.await {
            warn!(error = %e, "store write failed");
            Outcome::retry_done(&mut outcomes, &e.to_string());
            return outcomes;
        }
        for (org, ids) in &completed {
            if let Err(e) = self.status.mark(org, ids, EventState::Completed, "").await {
                warn!(error = %e, "marking events completed failed");
                Outcome::retry_done(&mut outcomes, &e.to_string());
                return outcomes;
            }
        }
        outcomes
    }

    async fn on_dead_letter(&self, payload: &[u8], reason: &str) -> (String, Vec<String>) {
        let Some(event) = EmbeddedEvent::decode(payload).ok().and_then(|x| x.event) else {
            return (String::new(), vec![]);
        };
        let ids = vec![event.event_id.clone()];
        if let Err(e) = self.status.mark(&event.org_id, &ids, EventState::Failed, &format!("indexer: {reason}")).await {
            warn!(error = %e, "could not mark dead-lettered event failed");
        }
        (event.org_id, ids)
    }
}
