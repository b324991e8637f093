//! Names of streams, subjects and consumers. Subjects carry the org as a
//! token (`memsy.events.<org>`) so that a deployment can later shard or
//! mirror by tenant; [`memsy_core::ids::subject_token`] keeps any org id safe.

use memsy_core::ids::subject_token;

pub const EVENTS_STREAM: &str = "MEMSY_EVENTS";
pub const EXTRACTED_STREAM: &str = "MEMSY_EXTRACTED";
pub const EMBEDDED_STREAM: &str = "MEMSY_EMBEDDED";
pub const DLQ_STREAM: &str = "MEMSY_DLQ";

pub const EXTRACTOR_CONSUMER: &str = "extractor";
pub const EMBEDDER_CONSUMER: &str = "embedder";
pub const INDEXER_CONSUMER: &str = "indexer";

pub const KEYS_BUCKET: &str = "memsy_keys";
/// Org, role and team records (`o.<org>`, `r.<org>.<role_id>`, `t.<org>.<team_id>`).
pub const HIERARCHY_BUCKET: &str = "memsy_hierarchy";

pub fn events_subject(org_id: &str) -> String {
    format!("memsy.events.{}", subject_token(org_id))
}

pub fn extracted_subject(org_id: &str) -> String {
    format!("memsy.extracted.{}", subject_token(org_id))
}

pub fn embedded_subject(org_id: &str) -> String {
    format!("memsy.embedded.{}", subject_token(org_id))
}

pub fn dlq_subject(stage: &str) -> String {
    format!("memsy.dlq.{}", subject_token(stage))
}

/// A pipeline stage: which stream it reads and under which durable name.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub name: &'static str,
    pub stream: &'static str,
}

pub const EXTRACTOR: Stage = Stage { name: EXTRACTOR_CONSUMER, stream: EVENTS_STREAM };
pub const EMBEDDER: Stage = Stage { name: EMBEDDER_CONSUMER, stream: EXTRACTED_STREAM };
pub const INDEXER: Stage = Stage { name: INDEXER_CONSUMER, stream: EMBEDDED_STREAM };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_cannot_add_subject_tokens() {
        assert_eq!(events_subject("acme"), "memsy.events.acme");
        let s = events_subject("evil.org.>");
        assert_eq!(s.split('.').count(), 3);
        assert!(!s.contains('>') && !s.contains('*'));
    }
}
