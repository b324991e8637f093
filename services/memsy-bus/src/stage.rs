//! The stage runner every pipeline stage uses. It pulls batches from the
//! stage's durable consumer, hands them to the stage, and settles each
//! message by the stage's verdict: acked only after the stage says its
//! output is durable; retried with back-off; and after `max_deliver`
//! failed attempts (or at once for input that can never succeed, or that
//! makes the stage panic) copied to `MEMSY_DLQ` and reported to the stage so
//! it can mark the events failed. A dependency outage is waited out however
//! long it lasts and never dead-letters anything. Long batches send
//! in-progress acks so the broker does not redeliver work under way.
//! Nothing is dropped silently.
//!
//! Traces: each message's work is a span in the trace its `traceparent`
//! names (`extract event`, `embed event`, `index event`), and what the stage
//! publishes for it continues from there. The batch's shared work (one
//! model call, one store write) is one `… batch` span, in the trace of the
//! batch's first message and linked to and from the others.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::Message;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use memsy_core::metrics as mx;
use memsy_core::telemetry;
use memsy_proto::DeadLetter;
use prost::Message as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{debug, error, info, info_span, warn, Instrument, Span};

use crate::topology::{dlq_subject, Stage};
use crate::{Bus, BusError, OutMessage};

/// One message handed to a stage.
pub struct Delivery {
    pub payload: Bytes,
    pub subject: String,
    /// The publisher's `Nats-Msg-Id` (`<event id>` or `<stage letter>:<event id>`).
    pub msg_id: Option<String>,
    /// The trace context of this message's work in the stage: what its
    /// output carries on (the incoming one as it came when traces are off).
    pub traceparent: Option<String>,
    /// 1 on first delivery.
    pub attempt: i64,
}

/// How the de-duplication id of a replayed message starts: `memsy replay`'s
/// (`replay:<run>:<event id>`) and `memsy dlq replay`'s (`replay:<seq>:<event id>`).
pub const REPLAY_PREFIX: &str = "replay:";

impl Delivery {
    /// The `Nats-Msg-Id` of what a stage publishes for this message's event,
    /// `<letter>:<event id>`; for a replayed message `<letter>:replay:…`:
    /// its output was published before under the plain id, which may still
    /// be in the broker's de-duplication window and would drop it.
    pub fn output_msg_id(&self, letter: &str, event_id: &str) -> String {
        let replayed = self.msg_id.as_deref().and_then(|m| m.find(REPLAY_PREFIX).map(|i| &m[i..]));
        match replayed {
            Some(r) if r.ends_with(event_id) => format!("{letter}:{r}"),
            _ => format!("{letter}:{event_id}"),
        }
    }

    /// The org and event a message is about, from its envelope alone: the
    /// subject names the org, and the message id ends in the event id. For a
    /// payload no stage can read.
    pub fn envelope(&self) -> Option<(String, String)> {
        let org = crate::topology::subject_org(&self.subject)?;
        let event_id = self.msg_id.as_deref()?.rsplit(':').next()?;
        memsy_core::ids::event_point_id(event_id)?;
        Some((org, event_id.to_string()))
    }
}

/// A stage's verdict on one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Output is durable; ack.
    Done,
    /// This message failed but may succeed later; retried with back-off,
    /// dead-lettered after `max_deliver` attempts.
    Retry(String),
    /// A dependency (broker, store, status) is unavailable: back off and
    /// try again, without limit — an outage must not fail events.
    Backoff(String),
    /// Can never succeed (undecodable input); dead-letter now.
    Fail(String),
}

impl Outcome {
    /// Turns every `Done` into `Backoff(reason)`: for a batch whose output
    /// could not be made durable because a dependency is down.
    pub fn backoff_done(outcomes: &mut [Outcome], reason: &str) {
        for o in outcomes.iter_mut() {
            if *o == Outcome::Done {
                *o = Outcome::Backoff(reason.to_string());
            }
        }
    }
}

#[async_trait]
pub trait StageHandler: Send + Sync + 'static {
    /// Handles a batch; returns one outcome per delivery, in order.
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome>;

    /// The org and event ids a message is about, read from its payload;
    /// None when the payload cannot be read (the runner then takes them
    /// from the message's envelope, [`Delivery::envelope`]).
    fn events_of(&self, payload: &[u8]) -> Option<(String, Vec<String>)>;

    /// Marks events failed with `reason` when their message is
    /// dead-lettered; an error (the status store is down) puts the message
    /// back to be dead-lettered again later.
    async fn mark_failed(&self, org_id: &str, event_ids: &[String], reason: &str) -> Result<(), String>;
}

/// How a stage gathers its batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most messages per batch.
    pub size: usize,
    /// Once a message is in hand, how long to wait for each next one before
    /// handling a short batch; never more than `gather` in all, so a steady
    /// trickle cannot hold a batch back until it is full. Short for a stage
    /// whose cost grows with the batch; longer for one that pays a fixed
    /// cost per batch (the indexer's store flush), where fuller batches are
    /// cheaper per event.
    pub wait: Duration,
    /// The longest a batch gathers: [`GATHER_WAITS`] waits unless set with
    /// [`Batching::gather`].
    pub gather: Duration,
    /// How many batches may be in the stage's hands at once. 1 means the
    /// next batch is gathered only after the last is settled, which a stage
    /// needs when a batch must see the previous batch's writes (the
    /// indexer's consolidation). More lets a stage whose batches are
    /// independent start the next one while the last one's output is
    /// published and its messages acked, so that the engine behind it (the
    /// embedding model) need not wait for the broker between batches.
    pub in_flight: usize,
}

/// The longest a batch gathers by default, in batch waits.
pub const GATHER_WAITS: u32 = 4;

impl Batching {
    pub fn new(size: usize, wait_ms: u64) -> Self {
        let wait = Duration::from_millis(wait_ms);
        Self { size: size.max(1), wait, gather: wait * GATHER_WAITS, in_flight: 1 }
    }

    /// A batch gathers for at most `gather_ms` (at least one batch wait).
    pub fn gather(self, gather_ms: u64) -> Self {
        Self { gather: Duration::from_millis(gather_ms).max(self.wait), ..self }
    }

    /// Up to `n` (at least 1) batches in the stage's hands at once.
    pub fn in_flight(self, n: usize) -> Self {
        Self { in_flight: n.max(1), ..self }
    }
}

/// Runs `handler` on `stage` until `shutdown` is cancelled, then returns
/// after every batch in hand is settled.
pub async fn run_stage(
    bus: Bus,
    stage: Stage,
    handler: Arc<dyn StageHandler>,
    batching: Batching,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let batch_size = batching.size.max(1);
    let consumer = bus.consumer(stage).await?;
    // One long-lived pull subscription: the server pushes messages as they
    // arrive (no polling while idle, no gap between batches), and nothing
    // is lost to a pull request that expired in flight.
    let mut incoming = consumer
        .stream()
        .max_messages_per_batch(batch_size)
        .expires(Duration::from_secs(30))
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(BusError::unavailable)?;
    let in_flight = batching.in_flight.max(1);
    info!(
        stage = stage.name,
        batch_size,
        batch_wait_ms = batching.wait.as_millis() as u64,
        batch_gather_ms = batching.gather.as_millis() as u64,
        in_flight,
        "stage started"
    );
    // A slot is taken before the first message of a batch is awaited, so
    // with one slot the next batch is not even gathered until the last one
    // is settled.
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut batches = JoinSet::new();
    let result = loop {
        while batches.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
        };
        let first = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            m = incoming.next() => m,
        };
        let msgs = match first {
            Some(Ok(m)) => gather(stage, m, &mut incoming, &batching).await,
            Some(Err(e)) => {
                warn!(stage = stage.name, error = %e, "pull failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            None => break Err(BusError::Unavailable(format!("{} consumer stream ended", stage.name))),
        };
        let (bus, handler) = (bus.clone(), handler.clone());
        batches.spawn(async move {
            handle_batch(&bus, stage, handler.as_ref(), msgs).await;
            drop(slot);
        });
    };
    // Whatever the reason for stopping, the batches in hand are settled
    // first: their work is done or under way, and an unsettled message
    // would only be redelivered after the ack wait.
    while batches.join_next().await.is_some() {}
    info!(stage = stage.name, "stage stopped");
    result
}

/// A batch: `first`, then whatever else comes within the batch wait of the
/// last (and the gather time of the first), up to the batch size. Batches
/// grow with load, and at low load a message waits at most one batch wait.
pub(crate) async fn gather<T, E, S>(stage: Stage, first: T, incoming: &mut S, batching: &Batching) -> Vec<T>
where
    S: futures::Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut msgs = vec![first];
    let deadline = tokio::time::Instant::now() + batching.gather;
    while msgs.len() < batching.size.max(1) {
        // A zero wait (past the deadline, or configured) still takes a
        // message that is already here: `timeout` polls it first.
        let wait = batching.wait.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, incoming.next()).await {
            Ok(Some(Ok(m))) => msgs.push(m),
            Ok(Some(Err(e))) => {
                debug!(stage = stage.name, error = %e, "pull hiccup");
                break;
            }
            _ => break,
        }
    }
    msgs
}

/// Hands one batch to the stage and settles each message by its outcome.
pub(crate) async fn handle_batch(bus: &Bus, stage: Stage, handler: &dyn StageHandler, msgs: Vec<Message>) {
    let max_deliver = bus.config().max_deliver;
    let header = |m: &Message, name: &str| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.to_string());
    let mut deliveries: Vec<Delivery> = msgs
        .iter()
        .map(|m| Delivery {
            payload: m.payload.clone(),
            subject: m.subject.to_string(),
            msg_id: m.headers.as_ref().and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID)).map(|v| v.to_string()),
            traceparent: header(m, telemetry::TRACEPARENT),
            attempt: m.info().map(|i| i.delivered).unwrap_or(1),
        })
        .collect();
    let spans: Vec<Span> = msgs
        .iter()
        .zip(&mut deliveries)
        .map(|(m, d)| {
            let span = message_span(stage, d, header(m, "tracestate"), msgs.len());
            if let Some(tp) = telemetry::traceparent(&span) {
                d.traceparent = Some(tp);
            }
            span
        })
        .collect();
    let batch = batch_span(stage, &spans);
    // Keep the batch's messages ours while the stage works on them.
    let every = Duration::from_secs(bus.config().ack_wait_secs.max(3) / 3);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let started = std::time::Instant::now();
    let work = AssertUnwindSafe(handler.handle(&deliveries).instrument(batch.clone())).catch_unwind();
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                for m in &msgs {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
            }
        }
    };
    let outcomes = match result {
        Ok(outcomes) => outcomes,
        Err(panic) => {
            batch.in_scope(|| {
                error!(
                    stage = stage.name,
                    panic = panic_text(&panic),
                    messages = msgs.len(),
                    "stage panicked on a batch"
                )
            });
            one_by_one(stage, handler, &deliveries).instrument(batch.clone()).await
        }
    };
    let took = started.elapsed().as_secs_f64();
    batch.in_scope(|| debug!(stage = stage.name, messages = msgs.len(), ms = took * 1e3, "batch handled"));
    drop(batch);
    metrics::histogram!(mx::STAGE_BATCH_DURATION, "stage" => stage.name).record(took);
    metrics::histogram!(mx::STAGE_BATCH_SIZE, "stage" => stage.name).record(msgs.len() as f64);
    for (i, msg) in msgs.iter().enumerate() {
        let outcome = outcomes.get(i).cloned().unwrap_or_else(|| Outcome::Retry("stage gave no outcome".into()));
        settle(bus, stage, handler, msg, &deliveries[i], outcome, max_deliver).instrument(spans[i].clone()).await;
    }
}

/// What the spans call a stage's work: `extract`, `embed`, `index`.
fn verb(stage: Stage) -> &'static str {
    match stage.name {
        "extractor" => "extract",
        "embedder" => "embed",
        "indexer" => "index",
        other => other,
    }
}

/// One message's span in the stage, continuing the trace it came with;
/// the org and event from the envelope (never the payload's content).
fn message_span(stage: Stage, d: &Delivery, tracestate: Option<String>, batch_size: usize) -> Span {
    let span = info_span!(
        parent: None,
        "stage event",
        otel.name = format!("{} event", verb(stage)),
        otel.kind = "consumer",
        stage = stage.name,
        org_id = Empty,
        event_id = Empty,
        attempt = d.attempt,
        batch_size,
        trace_id = Empty,
    );
    if let Some((org_id, event_id)) = d.envelope() {
        span.record("org_id", org_id.as_str());
        span.record("event_id", event_id.as_str());
    }
    telemetry::continue_trace(&span, d.traceparent.as_deref(), tracestate.as_deref());
    span
}

/// The span of a batch's shared work: a child of its first message's span,
/// linked both ways with the others', so every event's trace leads to it.
fn batch_span(stage: Stage, messages: &[Span]) -> Span {
    let span = info_span!(
        parent: None,
        "stage batch",
        otel.name = format!("{} batch", verb(stage)),
        stage = stage.name,
        batch_size = messages.len(),
        trace_id = Empty,
    );
    if let Some(first) = messages.first() {
        telemetry::set_parent(&span, first);
    }
    telemetry::record_trace_id(&span);
    for m in messages.iter().skip(1) {
        telemetry::link(&span, m);
        telemetry::link(m, &span);
    }
    span
}

/// After a batch panicked: each message on its own, so that only the one
/// that makes the stage panic is dead-lettered and the others go on.
async fn one_by_one(stage: Stage, handler: &dyn StageHandler, deliveries: &[Delivery]) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let alone = AssertUnwindSafe(handler.handle(std::slice::from_ref(d))).catch_unwind().await;
        outcomes.push(match alone {
            Ok(mut o) if o.len() == 1 => o.remove(0),
            Ok(_) => Outcome::Retry("stage gave no outcome".into()),
            Err(panic) => {
                let what = panic_text(&panic);
                error!(stage = stage.name, panic = what, subject = d.subject, "stage panicked on a message");
                Outcome::Fail(format!("stage panicked: {what}"))
            }
        });
    }
    outcomes
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

async fn settle(
    bus: &Bus,
    stage: Stage,
    handler: &dyn StageHandler,
    msg: &Message,
    d: &Delivery,
    outcome: Outcome,
    max_deliver: i64,
) {
    let reason = match outcome {
        Outcome::Done => {
            settled(stage, "ok");
            if let Err(e) = msg.ack().await {
                // The work is done and idempotent; a redelivery is harmless.
                warn!(stage = stage.name, error = %e, "ack failed");
            }
            return;
        }
        Outcome::Retry(reason) if max_deliver <= 0 || d.attempt < max_deliver => {
            settled(stage, "retry");
            warn!(stage = stage.name, attempt = d.attempt, reason = %reason, "will retry");
            let _ = msg.ack_with(AckKind::Nak(Some(backoff(d.attempt)))).await;
            return;
        }
        Outcome::Backoff(reason) => {
            settled(stage, "backoff");
            warn!(stage = stage.name, attempt = d.attempt, reason = %reason, "dependency unavailable; will retry");
            let _ = msg.ack_with(AckKind::Nak(Some(backoff(d.attempt)))).await;
            return;
        }
        Outcome::Retry(reason) => format!("gave up after {} attempts: {reason}", d.attempt),
        Outcome::Fail(reason) => reason,
    };
    // What the message is about: from its payload, else from its envelope.
    let (org_id, event_ids) =
        handler.events_of(&d.payload).or_else(|| d.envelope().map(|(org, id)| (org, vec![id]))).unwrap_or_default();
    if !event_ids.is_empty() {
        if let Err(e) = handler.mark_failed(&org_id, &event_ids, &format!("{}: {reason}", stage.name)).await {
            warn!(stage = stage.name, error = %e, "could not record the failure; will dead-letter later");
            let _ = msg.ack_with(AckKind::Nak(Some(backoff(d.attempt)))).await;
            return;
        }
    }
    error!(stage = stage.name, org_id, events = ?event_ids, reason = %reason, "dead-lettered");
    let letter = DeadLetter {
        stage: stage.name.into(),
        subject: d.subject.clone(),
        payload: d.payload.to_vec(),
        reason,
        deliveries: d.attempt.max(0) as u64,
        org_id,
        event_ids,
    };
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
    // A stage message is about one event; the first names the letter.
    let event_id = letter.event_ids.first().map(String::as_str).unwrap_or_default();
    let out = OutMessage {
        subject: dlq_subject(stage.name, &letter.org_id, event_id),
        msg_id: format!("dlq:{}:{}", stage.name, seq),
        payload: letter.encode_to_vec().into(),
        traceparent: d.traceparent.clone(),
    };
    match bus.publish_all(vec![out]).await {
        Ok(()) => {
            settled(stage, "dead_letter");
            let _ = msg.ack_with(AckKind::Term).await;
        }
        Err(e) => {
            // Leave it unacked: it comes back and is dead-lettered again once
            // the broker accepts the letter.
            warn!(stage = stage.name, error = %e, "dead letter not stored; will redeliver");
            let _ = msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        }
    }
}

/// Counts a settled message: `ok`, `retry` (failed, attempts left),
/// `backoff` (a dependency is down) or `dead_letter`.
fn settled(stage: Stage, outcome: &'static str) {
    metrics::counter!(mx::STAGE_MESSAGES, "stage" => stage.name, "outcome" => outcome).increment(1);
}

/// Grows with each attempt, capped, so an outage is not hammered.
fn backoff(attempt: i64) -> Duration {
    Duration::from_millis((250u64 << attempt.clamp(0, 7) as u64).min(30_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(subject: &str, msg_id: Option<&str>) -> Delivery {
        Delivery {
            payload: Bytes::from_static(b"\xff"),
            subject: subject.into(),
            msg_id: msg_id.map(Into::into),
            traceparent: None,
            attempt: 1,
        }
    }

    #[test]
    fn the_envelope_names_the_org_and_the_event() {
        let id = "01J00000000000000000000001";
        assert_eq!(delivery("memsy.events.acme", Some(id)).envelope(), Some(("acme".into(), id.into())));
        let e = delivery(&crate::topology::events_subject("acme", id), Some(id)).envelope();
        assert_eq!(e, Some(("acme".into(), id.into())));
        let org = memsy_core::ids::subject_token("a.b c");
        let e = delivery(&format!("memsy.embedded.3.{org}"), Some(&format!("e:{id}"))).envelope();
        assert_eq!(e, Some(("a.b c".into(), id.into())));
        assert_eq!(delivery("memsy.events.acme", Some("x:not-an-id")).envelope(), None);
        assert_eq!(delivery("memsy.events.acme", None).envelope(), None);
    }

    #[test]
    fn a_replayed_message_keeps_its_replay_id_downstream() {
        let id = "01J00000000000000000000001";
        let s = crate::topology::events_subject("acme", id);
        assert_eq!(delivery(&s, Some(id)).output_msg_id("x", id), format!("x:{id}"));
        assert_eq!(delivery(&s, None).output_msg_id("x", id), format!("x:{id}"));
        let replayed = crate::replay_msg_id("r1", id);
        let x = delivery(&s, Some(&replayed)).output_msg_id("x", id);
        assert_eq!(x, format!("x:replay:r1:{id}"));
        // The embedder reads the extractor's output and carries it on.
        assert_eq!(delivery("memsy.extracted.acme", Some(&x)).output_msg_id("e", id), format!("e:replay:r1:{id}"));
        assert_eq!(delivery(&s, Some(&x)).envelope(), Some(("acme".into(), id.into())));
        // A replay id of another event is not taken over.
        assert_eq!(delivery(&s, Some("replay:r1:other")).output_msg_id("x", id), format!("x:{id}"));
    }
}
