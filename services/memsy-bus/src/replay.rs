//! Re-extraction: an org's events as the raw-event log `MEMSY_EVENTS` still
//! holds them, read in order by an ordered consumer filtered to the org's
//! subjects, and published again so that the extractor takes them once more.
//! A copy goes out under a de-duplication id of its own
//! (`replay:<run>:<event id>`, [`replay_msg_id`]) that every stage carries on
//! ([`crate::Delivery::output_msg_id`]), so neither the broker's window nor a
//! stage's output id drops it; the copy it replaces is then deleted, so the
//! log keeps one copy per event.

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use bytes::Bytes;
use futures::StreamExt;
use memsy_proto::Event;
use prost::Message as _;

use crate::topology::{events_org_filter, EVENTS_STREAM};
use crate::{Bus, BusError, OutMessage};

/// Deletions of replaced copies in flight at once.
const CONCURRENT_DELETES: usize = 32;

/// The de-duplication id of a replayed event: the event id last, as every
/// message id of the pipeline (a stage reads it when a payload does not
/// decode).
pub fn replay_msg_id(run: &str, event_id: &str) -> String {
    format!("{}{run}:{event_id}", crate::stage::REPLAY_PREFIX)
}

/// One event as the log holds it.
#[derive(Debug, Clone)]
pub struct RetainedEvent {
    /// Its sequence in `MEMSY_EVENTS`.
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
    /// The event, when the payload decodes.
    pub event: Option<Event>,
}

/// An org's retained events, oldest first: those the log held when
/// [`Bus::retained_events`] was called, not the copies a replay adds after.
pub struct RetainedEvents {
    /// How many there are.
    pub count: u64,
    messages: Option<Ordered>,
    last_seq: u64,
}

impl RetainedEvents {
    /// The next event; None after the last.
    pub async fn next(&mut self) -> Option<Result<RetainedEvent, BusError>> {
        let messages = self.messages.as_mut()?;
        let m = match messages.next().await? {
            Ok(m) => m,
            Err(e) => return Some(Err(BusError::unavailable(e))),
        };
        let (seq, pending) = match m.info() {
            Ok(i) => (i.stream_sequence, i.pending),
            Err(e) => return Some(Err(BusError::unavailable(e))),
        };
        // Also done when nothing follows: the last one may have been deleted
        // since (by another replay), and then the bound is never met.
        if seq >= self.last_seq || pending == 0 {
            self.messages = None;
        }
        if seq > self.last_seq {
            return None;
        }
        let event = Event::decode(m.payload.as_ref()).ok();
        Some(Ok(RetainedEvent { seq, subject: m.subject.to_string(), payload: m.payload.clone(), event }))
    }
}

impl Bus {
    async fn events_stream(&self) -> Result<stream::Stream<()>, BusError> {
        self.jetstream().get_stream_no_info(EVENTS_STREAM).await.map_err(BusError::unavailable)
    }

    /// The events of `org_id` that `MEMSY_EVENTS` holds now.
    pub async fn retained_events(&self, org_id: &str) -> Result<RetainedEvents, BusError> {
        let filter = events_org_filter(org_id);
        let events = self.jetstream().get_stream(EVENTS_STREAM).await.map_err(BusError::unavailable)?;
        let last_seq = match events.get_last_raw_message_by_subject(&filter).await {
            Ok(m) => m.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(RetainedEvents { count: 0, messages: None, last_seq: 0 })
            }
            Err(e) => return Err(BusError::unavailable(e)),
        };
        let mut consumer = events
            .create_consumer(OrderedConfig { filter_subject: filter, ..Default::default() })
            .await
            .map_err(BusError::unavailable)?;
        let count = consumer.info().await.map_err(BusError::unavailable)?.num_pending;
        let messages = consumer.messages().await.map_err(BusError::unavailable)?;
        Ok(RetainedEvents { count, messages: Some(messages), last_seq })
    }

    /// Publishes each event again on its subject under
    /// [`replay_msg_id`]`(run, …)` and waits for the broker's acks, then
    /// deletes the copies they replace. Ok means every copy is durable; a
    /// replaced copy that could not be deleted stays (and is replayed again
    /// next time, which changes nothing).
    pub async fn republish_events(&self, run: &str, events: &[RetainedEvent]) -> Result<(), BusError> {
        let out = events
            .iter()
            .map(|e| {
                let event_id = match &e.event {
                    Some(ev) => ev.event_id.clone(),
                    None => e.subject.rsplit('.').next().unwrap_or_default().to_string(),
                };
                OutMessage {
                    subject: e.subject.clone(),
                    msg_id: replay_msg_id(run, &event_id),
                    payload: e.payload.clone(),
                    traceparent: None,
                }
            })
            .collect();
        self.publish_all(out).await?;
        let log = self.events_stream().await?;
        let deletes = events.iter().map(|e| {
            let log = &log;
            async move {
                if let Err(err) = log.delete_message(e.seq).await {
                    tracing::warn!(seq = e.seq, error = %err, "could not delete a replayed event's old copy");
                }
            }
        });
        futures::stream::iter(deletes).buffer_unordered(CONCURRENT_DELETES).collect::<Vec<()>>().await;
        Ok(())
    }
}
