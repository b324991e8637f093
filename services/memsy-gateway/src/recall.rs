//! Recall reinforcement: every memory a search returns grows a little
//! stronger (bounded by 5.0), counts the recall and remembers when. The
//! search itself only drops the ids into a channel; a background worker
//! gathers them for a moment and writes them in one store call, so search
//! latency does not grow with it.
//!
//! Best effort by design: a full channel or a store error loses a recall
//! (logged), never a search. A recall and a consolidation write that land on
//! the same memory at the same instant can overwrite each other's fields.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use memsy_core::model::MAX_STRENGTH;
use memsy_store::MemoryStore;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Recalls waiting to be written, at most (beyond it they are dropped).
const QUEUE: usize = 10_000;
/// How long the worker gathers recalls before writing them.
const GATHER: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Recalls {
    tx: mpsc::Sender<(String, Vec<String>)>,
}

impl Recalls {
    /// The recorder and its worker; `step` is the strength a recall adds.
    /// The caller runs the worker; it ends (dropping its store) once every
    /// clone of the recorder is gone, so a server that waits for it shuts
    /// down with nothing still holding the store.
    pub fn new(
        store: Arc<dyn MemoryStore>,
        step: f32,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, worker(store, step, rx))
    }

    /// Notes that `memory_ids` of `org_id` were returned by a search.
    pub fn record(&self, org_id: &str, memory_ids: Vec<String>) {
        if memory_ids.is_empty() {
            return;
        }
        if self.tx.try_send((org_id.to_string(), memory_ids)).is_err() {
            warn!(org_id, "recall queue full; a recall is not counted");
        }
    }
}

async fn worker(store: Arc<dyn MemoryStore>, step: f32, mut rx: mpsc::Receiver<(String, Vec<String>)>) {
    while let Some(first) = rx.recv().await {
        // org → id → times recalled in this round.
        let mut round: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut add = |(org, ids): (String, Vec<String>)| {
            let per_org = round.entry(org).or_default();
            for id in ids.into_iter().collect::<BTreeSet<_>>() {
                *per_org.entry(id).or_default() += 1;
            }
        };
        add(first);
        let deadline = tokio::time::Instant::now() + GATHER;
        while let Ok(Some(more)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            add(more);
        }
        for (org, counts) in round {
            if let Err(e) = apply(store.as_ref(), &org, &counts, step).await {
                warn!(org_id = org, error = %e, recalls = counts.len(), "recording recalls failed");
            }
        }
    }
}

async fn apply(
    store: &dyn MemoryStore,
    org_id: &str,
    counts: &BTreeMap<String, u64>,
    step: f32,
) -> Result<(), memsy_store::StoreError> {
    let ids: Vec<String> = counts.keys().cloned().collect();
    let now = Utc::now();
    let stamp = memsy_core::time::format_rfc3339(now);
    let mut memories = store.get_memories(org_id, &ids).await?;
    for m in &mut memories {
        let n = counts.get(&m.memory_id).copied().unwrap_or(1);
        // Growth starts from today's (decayed) strength, so an old memory
        // recalled again comes back, but not from where it was.
        m.strength = (m.effective_strength(now) + step * n as f32).min(MAX_STRENGTH);
        m.recall_count += n;
        m.last_recalled_at = Some(stamp.clone());
    }
    debug!(org_id, memories = memories.len(), "recalls recorded");
    store.replace_memories(&memories).await
}
