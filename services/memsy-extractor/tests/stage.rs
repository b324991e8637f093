//! The extractor stage on a real nats-server and redis-server: events in,
//! extracted events out (with deterministic memory ids), undecodable input
//! dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use memsy_bus::topology::{self, EXTRACTOR};
use memsy_bus::{run_stage, Bus, OutMessage};
use memsy_core::config::NatsConfig;
use memsy_extractor::ExtractorStage;
use memsy_proto::{EmbeddedEvent, Event, ExtractedEvent};
use memsy_status::{StatusApi, StatusStore};
use memsy_testkit::{NatsServer, RedisServer};
use prost::Message;
use tokio_util::sync::CancellationToken;

fn event(id: &str, content: &str) -> Event {
    Event {
        event_id: id.into(),
        org_id: "acme".into(),
        actor_id: "user_42".into(),
        session_id: "s1".into(),
        kind: "user_message".into(),
        content: content.into(),
        ts: "2026-01-01T00:00:00.000Z".into(),
        ingested_at: "2026-01-01T00:00:00.000Z".into(),
        ..Default::default()
    }
}

/// The first message of `stream`, read with a consumer of our own.
async fn first_message(bus: &Bus, stream: &str) -> Vec<u8> {
    let consumer = bus
        .jetstream()
        .get_stream(stream)
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("t".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), msgs.next()).await.unwrap().unwrap().unwrap();
    m.ack().await.unwrap();
    m.payload.to_vec()
}

#[tokio::test]
async fn extracts_and_forwards_every_event() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), max_deliver: 2, ..Default::default() }).await.unwrap();
    let status: Arc<dyn StatusApi> = Arc::new(StatusStore::connect(&redis.url(), 60).await.unwrap());
    let events = [
        event("01J00000000000000000000001", "My dog's name is Rex."),
        event("01J00000000000000000000002", "ok thanks"),
    ];
    let mut out: Vec<OutMessage> = events
        .iter()
        .map(|e| OutMessage {
            subject: topology::events_subject("acme"),
            msg_id: e.event_id.clone(),
            payload: e.encode_to_vec().into(),
            traceparent: None,
        })
        .collect();
    out.push(OutMessage {
        subject: topology::events_subject("acme"),
        msg_id: "junk".into(),
        payload: vec![0xff, 0xff, 0xff].into(),
        traceparent: None,
    });
    bus.publish_all(out).await.unwrap();

    let stop = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        bus.clone(),
        EXTRACTOR,
        Arc::new(ExtractorStage::new(bus.clone(), status)),
        16,
        stop.clone(),
    ));

    // The event with a memory reaches MEMSY_EXTRACTED; the filler has
    // nothing to embed and goes straight to MEMSY_EMBEDDED, so it still completes.
    let got = ExtractedEvent::decode(first_message(&bus, topology::EXTRACTED_STREAM).await.as_slice()).unwrap();
    assert_eq!(got.event.as_ref().unwrap().event_id, "01J00000000000000000000001");
    assert_eq!(got.memories.len(), 1);
    let m = &got.memories[0];
    assert!(m.text.contains("Rex"));
    assert_eq!(m.memory_id, memsy_core::ids::memory_id("acme", "01J00000000000000000000001", 0).to_string());
    let filler = EmbeddedEvent::decode(first_message(&bus, topology::EMBEDDED_STREAM).await.as_slice()).unwrap();
    assert_eq!(filler.event.as_ref().unwrap().event_id, "01J00000000000000000000002");
    assert!(filler.memories.is_empty());

    // The undecodable message is dead-lettered, not retried forever.
    let mut dlq = bus.jetstream().get_stream(topology::DLQ_STREAM).await.unwrap();
    for _ in 0..100 {
        if dlq.info().await.unwrap().state.messages == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dlq.info().await.unwrap().state.messages, 1);
    stop.cancel();
    task.await.unwrap().unwrap();
}
