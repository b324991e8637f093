//! The backlog on `/metrics`: per consumer, the messages not yet delivered
//! and those delivered but not yet settled, and the size of the dead-letter
//! stream, read from JetStream every few seconds. Each stage process reports
//! its own stage's consumers (the indexer every partition's), so the
//! figures are there whichever replica is scraped; dashboards take the max.

use std::time::Duration;

use memsy_core::metrics as mx;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::topology::{indexer_consumer, Stage, DLQ_STREAM};
use crate::{Bus, BusError};

/// How often the figures are read: well inside a scrape interval.
const EVERY: Duration = Duration::from_secs(5);

/// Keeps the backlog gauges of `stages` current until `token` is cancelled.
pub fn spawn_backlog_gauges(bus: Bus, stages: Vec<Stage>, token: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            for stage in &stages {
                if let Err(e) = read_stage(&bus, *stage).await {
                    debug!(stage = stage.name, error = %e, "backlog figures unavailable");
                }
            }
            if let Err(e) = read_dlq(&bus).await {
                debug!(error = %e, "dead-letter figure unavailable");
            }
        }
    });
}

async fn read_stage(bus: &Bus, stage: Stage) -> Result<(), BusError> {
    let stream = bus.jetstream().get_stream(stage.stream).await.map_err(BusError::unavailable)?;
    let consumers: Vec<String> = if stage.partitioned {
        (0..bus.partitions()).map(indexer_consumer).collect()
    } else {
        vec![stage.name.to_string()]
    };
    for name in consumers {
        // Info only: a consumer that does not exist yet is not created here.
        let Ok(info) = stream.consumer_info(&name).await else { continue };
        let labels = [("stream", stage.stream.to_string()), ("consumer", name)];
        metrics::gauge!(mx::STREAM_PENDING, &labels).set(info.num_pending as f64);
        metrics::gauge!(mx::STREAM_ACK_PENDING, &labels).set(info.num_ack_pending as f64);
    }
    Ok(())
}

async fn read_dlq(bus: &Bus) -> Result<(), BusError> {
    let stream = bus.jetstream().get_stream(DLQ_STREAM).await.map_err(BusError::unavailable)?;
    metrics::gauge!(mx::DLQ_MESSAGES).set(stream.cached_info().state.messages as f64);
    Ok(())
}
