//! The storage seam of memsy. [`MemoryStore`] is what the indexer writes
//! and the gateway reads; two implementations pass the same contract tests
//! (`tests/contract.rs`): [`EdgeStore`], the embedded Qdrant engine under the
//! data directory (single-process mode only), and [`QdrantStore`], a Qdrant
//! server through `qdrant-client`. Every call takes the org id and applies
//! it as a filter: tenant isolation is the store's job, never the caller's.

use async_trait::async_trait;
use memsy_core::model::{Memory, StoredEvent};

mod edge;
mod error;
mod qdrant;
mod timed;

pub use edge::EdgeStore;
pub use error::StoreError;
pub use qdrant::QdrantStore;
pub use timed::Timed;

/// How a Qdrant server lays out the collections memsy creates (an existing
/// collection keeps its own layout). See `memsy_core::config::QdrantConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSettings {
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    pub on_disk_vectors: bool,
    pub on_disk_payload: bool,
}

impl Default for CollectionSettings {
    fn default() -> Self {
        (&memsy_core::config::QdrantConfig::default()).into()
    }
}

impl From<&memsy_core::config::QdrantConfig> for CollectionSettings {
    fn from(c: &memsy_core::config::QdrantConfig) -> Self {
        Self {
            shard_number: c.shard_number,
            replication_factor: c.replication_factor,
            write_consistency_factor: c.write_consistency_factor,
            on_disk_vectors: c.on_disk_vectors,
            on_disk_payload: c.on_disk_payload,
        }
    }
}

/// Name of the dense vector of a memory point, in both engines.
const VECTOR_NAME: &str = "dense";

/// Name of the sparse BM25 vector of a memory point (IDF modifier), in both
/// engines. Its weights are computed by [`bm25`] from the memory's text at
/// upsert, so callers never see it.
const SPARSE_NAME: &str = "bm25";

/// Reciprocal rank fusion constant: a hit at 0-based position `p` of one
/// source adds `1 / (RRF_K + p)`. 60 is the usual value (Cormack et al.); the
/// engines' default (2) makes the first few positions of either list dominate.
const RRF_K: usize = 60;

/// Candidates each source of a hybrid search contributes before fusion.
fn prefetch_limit(limit: usize) -> usize {
    3 * limit + 10
}

/// The BM25 model both stores use, so that they tokenise identically (and as
/// a Qdrant server does: English stopwords and stemming, lowercase).
/// `avg_len` is the expected document length in tokens; memories are one or
/// two sentences, far from the engine's default of 256.
fn bm25() -> &'static qdrant_edge::bm25_embed::EdgeBm25 {
    use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
    static MODEL: std::sync::OnceLock<EdgeBm25> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let config = EdgeBm25Config {
            avg_len: qdrant_edge::external::ordered_float::NotNan::new(BM25_AVG_LEN).expect("not NaN"),
            ..EdgeBm25Config::default()
        };
        EdgeBm25::new(config).expect("valid BM25 configuration")
    })
}

/// A memory's text and the message around it (its `context`) are a couple
/// of sentences.
const BM25_AVG_LEN: f64 = 40.0;

/// The text of a memory that BM25 indexes: its own words and those of the
/// message it came from.
fn bm25_document(memory: &Memory) -> qdrant_edge::SparseVector {
    match memory.context.as_deref().filter(|c| !c.is_empty()) {
        Some(context) => bm25().embed_document(&format!("{}\n{context}", memory.text)),
        None => bm25().embed_document(&memory.text),
    }
}

/// The query's BM25 vector; None when it has no indexable term (empty, or
/// only stopwords), in which case the search is dense only.
fn bm25_query(text: Option<&str>) -> Option<qdrant_edge::SparseVector> {
    let v = bm25().embed_query(text?);
    (!v.indices.is_empty()).then_some(v)
}

/// Cosine similarity of two dense vectors (0 if either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// Weight of each source in the fusion: dense, then BM25. Equal weights
/// measured best on LoCoMo (BM25 at 1.5 lost a point of recall@10; see
/// docs/BENCHMARKS.md).
const RRF_WEIGHTS: [f32; 2] = [1.0, 1.0];

/// An RRF score over its maximum (first in both sources), in 0–1.
fn fused_rank(rrf: f32) -> f32 {
    (rrf * RRF_K as f32 / RRF_WEIGHTS.iter().sum::<f32>()).clamp(0.0, 1.0)
}

/// Payload keys that get a keyword index (and that searches filter on).
const INDEXED_FIELDS: [&str; 11] = [
    "org_id",
    "actor_id",
    "session_id",
    "role_id",
    "team_id",
    "scope_level",
    "type",
    "memory_kind",
    "status",
    "kind",
    "slot",
];

/// Points read per page when scanning.
const SCAN_PAGE: usize = 1_000;

/// A memory with its dense vector, as the indexer writes it.
#[derive(Debug, Clone)]
pub struct MemoryPoint {
    pub memory: Memory,
    pub vector: Vec<f32>,
}

/// Who may see what in a search. `org_id` is always applied.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub org_id: String,
    /// None = every actor of the org. Some = that actor's memories, widened
    /// by `role_ids` / `team_ids` (see there).
    pub actor_id: Option<String>,
    /// Restrict to this conversation; memories with no session match too.
    pub session_id: Option<String>,
    /// Everything but this conversation; memories with no session match too.
    pub exclude_session_id: Option<String>,
    /// Role-level memories of these roles are included (issue: promotion).
    /// With `actor_id` set the actor condition is: actor_id = a, OR
    /// scope_level = role with role_id in `role_ids`, OR scope_level = team
    /// with team_id in `team_ids`, OR scope_level = org (org-level knowledge
    /// is every actor's). Without `actor_id` there is no actor condition.
    pub role_ids: Vec<String>,
    /// Team-level memories of these teams are included (as `role_ids`).
    pub team_ids: Vec<String>,
    /// Only memories with this status (normally "active"); None = any.
    pub status: Option<String>,
    /// Further payload keys that must equal these values (`scope_level`,
    /// `role_id`, `team_id`, …), for the indexer's consolidation lookups.
    pub exact: Vec<(String, String)>,
    /// Dense-only searches: leave out hits whose cosine is below this. The
    /// engine applies it while scoring, so a lookup like "anything at 0.88
    /// or more among 100" does not read and decode a hundred payloads to
    /// keep two. Hybrid searches ignore it (their order is not the cosine).
    pub min_score: Option<f32>,
}

/// Which memories a scan reads, for browsing and aggregates. `org_id` is
/// always applied; every other field narrows by equality when set.
#[derive(Debug, Clone, Default)]
pub struct MemoryScan {
    pub org_id: String,
    pub actor_id: Option<String>,
    pub memory_type: Option<String>,
    pub memory_kind: Option<String>,
    pub status: Option<String>,
    pub scope_level: Option<String>,
    pub slot: Option<String>,
}

impl MemoryScan {
    pub fn org(org_id: &str) -> Self {
        Self { org_id: org_id.to_string(), ..Self::default() }
    }

    fn conditions(&self) -> Vec<(&'static str, &str)> {
        let mut c = vec![("org_id", self.org_id.as_str())];
        let optional = [
            ("actor_id", &self.actor_id),
            ("type", &self.memory_type),
            ("memory_kind", &self.memory_kind),
            ("status", &self.status),
            ("scope_level", &self.scope_level),
            ("slot", &self.slot),
        ];
        c.extend(optional.into_iter().filter_map(|(k, v)| v.as_deref().map(|v| (k, v))));
        c
    }
}

/// Which raw events a scan reads; as [`MemoryScan`].
#[derive(Debug, Clone, Default)]
pub struct EventScan {
    pub org_id: String,
    pub actor_id: Option<String>,
    pub session_id: Option<String>,
    pub kind: Option<String>,
}

impl EventScan {
    fn conditions(&self) -> Vec<(&'static str, &str)> {
        let mut c = vec![("org_id", self.org_id.as_str())];
        let optional = [("actor_id", &self.actor_id), ("session_id", &self.session_id), ("kind", &self.kind)];
        c.extend(optional.into_iter().filter_map(|(k, v)| v.as_deref().map(|v| (k, v))));
        c
    }
}

/// What a scan found: at most the cap it was given, and whether more matched.
#[derive(Debug, Clone)]
pub struct Scanned<T> {
    pub items: Vec<T>,
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct SearchHit {
    pub memory: Memory,
    /// Cosine similarity between the query vector and the memory's dense
    /// vector (−1 … 1), whichever source found the memory.
    pub score: f32,
    /// How the store ranked the hit, higher first, in 0–1; hits come in this
    /// order. Dense-only search: the cosine. Hybrid search: the reciprocal
    /// rank fusion score over its maximum (1 = first in both the dense and
    /// the BM25 list; one position lower in one list costs ~0.006–0.008 near
    /// the top). Only meaningful relative to the other hits of the same search.
    pub rank: f32,
}

/// One query of [`MemoryStore::search_dense_ids`].
#[derive(Debug, Clone)]
pub struct DenseQuery {
    pub vector: Vec<f32>,
    pub filter: SearchFilter,
    pub limit: usize,
}

/// A dense lookup's hit without its memory: see [`MemoryStore::search_dense_ids`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredId {
    /// The memory's id as the store keeps it (a canonical UUID string for
    /// memsy's own memories).
    pub memory_id: String,
    /// As [`SearchHit::score`].
    pub score: f32,
}

/// Both stores refuse a vector of the wrong size rather than let the engine fail later.
fn check_dimension(vector: &[f32], dimension: usize) -> Result<(), StoreError> {
    if vector.len() != dimension {
        return Err(StoreError::Invalid(format!(
            "vector has {} dimensions, the store expects {dimension}",
            vector.len()
        )));
    }
    Ok(())
}

/// What a user may change of a stored memory (`PATCH /v1/memories/{id}`);
/// `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEdit {
    pub pinned: Option<bool>,
    pub status: Option<UserStatus>,
    /// When the edit is made (RFC 3339), the memory's new `updated_at`.
    pub at: String,
}

/// The statuses a user may give a memory: `superseded` is the indexer's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Archived,
}

impl UserStatus {
    pub const ALL: [UserStatus; 2] = [UserStatus::Active, UserStatus::Archived];

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Archived => "archived",
        }
    }
}

impl MemoryEdit {
    pub fn apply(&self, m: &mut Memory) {
        if let Some(pinned) = self.pinned {
            m.pinned = pinned;
        }
        if let Some(status) = self.status {
            m.status = status.as_str().into();
        }
        m.updated_at = self.at.clone();
    }
}

/// What [`MemoryStore::erase`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub events: u64,
    pub memories: u64,
}

/// The status a user archived a memory under; the pipeline's rewrites of a
/// memory (reinforcement, supersession, recall counts) leave such a memory alone.
pub const ARCHIVED: &str = "archived";

#[async_trait]
pub trait MemoryStore: Send + Sync + 'static {
    /// Creates collections and payload indexes if missing; idempotent.
    async fn ensure_schema(&self) -> Result<(), StoreError>;

    /// Inserts or replaces memories by `memory_id`.
    async fn upsert_memories(&self, points: &[MemoryPoint]) -> Result<(), StoreError>;

    /// Replaces the stored fields of existing memories (matched by
    /// `memory_id` within their org), leaving their vectors as they are;
    /// ids that are not stored are ignored. What only a user sets is kept:
    /// the stored `pinned`, and an archived memory is not written at all, so
    /// that a rewrite planned before a user's edit cannot undo it.
    async fn replace_memories(&self, memories: &[Memory]) -> Result<(), StoreError>;

    /// Applies `edit` to the memory `memory_id` of `org_id` and answers it
    /// as stored; None when the org holds no such memory.
    async fn edit_memory(&self, org_id: &str, memory_id: &str, edit: &MemoryEdit)
        -> Result<Option<Memory>, StoreError>;

    /// Deletes those of `memory_ids` that `org_id` holds (vectors and all)
    /// and answers their ids; other orgs' and unknown ids are left alone.
    async fn delete_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<String>, StoreError>;

    /// Deletes every raw event and memory of `org_id` whose `actor_id` is
    /// `actor_id` (None: everything the org holds, promoted memories
    /// included) and answers how many of each. Memories promoted from the
    /// actor's have no actor: see the gateway's erasure for those.
    async fn erase(&self, org_id: &str, actor_id: Option<&str>) -> Result<Erased, StoreError>;

    /// `replace_memories(replaces)`, then `upsert_memories(inserts)`, as one
    /// write where the store can make it one (the embedded engine flushes
    /// once instead of twice); the replacements are applied first either way.
    async fn write_memories(&self, replaces: &[Memory], inserts: &[MemoryPoint]) -> Result<(), StoreError> {
        self.replace_memories(replaces).await?;
        self.upsert_memories(inserts).await
    }

    /// Inserts or replaces raw events by `event_id`.
    async fn upsert_events(&self, events: &[StoredEvent]) -> Result<(), StoreError>;

    /// Best memories for a query within `filter`, best first (see
    /// [`SearchHit::rank`]). With `text` (the query as typed) the search is
    /// hybrid: the `limit`-ish nearest by `vector` and the best BM25 matches
    /// of `text`, both within `filter`, fused by reciprocal rank. Without
    /// `text` (or when it has no indexable term) it is dense only, by cosine.
    /// Either way [`SearchHit::score`] is the dense cosine similarity.
    async fn search(
        &self,
        vector: &[f32],
        text: Option<&str>,
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError>;

    /// Dense-only searches (`search` without text), answered in order, as
    /// ids and scores: reading and decoding a hit's stored payload is most
    /// of what a small filtered search costs, and a caller that meets the
    /// same memories again and again (a consolidation plan: every new
    /// memory of a fact finds the same holders) fetches only the ones it
    /// does not hold yet, with [`MemoryStore::get_memories`]. The embedded
    /// engine runs all of them in one blocking call: the hand-off to a
    /// blocking thread and back costs as much as a small filtered search.
    async fn search_dense_ids(&self, queries: &[DenseQuery]) -> Result<Vec<Vec<ScoredId>>, StoreError> {
        let mut answers = Vec::with_capacity(queries.len());
        for q in queries {
            let hits = self.search(&q.vector, None, &q.filter, q.limit).await?;
            answers
                .push(hits.into_iter().map(|h| ScoredId { memory_id: h.memory.memory_id, score: h.score }).collect());
        }
        Ok(answers)
    }

    /// Memories of `org_id` by id; unknown ids and other orgs' ids are absent.
    async fn get_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError>;

    /// Raw events of `org_id` by id; unknown ids and other orgs' ids are absent.
    async fn get_events(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `cap` memories matching `scan`, in no particular order.
    async fn scan_memories(&self, scan: &MemoryScan, cap: usize) -> Result<Scanned<Memory>, StoreError>;

    /// Up to `cap` raw events matching `scan`, in no particular order.
    async fn scan_events(&self, scan: &EventScan, cap: usize) -> Result<Scanned<StoredEvent>, StoreError>;

    /// How many memories `org_id` has (any status).
    async fn count_memories(&self, org_id: &str) -> Result<u64, StoreError>;

    /// Answers when the backing engine is usable (for `/readyz`).
    async fn ready(&self) -> Result<(), StoreError>;
}
