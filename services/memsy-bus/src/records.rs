//! What the broker's durable records say of an event whose state the status
//! store (Redis) has lost: a dead letter about it means it failed (with the
//! stage and reason); still in the raw-event log `MEMSY_EVENTS` means it was
//! accepted and is on its way. Both are gets by subject (the subjects carry
//! org and event id, [`crate::topology`]), answered from the broker's
//! subject index: no scan, and another org's ids are simply absent.

use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use futures::{StreamExt, TryStreamExt};
use memsy_core::ids::is_event_id;

use crate::dead_letters::last_letter_of;
use crate::topology::{events_subject, EVENTS_STREAM};
use crate::{Bus, BusError};

/// At most this many lookups in flight for one question.
const CONCURRENT_LOOKUPS: usize = 32;

/// Where the broker's records put an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRecord {
    /// A stage gave up on it.
    DeadLettered { stage: String, reason: String },
    /// In the raw-event log and not dead-lettered: accepted, not done yet
    /// (a caller checks first whether the store holds it as completed).
    Queued,
}

impl Bus {
    /// For each of `event_ids` of `org_id`, in order: its latest dead
    /// letter, else whether the raw-event log holds it; None for neither
    /// (and for anything that is not an event id, which was never minted).
    pub async fn event_records(
        &self,
        org_id: &str,
        event_ids: &[String],
    ) -> Result<Vec<Option<EventRecord>>, BusError> {
        let events = self.jetstream().get_stream_no_info(EVENTS_STREAM).await.map_err(BusError::unavailable)?;
        let dlq = self.dlq().await?;
        let lookups: Vec<_> = event_ids.iter().map(|id| event_record(&dlq, &events, org_id, id)).collect();
        futures::stream::iter(lookups).buffered(CONCURRENT_LOOKUPS).try_collect().await
    }
}

/// One event: its latest dead letter, else whether the log holds it.
async fn event_record(
    dlq: &stream::Stream<()>,
    events: &stream::Stream<()>,
    org_id: &str,
    event_id: &str,
) -> Result<Option<EventRecord>, BusError> {
    if !is_event_id(event_id) {
        return Ok(None);
    }
    if let Some(l) = last_letter_of(dlq, org_id, event_id).await? {
        return Ok(Some(EventRecord::DeadLettered { stage: l.letter.stage, reason: l.letter.reason }));
    }
    match events.get_last_raw_message_by_subject(&events_subject(org_id, event_id)).await {
        Ok(_) => Ok(Some(EventRecord::Queued)),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(BusError::unavailable(e)),
    }
}
