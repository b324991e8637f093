//! The dead-letter stream `MEMSY_DLQ` for operators: read the letters (all,
//! or one org's: the org is a token of the letter's subject, so that is a
//! filtered read), decode what they carry, send one back through the
//! pipeline, or drop it. A letter is addressed by its stream sequence.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use memsy_proto::{DeadLetter, EmbeddedEvent, Event, ExtractedEvent};
use prost::Message as _;

use crate::topology::{self, DLQ_STREAM};
use crate::{Bus, BusError, OutMessage};

/// One letter as the stream holds it.
#[derive(Debug, Clone)]
pub struct StoredLetter {
    /// Its sequence in `MEMSY_DLQ`: what `dlq show|replay|purge` take.
    pub seq: u64,
    /// When the stage gave up.
    pub time: SystemTime,
    pub letter: DeadLetter,
}

impl StoredLetter {
    /// The raw event the letter's message carried, when its payload decodes
    /// as the input of the stage that gave up.
    pub fn event(&self) -> Option<Event> {
        letter_event(&self.letter)
    }
}

/// The raw event a letter's message carried (see [`StoredLetter::event`]).
pub(crate) fn letter_event(letter: &DeadLetter) -> Option<Event> {
    let payload = letter.payload.as_slice();
    match letter.stage.as_str() {
        topology::EXTRACTOR_CONSUMER => Event::decode(payload).ok(),
        topology::EMBEDDER_CONSUMER => ExtractedEvent::decode(payload).ok()?.event,
        topology::INDEXER_CONSUMER => EmbeddedEvent::decode(payload).ok()?.event,
        _ => None,
    }
}

impl Bus {
    pub(crate) async fn dlq(&self) -> Result<stream::Stream<()>, BusError> {
        self.jetstream().get_stream_no_info(DLQ_STREAM).await.map_err(BusError::unavailable)
    }

    /// Every dead letter, or those of `org_id`, oldest first.
    pub async fn dead_letters(&self, org_id: Option<&str>) -> Result<Vec<StoredLetter>, BusError> {
        let dlq = self.dlq().await?;
        let filter = topology::dlq_filter(org_id);
        let mut out = Vec::new();
        let mut next = 1;
        loop {
            match dlq.get_first_raw_message_by_subject(&filter, next).await {
                Ok(m) => {
                    next = m.sequence + 1;
                    out.push(stored(m)?);
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(out),
                Err(e) => return Err(BusError::unavailable(e)),
            }
        }
    }

    /// The letter at `seq`; None when there is none.
    pub async fn dead_letter(&self, seq: u64) -> Result<Option<StoredLetter>, BusError> {
        match self.dlq().await?.get_raw_message(seq).await {
            Ok(m) => stored(m).map(Some),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(BusError::unavailable(e)),
        }
    }

    /// The latest letter about one event of an org, from any stage.
    pub async fn dead_letter_of(&self, org_id: &str, event_id: &str) -> Result<Option<StoredLetter>, BusError> {
        last_letter_of(&self.dlq().await?, org_id, event_id).await
    }
    /// Publishes the letter's message again on the subject it came from
    /// (the input of the stage that gave up), then deletes the letter.
    /// Answers the letter; None when there is none at `seq`. The caller
    /// marks its events pending first, so that a fast pipeline's
    /// `completed` cannot be overwritten afterwards.
    pub async fn replay_dead_letter(&self, seq: u64) -> Result<Option<StoredLetter>, BusError> {
        let Some(stored) = self.dead_letter(seq).await? else {
            return Ok(None);
        };
        let l = &stored.letter;
        if l.subject.is_empty() {
            return Err(BusError::Rejected(format!("dead letter {seq} names no subject to replay it on")));
        }
        // A fresh de-duplication id: the original one may still be in the
        // broker's window, which would drop the replay. It still ends in the
        // event id, which a stage reads when the payload does not decode.
        let msg_id = match l.event_ids.first() {
            Some(id) => crate::replay_msg_id(&seq.to_string(), id),
            None => format!("{}{seq}", crate::REPLAY_PREFIX),
        };
        let out =
            OutMessage { subject: l.subject.clone(), msg_id, payload: l.payload.clone().into(), traceparent: None };
        self.publish_all(vec![out]).await?;
        self.purge_dead_letter(seq).await?;
        Ok(Some(stored))
    }

    /// Deletes the letter at `seq`; false when there was none.
    pub async fn purge_dead_letter(&self, seq: u64) -> Result<bool, BusError> {
        crate::scrub::delete(&self.dlq().await?, seq).await
    }
}

pub(crate) async fn last_letter_of(
    dlq: &stream::Stream<()>,
    org_id: &str,
    event_id: &str,
) -> Result<Option<StoredLetter>, BusError> {
    match dlq.get_last_raw_message_by_subject(&topology::dlq_event_filter(org_id, event_id)).await {
        Ok(m) => stored(m).map(Some),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(BusError::unavailable(e)),
    }
}

fn stored(m: async_nats::jetstream::message::StreamMessage) -> Result<StoredLetter, BusError> {
    let letter = DeadLetter::decode(m.payload.as_ref())
        .map_err(|e| BusError::Rejected(format!("dead letter {} does not decode: {e}", m.sequence)))?;
    let nanos = u64::try_from(m.time.unix_timestamp_nanos()).unwrap_or_default();
    Ok(StoredLetter { seq: m.sequence, time: SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos), letter })
}
