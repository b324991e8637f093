//! The embedder stage and the Embed gRPC service on a real nats-server:
//! extracted events come out embedded with the real model.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use memsy_bus::topology::{self, EMBEDDER};
use memsy_bus::{run_stage, Batching, Bus, OutMessage};
use memsy_core::config::{EmbedderConfig, NatsConfig, RedisConfig};
use memsy_embedder::{EmbedderStage, GrpcEmbedder, LocalEmbedder, MiniLm, QueryEmbedder};
use memsy_proto::{CandidateMemory, EmbeddedEvent, Event, ExtractedEvent};
use memsy_status::{StatusApi, StatusStore};
use memsy_testkit::{free_port, model_dir, NatsServer, RedisServer};
use prost::Message;
use tokio_util::sync::CancellationToken;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeds_extracted_events_and_serves_queries() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), ..Default::default() }).await.unwrap();
    let status: Arc<dyn StatusApi> =
        Arc::new(StatusStore::connect(&redis.url(), 60, RedisConfig::default().timeouts()).await.unwrap());
    let local = LocalEmbedder::new(Arc::new(MiniLm::load(&model_dir(), 0).unwrap()), 32, Duration::from_millis(2));

    let x = ExtractedEvent {
        event: Some(Event {
            event_id: "01J00000000000000000000001".into(),
            org_id: "acme".into(),
            ..Default::default()
        }),
        memories: vec![
            CandidateMemory { memory_id: "m0".into(), text: "My dog's name is Rex.".into(), ..Default::default() },
            CandidateMemory {
                memory_id: "m1".into(),
                text: "I prefer dark mode in all apps.".into(),
                ..Default::default()
            },
        ],
    };
    bus.publish_all(vec![OutMessage {
        subject: topology::extracted_subject("acme"),
        msg_id: "x".into(),
        payload: x.encode_to_vec().into(),
        traceparent: None,
    }])
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let stage = EmbedderStage::new(bus.clone(), local.clone(), status);
    let task = tokio::spawn(run_stage(bus.clone(), EMBEDDER, Arc::new(stage), Batching::new(8, 2), stop.clone()));

    let stream = bus.jetstream().get_stream(topology::EMBEDDED_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("t".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(30), msgs.next()).await.unwrap().unwrap().unwrap();
    let e = EmbeddedEvent::decode(m.payload.clone()).unwrap();
    assert_eq!(e.memories.len(), 2);
    assert!(e.memories.iter().all(|m| m.vector.len() == 384));
    assert_eq!(e.memories[1].memory.as_ref().unwrap().memory_id, "m1", "order is kept");

    // The gRPC service embeds queries with the same model.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let grpc = tokio::spawn(memsy_embedder::serve(addr, local.clone(), stop.clone().cancelled_owned()));
    let client =
        GrpcEmbedder::connect_lazy(&format!("http://127.0.0.1:{port}"), EmbedderConfig::default().timeouts()).unwrap();
    let mut q = None;
    for _ in 0..50 {
        if let Ok(v) = client.embed(vec!["My dog's name is Rex.".into()]).await {
            q = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let q = q.expect("gRPC embed answered");
    assert!(cosine(&q[0], &e.memories[0].vector) > 0.999);
    stop.cancel();
    task.await.unwrap().unwrap();
    grpc.await.unwrap().unwrap();
}
