//! The extractor stage on a real nats-server and redis-server: events in,
//! extracted events out (with deterministic memory ids), undecodable input
//! dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use memsy_bus::topology::{self, EXTRACTOR};
use memsy_bus::{run_stage, Batching, Bus, OutMessage};
use memsy_core::config::{NatsConfig, RedisConfig};
use memsy_extractor::ExtractorStage;
use memsy_proto::{Event, ExtractedEvent};
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

#[tokio::test]
async fn extracts_and_forwards_every_event() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), max_deliver: 2, ..Default::default() }).await.unwrap();
    let status: Arc<dyn StatusApi> =
        Arc::new(StatusStore::connect(&redis.url(), 60, RedisConfig::default().timeouts()).await.unwrap());
    let events = [
        event("01J00000000000000000000001", "My dog's name is Rex."),
        event("01J00000000000000000000002", "ok thanks"),
    ];
    let mut out: Vec<OutMessage> = events
        .iter()
        .map(|e| OutMessage {
            subject: topology::events_subject("acme", &e.event_id),
            msg_id: e.event_id.clone(),
            payload: e.encode_to_vec().into(),
            traceparent: None,
        })
        .collect();
    out.push(OutMessage {
        subject: topology::events_subject("acme", "junk"),
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
        Batching::new(16, 2),
        stop.clone(),
    ));

    // Read what reached MEMSY_EXTRACTED with a consumer of our own.
    let stream = bus.jetstream().get_stream(topology::EXTRACTED_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("t".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut msgs = consumer.messages().await.unwrap();
    while got.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(20), msgs.next()).await.unwrap().unwrap().unwrap();
        got.push(ExtractedEvent::decode(m.payload.clone()).unwrap());
        m.ack().await.unwrap();
    }
    got.sort_by(|a, b| a.event.as_ref().unwrap().event_id.cmp(&b.event.as_ref().unwrap().event_id));
    assert_eq!(got[0].memories.len(), 1);
    let m = &got[0].memories[0];
    assert!(m.text.contains("Rex"));
    assert_eq!(m.memory_id, memsy_core::ids::memory_id("acme", "01J00000000000000000000001", 0).to_string());
    assert!(got[1].memories.is_empty(), "filler is forwarded with no memories so it still completes");

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
