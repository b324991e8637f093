//! Names of streams, subjects and consumers. Subjects carry the org as a
//! token (`memsy.events.<org>.<event>`) so that a deployment can shard or
//! mirror by tenant; [`memsy_core::ids::subject_token`] keeps any org id
//! safe. The indexer's input is partitioned by org
//! (`memsy.embedded.<p>.<org>`), one durable consumer per partition, so that
//! one replica at a time consolidates an org (see [`crate::lease`]). A raw
//! event's and a dead letter's subject also carry the event id
//! (`memsy.dlq.<stage>.<org>.<event>`), so that where an event is can be
//! asked of the broker by subject, without a scan (see [`crate::records`]).

use memsy_core::ids::subject_token;

pub const EVENTS_STREAM: &str = "MEMSY_EVENTS";
pub const EXTRACTED_STREAM: &str = "MEMSY_EXTRACTED";
pub const EMBEDDED_STREAM: &str = "MEMSY_EMBEDDED";
pub const DLQ_STREAM: &str = "MEMSY_DLQ";

pub const EXTRACTOR_CONSUMER: &str = "extractor";
pub const EMBEDDER_CONSUMER: &str = "embedder";
pub const INDEXER_CONSUMER: &str = "indexer";

pub const KEYS_BUCKET: &str = "memsy_keys";
/// Which indexer replica holds which partition (`p.<n>`), and which
/// replicas are alive (`m.<replica>`); entries expire unless renewed.
pub const LEASES_BUCKET: &str = "memsy_indexer_leases";
/// Stream metadata key under which `MEMSY_EMBEDDED` records its partition count.
pub const PARTITIONS_METADATA: &str = "memsy.partitions";
/// Erasure markers, one entry per org (`o.<org>`): see [`crate::Erasures`].
pub const ERASURES_BUCKET: &str = "memsy_erasures";
/// Org, role and team records (`o.<org>`, `r.<org>.<role_id>`, `t.<org>.<team_id>`).
pub const HIERARCHY_BUCKET: &str = "memsy_hierarchy";

/// A raw event's subject. The event id is a token of its own so that
/// "is this event in the log" is one get-last-by-subject from the broker's
/// subject index, at no cost to ingest (the extractor reads every subject).
pub fn events_subject(org_id: &str, event_id: &str) -> String {
    format!("memsy.events.{}.{}", subject_token(org_id), subject_token(event_id))
}

/// Every raw event of one org (what a replay reads).
pub fn events_org_filter(org_id: &str) -> String {
    format!("memsy.events.{}.>", subject_token(org_id))
}

pub fn extracted_subject(org_id: &str) -> String {
    format!("memsy.extracted.{}", subject_token(org_id))
}

/// The indexer partition of an org: FNV-1a of its id, so that every
/// process and every version agrees (std's hasher promises neither).
pub fn partition_of(org_id: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in org_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

pub fn embedded_subject(org_id: &str, partitions: u32) -> String {
    format!("memsy.embedded.{}.{}", partition_of(org_id, partitions), subject_token(org_id))
}

/// The subjects of one indexer partition.
pub fn embedded_partition_filter(partition: u32) -> String {
    format!("memsy.embedded.{partition}.>")
}

/// The durable consumer of one indexer partition.
pub fn indexer_consumer(partition: u32) -> String {
    format!("{INDEXER_CONSUMER}-{partition}")
}

/// Where a stage's dead letter about `event_id` of `org_id` goes (empty
/// strings when the message named neither): the org and event as tokens so
/// that one org's letters are a filtered read and one event's latest letter
/// a get-last-by-subject.
pub fn dlq_subject(stage: &str, org_id: &str, event_id: &str) -> String {
    format!("memsy.dlq.{}.{}.{}", subject_token(stage), subject_token(org_id), subject_token(event_id))
}

/// Every dead letter, or those of one org.
pub fn dlq_filter(org_id: Option<&str>) -> String {
    match org_id {
        Some(org) => format!("memsy.dlq.*.{}.>", subject_token(org)),
        None => "memsy.dlq.>".into(),
    }
}

/// The dead letters of one event, from any stage.
pub fn dlq_event_filter(org_id: &str, event_id: &str) -> String {
    format!("memsy.dlq.*.{}.{}", subject_token(org_id), subject_token(event_id))
}

/// The org a stage's input subject names: `memsy.events.<org>[.<event>]`,
/// `memsy.extracted.<org>`, `memsy.embedded.<p>.<org>`.
pub fn subject_org(subject: &str) -> Option<String> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let token = match tokens.as_slice() {
        ["memsy", "events" | "extracted", org, ..] => org,
        ["memsy", "embedded", _, org] => org,
        _ => return None,
    };
    memsy_core::ids::subject_token_decode(token)
}

/// A pipeline stage: which stream it reads and under which durable name.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub name: &'static str,
    pub stream: &'static str,
    /// One consumer per partition, each worked by one replica at a time,
    /// instead of one consumer all replicas share.
    pub partitioned: bool,
}

pub const EXTRACTOR: Stage = Stage { name: EXTRACTOR_CONSUMER, stream: EVENTS_STREAM, partitioned: false };
pub const EMBEDDER: Stage = Stage { name: EMBEDDER_CONSUMER, stream: EXTRACTED_STREAM, partitioned: false };
pub const INDEXER: Stage = Stage { name: INDEXER_CONSUMER, stream: EMBEDDED_STREAM, partitioned: true };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_cannot_add_subject_tokens() {
        assert_eq!(events_subject("acme", "01J0"), "memsy.events.acme.01J0");
        assert_eq!(events_org_filter("a.b"), "memsy.events.a=2Eb.>");
        let s = events_subject("evil.org.>", "a.*");
        assert_eq!(s.split('.').count(), 4);
        assert!(!s.contains('>') && !s.contains('*'));
        let d = dlq_subject("extractor", "evil.org.>", "*");
        assert_eq!(d.split('.').count(), 5);
        assert!(!d.contains('>') && !d.contains('*'));
        assert_eq!(dlq_subject("indexer", "", ""), "memsy.dlq.indexer.=.=");
        assert_eq!(dlq_filter(Some("a.b")), "memsy.dlq.*.a=2Eb.>");
        assert_eq!(dlq_event_filter("acme", "01J0"), "memsy.dlq.*.acme.01J0");
    }

    #[test]
    fn a_stage_subject_names_its_org() {
        let org = "a.b c";
        assert_eq!(subject_org(&events_subject(org, "01J0")).as_deref(), Some(org));
        // The layout before the event id was a token of its own.
        assert_eq!(subject_org("memsy.events.acme").as_deref(), Some("acme"));
        assert_eq!(subject_org(&extracted_subject(org)).as_deref(), Some(org));
        assert_eq!(subject_org(&embedded_subject(org, 16)).as_deref(), Some(org));
        assert_eq!(subject_org("other.subject"), None);
    }

    #[test]
    fn an_org_keeps_its_partition() {
        // Fixed values: the partition is part of the wire format, so a
        // change of hash would strand queued messages.
        assert_eq!(partition_of("acme", 16), 15);
        assert_eq!(partition_of("acme", 1_000_003), 244_600);
        assert_eq!(embedded_subject("acme", 16), "memsy.embedded.15.acme");
        let spread: std::collections::BTreeSet<u32> = (0..200).map(|i| partition_of(&format!("org{i}"), 16)).collect();
        assert_eq!(spread.len(), 16, "200 orgs reach every partition");
    }
}
