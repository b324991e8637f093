//! [`EdgeStore`]: the embedded Qdrant engine (`qdrant-edge`) under the data
//! directory, for single-process deployments.
//!
//! Two shards live under the directory: `memories` (one named dense vector,
//! cosine) and `events` (payload only). Every `EdgeShard` method is
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
    AnyVariants, Condition, CountRequest, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeVectorParams,
    FieldCondition, FieldIndexOperations, Filter, IsEmptyCondition, IsNullCondition, JsonPath, Match, NamedQuery,
    OperationError, Payload, PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStructPersisted, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest, SetPayloadOp,
    UpdateOperation, ValueVariants, VectorInternal, VectorPersisted, VectorStructPersisted, WithPayloadInterface,
    WithVector,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    EventScan, MemoryPoint, MemoryScan, MemoryStore, Scanned, SearchFilter, SearchHit, StoreError, INDEXED_FIELDS,
    SCAN_PAGE, VECTOR_NAME,
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
        // A poisoned lock only means an earlier writer panicked; the engine
        // state is still whatever the WAL and segments say, so carry on.
        let _guard = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        for op in ops {
            self.engine.update(op).map_err(engine_error)?;
        }
        // Panics on I/O failure (it `expect`s); the panic surfaces as a
        // JoinError from `spawn_blocking`, which `blocking` maps to Unavailable.
        self.engine.flush();
        Ok(())
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
    /// Opens (or creates) the shards under `dir`. Reopening with a different
    /// `dimension` fails: the stored vectors cannot be reinterpreted.
    pub fn open(dir: &Path, dimension: usize) -> Result<Self, StoreError> {
        if dimension == 0 {
            return Err(StoreError::Invalid("vector dimension must be positive".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;

        let memories_config = EdgeConfig::builder()
            .vector(VECTOR_NAME, EdgeVectorParams::builder(dimension, Distance::Cosine).build())
            .build();
        // Events are only ever fetched by id, so they carry no vector at all;
        // the engine accepts a shard with an empty vector map.
        let events_config = EdgeConfig::builder().build();

        Ok(Self {
            memories: Arc::new(open_shard(&dir.join("memories"), memories_config)?),
            events: Arc::new(open_shard(&dir.join("events"), events_config)?),
            dimension,
        })
    }

    fn check_dimension(&self, vector: &[f32]) -> Result<(), StoreError> {
        crate::check_dimension(vector, self.dimension)
    }

    async fn get_memories_any_org(&self, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError> {
        let ids: Vec<PointId> =
            memory_ids.iter().filter_map(|id| Uuid::parse_str(id).ok()).map(PointId::Uuid).collect();
        retrieve(&self.memories, ids).await
    }
}

fn open_shard(path: &Path, config: EdgeConfig) -> Result<Shard, StoreError> {
    // `EdgeShard::new` writes `edge_config.json` before any segment, so its
    // presence marks a shard that exists (possibly only partly created,
    // which `load` completes); `new` refuses a directory with segments. Passing the config to `load` makes the engine
    // check it against the stored segments (dimension, distance).
    let engine = if path.join("edge_config.json").exists() {
        EdgeShard::load(path, Some(config))
    } else {
        std::fs::create_dir_all(path).map_err(|e| io_error(path, e))?;
        EdgeShard::new(path, config)
    }
    .map_err(|e| StoreError::Unavailable(format!("opening shard {}: {e}", path.display())))?;
    Ok(Shard { engine, writes: Mutex::new(()) })
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
        if points.is_empty() {
            return Ok(());
        }
        let mut persisted = Vec::with_capacity(points.len());
        for point in points {
            self.check_dimension(&point.vector)?;
            let id = Uuid::parse_str(&point.memory.memory_id)
                .map_err(|_| StoreError::Invalid(format!("memory_id {:?} is not a UUID", point.memory.memory_id)))?;
            persisted.push(PointStructPersisted {
                id: PointId::Uuid(id),
                vector: VectorStructPersisted::Named(
                    [(VECTOR_NAME.to_string(), VectorPersisted::Dense(point.vector.clone()))].into(),
                ),
                payload: Some(to_payload(&point.memory)?),
            });
        }
        let op = upsert_op(persisted);
        blocking(&self.memories, move |s| s.write(vec![op])).await
    }

    async fn replace_memories(&self, memories: &[Memory]) -> Result<(), StoreError> {
        if memories.is_empty() {
            return Ok(());
        }
        // The engine applies an overwrite to the listed ids only (a filter
        // next to them is ignored) and fails on an unknown id: so only points
        // stored under the same org are written, checked here first.
        let ids: Vec<String> = memories.iter().map(|m| m.memory_id.clone()).collect();
        let stored: std::collections::HashMap<String, String> =
            self.get_memories_any_org(&ids).await?.into_iter().map(|m| (m.memory_id, m.org_id)).collect();
        let mut ops = Vec::with_capacity(memories.len());
        for m in memories.iter().filter(|m| stored.get(&m.memory_id) == Some(&m.org_id)) {
            let id = Uuid::parse_str(&m.memory_id)
                .map_err(|_| StoreError::Invalid(format!("memory_id {:?} is not a UUID", m.memory_id)))?;
            ops.push(UpdateOperation::PayloadOperation(PayloadOps::OverwritePayload(SetPayloadOp {
                payload: to_payload(m)?,
                points: Some(vec![PointId::Uuid(id)]),
                filter: None,
                key: None,
            })));
        }
        if ops.is_empty() {
            return Ok(());
        }
        blocking(&self.memories, move |s| s.write(ops)).await
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

    async fn search(&self, vector: &[f32], filter: &SearchFilter, limit: usize) -> Result<Vec<SearchHit>, StoreError> {
        self.check_dimension(vector)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                VectorInternal::Dense(vector.to_vec()),
                VECTOR_NAME,
            )))),
            filter: Some(search_filter(filter)?),
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = blocking(&self.memories, move |s| s.engine.query(request).map_err(engine_error)).await?;
        points.into_iter().map(|p| Ok(SearchHit { memory: from_payload(p.payload)?, score: p.score })).collect()
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
