//! The `llm` engine: candidate memories written by any OpenAI-compatible
//! chat-completions model, asked for JSON following a schema and checked
//! before anything is kept.
//!
//! The model sees the instructions ([`prompt::SYSTEM`]) and one message per
//! event: the event (kind, actor, session, time, content), the promotion
//! prompts of the event's org, role and team (what each group wants
//! remembered), and the session's last few events for resolving references.
//! An answer that cannot be used is an error, never an empty result; the
//! stage retries it and eventually fails the event with the reason. Tokens
//! are counted to the org as `llm_tokens`.

mod context;
mod prompt;
mod validate;

use memsy_bus::topology::HIERARCHY_BUCKET;
use memsy_bus::Bus;
use memsy_llm::ChatClient;
use memsy_proto::Event;
use memsy_usage::{Dimension, Meter};
use serde_json::Value;
use tracing::{debug, warn};

pub use context::{Prompts, Recent};

use crate::{Candidate, ExtractorError};
use context::{PromotionPrompts, SessionWindow};

/// Sessions whose recent events one replica keeps.
const WINDOW_SESSIONS: usize = 4_096;
/// Earlier events of the session shown with each event.
const WINDOW_EVENTS: usize = 6;
/// Characters of each earlier event shown.
const WINDOW_CONTENT_CHARS: usize = 500;

pub struct LlmEngine {
    client: ChatClient,
    meter: Meter,
    prompts: PromotionPrompts,
    window: SessionWindow,
    schema: Value,
}

impl LlmEngine {
    /// An engine asking `client`, reading promotion prompts from the
    /// hierarchy bucket on `bus` and counting tokens with `meter`.
    pub async fn open(bus: &Bus, client: ChatClient, meter: Meter) -> Result<Self, ExtractorError> {
        let kv = bus
            .kv(HIERARCHY_BUCKET, 1)
            .await
            .map_err(|e| ExtractorError::Unavailable(format!("opening the hierarchy bucket: {e}")))?;
        Ok(Self {
            client,
            meter,
            prompts: PromotionPrompts::new(kv),
            window: SessionWindow::new(WINDOW_SESSIONS, WINDOW_EVENTS, WINDOW_CONTENT_CHARS),
            schema: prompt::schema(),
        })
    }

    pub fn model(&self) -> &str {
        self.client.model()
    }

    /// The session's earlier events (see [`LlmEngine::extract_after`]), and
    /// `event` remembered for the events after it. Called in delivery order,
    /// before the events of a batch are extracted concurrently, so that each
    /// sees the ones before it.
    pub fn recall(&self, event: &Event) -> Vec<Recent> {
        self.window.observe(event)
    }

    /// Candidate memories for `event`, with the session's window recalled first.
    pub async fn extract(&self, event: &Event) -> Result<Vec<Candidate>, ExtractorError> {
        let recent = self.recall(event);
        self.extract_after(event, &recent).await
    }

    /// Candidate memories for `event`, given the session's earlier events
    /// `recent` (oldest first). Empty when the model finds nothing to
    /// remember; an error when it cannot be asked or its answer is unusable.
    pub async fn extract_after(&self, event: &Event, recent: &[Recent]) -> Result<Vec<Candidate>, ExtractorError> {
        // Nothing to read: no need to pay for an answer.
        if event.content.trim().is_empty() {
            return Ok(Vec::new());
        }
        let prompts = self.prompts.for_event(event).await?;
        let user = prompt::user_message(event, &prompts, recent);
        let answer = self.client.complete_json(prompt::SYSTEM, &user, prompt::SCHEMA_NAME, &self.schema).await?;
        // Tokens were spent whether or not the answer is usable.
        let tokens = answer.usage.total();
        if tokens > 0 {
            if let Err(e) = self.meter.add(&event.org_id, None, Dimension::LlmTokens, tokens, chrono::Utc::now()).await
            {
                warn!(org_id = event.org_id, event_id = event.event_id, tokens, error = %e, "counting llm_tokens failed");
            }
        }
        let candidates = validate::memories(&answer.value)?;
        debug!(
            event_id = event.event_id,
            model = answer.model,
            tokens,
            window = recent.len(),
            memories = candidates.len(),
            "llm extraction"
        );
        Ok(candidates)
    }
}

/// `s` cut to at most `max` characters, an ellipsis marking the cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.truncate(t.trim_end().len());
    t.push('…');
    t
}
