//! Erasure against a real nats-server: the markers' bucket, and the deletion
//! of one actor's (or one org's) messages from every stream.

use memsy_bus::topology::{self, DLQ_STREAM, EMBEDDED_STREAM, EVENTS_STREAM, EXTRACTED_STREAM};
use memsy_bus::{Bus, Erasures, OutMessage};
use memsy_core::config::NatsConfig;
use memsy_proto::{DeadLetter, EmbeddedEvent, Event, ExtractedEvent};
use memsy_testkit::NatsServer;
use prost::Message;

fn event(org: &str, actor: &str, id: &str) -> Event {
    Event {
        event_id: id.into(),
        org_id: org.into(),
        actor_id: actor.into(),
        session_id: "s1".into(),
        kind: "user_message".into(),
        content: format!("{actor} says hello"),
        ingested_at: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    }
}

fn out(subject: String, id: &str, payload: Vec<u8>) -> OutMessage {
    OutMessage { subject, msg_id: format!("{id}-{}", payload.len()), payload: payload.into(), traceparent: None }
}

/// One event at every stage: in the log, extracted, embedded, dead-lettered.
fn everywhere(org: &str, actor: &str, id: &str, partitions: u32) -> Vec<OutMessage> {
    let e = event(org, actor, id);
    let extracted = ExtractedEvent { event: Some(e.clone()), memories: vec![] };
    let embedded = EmbeddedEvent { event: Some(e.clone()), memories: vec![], model: "m".into() };
    let letter = DeadLetter {
        stage: topology::EXTRACTOR_CONSUMER.into(),
        subject: topology::events_subject(org, id),
        payload: e.encode_to_vec(),
        reason: "r".into(),
        deliveries: 1,
        org_id: org.into(),
        event_ids: vec![id.into()],
    };
    vec![
        out(topology::events_subject(org, id), id, e.encode_to_vec()),
        out(topology::extracted_subject(org), id, extracted.encode_to_vec()),
        out(topology::embedded_subject(org, partitions), id, embedded.encode_to_vec()),
        out(topology::dlq_subject("extractor", org, id), id, letter.encode_to_vec()),
    ]
}

async fn len(bus: &Bus, name: &str) -> u64 {
    bus.jetstream().get_stream(name).await.unwrap().info().await.unwrap().state.messages
}

async fn lens(bus: &Bus) -> Vec<u64> {
    let mut v = Vec::new();
    for s in [EVENTS_STREAM, EXTRACTED_STREAM, EMBEDDED_STREAM, DLQ_STREAM] {
        v.push(len(bus, s).await);
    }
    v
}

#[tokio::test]
async fn scrub_deletes_one_actors_messages_then_one_orgs() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), ..Default::default() }).await.unwrap();
    let p = bus.partitions();
    let mut msgs = Vec::new();
    for (org, actor, id) in
        [("acme.co", "alice", "e1"), ("acme.co", "alice", "e2"), ("acme.co", "bob", "e3"), ("other", "alice", "e4")]
    {
        msgs.extend(everywhere(org, actor, id, p));
    }
    bus.publish_all(msgs).await.unwrap();
    assert_eq!(lens(&bus).await, vec![4, 4, 4, 4]);

    let s = bus.scrub("acme.co", Some("alice")).await.unwrap();
    assert_eq!(s.messages, 8);
    let mut ids: Vec<String> = s.events.iter().map(|e| e.event_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["e1", "e2"], "each event once, whichever streams held it");
    // Bob, and the same actor id in another org, keep theirs.
    assert_eq!(lens(&bus).await, vec![2, 2, 2, 2]);
    assert_eq!(bus.scrub("acme.co", Some("alice")).await.unwrap().messages, 0);

    let s = bus.scrub("acme.co", None).await.unwrap();
    assert_eq!(s.messages, 4);
    assert_eq!(lens(&bus).await, vec![1, 1, 1, 1]);
    let left = bus.dead_letters(None).await.unwrap();
    assert_eq!(left[0].letter.org_id, "other");
}

#[tokio::test]
async fn markers_accumulate_per_org() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), ..Default::default() }).await.unwrap();
    let erasures = Erasures::open(&bus).await.unwrap();
    assert!(erasures.of_org("acme").await.unwrap().is_empty());
    let t = |s: &str| memsy_core::time::parse_ts(s).unwrap();
    erasures.mark_actor("acme", "alice", t("2026-01-02T00:00:00Z")).await.unwrap();
    erasures.mark_actor("acme", "bob", t("2026-01-03T00:00:00Z")).await.unwrap();
    let m = erasures.of_org("acme").await.unwrap();
    assert!(m.covers("alice", "2026-01-01T00:00:00Z") && m.covers("bob", "2026-01-02T12:00:00Z"));
    assert!(!m.covers("carol", "2026-01-01T00:00:00Z"));
    assert!(erasures.of_org("other").await.unwrap().is_empty());
    // Reopened (another process): the same markers.
    let again = Erasures::open(&bus).await.unwrap().of_org("acme").await.unwrap();
    assert_eq!(again, m);
    erasures.mark_org("acme", t("2026-02-01T00:00:00Z")).await.unwrap();
    let m = erasures.of_org("acme").await.unwrap();
    assert!(m.actors.is_empty() && m.covers("carol", "2026-01-31T00:00:00Z"));
}
