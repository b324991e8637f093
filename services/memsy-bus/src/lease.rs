//! Partition leases: which replica of a partitioned stage (the indexer)
//! works which partition, so that two replicas never consolidate the same
//! org at once, and the partitions spread over however many replicas run.
//!
//! Every replica keeps `m.<replica>` alive in [`LEASES_BUCKET`] and reads
//! the live members; each partition belongs to the member that ranks it
//! highest (rendezvous hashing: a member joining or leaving moves only its
//! share). A replica works a partition only while it holds `p.<n>`, created
//! when the key is absent and renewed by compare-and-set on its revision;
//! the bucket expires whatever is not renewed within the TTL, so a replica
//! that dies leaves its partitions to the others after at most one TTL.
//! A replica counts a lease as held only until a third of the TTL before the
//! bucket could expire it, so that it has stopped before anyone else can
//! take it over, and it gives a partition up only between batches.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::TryStreamExt;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::topology::LEASES_BUCKET;
use crate::{Bus, BusError};

/// The partitions this replica holds, each with the instant until which it
/// may work it.
pub type Held = BTreeMap<u32, Instant>;

/// This replica's leases, kept up to date by a background task.
#[derive(Clone)]
pub struct Leases {
    replica: String,
    held: watch::Receiver<Held>,
    /// Taken by the stage for each batch; a lease is given up only while it
    /// is free, so a partition changes hands between batches.
    work: Arc<Mutex<()>>,
}

impl Leases {
    /// Joins the members of `partitions` partitions under a new replica id
    /// and keeps its leases until `shutdown`, then gives them up.
    pub async fn start(
        bus: &Bus,
        partitions: u32,
        ttl: Duration,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), BusError> {
        let bucket = bus.kv_expiring(LEASES_BUCKET, ttl).await?;
        let replica = replica_id();
        let (tx, held) = watch::channel(Held::new());
        let work = Arc::new(Mutex::new(()));
        let keeper = Keeper {
            bucket,
            replica: replica.clone(),
            partitions,
            ttl,
            revisions: BTreeMap::new(),
            deadlines: Held::new(),
            tx,
            work: work.clone(),
        };
        info!(replica, partitions, ttl_secs = ttl.as_secs(), "joining the indexer partitions");
        let task = tokio::spawn(keeper.run(shutdown));
        Ok((Self { replica, held, work }, task))
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The partitions held now, each with time left.
    pub fn held(&self) -> BTreeSet<u32> {
        let now = Instant::now();
        self.held.borrow().iter().filter(|(_, until)| **until > now).map(|(p, _)| *p).collect()
    }

    /// Whether `partition` is held now.
    pub fn holds(&self, partition: u32) -> bool {
        self.held.borrow().get(&partition).is_some_and(|until| *until > Instant::now())
    }

    /// Resolves when the held set may have changed (or a deadline passed).
    pub async fn changed(&mut self) {
        let next_deadline = self.held.borrow().values().min().copied();
        match next_deadline {
            Some(at) => {
                tokio::select! {
                    _ = self.held.changed() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => {
                let _ = self.held.changed().await;
            }
        }
    }

    /// Held while a batch is worked: leases are not given up meanwhile.
    pub async fn working(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.work.clone().lock_owned().await
    }
}

/// A replica id unique to this process: the host (a pod's name on
/// Kubernetes) for the operator's eyes, and a random part because two
/// processes may share a host.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "memsy".into());
    let host: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{host}-{}", memsy_core::ids::new_event_id().to_lowercase())
}

/// Which member ranks `partition` highest.
pub fn owner(members: &BTreeSet<String>, partition: u32) -> Option<&str> {
    members.iter().max_by_key(|m| rank(m, partition)).map(String::as_str)
}

fn rank(member: &str, partition: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.as_bytes().iter().chain(b":").chain(partition.to_string().as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly for inputs that differ only at the end.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn member_key(replica: &str) -> String {
    format!("m.{replica}")
}

fn partition_key(partition: u32) -> String {
    format!("p.{partition}")
}

struct Keeper {
    bucket: kv::Store,
    replica: String,
    partitions: u32,
    ttl: Duration,
    /// The revision of each lease key this replica wrote last.
    revisions: BTreeMap<u32, u64>,
    deadlines: Held,
    tx: watch::Sender<Held>,
    work: Arc<Mutex<()>>,
}

impl Keeper {
    async fn run(mut self, shutdown: CancellationToken) {
        let tick = (self.ttl / 5).max(Duration::from_millis(200));
        loop {
            self.round().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
        }
        self.leave().await;
    }

    /// How long a lease written at `sent` may be worked.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.ttl * 2 / 3
    }

    async fn round(&mut self) {
        let sent = Instant::now();
        let me = member_key(&self.replica);
        if let Err(e) = self.bucket.put(&me, Bytes::new()).await {
            warn!(error = %e, "cannot renew indexer membership");
        }
        let members = match self.members().await {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot read the indexer members");
                self.publish();
                return;
            }
        };
        let wanted: BTreeSet<u32> =
            (0..self.partitions).filter(|p| owner(&members, *p) == Some(self.replica.as_str())).collect();
        // Renew what we keep; stop at once on a lease someone else wrote.
        for p in self.revisions.keys().copied().collect::<Vec<_>>() {
            let rev = self.revisions[&p];
            match self.bucket.update(partition_key(p), Bytes::from(self.replica.clone()), rev).await {
                Ok(rev) => {
                    self.revisions.insert(p, rev);
                    self.deadlines.insert(p, self.deadline(sent));
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    warn!(partition = p, "indexer partition lease lost");
                    self.revisions.remove(&p);
                    self.deadlines.remove(&p);
                }
                Err(e) => warn!(partition = p, error = %e, "cannot renew indexer partition lease"),
            }
        }
        // Give up what another member should have, between batches (if a
        // batch outlasts the wait, the next round tries again).
        let surplus: Vec<u32> = self.revisions.keys().copied().filter(|p| !wanted.contains(p)).collect();
        if !surplus.is_empty() {
            for p in &surplus {
                self.deadlines.remove(p);
            }
            self.publish();
            let Ok(_idle) = tokio::time::timeout(self.ttl / 3, self.work.lock()).await else {
                return;
            };
            for p in surplus {
                let rev = self.revisions.remove(&p);
                match self.bucket.delete_expect_revision(partition_key(p), rev).await {
                    Ok(()) => debug!(partition = p, "indexer partition handed over"),
                    Err(e) => warn!(partition = p, error = %e, "cannot release indexer partition lease"),
                }
            }
        }
        // Take what is ours and free.
        for p in wanted {
            if self.revisions.contains_key(&p) {
                continue;
            }
            match self.bucket.create(partition_key(p), Bytes::from(self.replica.clone())).await {
                Ok(rev) => {
                    debug!(partition = p, "indexer partition taken");
                    self.revisions.insert(p, rev);
                    self.deadlines.insert(p, self.deadline(sent));
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => warn!(partition = p, error = %e, "cannot take indexer partition lease"),
            }
        }
        self.publish();
    }

    async fn members(&self) -> Result<BTreeSet<String>, BusError> {
        let keys = self.bucket.keys().await.map_err(BusError::unavailable)?;
        let keys: Vec<String> = keys.try_collect().await.map_err(BusError::unavailable)?;
        let mut members: BTreeSet<String> =
            keys.into_iter().filter_map(|k| k.strip_prefix("m.").map(Into::into)).collect();
        members.insert(self.replica.clone());
        Ok(members)
    }

    fn publish(&self) {
        let _ = self.tx.send(self.deadlines.clone());
    }

    /// Hands every partition over and leaves the members, after the batch
    /// in hand: the others need not wait for the leases to expire.
    async fn leave(mut self) {
        self.deadlines.clear();
        self.publish();
        let _idle = self.work.lock().await;
        let revisions = std::mem::take(&mut self.revisions);
        let hand_over = async {
            for (p, rev) in revisions {
                let _ = self.bucket.delete_expect_revision(partition_key(p), Some(rev)).await;
            }
            let _ = self.bucket.delete(member_key(&self.replica)).await;
        };
        // With the broker gone the leases cannot be handed over; they expire.
        match tokio::time::timeout(Duration::from_secs(2), hand_over).await {
            Ok(()) => info!(replica = self.replica, "left the indexer partitions"),
            Err(_) => warn!(replica = self.replica, "could not hand the indexer partitions over; they expire"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_and_move_little() {
        let two: BTreeSet<String> = ["a-1".to_string(), "b-2".to_string()].into();
        let three: BTreeSet<String> = ["a-1".to_string(), "b-2".to_string(), "c-3".to_string()].into();
        let of = |members: &BTreeSet<String>, who: &str| (0..64).filter(|p| owner(members, *p) == Some(who)).count();
        assert!(of(&two, "a-1") >= 16 && of(&two, "b-2") >= 16, "both members get a share");
        // A third member takes partitions only from the others, never
        // moves one between them.
        for p in 0..64 {
            let before = owner(&two, p).unwrap();
            let after = owner(&three, p).unwrap();
            assert!(after == before || after == "c-3");
        }
        assert!(of(&three, "c-3") >= 10);
    }
}
