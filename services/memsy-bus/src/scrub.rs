//! Deleting an actor's (or a whole org's) messages from the streams, for
//! erasure. The org is a token of every subject, so one org's messages are
//! a filtered read; the actor is only in the message body, so each of the
//! org's messages is read, decoded and, when it is the actor's, deleted by
//! sequence: one broker request per message of the org, plus one per
//! deletion, in the raw-event log, both work queues and the dead letters.

use async_nats::jetstream::stream::{self, DeleteMessageErrorKind, LastRawMessageErrorKind};
use async_nats::jetstream::ErrorCode;
use memsy_core::ids::subject_token;
use memsy_proto::{DeadLetter, EmbeddedEvent, Event, ExtractedEvent};
use prost::Message as _;

use crate::dead_letters::letter_event;
use crate::topology::{self, DLQ_STREAM, EMBEDDED_STREAM, EVENTS_STREAM, EXTRACTED_STREAM};
use crate::{Bus, BusError};

/// What [`Bus::scrub`] deleted.
#[derive(Debug, Default)]
pub struct Scrubbed {
    /// Messages deleted, over every stream.
    pub messages: u64,
    /// The raw events those messages carried (once per event), for the
    /// caller's clean-up of what is keyed by event (status, de-duplication).
    pub events: Vec<Event>,
}

/// What a stream's messages carry.
#[derive(Clone, Copy)]
enum Carries {
    Event,
    Extracted,
    Embedded,
    Letter,
}

impl Carries {
    /// The raw event a message is about; None when it does not decode.
    fn event(self, payload: &[u8]) -> Option<Event> {
        match self {
            Carries::Event => Event::decode(payload).ok(),
            Carries::Extracted => ExtractedEvent::decode(payload).ok()?.event,
            Carries::Embedded => EmbeddedEvent::decode(payload).ok()?.event,
            Carries::Letter => letter_event(&DeadLetter::decode(payload).ok()?),
        }
    }
}

impl Bus {
    /// Deletes from every stream the messages of `org_id` whose event is
    /// `actor_id`'s (None: every message of the org, decodable or not).
    /// A message consumed meanwhile is simply gone already.
    pub async fn scrub(&self, org_id: &str, actor_id: Option<&str>) -> Result<Scrubbed, BusError> {
        let org = subject_token(org_id);
        let sources = [
            (EVENTS_STREAM, format!("memsy.events.{org}.>"), Carries::Event),
            // The layout before the event id was a token of its own.
            (EVENTS_STREAM, format!("memsy.events.{org}"), Carries::Event),
            (EXTRACTED_STREAM, topology::extracted_subject(org_id), Carries::Extracted),
            (EMBEDDED_STREAM, format!("memsy.embedded.*.{org}"), Carries::Embedded),
            (DLQ_STREAM, topology::dlq_filter(Some(org_id)), Carries::Letter),
        ];
        let mut out = Scrubbed::default();
        let mut seen = std::collections::HashSet::new();
        for (name, filter, carries) in sources {
            let s = self.jetstream().get_stream_no_info(name).await.map_err(BusError::unavailable)?;
            let mut next = 1;
            loop {
                let m = match s.get_first_raw_message_by_subject(&filter, next).await {
                    Ok(m) => m,
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
                    Err(e) => return Err(BusError::unavailable(e)),
                };
                next = m.sequence + 1;
                let event = carries.event(m.payload.as_ref());
                let theirs = match (actor_id, &event) {
                    (None, _) => true,
                    (Some(actor), Some(e)) => e.actor_id == actor && e.org_id == org_id,
                    (Some(_), None) => false,
                };
                if !theirs {
                    continue;
                }
                if delete(&s, m.sequence).await? {
                    out.messages += 1;
                }
                if let Some(e) = event.filter(|e| seen.insert(e.event_id.clone())) {
                    out.events.push(e);
                }
            }
        }
        Ok(out)
    }
}

/// Deletes the message at `seq`; false when it was gone already.
pub(crate) async fn delete(s: &stream::Stream<()>, seq: u64) -> Result<bool, BusError> {
    match s.delete_message(seq).await {
        Ok(deleted) => Ok(deleted),
        Err(e) => match e.kind() {
            DeleteMessageErrorKind::JetStream(j) if j.error_code() == ErrorCode::NO_MESSAGE_FOUND => Ok(false),
            // A work-queue stream can remove the message (acked) between the
            // read and the delete: the broker then answers 10057 with "no
            // message found" rather than 10037.
            DeleteMessageErrorKind::JetStream(j)
                if j.error_code() == ErrorCode::STREAM_MESSAGE_DELETE_FAILED
                    && j.to_string().contains("no message found") =>
            {
                Ok(false)
            }
            _ => Err(BusError::unavailable(e)),
        },
    }
}
