//! The indexer stage on a real nats-server, redis-server and the embedded
//! Qdrant engine: embedded events become stored memories and raw events,
//! the events are marked completed, and a redelivery writes no twin.

use std::sync::Arc;
use std::time::Duration;

use memsy_bus::topology::{self, INDEXER};
use memsy_bus::{run_partitioned_stage, Batching, Bus, Erasures, Leases, OutMessage};
use memsy_core::config::{NatsConfig, RedisConfig};
use memsy_indexer::IndexerStage;
use memsy_proto::{CandidateMemory, EmbeddedEvent, EmbeddedMemory, Event};
use memsy_status::{EventState, StatusApi, StatusStore};
use memsy_store::{EdgeStore, MemoryStore, SearchFilter};
use memsy_testkit::{NatsServer, RedisServer};
use prost::Message;
use tokio_util::sync::CancellationToken;

const EVENT_ID: &str = "01J00000000000000000000001";

fn embedded() -> EmbeddedEvent {
    let event = Event {
        event_id: EVENT_ID.into(),
        org_id: "acme".into(),
        actor_id: "user_42".into(),
        session_id: "s1".into(),
        kind: "user_message".into(),
        content: "My dog's name is Rex.".into(),
        ts: "2026-01-01T00:00:00.000Z".into(),
        ingested_at: "2026-01-01T00:00:01.000Z".into(),
        metadata: Some("{\"k\":1}".into()),
        ..Default::default()
    };
    let memory = CandidateMemory {
        memory_id: memsy_core::ids::memory_id("acme", EVENT_ID, 0).to_string(),
        text: "My dog's name is Rex.".into(),
        title: "Dog's name is Rex".into(),
        r#type: "fact".into(),
        memory_kind: "semantic".into(),
        confidence: 0.9,
        ..Default::default()
    };
    EmbeddedEvent {
        event: Some(event),
        memories: vec![EmbeddedMemory { memory: Some(memory), vector: vec![0.0, 1.0, 0.0, 0.0] }],
        model: "test".into(),
    }
}

/// Runs `stage` as the partitioned indexer until `MEMSY_EMBEDDED` is empty
/// (10 s at most), then stops it.
async fn run_until_drained(bus: &Bus, stage: IndexerStage) {
    let stop = CancellationToken::new();
    let (leases, keeper) = Leases::start(bus, bus.partitions(), Duration::from_secs(3), stop.clone()).await.unwrap();
    let task = tokio::spawn(run_partitioned_stage(
        bus.clone(),
        INDEXER,
        Arc::new(stage),
        Batching::new(1, 2),
        leases,
        stop.clone(),
    ));
    let mut s = bus.jetstream().get_stream(topology::EMBEDDED_STREAM).await.unwrap();
    for _ in 0..200 {
        if s.info().await.unwrap().state.messages == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    keeper.await.unwrap();
}

#[tokio::test]
async fn stores_memories_and_marks_completed_idempotently() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), ..Default::default() }).await.unwrap();
    let status = Arc::new(StatusStore::connect(&redis.url(), 60, RedisConfig::default().timeouts()).await.unwrap());
    let store = Arc::new(EdgeStore::open(dir.path(), 4).unwrap());
    store.ensure_schema().await.unwrap();
    status.mark("acme", &[EVENT_ID.to_string()], EventState::Pending, "").await.unwrap();

    let payload = embedded().encode_to_vec();
    // The same message twice (as a redelivery would bring it).
    for id in ["a", "b"] {
        bus.publish_all(vec![OutMessage {
            subject: topology::embedded_subject("acme", bus.partitions()),
            msg_id: id.into(),
            payload: payload.clone().into(),
            traceparent: None,
        }])
        .await
        .unwrap();
    }
    let stage =
        IndexerStage::new(store.clone(), status.clone(), (&memsy_core::config::IndexerConfig::default()).into());
    run_until_drained(&bus, stage).await;

    let st = status.get("acme", &[EVENT_ID.to_string()]).await.unwrap();
    assert_eq!(st[0].state, EventState::Completed);
    assert_eq!(store.count_memories("acme").await.unwrap(), 1, "a redelivery must not add a twin");
    let hits = store
        .search(&[0.0, 1.0, 0.0, 0.0], None, &SearchFilter { org_id: "acme".into(), ..Default::default() }, 5)
        .await
        .unwrap();
    let m = &hits[0].memory;
    assert_eq!(m.actor_id.as_deref(), Some("user_42"));
    assert_eq!(m.session_id.as_deref(), Some("s1"));
    assert_eq!(m.source_event_ids, vec![EVENT_ID.to_string()]);
    assert_eq!(m.source_metadata[0]["metadata"]["k"], 1);
    assert_eq!(m.observed_at, "2026-01-01T00:00:00.000Z");
    let events = store.get_events("acme", &[EVENT_ID.to_string()]).await.unwrap();
    assert_eq!(events[0].content, "My dog's name is Rex.");
    drop(store);
}

/// An actor erased after its event was ingested: the indexer drops the
/// event when it arrives (nothing stored, no status); an event of the same
/// id ingested after the erasure is a new actor's and is stored.
#[tokio::test]
async fn events_of_an_erased_actor_are_dropped() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), ..Default::default() }).await.unwrap();
    let status = Arc::new(StatusStore::connect(&redis.url(), 60, RedisConfig::default().timeouts()).await.unwrap());
    let store = Arc::new(EdgeStore::open(dir.path(), 4).unwrap());
    store.ensure_schema().await.unwrap();
    let erasures = Erasures::open(&bus).await.unwrap();
    let erased_at = memsy_core::time::parse_ts("2026-01-01T00:00:02.000Z").unwrap();
    erasures.mark_actor("acme", "user_42", erased_at).await.unwrap();

    const LATER_ID: &str = "01J00000000000000000000002";
    let before = embedded();
    let mut after = embedded();
    let e = after.event.as_mut().unwrap();
    (e.event_id, e.ingested_at) = (LATER_ID.into(), "2026-01-01T00:00:03.000Z".into());
    after.memories[0].memory.as_mut().unwrap().memory_id = memsy_core::ids::memory_id("acme", LATER_ID, 0).to_string();
    for (id, x) in [("a", &before), ("b", &after)] {
        let subject = topology::embedded_subject("acme", bus.partitions());
        let msg = OutMessage { subject, msg_id: id.into(), payload: x.encode_to_vec().into(), traceparent: None };
        bus.publish_all(vec![msg]).await.unwrap();
    }
    let stage =
        IndexerStage::new(store.clone(), status.clone(), (&memsy_core::config::IndexerConfig::default()).into())
            .with_erasures(erasures);
    run_until_drained(&bus, stage).await;

    let ids = [EVENT_ID.to_string(), LATER_ID.to_string()];
    let st = status.get("acme", &ids).await.unwrap();
    assert_eq!((st[0].state, st[1].state), (EventState::NotFound, EventState::Completed));
    let events = store.get_events("acme", &ids).await.unwrap();
    assert_eq!(events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), [LATER_ID]);
    let memories = store.scan_memories(&memsy_store::MemoryScan::org("acme"), 10).await.unwrap().items;
    assert_eq!(memories.len(), 1);
    assert_eq!(memories[0].source_event_ids, [LATER_ID]);
    drop(store);
}
