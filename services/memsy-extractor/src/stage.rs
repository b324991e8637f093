//! The extractor as a pipeline stage.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use memsy_bus::topology::extracted_subject;
use memsy_bus::{Bus, Delivery, OutMessage, Outcome, StageHandler};
use memsy_core::ids::memory_id;
use memsy_proto::{CandidateMemory, Entity, Event, ExtractedEvent};
use memsy_status::{EventState, StatusApi};
use prost::Message;
use tracing::{debug, warn};

use crate::{Candidate, ExtractorError, LlmEngine, RulesEngine};

/// Model calls in flight at once per batch: enough to hide a provider's
/// latency, few enough not to trip its rate limits.
const LLM_CONCURRENCY: usize = 4;

/// The extraction engine a stage runs (`extractor.engine`).
#[derive(Clone)]
pub enum Engine {
    Rules(RulesEngine),
    Llm(Arc<LlmEngine>),
}

pub struct ExtractorStage {
    bus: Bus,
    engine: Engine,
    status: Arc<dyn StatusApi>,
}

impl ExtractorStage {
    /// A stage running the rules engine.
    pub fn new(bus: Bus, status: Arc<dyn StatusApi>) -> Self {
        Self::with_engine(bus, status, Engine::Rules(RulesEngine::new()))
    }

    pub fn with_engine(bus: Bus, status: Arc<dyn StatusApi>, engine: Engine) -> Self {
        Self { bus, engine, status }
    }
}

/// The stage's output for one event: its candidates with deterministic ids,
/// so that a redelivered event overwrites rather than duplicates.
fn extracted(event: Event, candidates: Vec<Candidate>) -> ExtractedEvent {
    let memories = candidates
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

/// What becomes of an event whose extraction failed. Anything the model
/// does (down through its retries, refusing, answering nonsense) is retried
/// by redelivery and fails the event with the reason after `max_deliver`
/// attempts: a misconfigured key shows up as failed events carrying the
/// provider's message, never as events silently stored without memories.
/// Our own bucket being unreachable is an outage, waited out.
fn failure(event: &Event, e: ExtractorError) -> Outcome {
    warn!(org_id = event.org_id, event_id = event.event_id, error = %e, "extraction failed");
    match e {
        ExtractorError::Unavailable(reason) => Outcome::Backoff(reason),
        ExtractorError::Llm(e) => Outcome::Retry(e.to_string()),
    }
}

impl ExtractorStage {
    /// Extracts `events` (delivery index, event); per event, its output or
    /// the outcome it failed with.
    async fn extract_all(&self, events: Vec<(usize, Event)>) -> Vec<(usize, Result<ExtractedEvent, Outcome>)> {
        match &self.engine {
            Engine::Rules(rules) => {
                // Rules extraction is CPU work: keep it off the async workers
                // that serve requests.
                let rules = rules.clone();
                let indices: Vec<usize> = events.iter().map(|(i, _)| *i).collect();
                let done = tokio::task::spawn_blocking(move || {
                    events
                        .into_iter()
                        .map(|(i, e)| {
                            let candidates = rules.extract(&e);
                            (i, Ok(extracted(e, candidates)))
                        })
                        .collect::<Vec<_>>()
                })
                .await;
                done.unwrap_or_else(|e| {
                    let reason = format!("extraction failed: {e}");
                    indices.into_iter().map(|i| (i, Err(Outcome::Fail(reason.clone())))).collect()
                })
            }
            Engine::Llm(llm) => {
                // Windows are taken in delivery order first, so that an event
                // sees the earlier events of its session in the same batch.
                let recents: Vec<_> = events.iter().map(|(_, e)| llm.recall(e)).collect();
                futures::stream::iter(events.into_iter().zip(recents))
                    .map(|((i, e), recent)| async move {
                        match llm.extract_after(&e, &recent).await {
                            Ok(candidates) => (i, Ok(extracted(e, candidates))),
                            Err(err) => {
                                let outcome = failure(&e, err);
                                (i, Err(outcome))
                            }
                        }
                    })
                    .buffered(LLM_CONCURRENCY)
                    .collect()
                    .await
            }
        }
    }
}

#[async_trait]
impl StageHandler for ExtractorStage {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for (i, d) in batch.iter().enumerate() {
            match Event::decode(d.payload.as_ref()) {
                Ok(e) if !e.event_id.is_empty() => {
                    events.push((i, e));
                    outcomes.push(Outcome::Done);
                }
                Ok(_) => outcomes.push(Outcome::Fail("event has no event_id".into())),
                Err(e) => outcomes.push(Outcome::Fail(format!("undecodable event: {e}"))),
            }
        }
        let mut out = Vec::with_capacity(events.len());
        for (i, result) in self.extract_all(events).await {
            let x = match result {
                Ok(x) => x,
                // No output for a failed event: it is retried, then failed.
                Err(outcome) => {
                    outcomes[i] = outcome;
                    continue;
                }
            };
            let Some(event) = x.event.as_ref() else {
                // extracted() always sets it; never ack an event without output.
                outcomes[i] = Outcome::Fail("extracted event lost its event".into());
                continue;
            };
            debug!(event_id = event.event_id, memories = x.memories.len(), "extracted");
            out.push(OutMessage {
                subject: extracted_subject(&event.org_id),
                msg_id: batch[i].output_msg_id("x", &event.event_id),
                payload: x.encode_to_vec().into(),
                traceparent: batch[i].traceparent.clone(),
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

    fn events_of(&self, payload: &[u8]) -> Option<(String, Vec<String>)> {
        Event::decode(payload).ok().map(|e| (e.org_id, vec![e.event_id]))
    }

    async fn mark_failed(&self, org_id: &str, event_ids: &[String], reason: &str) -> Result<(), String> {
        self.status.mark(org_id, event_ids, EventState::Failed, reason).await.map_err(|e| e.to_string())
    }
}
