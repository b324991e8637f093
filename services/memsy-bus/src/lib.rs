//! memsy's use of NATS JetStream in one place: the streams and consumers
//! of the pipeline (created idempotently at start), subject naming with
//! tenant ids encoded so they cannot break subjects, durable publishing that
//! waits for the broker's ack, the stage runner every pipeline stage uses
//! (pull, handle, ack only after the output is durable, dead-letter after
//! `max_deliver`), the partitioned runner with its leases (the indexer: one
//! replica at a time per org), key-value buckets for control data, the backlog figures
//! (consumer lag, dead letters) for `/metrics`, the dead letters for
//! operators, what the broker's records say of an event whose status
//! was lost, an org's retained events sent through the pipeline again, and
//! erasure: its markers and the deletion of messages.

mod backlog;
mod bus;
mod dead_letters;
mod erasures;
mod error;
pub mod lease;
mod partitioned;
mod records;
mod replay;
mod scrub;
mod stage;
pub mod topology;

pub use backlog::spawn_backlog_gauges;
pub use bus::{Bus, OutMessage};
pub use dead_letters::StoredLetter;
pub use erasures::{Erasures, OrgErasures};
pub use error::BusError;
pub use lease::Leases;
pub use partitioned::run_partitioned_stage;
pub use records::EventRecord;
pub use replay::{replay_msg_id, RetainedEvent, RetainedEvents};
pub use scrub::Scrubbed;
pub use stage::{run_stage, Batching, Delivery, Outcome, StageHandler, GATHER_WAITS, REPLAY_PREFIX};
