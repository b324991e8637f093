//! An org's retained events against a real nats-server: read in order, one
//! org only, bounded to what the log held when asked; published again past
//! the broker's de-duplication window, the copies they replace deleted.

use memsy_bus::topology::{self, EVENTS_STREAM};
use memsy_bus::{Bus, OutMessage, RetainedEvent};
use memsy_core::config::NatsConfig;
use memsy_proto::Event;
use memsy_testkit::NatsServer;
use prost::Message;

fn event(org: &str, i: u32) -> OutMessage {
    let id = format!("01J{i:023}");
    let e =
        Event { event_id: id.clone(), org_id: org.into(), actor_id: format!("actor{}", i % 2), ..Default::default() };
    OutMessage {
        subject: topology::events_subject(org, &id),
        msg_id: id,
        payload: e.encode_to_vec().into(),
        traceparent: None,
    }
}

async fn all(bus: &Bus, org: &str) -> (u64, Vec<RetainedEvent>) {
    let mut events = bus.retained_events(org).await.unwrap();
    let mut out = Vec::new();
    while let Some(e) = events.next().await {
        out.push(e.unwrap());
    }
    (events.count, out)
}

async fn stream_len(bus: &Bus) -> u64 {
    let mut s = bus.jetstream().get_stream(EVENTS_STREAM).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test]
async fn an_orgs_events_are_read_in_order_and_sent_again_once() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), ..Default::default() }).await.unwrap();
    assert_eq!(all(&bus, "acme").await.0, 0, "an org without events");
    bus.publish_all((0..5).map(|i| event("acme", i)).chain([event("acme.evil", 9), event("globex", 7)]).collect())
        .await
        .unwrap();
    let (count, events) = all(&bus, "acme").await;
    assert_eq!(count, 5);
    let ids: Vec<String> = events.iter().map(|e| e.event.as_ref().unwrap().event_id.clone()).collect();
    assert_eq!(ids, (0..5).map(|i| format!("01J{i:023}")).collect::<Vec<_>>());

    bus.republish_events("r1", &events).await.unwrap();
    assert_eq!(stream_len(&bus).await, 7, "the replaced copies are deleted");
    let (_, again) = all(&bus, "acme").await;
    assert_eq!(again.len(), 5);
    assert!(again.iter().all(|e| e.seq > 7), "the copies are new messages: {again:?}");
    assert_eq!(
        again.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
        events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>()
    );
    // Another run within the de-duplication window is not dropped either.
    bus.republish_events("r2", &again).await.unwrap();
    let (_, third) = all(&bus, "acme").await;
    assert!(third.iter().all(|e| e.seq > 12), "{third:?}");
    assert_eq!(stream_len(&bus).await, 7);
}

#[tokio::test]
async fn a_replay_reads_only_what_the_log_held_when_asked() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), ..Default::default() }).await.unwrap();
    bus.publish_all((0..3).map(|i| event("acme", i)).collect()).await.unwrap();
    let mut events = bus.retained_events("acme").await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    // Copies published while reading (the replay's own) are not read again.
    bus.republish_events("r1", std::slice::from_ref(&first)).await.unwrap();
    bus.publish_all(vec![event("acme", 3)]).await.unwrap();
    let mut n = 1;
    while let Some(e) = events.next().await {
        assert!(e.unwrap().seq <= 3);
        n += 1;
    }
    assert_eq!(n, 3);
}
