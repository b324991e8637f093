//! The extractor as a pipeline stage.

use std::sync::Arc;

use async_trait::async_trait;
use memsy_bus::topology::extracted_subject;
use memsy_bus::{Bus, Delivery, OutMessage, Outcome, StageHandler};
use memsy_core::ids::memory_id;
use memsy_core::telemetry::child_traceparent;
use memsy_proto::{CandidateMemory, Entity, Event, ExtractedEvent};
use memsy_status::{EventState, StatusApi};
use prost::Message;
use tracing::{debug, warn};

use crate::RulesEngine;

pub struct ExtractorStage {
    bus: Bus,
    engine: RulesEngine,
    status: Arc<dyn StatusApi>,
}

impl ExtractorStage {
    pub fn new(bus: Bus, status: Arc<dyn StatusApi>) -> Self {
        Self { bus, engine: RulesEngine::new(), status }
    }

    /// The stage's output for one event.
    pub fn extract(&self, event: Event) -> ExtractedEvent {
        let memories = self
            .engine
            .extract(&event)
            .into_iter()
            .enumerate()
            .map(|(i, c)| CandidateMemory {
                memory_id: memory_id(&event.org_id, &event.event_id, i).to_string(),
                text: c.text,
                title: c.title,
                summary: c.summary,
                r#type: c.memory_type,
                memory_kind: c.memory_kind,
                tags: c.tags,
                entities: c.entities.into_iter().map(|(name, r#type)| Entity { name, r#type }).collect(),
                confidence: c.confidence,
            })
            .collect();
        ExtractedEvent { event: Some(event), memories }
    }
}

#[async_trait]
impl StageHandler for ExtractorStage {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut out = Vec::new();
        for d in batch {
            let event = match Event::decode(d.payload.as_ref()) {
                Ok(e) if !e.event_id.is_empty() => e,
                Ok(_) => {
                    outcomes.push(Outcome::Fail("event has no event_id".into()));
                    continue;
                }
                Err(e) => {
                    outcomes.push(Outcome::Fail(format!("undecodable event: {e}")));
                    continue;
                }
            };
            let org = event.org_id.clone();
            let event_id = event.event_id.clone();
            let extracted = self.extract(event);
            debug!(event_id, memories = extracted.memories.len(), "extracted");
            out.push(OutMessage {
                subject: extracted_subject(&org),
                msg_id: format!("x:{event_id}"),
                payload: extracted.encode_to_vec().into(),
                traceparent: d.traceparent.as_deref().map(child_traceparent),
            });
            outcomes.push(Outcome::Done);
        }
        // Ack only once the output is durable; a failed publish retries the
        // whole batch, and Nats-Msg-Id keeps the re-publish from duplicating.
        if let Err(e) = self.bus.publish_all(out).await {
            warn!(error = %e, "publishing extracted events failed");
            Outcome::retry_done(&mut outcomes, &e.to_string());
        }
        outcomes
    }

    async fn on_dead_letter(&self, payload: &[u8], reason: &str) -> (String, Vec<String>) {
        let Ok(event) = Event::decode(payload) else {
            return (String::new(), vec![]);
        };
        let ids = vec![event.event_id.clone()];
        let reason = format!("extractor: {reason}");
        if let Err(e) = self.status.mark(&event.org_id, &ids, EventState::Failed, &reason).await {
            warn!(error = %e, "could not mark dead-lettered event failed");
        }
        (event.org_id, ids)
    }
}
