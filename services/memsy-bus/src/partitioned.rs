//! The runner of a partitioned stage (the indexer): it pulls from the
//! consumers of the partitions this replica holds ([`Leases`]), gathers
//! their messages into one batch as [`run_stage`](crate::run_stage) does,
//! and works a batch only under the leases' work lock, leaving out (for the
//! new holder) any message of a partition it no longer holds. One batch at a
//! time: consolidation must see the last batch's writes.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::Message;
use futures::stream::{select_all, BoxStream};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::lease::Leases;
use crate::stage::{gather, handle_batch};
use crate::topology::Stage;
use crate::{Batching, Bus, BusError, StageHandler};

type Pulled = Result<(u32, Message), String>;

/// Runs `handler` on the partitions `leases` hands this replica until
/// `shutdown` is cancelled; returns after the batch in hand is settled.
pub async fn run_partitioned_stage(
    bus: Bus,
    stage: Stage,
    handler: Arc<dyn StageHandler>,
    batching: Batching,
    mut leases: Leases,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let batch_size = batching.size.max(1);
    info!(
        stage = stage.name,
        replica = leases.replica(),
        batch_size,
        batch_wait_ms = batching.wait.as_millis() as u64,
        batch_gather_ms = batching.gather.as_millis() as u64,
        "partitioned stage started"
    );
    let mut pulls: BTreeMap<u32, BoxStream<'static, Pulled>> = BTreeMap::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        // Pull from exactly the partitions held: a dropped subscription
        // leaves its unsettled messages to the next holder.
        let held = leases.held();
        pulls.retain(|p, _| held.contains(p));
        for p in held {
            if let std::collections::btree_map::Entry::Vacant(slot) = pulls.entry(p) {
                let started = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    s = pull(&bus, stage, p, batch_size) => s,
                };
                match started {
                    Ok(s) => {
                        slot.insert(s);
                    }
                    Err(e) => {
                        // The broker is likely gone: try the rest later.
                        warn!(stage = stage.name, partition = p, error = %e, "cannot pull; retrying");
                        break;
                    }
                }
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        if pulls.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = leases.changed() => continue,
                // A pull that could not start is tried again.
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        let mut incoming = select_all(pulls.values_mut().map(Pin::new));
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = leases.changed() => continue,
            m = incoming.next() => m,
        };
        let msgs = match first {
            Some(Ok(m)) => gather(stage, m, &mut incoming, &batching).await,
            Some(Err(e)) => {
                warn!(stage = stage.name, error = %e, "pull failed; retrying");
                drop(incoming);
                pulls.clear();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            None => {
                drop(incoming);
                pulls.clear();
                continue;
            }
        };
        drop(incoming);
        let _working = leases.working().await;
        let mut batch = Vec::with_capacity(msgs.len());
        for (p, m) in msgs {
            if leases.holds(p) {
                batch.push(m);
            } else {
                // Handed over meanwhile: the holder gets it at once.
                let _ = m.ack_with(AckKind::Nak(None)).await;
            }
        }
        if !batch.is_empty() {
            handle_batch(&bus, stage, handler.as_ref(), batch).await;
        }
    }
    info!(stage = stage.name, "partitioned stage stopped");
    Ok(())
}

/// One partition's messages, tagged with the partition.
async fn pull(
    bus: &Bus,
    stage: Stage,
    partition: u32,
    batch_size: usize,
) -> Result<BoxStream<'static, Pulled>, BusError> {
    let consumer = bus.partition_consumer(stage, partition).await?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch_size)
        .expires(Duration::from_secs(30))
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(BusError::unavailable)?;
    Ok(messages.map(move |m| m.map(|m| (partition, m)).map_err(|e| e.to_string())).boxed())
}
