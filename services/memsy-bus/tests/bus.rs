//! The bus against a real nats-server: topology, durable publishing with
//! broker-side de-duplication, the stage runner's ack / retry / dead-letter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use memsy_bus::topology::{self, EXTRACTOR};
use memsy_bus::{run_stage, Batching, Bus, Delivery, OutMessage, Outcome, StageHandler};
use memsy_core::config::NatsConfig;
use memsy_proto::DeadLetter;
use memsy_testkit::NatsServer;
use prost::Message;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

fn cfg(url: String) -> NatsConfig {
    NatsConfig { url, max_deliver: 3, ack_wait_secs: 5, ..Default::default() }
}

fn msg(org: &str, id: &str, body: &str) -> OutMessage {
    OutMessage {
        subject: topology::events_subject(org, id),
        msg_id: id.into(),
        payload: body.as_bytes().to_vec().into(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

async fn stream_len(bus: &Bus, name: &str) -> u64 {
    let mut s = bus.jetstream().get_stream(name).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test]
async fn publishes_durably_and_deduplicates_by_msg_id() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&cfg(nats.url())).await.unwrap();
    bus.publish_all(vec![msg("acme", "e1", "a"), msg("acme", "e2", "b")]).await.unwrap();
    bus.publish_all(vec![msg("acme", "e1", "a")]).await.unwrap();
    assert_eq!(stream_len(&bus, topology::EVENTS_STREAM).await, 2);
    // Topology creation is idempotent.
    Bus::connect(&cfg(nats.url())).await.unwrap();
}

#[tokio::test]
async fn publish_fails_when_broker_is_gone() {
    let mut nats = NatsServer::start();
    let mut c = cfg(nats.url());
    c.publish_timeout_ms = 500;
    let bus = Bus::connect(&c).await.unwrap();
    nats.kill();
    let r = bus.publish_all(vec![msg("acme", "e1", "a")]).await;
    assert!(r.is_err(), "publish must fail without a broker");
}

struct Recorder {
    seen: Mutex<Vec<(String, i64, Option<String>)>>,
    dead: Mutex<Vec<String>>,
    calls: AtomicUsize,
}

#[async_trait]
impl StageHandler for Recorder {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut out = vec![];
        for d in batch {
            let body = String::from_utf8_lossy(&d.payload).to_string();
            self.seen.lock().await.push((body.clone(), d.attempt, d.traceparent.clone()));
            out.push(match body.as_str() {
                "flaky" => Outcome::Retry("dependency down".into()),
                "poison" => Outcome::Fail("cannot decode".into()),
                // A dependency outage longer than max_deliver attempts: it
                // must be waited out, not dead-lettered.
                "outage" if d.attempt <= 4 => Outcome::Backoff("store down".into()),
                "panic" => panic!("boom"),
                _ => Outcome::Done,
            });
        }
        out
    }

    fn events_of(&self, payload: &[u8]) -> Option<(String, Vec<String>)> {
        Some(("acme".into(), vec![String::from_utf8_lossy(payload).into_owned()]))
    }

    async fn mark_failed(&self, _org_id: &str, event_ids: &[String], reason: &str) -> Result<(), String> {
        self.dead.lock().await.push(format!("{}|{reason}", event_ids[0]));
        Ok(())
    }
}

#[tokio::test]
async fn stage_acks_retries_and_dead_letters() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&cfg(nats.url())).await.unwrap();
    bus.publish_all(vec![
        msg("acme", "1", "ok"),
        msg("acme", "2", "flaky"),
        msg("acme", "3", "poison"),
        msg("acme", "4", "outage"),
    ])
    .await
    .unwrap();

    let rec = Arc::new(Recorder { seen: Mutex::new(vec![]), dead: Mutex::new(vec![]), calls: AtomicUsize::new(0) });
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_stage(bus.clone(), EXTRACTOR, rec.clone(), Batching::new(10, 2), stop.clone()));

    // flaky: attempts 1, 2, 3 (max_deliver) then dead-lettered; outage:
    // five attempts (back-off 0.5 + 1 + 2 + 4 s) and then done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let outage_done = || async { rec.seen.lock().await.iter().any(|s| s.0 == "outage" && s.1 == 5) };
    while (rec.dead.lock().await.len() < 2 || !outage_done().await) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();

    let dead = rec.dead.lock().await.clone();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().any(|d| d.starts_with("poison|extractor: cannot decode")));
    assert!(dead.iter().any(|d| d.starts_with("flaky|extractor: gave up after 3 attempts")));
    let seen = rec.seen.lock().await.clone();
    let flaky: Vec<i64> = seen.iter().filter(|s| s.0 == "flaky").map(|s| s.1).collect();
    assert_eq!(flaky, vec![1, 2, 3]);
    assert_eq!(seen.iter().filter(|s| s.0 == "ok").count(), 1, "acked message is not redelivered");
    let outage: Vec<i64> = seen.iter().filter(|s| s.0 == "outage").map(|s| s.1).collect();
    assert_eq!(outage, vec![1, 2, 3, 4, 5], "an outage is waited out, never dead-lettered");
    assert!(seen.iter().all(|s| s.2.as_deref().is_some_and(|t| t.starts_with("00-0af7"))), "traceparent rides along");

    // Both letters are in the DLQ with their reasons and event ids.
    assert_eq!(stream_len(&bus, topology::DLQ_STREAM).await, 2);
    let s = bus.jetstream().get_stream(topology::DLQ_STREAM).await.unwrap();
    let raw = s.get_raw_message(1).await.unwrap();
    let letter = DeadLetter::decode(raw.payload).unwrap();
    assert_eq!(letter.stage, "extractor");
    assert!(["poison", "flaky"].contains(&letter.event_ids[0].as_str()), "{:?}", letter.event_ids);
}

#[tokio::test]
async fn kv_buckets_are_created_once() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&cfg(nats.url())).await.unwrap();
    let kv = bus.kv("memsy_test", 1).await.unwrap();
    kv.put("k", "v".into()).await.unwrap();
    let kv2 = bus.kv("memsy_test", 1).await.unwrap();
    assert_eq!(kv2.get("k").await.unwrap().unwrap(), "v".as_bytes());
}

#[tokio::test]
async fn a_panicking_stage_dead_letters_instead_of_dying() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&cfg(nats.url())).await.unwrap();
    bus.publish_all(vec![msg("acme", "1", "panic")]).await.unwrap();
    let rec = Arc::new(Recorder { seen: Mutex::new(vec![]), dead: Mutex::new(vec![]), calls: AtomicUsize::new(0) });
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_stage(bus.clone(), EXTRACTOR, rec.clone(), Batching::new(10, 2), stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rec.dead.lock().await.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rec.dead.lock().await[0].starts_with("panic|extractor: stage panicked: boom"));
    // The runner survived and still works.
    bus.publish_all(vec![msg("acme", "2", "ok")]).await.unwrap();
    while !rec.seen.lock().await.iter().any(|s| s.0 == "ok") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rec.seen.lock().await.iter().any(|s| s.0 == "ok"));
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A message that makes the stage panic in a batch with others: only it is
/// dead-lettered; the others are handled alone and go on.
#[tokio::test]
async fn a_panic_fails_only_the_message_that_causes_it() {
    let nats = NatsServer::start();
    let bus = Bus::connect(&cfg(nats.url())).await.unwrap();
    bus.publish_all(vec![msg("acme", "1", "ok"), msg("acme", "2", "panic"), msg("acme", "3", "fine")]).await.unwrap();
    let rec = Arc::new(Recorder { seen: Mutex::new(vec![]), dead: Mutex::new(vec![]), calls: AtomicUsize::new(0) });
    let stop = CancellationToken::new();
    // A long wait so that all three arrive in one batch.
    let task = tokio::spawn(run_stage(bus.clone(), EXTRACTOR, rec.clone(), Batching::new(10, 200), stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let handled = {
            let seen = rec.seen.lock().await;
            ["ok", "fine"].iter().all(|b| seen.iter().any(|s| s.0 == *b))
        };
        if handled && stream_len(&bus, topology::DLQ_STREAM).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let dead = rec.dead.lock().await.clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].starts_with("panic|extractor: stage panicked: boom"), "{dead:?}");
    assert_eq!(stream_len(&bus, topology::DLQ_STREAM).await, 1);
    let seen = rec.seen.lock().await.clone();
    for body in ["ok", "fine"] {
        assert!(seen.iter().any(|s| s.0 == body), "{body} was handled: {seen:?}");
    }
}

/// A steady trickle, each message within the batch wait of the last, must
/// not hold a batch back until it is full: a batch gathers for at most
/// GATHER_WAITS waits, or the gather time it is given.
#[tokio::test]
async fn a_trickle_does_not_hold_a_batch_until_it_is_full() {
    // Messages 20 ms apart, a 100 ms wait between them, room for all 60:
    // without the cap they would all go in one batch, ~1.2 s after the first.
    // 1.2 s of trickle in batches of at most 400 ms: at least 3 of them.
    let calls = trickle(Batching::new(1_000, 100)).await;
    assert!(calls >= 3, "60 trickled messages went in {calls} batch(es)");
    // At most 150 ms each: at least 8 (5 leaves room for a slow machine,
    // whose later publishes only make more batches; 400 ms ones give 3–4).
    let calls = trickle(Batching::new(1_000, 100).gather(150)).await;
    assert!(calls >= 5, "60 trickled messages went in {calls} batch(es) of at most 150 ms");
}

/// Publishes 60 messages 20 ms apart to a stage with `batching`; how many
/// batches the stage handled them in.
async fn trickle(batching: Batching) -> usize {
    let nats = NatsServer::start();
    let bus = Bus::connect(&cfg(nats.url())).await.unwrap();
    let rec = Arc::new(Recorder { seen: Mutex::new(vec![]), dead: Mutex::new(vec![]), calls: AtomicUsize::new(0) });
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_stage(bus.clone(), EXTRACTOR, rec.clone(), batching, stop.clone()));
    for i in 0..60 {
        bus.publish_all(vec![msg("acme", &format!("t{i}"), "ok")]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rec.seen.lock().await.len() < 60 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(rec.seen.lock().await.len(), 60);
    rec.calls.load(Ordering::SeqCst)
}

/// Counts the batches in its hands at once; each takes a while.
struct Slow {
    active: AtomicUsize,
    most: AtomicUsize,
    handled: AtomicUsize,
}

#[async_trait]
impl StageHandler for Slow {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.handled.fetch_add(batch.len(), Ordering::SeqCst);
        vec![Outcome::Done; batch.len()]
    }

    fn events_of(&self, _: &[u8]) -> Option<(String, Vec<String>)> {
        None
    }

    async fn mark_failed(&self, _: &str, _: &[String], _: &str) -> Result<(), String> {
        Err("nothing should be dead-lettered".into())
    }
}

/// Runs `Slow` over six one-message batches with `in_flight` slots,
/// stopping as soon as the stage holds as many batches as it may; returns
/// (most batches in hand at once, messages handled, messages the consumer
/// still holds unsettled) once the runner has returned.
async fn run_slow(in_flight: usize) -> (usize, usize, u64) {
    let nats = NatsServer::start();
    let bus = Bus::connect(&cfg(nats.url())).await.unwrap();
    let msgs = (0..6).map(|i| msg("acme", &format!("s{i}"), "slow")).collect();
    bus.publish_all(msgs).await.unwrap();
    let slow = Arc::new(Slow { active: AtomicUsize::new(0), most: AtomicUsize::new(0), handled: AtomicUsize::new(0) });
    let stop = CancellationToken::new();
    let batching = Batching::new(1, 0).in_flight(in_flight);
    let task = tokio::spawn(run_stage(bus.clone(), EXTRACTOR, slow.clone(), batching, stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slow.active.load(Ordering::SeqCst) < in_flight && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Stop while the batches are in the stage's hands: the runner must
    // settle them before it returns.
    stop.cancel();
    task.await.unwrap().unwrap();
    let handled = slow.handled.load(Ordering::SeqCst);
    // What was handled is acked and what was not is still pending: the
    // consumer holds exactly the unhandled messages.
    let left = bus.pending(EXTRACTOR).await.unwrap();
    (slow.most.load(Ordering::SeqCst), handled, left)
}

#[tokio::test]
async fn batches_in_flight_overlap_and_are_settled_on_stop() {
    let (most, handled, left) = run_slow(2).await;
    assert_eq!(most, 2, "two slots: the second batch starts while the first is in hand");
    assert!(handled >= 2, "the batches in hand at the stop were handled, not dropped ({handled})");
    assert_eq!(left, 6 - handled as u64, "every handled message is acked before the runner returns");
}

#[tokio::test]
async fn one_batch_in_flight_waits_for_the_last_to_settle() {
    let (most, handled, left) = run_slow(1).await;
    assert_eq!(most, 1, "one slot: a batch is not started until the last is settled");
    assert!(handled >= 1);
    assert_eq!(left, 6 - handled as u64);
}
