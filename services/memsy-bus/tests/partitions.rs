//! Two replicas of a partitioned stage on a real nats-server: every message
//! is worked, the partitions spread over both, no partition is ever worked
//! by both at once, and when one replica dies without handing over, the
//! other takes its partitions once their leases expire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use memsy_bus::topology::{embedded_subject, INDEXER};
use memsy_bus::{run_partitioned_stage, Batching, Bus, Delivery, Leases, OutMessage, Outcome, StageHandler};
use memsy_core::config::NatsConfig;
use memsy_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 8;
const TTL: Duration = Duration::from_secs(3);

/// What both replicas saw, shared.
#[derive(Default)]
struct Ledger {
    /// Partition → the replica working a batch of it now.
    active: HashMap<u32, String>,
    /// Times a replica started on a partition another was working.
    overlaps: usize,
    /// Message ids worked, by replica.
    worked: BTreeMap<String, Vec<String>>,
    /// Partitions worked, by replica.
    partitions: BTreeMap<String, BTreeSet<u32>>,
}

struct Recorder {
    replica: String,
    ledger: Arc<Mutex<Ledger>>,
}

fn partition_of_subject(subject: &str) -> u32 {
    subject.split('.').nth(2).and_then(|p| p.parse().ok()).expect("memsy.embedded.<p>.<org>")
}

#[async_trait]
impl StageHandler for Recorder {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let parts: BTreeSet<u32> = batch.iter().map(|d| partition_of_subject(&d.subject)).collect();
        {
            let mut l = self.ledger.lock().unwrap();
            for p in &parts {
                if let Some(other) = l.active.insert(*p, self.replica.clone()) {
                    if other != self.replica {
                        l.overlaps += 1;
                    }
                }
            }
        }
        // Long enough for the other replica to collide if it could.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut l = self.ledger.lock().unwrap();
        for p in &parts {
            l.active.remove(p);
        }
        l.partitions.entry(self.replica.clone()).or_default().extend(parts);
        let ids = batch.iter().map(|d| String::from_utf8_lossy(&d.payload).into_owned());
        l.worked.entry(self.replica.clone()).or_default().extend(ids);
        vec![Outcome::Done; batch.len()]
    }

    fn events_of(&self, _payload: &[u8]) -> Option<(String, Vec<String>)> {
        None
    }

    async fn mark_failed(&self, _org_id: &str, _event_ids: &[String], _reason: &str) -> Result<(), String> {
        Ok(())
    }
}

struct Replica {
    stop: CancellationToken,
    stage: tokio::task::JoinHandle<Result<(), memsy_bus::BusError>>,
    keeper: tokio::task::JoinHandle<()>,
}

async fn replica(cfg: &NatsConfig, name: &str, ledger: &Arc<Mutex<Ledger>>) -> Replica {
    // A connection of its own, as a separate process would have.
    let bus = Bus::connect(cfg).await.unwrap();
    let stop = CancellationToken::new();
    let (leases, keeper) = Leases::start(&bus, bus.partitions(), TTL, stop.clone()).await.unwrap();
    let handler = Arc::new(Recorder { replica: name.into(), ledger: ledger.clone() });
    let stage = tokio::spawn(run_partitioned_stage(bus, INDEXER, handler, Batching::new(16, 5), leases, stop.clone()));
    Replica { stop, stage, keeper }
}

async fn publish(bus: &Bus, from: usize, to: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for i in from..to {
        let id = format!("m{i}");
        out.push(OutMessage {
            subject: embedded_subject(&format!("org{}", i % 40), bus.partitions()),
            msg_id: id.clone(),
            payload: id.clone().into_bytes().into(),
            traceparent: None,
        });
        ids.insert(id);
    }
    bus.publish_all(out).await.unwrap();
    ids
}

/// Waits until every id in `want` was worked (by anyone), up to `limit`.
async fn worked_all(ledger: &Arc<Mutex<Ledger>>, want: &BTreeSet<String>, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let done: BTreeSet<String> = ledger.lock().unwrap().worked.values().flatten().cloned().collect();
        if want.is_subset(&done) {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_partitions_and_never_overlap() {
    let nats = NatsServer::start();
    let cfg = NatsConfig { url: nats.url(), indexer_partitions: PARTITIONS, ack_wait_secs: 4, ..Default::default() };
    let publisher = Bus::connect(&cfg).await.unwrap();
    assert_eq!(publisher.partitions(), PARTITIONS);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let a = replica(&cfg, "a", &ledger).await;
    let b = replica(&cfg, "b", &ledger).await;
    // Both members are seen and the partitions settle within a few rounds.
    tokio::time::sleep(TTL).await;

    let first = publish(&publisher, 0, 2_000).await;
    assert!(worked_all(&ledger, &first, Duration::from_secs(60)).await, "every message is worked");
    {
        let l = ledger.lock().unwrap();
        assert_eq!(l.overlaps, 0, "no partition worked by two replicas at once");
        let (pa, pb) = (&l.partitions["a"], &l.partitions["b"]);
        assert!(!pa.is_empty() && !pb.is_empty(), "both replicas work: a {pa:?}, b {pb:?}");
        assert!(pa.is_disjoint(pb), "each partition had one worker: a {pa:?}, b {pb:?}");
    }

    // Replica a dies: no hand-over, its leases expire.
    a.stage.abort();
    a.keeper.abort();
    let _ = a.stage.await;
    let before = ledger.lock().unwrap().worked.get("b").map_or(0, Vec::len);
    let second = publish(&publisher, 2_000, 3_000).await;
    assert!(
        worked_all(&ledger, &second, TTL * 4 + Duration::from_secs(cfg.ack_wait_secs * 2)).await,
        "the survivor takes over the dead replica's partitions"
    );
    {
        let l = ledger.lock().unwrap();
        assert_eq!(l.overlaps, 0);
        assert!(l.worked["b"].len() - before >= second.len(), "b worked all of the second wave");
        assert_eq!(l.partitions["b"].len(), PARTITIONS as usize, "b holds every partition now");
    }

    b.stop.cancel();
    b.stage.await.unwrap().unwrap();
    b.keeper.await.unwrap();
    let _ = a.stop;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_stops_hands_over_at_once() {
    let nats = NatsServer::start();
    let cfg = NatsConfig { url: nats.url(), indexer_partitions: PARTITIONS, ..Default::default() };
    let publisher = Bus::connect(&cfg).await.unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let a = replica(&cfg, "a", &ledger).await;
    let b = replica(&cfg, "b", &ledger).await;
    tokio::time::sleep(TTL).await;
    // a stops cleanly: it gives its leases up, so b has them well within a TTL.
    a.stop.cancel();
    a.stage.await.unwrap().unwrap();
    a.keeper.await.unwrap();
    let ids = publish(&publisher, 0, 500).await;
    assert!(worked_all(&ledger, &ids, TTL).await, "b took every partition without waiting for expiry");
    assert!(!ledger.lock().unwrap().worked.contains_key("a"));
    b.stop.cancel();
    b.stage.await.unwrap().unwrap();
    b.keeper.await.unwrap();
}
