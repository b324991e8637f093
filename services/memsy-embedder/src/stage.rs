//! The embedder as a pipeline stage: a fetched batch of extracted events is
//! embedded in one engine call (the engine sorts by length and sub-batches),
//! which is where batching pays on a CPU.

use std::sync::Arc;

use async_trait::async_trait;
use memsy_bus::topology::embedded_subject;
use memsy_bus::{Bus, Delivery, OutMessage, Outcome, StageHandler};
use memsy_proto::{EmbeddedEvent, EmbeddedMemory, ExtractedEvent};
use memsy_status::{EventState, StatusApi};
use prost::Message;
use tracing::{info_span, warn, Instrument};

use crate::LocalEmbedder;

pub struct EmbedderStage {
    bus: Bus,
    embedder: LocalEmbedder,
    status: Arc<dyn StatusApi>,
}

impl EmbedderStage {
    pub fn new(bus: Bus, embedder: LocalEmbedder, status: Arc<dyn StatusApi>) -> Self {
        Self { bus, embedder, status }
    }
}

#[async_trait]
impl StageHandler for EmbedderStage {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Done; batch.len()];
        let mut decoded: Vec<(usize, ExtractedEvent)> = Vec::new();
        for (i, d) in batch.iter().enumerate() {
            match ExtractedEvent::decode(d.payload.as_ref()) {
                Ok(x) if x.event.is_some() => decoded.push((i, x)),
                Ok(_) => outcomes[i] = Outcome::Fail("extracted event carries no event".into()),
                Err(e) => outcomes[i] = Outcome::Fail(format!("undecodable extracted event: {e}")),
            }
        }
        let wanted: usize = decoded.iter().map(|(_, x)| x.memories.len()).sum();
        let texts: Vec<String> = decoded.iter().flat_map(|(_, x)| x.memories.iter().map(|m| m.text.clone())).collect();
        let vectors = if texts.is_empty() {
            Vec::new()
        } else {
            let span = info_span!("embed texts", texts = texts.len());
            match self.embedder.embed_bulk(texts).instrument(span).await {
                Ok(v) => v,
                Err(e) => {
                    warn!(error = %e, "embedding failed");
                    for (i, _) in &decoded {
                        outcomes[*i] = Outcome::Retry(e.to_string());
                    }
                    return outcomes;
                }
            }
        };
        if vectors.len() != wanted {
            let reason = format!("engine returned {} vectors for {wanted} texts", vectors.len());
            for (i, _) in &decoded {
                outcomes[*i] = Outcome::Retry(reason.clone());
            }
            return outcomes;
        }
        let model = self.embedder.engine().model_name().to_string();
        let mut vectors = vectors.into_iter();
        let mut out = Vec::with_capacity(decoded.len());
        for (i, x) in decoded {
            let event = x.event.expect("checked above");
            let memories = x
                .memories
                .into_iter()
                .map(|m| EmbeddedMemory { memory: Some(m), vector: vectors.next().unwrap_or_default() })
                .collect();
            out.push(OutMessage {
                subject: embedded_subject(&event.org_id, self.bus.partitions()),
                msg_id: batch[i].output_msg_id("e", &event.event_id),
                payload: EmbeddedEvent { event: Some(event), memories, model: model.clone() }.encode_to_vec().into(),
                traceparent: batch[i].traceparent.clone(),
            });
        }
        if let Err(e) = self.bus.publish_all(out).await {
            warn!(error = %e, "publishing embedded events failed");
            Outcome::backoff_done(&mut outcomes, &e.to_string());
        }
        outcomes
    }

    fn events_of(&self, payload: &[u8]) -> Option<(String, Vec<String>)> {
        ExtractedEvent::decode(payload).ok().and_then(|x| x.event).map(|e| (e.org_id, vec![e.event_id]))
    }

    async fn mark_failed(&self, org_id: &str, event_ids: &[String], reason: &str) -> Result<(), String> {
        self.status.mark(org_id, event_ids, EventState::Failed, reason).await.map_err(|e| e.to_string())
    }
}
