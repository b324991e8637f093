//! [`EdgeStore`]: the embedded Qdrant engine (`qdrant-edge`) under the data
//! directory, for single-process deployments.
//!
//! Two shards live under the directory: `memories` (a named dense vector,
//! cosine, and a named sparse BM25 vector with the IDF modifier) and
//! `events` (payload only). A `memories` shard written before the BM25
//! vector existed is migrated when opened: the sparse vector is added to its
//! segments and every stored memory gets its BM25 weights (one flush). Every `EdgeShard` method is
//! synchronous and may touch the disk, so each call runs on tokio's blocking
//! pool with an `Arc` of the shard.
//!
//! Durability: `EdgeShard::load` does not replay the WAL into the segments,
//! so an operation is only safe once the segments themselves are flushed.
//! Every write therefore ends with `EdgeShard::flush` (WAL + all segments,
//! fsync) before it reports success: ~0.15 s per call on a dev machine,
//! whatever the batch size, so callers should batch.
//!
//! Known limits of qdrant-edge 0.7.2: it never truncates its WAL (disk use
//! grows with every write until the engine gains WAL acks), no optimizer
//! runs unless `EdgeShard::optimize` is called (all points stay in one
//! plain appendable segment, i.e. exact search), and dropping a shard
//! flushes with `expect`, so a vanished data directory panics on drop.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use memsy_core::ids::event_point_id;
use memsy_core::model::{Memory, StoredEvent};
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, CreateVectorName, Distance, EdgeConfig, EdgeShard,
    EdgeSparseVectorParams, EdgeVectorParams, FieldCondition, FieldIndexOperations, Filter, Fusion, IsEmptyCondition,
    IsNullCondition, JsonPath, Match, Modifier, NamedQuery, OperationError, Payload, PayloadFieldSchema, PayloadOps,
    PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStructPersisted, PointVectorsPersisted,
    Prefetch, QueryEnum, QueryRequest, ScoredPoint, ScoringQuery, ScrollRequest, SetPayloadOp, SparseVectorConfig,
    UpdateOperation, UpdateVectorsOp, ValueVariants, VectorInternal, VectorNameConfig, VectorNameOperations,
    VectorOperations, VectorPersisted, VectorStructInternal, VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    bm25_document, bm25_query, cosine, fused_rank, prefetch_limit, DenseQuery, Erased, EventScan, MemoryEdit,
    MemoryPoint, MemoryScan, MemoryStore, Scanned, ScoredId, SearchFilter, SearchHit, StoreError, ARCHIVED,
    INDEXED_FIELDS, RRF_K, RRF_WEIGHTS, SCAN_PAGE, SPARSE_NAME, VECTOR_NAME,
};

/// A shard plus the lock that serialises its writers. `EdgeShard::flush`
/// takes the WAL lock with `try_lock().expect(..)`, i.e. it panics instead of
/// waiting when an `update` runs concurrently; holding `writes` around every
/// update-and-flush keeps the two apart. Readers need no lock.
struct Shard {
    engine: EdgeShard,
    writes: Mutex<()>,
}

impl Shard {
    /// Applies `ops` in order, then flushes, so that Ok means on disk.
    fn write(&self, ops: Vec<UpdateOperation>) -> Result<(), StoreError> {
        self.write_planned(|_| Ok((ops, ())))
    }

    /// Plans the operations under the writers' lock, then applies and
    /// flushes them: what a plan read cannot change before it is written
    /// (a user's edit and the indexer's rewrite of one memory serialise).
    /// Nothing planned: no flush.
    fn write_planned<T>(
        &self,
        plan: impl FnOnce(&EdgeShard) -> Result<(Vec<UpdateOperation>, T), StoreError>,
    ) -> Result<T, StoreError> {
        // A poisoned lock only means an earlier writer panicked; the engine
        // state is still whatever the WAL and segments say, so carry on.
        let _guard = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let (ops, out) = plan(&self.engine)?;
        if ops.is_empty() {
            return Ok(out);
        }
        for op in ops {
            self.engine.update(op).map_err(engine_error)?;
        }
        // Panics on I/O failure (it `expect`s); the panic surfaces as a
        // JoinError from `spawn_blocking`, which `blocking` maps to Unavailable.
        self.engine.flush();
        Ok(out)
    }

    /// Keyword indexes on [`INDEXED_FIELDS`]. Only missing ones are created:
    /// every write ends in a full flush, which an idempotent start
    /// should not pay. (Creating an existing index would be a no-op anyway.)
    fn ensure_indexes(&self) -> Result<(), StoreError> {
        let existing = self.engine.info().payload_schema;
        let mut ops = Vec::new();
        for field in INDEXED_FIELDS {
            let field_name = path(field)?;
            if existing.contains_key(&field_name) {
                continue;
            }
            ops.push(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                field_name,
                field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
            })));
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.write(ops)
    }
}

/// Embedded store; cheap to share behind an `Arc`.
pub struct EdgeStore {
    memories: Arc<Shard>,
    events: Arc<Shard>,
    dimension: usize,
}

impl EdgeStore {
    /// The insert (or replacement) of `points`, vectors and BM25 weights included.
    fn upsert_memories_op(&self, points: &[MemoryPoint]) -> Result<Option<UpdateOperation>, StoreError> {
        if points.is_empty() {
            return Ok(None);
        }
        let mut persisted = Vec::with_capacity(points.len());
        for point in points {
            self.check_dimension(&point.vector)?;
            let id = Uuid::parse_str(&point.memory.memory_id)
                .map_err(|_| StoreError::Invalid(format!("memory_id {:?} is not a UUID", point.memory.memory_id)))?;
            persisted.push(PointStructPersisted {
                id: PointId::Uuid(id),
                vector: VectorStructPersisted::Named(
                    [
                        (VECTOR_NAME.to_string(), VectorPersisted::Dense(point.vector.clone())),
                        (SPARSE_NAME.to_string(), VectorPersisted::Sparse(bm25_document(&point.memory))),
                    ]
                    .into(),
                ),
                payload: Some(to_payload(&point.memory)?),
            });
        }
        Ok(Some(upsert_op(persisted)))
    }

    /// Opens (or creates) the shards under `dir`. Reopening with a different
    /// `dimension` fails: the stored vectors cannot be reinterpreted.
    pub fn open(dir: &Path, dimension: usize) -> Result<Self, StoreError> {
        if dimension == 0 {
            return Err(StoreError::Invalid("vector dimension must be positive".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;

        let memories_config = EdgeConfig::builder()
            .vector(VECTOR_NAME, EdgeVectorParams::builder(dimension, Distance::Cosine).build())
            .sparse_vector(SPARSE_NAME, EdgeSparseVectorParams::builder().modifier(Modifier::Idf).build())
            .build();
        // Events are only ever fetched by id, so they carry no vector at all;
        // the engine accepts a shard with an empty vector map.
        let events_config = EdgeConfig::builder().build();

        Ok(Self {
            memories: Arc::new(open_memories(&dir.join("memories"), memories_config, dimension)?),
            events: Arc::new(open_shard(&dir.join("events"), events_config)?),
            dimension,
        })
    }

    fn check_dimension(&self, vector: &[f32]) -> Result<(), StoreError> {
        crate::check_dimension(vector, self.dimension)
    }

    async fn get_memories_any_org(&self, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError> {
        let ids = memory_ids.to_vec();
        blocking(&self.memories, move |s| stored_memories(&s.engine, &ids)).await
    }
}

/// The stored memories of `memory_ids` (any org), read synchronously so
/// that a write can plan under its lock; unknown and malformed ids are absent.
fn stored_memories(engine: &EdgeShard, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError> {
    let ids: Vec<PointId> = memory_ids.iter().filter_map(|id| Uuid::parse_str(id).ok()).map(PointId::Uuid).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let records = engine
        .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), Some(WithVector::Bool(false)))
        .map_err(engine_error)?;
    records.into_iter().map(|r| from_payload(r.payload)).collect()
}

/// Payload overwrites for those of `memories` stored under their org and
/// not archived, each keeping the stored `pinned` (see
/// [`MemoryStore::replace_memories`]). The engine applies an overwrite to
/// the listed ids only (a filter next to them is ignored) and fails on an
/// unknown id: so the stored points are read first.
fn replace_ops(engine: &EdgeShard, memories: &[Memory]) -> Result<Vec<UpdateOperation>, StoreError> {
    if memories.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = memories.iter().map(|m| m.memory_id.clone()).collect();
    let stored: std::collections::HashMap<String, Memory> =
        stored_memories(engine, &ids)?.into_iter().map(|m| (m.memory_id.clone(), m)).collect();
    let mut ops = Vec::with_capacity(memories.len());
    for m in memories {
        let Some(held) = stored.get(&m.memory_id) else { continue };
        if held.org_id != m.org_id || held.status == ARCHIVED {
            continue;
        }
        let m = Memory { pinned: held.pinned, ..m.clone() };
        ops.push(overwrite_op(&m)?);
    }
    Ok(ops)
}

fn overwrite_op(m: &Memory) -> Result<UpdateOperation, StoreError> {
    let id = Uuid::parse_str(&m.memory_id)
        .map_err(|_| StoreError::Invalid(format!("memory_id {:?} is not a UUID", m.memory_id)))?;
    Ok(UpdateOperation::PayloadOperation(PayloadOps::OverwritePayload(SetPayloadOp {
        payload: to_payload(m)?,
        points: Some(vec![PointId::Uuid(id)]),
        filter: None,
        key: None,
    })))
}

fn open_shard(path: &Path, config: impl Into<Option<EdgeConfig>>) -> Result<Shard, StoreError> {
    let config = config.into();
    // `EdgeShard::new` writes `edge_config.json` before any segment, so its
    // presence marks a shard that exists (possibly only partly created,
    // which `load` completes); `new` refuses a directory with segments. Passing the config to `load` makes the engine
    // check it against the stored segments (dimension, distance).
    let engine = match config {
        Some(config) if !path.join("edge_config.json").exists() => {
            std::fs::create_dir_all(path).map_err(|e| io_error(path, e))?;
            EdgeShard::new(path, config)
        }
        config => EdgeShard::load(path, config),
    }
    .map_err(|e| StoreError::Unavailable(format!("opening shard {}: {e}", path.display())))?;
    Ok(Shard { engine, writes: Mutex::new(()) })
}

/// Opens the `memories` shard. A new one gets `config`. An existing one is
/// loaded with its own stored config, which must have the dense vector at
/// `dimension` (cosine); if it predates the BM25 vector, it is migrated in
/// place (see the module docs). Any other mismatch is an error naming it.
fn open_memories(path: &Path, config: EdgeConfig, dimension: usize) -> Result<Shard, StoreError> {
    if !path.join("edge_config.json").exists() {
        return open_shard(path, config);
    }
    let shard = open_shard(path, None)?;
    let (dense, sparse) = {
        let stored = shard.engine.config();
        (stored.vectors.get(VECTOR_NAME).cloned(), stored.sparse_vectors.get(SPARSE_NAME).cloned())
    };
    let Some(dense) = dense else {
        return Err(StoreError::Corrupt(format!("shard {} has no {VECTOR_NAME:?} vector", path.display())));
    };
    if dense.size != dimension || dense.distance != Distance::Cosine {
        return Err(StoreError::Invalid(format!(
            "shard {} stores {}-dimensional {:?} vectors; this model needs {dimension}-dimensional Cosine ones \
             (use a new data directory or the model the data was written with)",
            path.display(),
            dense.size,
            dense.distance
        )));
    }
    match sparse {
        Some(p) if p.modifier == Some(Modifier::Idf) => Ok(shard),
        Some(p) => Err(StoreError::Corrupt(format!(
            "shard {}: sparse vector {SPARSE_NAME:?} has modifier {:?}, expected Idf",
            path.display(),
            p.modifier
        ))),
        None => {
            add_bm25(&shard).map_err(|e| {
                StoreError::Unavailable(format!("adding the BM25 vector to shard {}: {e}", path.display()))
            })?;
            Ok(shard)
        }
    }
}

/// Migration: creates the sparse vector in every segment (the engine also
/// rewrites `edge_config.json`), then writes each stored memory's BM25
/// weights, all under one writer lock and one flush. Not crash-atomic: the
/// engine saves the config at once, so a crash before the flush leaves a
/// config naming a vector the segments lack, which the next open reports as
/// an incompatible segment (restore the directory from a backup, or delete
/// `edge_config.json` so that the config is inferred from the segments and
/// the migration runs again).
fn add_bm25(shard: &Shard) -> Result<(), StoreError> {
    let mut ops =
        vec![UpdateOperation::VectorNameOperation(VectorNameOperations::CreateVectorName(CreateVectorName {
            vector_name: SPARSE_NAME.into(),
            config: VectorNameConfig::sparse(SparseVectorConfig { modifier: Some(Modifier::Idf), datatype: None }),
        }))];
    let mut offset = None;
    let mut migrated = 0usize;
    loop {
        let request = ScrollRequest {
            offset,
            limit: Some(SCAN_PAGE),
            filter: None,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(false),
            order_by: None,
        };
        let (records, next) = shard.engine.scroll(request).map_err(engine_error)?;
        let mut points = Vec::with_capacity(records.len());
        for r in records {
            let memory: Memory = from_payload(r.payload)?;
            points.push(PointVectorsPersisted {
                id: r.id,
                vector: VectorStructPersisted::Named(
                    [(SPARSE_NAME.to_string(), VectorPersisted::Sparse(bm25_document(&memory)))].into(),
                ),
            });
        }
        migrated += points.len();
        if !points.is_empty() {
            ops.push(UpdateOperation::VectorOperation(VectorOperations::UpdateVectors(UpdateVectorsOp {
                points,
                update_filter: None,
            })));
        }
        match next {
            Some(id) => offset = Some(id),
            None => break,
        }
    }
    shard.write(ops)?;
    tracing::info!(memories = migrated, "added the BM25 vector to the memories shard");
    Ok(())
}

/// Runs `f` on the blocking pool. A panic inside the engine (it `expect`s
/// on some I/O paths) becomes `Unavailable` rather than taking the caller down.
async fn blocking<T, F>(shard: &Arc<Shard>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Shard) -> Result<T, StoreError> + Send + 'static,
{
    let shard = Arc::clone(shard);
    tokio::task::spawn_blocking(move || f(&shard))
        .await
        .map_err(|e| StoreError::Unavailable(format!("edge engine task failed: {e}")))?
}

#[async_trait]
impl MemoryStore for EdgeStore {
    async fn ensure_schema(&self) -> Result<(), StoreError> {
        blocking(&self.memories, Shard::ensure_indexes).await?;
        blocking(&self.events, Shard::ensure_indexes).await
    }

    async fn upsert_memories(&self, points: &[MemoryPoint]) -> Result<(), StoreError> {
        self.write_memories(&[], points).await
    }

    async fn replace_memories(&self, memories: &[Memory]) -> Result<(), StoreError> {
        self.write_memories(memories, &[]).await
    }

    /// One shard write, so one flush, for both: the flush is most of what a
    /// write costs, whatever its size.
    async fn write_memories(&self, replaces: &[Memory], inserts: &[MemoryPoint]) -> Result<(), StoreError> {
        let upsert = self.upsert_memories_op(inserts)?;
        if replaces.is_empty() && upsert.is_none() {
            return Ok(());
        }
        let replaces = replaces.to_vec();
        blocking(&self.memories, move |s| {
            s.write_planned(|engine| {
                let mut ops = replace_ops(engine, &replaces)?;
                ops.extend(upsert);
                Ok((ops, ()))
            })
        })
        .await
    }

    async fn edit_memory(
        &self,
        org_id: &str,
        memory_id: &str,
        edit: &MemoryEdit,
    ) -> Result<Option<Memory>, StoreError> {
        let (org_id, memory_id, edit) = (org_id.to_string(), memory_id.to_string(), edit.clone());
        blocking(&self.memories, move |s| {
            s.write_planned(|engine| {
                let held = stored_memories(engine, std::slice::from_ref(&memory_id))?;
                let Some(mut m) = held.into_iter().find(|m| m.org_id == org_id) else {
                    return Ok((Vec::new(), None));
                };
                edit.apply(&mut m);
                Ok((vec![overwrite_op(&m)?], Some(m)))
            })
        })
        .await
    }

    async fn delete_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let (org_id, memory_ids) = (org_id.to_string(), memory_ids.to_vec());
        blocking(&self.memories, move |s| {
            s.write_planned(|engine| {
                let held: Vec<Memory> =
                    stored_memories(engine, &memory_ids)?.into_iter().filter(|m| m.org_id == org_id).collect();
                if held.is_empty() {
                    return Ok((Vec::new(), Vec::new()));
                }
                let ids = held.iter().filter_map(|m| Uuid::parse_str(&m.memory_id).ok()).map(PointId::Uuid).collect();
                let op = UpdateOperation::PointOperation(PointOperations::DeletePoints { ids });
                Ok((vec![op], held.into_iter().map(|m| m.memory_id).collect()))
            })
        })
        .await
    }

    async fn erase(&self, org_id: &str, actor_id: Option<&str>) -> Result<Erased, StoreError> {
        let mut conditions = vec![("org_id", org_id)];
        conditions.extend(actor_id.map(|a| ("actor_id", a)));
        let filter = equality_filter(&conditions)?;
        let events_filter = filter.clone();
        let memories = blocking(&self.memories, move |s| delete_matching(s, filter)).await?;
        let events = blocking(&self.events, move |s| delete_matching(s, events_filter)).await?;
        Ok(Erased { events, memories })
    }

    async fn upsert_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut persisted = Vec::with_capacity(events.len());
        for event in events {
            let id = event_point_id(&event.event_id)
                .ok_or_else(|| StoreError::Invalid(format!("event_id {:?} is not a ULID", event.event_id)))?;
            persisted.push(PointStructPersisted {
                id: PointId::Uuid(id),
                vector: VectorStructPersisted::Named(Default::default()),
                payload: Some(to_payload(event)?),
            });
        }
        let op = upsert_op(persisted);
        blocking(&self.events, move |s| s.write(vec![op])).await
    }

    async fn search(
        &self,
        vector: &[f32],
        text: Option<&str>,
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.check_dimension(vector)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(sparse) = bm25_query(text) else {
            let request = dense_request(vector, filter, limit, true)?;
            let points = blocking(&self.memories, move |s| s.engine.query(request).map_err(engine_error)).await?;
            return dense_hits(points);
        };
        let filter = search_filter(filter)?;
        let dense = dense_query(vector);
        let sparse =
            ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(VectorInternal::Sparse(sparse), SPARSE_NAME)));
        let prefetch = |query| Prefetch {
            prefetches: Vec::new(),
            query: Some(query),
            limit: prefetch_limit(limit),
            params: None,
            filter: Some(filter.clone()),
            score_threshold: None,
        };
        let request = QueryRequest {
            prefetches: vec![prefetch(dense), prefetch(sparse)],
            query: Some(ScoringQuery::Fusion(Fusion::Rrf {
                k: RRF_K,
                weights: Some(
                    RRF_WEIGHTS.iter().map(|&w| qdrant_edge::external::ordered_float::OrderedFloat(w)).collect(),
                ),
            })),
            filter: Some(filter.clone()),
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Selector(vec![VECTOR_NAME.into()]),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = blocking(&self.memories, move |s| s.engine.query(request).map_err(engine_error)).await?;
        points.into_iter().map(|p| fused_hit(p, vector)).collect()
    }

    async fn search_dense_ids(&self, queries: &[DenseQuery]) -> Result<Vec<Vec<ScoredId>>, StoreError> {
        let mut requests = Vec::with_capacity(queries.len());
        for q in queries {
            self.check_dimension(&q.vector)?;
            requests.push(dense_request(&q.vector, &q.filter, q.limit, false)?);
        }
        blocking(&self.memories, move |s| {
            requests
                .into_iter()
                .map(|r| {
                    if r.limit == 0 {
                        return Ok(Vec::new());
                    }
                    let points = s.engine.query(r).map_err(engine_error)?;
                    Ok(points.into_iter().map(|p| ScoredId { memory_id: p.id.to_string(), score: p.score }).collect())
                })
                .collect()
        })
        .await
    }

    async fn get_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError> {
        let memories = self.get_memories_any_org(memory_ids).await?;
        Ok(memories.into_iter().filter(|m| m.org_id == org_id).collect())
    }

    async fn get_events(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
        let ids: Vec<PointId> = event_ids.iter().filter_map(|id| event_point_id(id)).map(PointId::Uuid).collect();
        let events: Vec<StoredEvent> = retrieve(&self.events, ids).await?;
        Ok(events.into_iter().filter(|e| e.org_id == org_id).collect())
    }

    async fn scan_memories(&self, scan: &MemoryScan, cap: usize) -> Result<Scanned<Memory>, StoreError> {
        scan_shard(&self.memories, equality_filter(&scan.conditions())?, cap).await
    }

    async fn scan_events(&self, scan: &EventScan, cap: usize) -> Result<Scanned<StoredEvent>, StoreError> {
        scan_shard(&self.events, equality_filter(&scan.conditions())?, cap).await
    }

    async fn count_memories(&self, org_id: &str) -> Result<u64, StoreError> {
        let request = CountRequest { filter: Some(Filter::new_must(keyword("org_id", org_id)?)), exact: true };
        let n = blocking(&self.memories, move |s| s.engine.count(request).map_err(engine_error)).await?;
        Ok(n as u64)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        // The shards are opened in `open`; there is no connection to lose.
        // `info` only reads in-memory segment metadata.
        blocking(&self.memories, |s| {
            s.engine.info();
            Ok(())
        })
        .await
    }
}

fn dense_query(vector: &[f32]) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(VectorInternal::Dense(vector.to_vec()), VECTOR_NAME)))
}

/// The `limit` nearest memories within `filter` (at `filter.min_score` or
/// more), with their payloads or as ids and scores only.
fn dense_request(
    vector: &[f32],
    filter: &SearchFilter,
    limit: usize,
    with_payload: bool,
) -> Result<QueryRequest, StoreError> {
    Ok(QueryRequest {
        prefetches: Vec::new(),
        query: Some(dense_query(vector)),
        filter: Some(search_filter(filter)?),
        score_threshold: filter.min_score.map(qdrant_edge::external::ordered_float::OrderedFloat),
        limit,
        offset: 0,
        params: None,
        with_vector: WithVector::Bool(false),
        with_payload: WithPayloadInterface::Bool(with_payload),
    })
}

fn dense_hits(points: Vec<ScoredPoint>) -> Result<Vec<SearchHit>, StoreError> {
    points
        .into_iter()
        .map(|p| Ok(SearchHit { memory: from_payload(p.payload)?, score: p.score, rank: p.score }))
        .collect()
}

/// A fused point as a hit: its dense cosine to `query` as the score.
fn fused_hit(p: ScoredPoint, query: &[f32]) -> Result<SearchHit, StoreError> {
    let dense = match &p.vector {
        Some(VectorStructInternal::Named(map)) => match map.get(VECTOR_NAME) {
            Some(VectorInternal::Dense(v)) => Some(v.as_slice()),
            _ => None,
        },
        Some(VectorStructInternal::Single(v)) => Some(v.as_slice()),
        _ => None,
    };
    let dense = dense.ok_or_else(|| StoreError::Corrupt("a search hit came back without its dense vector".into()))?;
    Ok(SearchHit { score: cosine(query, dense), rank: fused_rank(p.score), memory: from_payload(p.payload)? })
}

/// Point ids → decoded payloads, in request order; unknown ids are absent.
async fn retrieve<T>(shard: &Arc<Shard>, ids: Vec<PointId>) -> Result<Vec<T>, StoreError>
where
    T: DeserializeOwned + Send + 'static,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let records = blocking(shard, move |s| {
        s.engine
            .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), Some(WithVector::Bool(false)))
            .map_err(engine_error)
    })
    .await?;
    records.into_iter().map(|r| from_payload(r.payload)).collect()
}

/// Pages through `filter`'s points by id until `cap` are read; one more
/// than the cap is asked for so that `truncated` is exact.
async fn scan_shard<T>(shard: &Arc<Shard>, filter: Filter, cap: usize) -> Result<Scanned<T>, StoreError>
where
    T: DeserializeOwned + Send + 'static,
{
    let mut items = Vec::new();
    let mut offset = None;
    loop {
        let want = (cap + 1 - items.len()).min(SCAN_PAGE);
        let request = ScrollRequest {
            offset,
            limit: Some(want),
            filter: Some(filter.clone()),
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Bool(false),
            order_by: None,
        };
        let (records, next) = blocking(shard, move |s| s.engine.scroll(request).map_err(engine_error)).await?;
        for r in records {
            items.push(from_payload(r.payload)?);
        }
        if items.len() > cap {
            items.truncate(cap);
            return Ok(Scanned { items, truncated: true });
        }
        match next {
            Some(id) => offset = Some(id),
            None => return Ok(Scanned { items, truncated: false }),
        }
    }
}

/// Deletes the points matching `filter` and answers how many there were,
/// counted under the writers' lock so that the figure is what was deleted.
fn delete_matching(shard: &Shard, filter: Filter) -> Result<u64, StoreError> {
    shard.write_planned(|engine| {
        let n = engine.count(CountRequest { filter: Some(filter.clone()), exact: true }).map_err(engine_error)?;
        if n == 0 {
            return Ok((Vec::new(), 0));
        }
        let op = UpdateOperation::PointOperation(PointOperations::DeletePointsByFilter(filter));
        Ok((vec![op], n as u64))
    })
}

/// Every `(key, value)` must match exactly.
fn equality_filter(conditions: &[(&str, &str)]) -> Result<Filter, StoreError> {
    let must = conditions.iter().map(|(k, v)| keyword(k, v)).collect::<Result<Vec<_>, _>>()?;
    Ok(Filter { must: Some(must), ..Filter::new() })
}

fn upsert_op(points: Vec<PointStructPersisted>) -> UpdateOperation {
    UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)))
}

/// The Qdrant filter for a search; see [`SearchFilter`] for the semantics.
fn search_filter(f: &SearchFilter) -> Result<Filter, StoreError> {
    let mut must = vec![keyword("org_id", &f.org_id)?];
    let mut must_not = Vec::new();

    if let Some(status) = &f.status {
        must.push(keyword("status", status)?);
    }
    for (k, v) in &f.exact {
        must.push(keyword(k, v)?);
    }
    if let Some(actor) = &f.actor_id {
        let mut eligible = vec![keyword("actor_id", actor)?];
        // Role/team membership widens the actor condition (see `SearchFilter`).
        if !f.role_ids.is_empty() {
            eligible.push(all_of(vec![keyword("scope_level", "role")?, any_keyword("role_id", &f.role_ids)?]));
        }
        if !f.team_ids.is_empty() {
            eligible.push(all_of(vec![keyword("scope_level", "team")?, any_keyword("team_id", &f.team_ids)?]));
        }
        // Org-level knowledge belongs to every actor of the org.
        eligible.push(keyword("scope_level", "org")?);
        must.push(any_of(eligible));
    }
    if let Some(session) = &f.session_id {
        // A `None` session is stored as JSON null; an older or hand-written
        // payload may lack the key. `is_null` covers the first, `is_empty`
        // the second (and null too), both kept for clarity.
        let key = path("session_id")?;
        must.push(any_of(vec![
            keyword("session_id", session)?,
            Condition::IsNull(IsNullCondition::from(key.clone())),
            Condition::IsEmpty(IsEmptyCondition::from(key)),
        ]));
    }
    if let Some(session) = &f.exclude_session_id {
        // must_not(==) keeps points whose session is null or missing.
        must_not.push(keyword("session_id", session)?);
    }

    Ok(Filter {
        should: None,
        min_should: None,
        must: Some(must),
        must_not: (!must_not.is_empty()).then_some(must_not),
    })
}

fn path(key: &str) -> Result<JsonPath, StoreError> {
    key.parse().map_err(|()| StoreError::Invalid(format!("invalid payload key {key:?}")))
}

fn keyword(key: &str, value: &str) -> Result<Condition, StoreError> {
    Ok(Condition::Field(FieldCondition::new_match(
        path(key)?,
        Match::new_value(ValueVariants::String(value.to_string())),
    )))
}

fn any_keyword(key: &str, values: &[String]) -> Result<Condition, StoreError> {
    Ok(Condition::Field(FieldCondition::new_match(
        path(key)?,
        Match::new_any(AnyVariants::Strings(values.iter().cloned().collect())),
    )))
}

fn all_of(conditions: Vec<Condition>) -> Condition {
    Condition::Filter(Filter { must: Some(conditions), ..Filter::new() })
}

fn any_of(conditions: Vec<Condition>) -> Condition {
    Condition::Filter(Filter { should: Some(conditions), ..Filter::new() })
}

fn to_payload<T: Serialize>(record: &T) -> Result<Payload, StoreError> {
    match serde_json::to_value(record) {
        Ok(serde_json::Value::Object(map)) => Ok(Payload(map)),
        Ok(_) => Err(StoreError::Invalid("record does not serialise to a JSON object".into())),
        Err(e) => Err(StoreError::Invalid(format!("serialising payload: {e}"))),
    }
}

fn from_payload<T: DeserializeOwned>(payload: Option<Payload>) -> Result<T, StoreError> {
    let Payload(map) = payload.ok_or_else(|| StoreError::Corrupt("point has no payload".into()))?;
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn engine_error(e: OperationError) -> StoreError {
    match e {
        OperationError::WrongVectorDimension { .. }
        | OperationError::VectorNameNotExists { .. }
        | OperationError::TypeError { .. }
        | OperationError::TypeInferenceError { .. }
        | OperationError::ValidationError { .. }
        | OperationError::WrongSparse
        | OperationError::WrongMulti => StoreError::Invalid(e.to_string()),
        OperationError::InconsistentStorage { .. } => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `memories` shard as written before hybrid search (dense vector
    /// only) is migrated on open: its memories become findable by keyword.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_shard_gains_bm25_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = memsy_testkit::sample_memory("org", "alice", "The safe word is Zanzibar.", "2026-01-01T00:00:00Z");
        m.memory_id = Uuid::new_v4().to_string();
        let mut others = Vec::new();
        {
            let old_config = EdgeConfig::builder()
                .vector(VECTOR_NAME, EdgeVectorParams::builder(4, Distance::Cosine).build())
                .build();
            let shard = open_shard(&dir.path().join("memories"), old_config).unwrap();
            let mut points = vec![PointStructPersisted {
                id: PointId::Uuid(Uuid::parse_str(&m.memory_id).unwrap()),
                vector: VectorStructPersisted::Named(
                    [(VECTOR_NAME.to_string(), VectorPersisted::Dense(vec![-1.0, 0.0, 0.0, 0.0]))].into(),
                ),
                payload: Some(to_payload(&m).unwrap()),
            }];
            for i in 0..5 {
                let o = memsy_testkit::sample_memory("org", "alice", &format!("tea {i}"), "2026-01-01T00:00:00Z");
                points.push(PointStructPersisted {
                    id: PointId::Uuid(Uuid::parse_str(&o.memory_id).unwrap()),
                    vector: VectorStructPersisted::Named(
                        [(VECTOR_NAME.to_string(), VectorPersisted::Dense(vec![1.0, i as f32 * 0.1, 0.0, 0.0]))].into(),
                    ),
                    payload: Some(to_payload(&o).unwrap()),
                });
                others.push(o);
            }
            shard.write(vec![upsert_op(points)]).unwrap();
        }
        let filter = SearchFilter { org_id: "org".into(), ..SearchFilter::default() };
        for _ in 0..2 {
            // Twice: the second open finds the vector and migrates nothing.
            let store = EdgeStore::open(dir.path(), 4).unwrap();
            store.ensure_schema().await.unwrap();
            let hits = store.search(&[1.0, 0.0, 0.0, 0.0], Some("zanzibar"), &filter, 1).await.unwrap();
            assert_eq!(hits[0].memory.memory_id, m.memory_id);
            assert!((hits[0].score + 1.0).abs() < 1e-4);
            assert_eq!(store.count_memories("org").await.unwrap(), 6);
        }
        // A wrong dimension is still refused, naming the mismatch.
        let err = EdgeStore::open(dir.path(), 8).err().unwrap();
        assert!(err.to_string().contains("4-dimensional"), "{err}");
    }
}
