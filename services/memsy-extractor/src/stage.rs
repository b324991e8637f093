//! The extractor as a pipeline stage.

use std::sync::Arc;

use async_trait::async_trait;
use memsy_bus::topology::extracted_subject;
use memsy_bus::{Bus, Delivery, OutMessage, Outcome, StageHandler};
use memsy_core::ids::memory_id;
use memsy_core::telemetry::child_traceparent;
use memsy_proto::{CandidateMemory, Entity, Event, ExtractedEvent};
use memsy_status::{record_failure, StatusApi};
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
        extract_with(&self.engine, event)
    }
}

fn extract_with(engine: &RulesEngine, event: Event) -> ExtractedEvent {
    let memories = engine
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

#[async_trait]
impl StageHandler for ExtractorStage {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for d in batch {
            match Event::decode(d.payload.as_ref()) {
                Ok(e) if !e.event_id.is_empty() => {
                    events.push(e);
                    outcomes.push(Outcome::Done);
                }
                Ok(_) => outcomes.push(Outcome::Fail("event has no event_id".into())),
                Err(e) => outcomes.push(Outcome::Fail(format!("undecodable event: {e}"))),
            }
        }
        // Extraction is CPU work: keep it off the async workers that serve requests.
        let engine = self.engine.clone();
        let extracted = match tokio::task::spawn_blocking(move || {
            events.into_iter().map(|e| extract_with(&engine, e)).collect::<Vec<_>>()
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                let reason = format!("extraction failed: {e}");
                return outcomes
                    .into_iter()
                    .map(|o| if o == Outcome::Done { Outcome::Fail(reason.clone()) } else { o })
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(extracted.len());
        let traces =
            batch.iter().zip(&outcomes).filter(|(_, o)| **o == Outcome::Done).map(|(d, _)| d.traceparent.as_deref());
        for (x, trace) in extracted.into_iter().zip(traces) {
            let event = x.event.as_ref().expect("set by extract_with");
            debug!(event_id = event.event_id, memories = x.memories.len(), "extracted");
            out.push(OutMessage {
                subject: extracted_subject(&event.org_id),
                msg_id: format!("x:{}", event.event_id),
                payload: x.encode_to_vec().into(),
                traceparent: trace.map(child_traceparent),
            });
        }
        // Ack only once the output is durable; a failed publish retries the
        // whole batch, and Nats-Msg-Id keeps the re-publish from duplicating.
        if let Err(e) = self.bus.publish_all(out).await {
            warn!(error = %e, "publishing extracted events failed");
            Outcome::backoff_done(&mut outcomes, &e.to_string());
        }
        outcomes
    }

    async fn on_dead_letter(&self, payload: &[u8], reason: &str) -> Result<(String, Vec<String>), String> {
        let Ok(event) = Event::decode(payload) else {
            return Ok((String::new(), vec![]));
        };
        record_failure(self.status.as_ref(), event.org_id, vec![event.event_id], &format!("extractor: {reason}")).await
    }
}
