//! The extractor: consumes raw events from `MEMSY_EVENTS`, turns each into
//! zero or more candidate memories with the configured engine, and publishes
//! one `ExtractedEvent` per event to `MEMSY_EXTRACTED` (an event with nothing
//! to remember still goes on, so that it is stored and marked completed).
//!
//! Engines: `rules` (offline, deterministic, [`RulesEngine`]) and `llm` (an
//! OpenAI-compatible chat model, [`LlmEngine`]).

mod error;
pub mod llm;
pub mod rules;
mod stage;

pub use error::ExtractorError;
pub use llm::LlmEngine;
pub use rules::{Candidate, RulesEngine};
pub use stage::{Engine, ExtractorStage};
