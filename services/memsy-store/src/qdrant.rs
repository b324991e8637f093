//! [`QdrantStore`]: a Qdrant server through `qdrant-client` (gRPC).
//!
//! Two collections, `{prefix}memories` (a named dense vector, cosine, and a
//! named sparse BM25 vector with the IDF modifier, its weights computed here
//! by the same model as the embedded store's, so both tokenise alike) and
//! `{prefix}events` (payload only, an empty vector map), both with keyword
//! payload indexes; `org_id` is marked `is_tenant` so the server co-locates
//! each org's points. Writes use `wait(true)`: Ok means the server applied
//! them, which is what the indexer's ack relies on.

use std::collections::HashMap;

use async_trait::async_trait;
use memsy_core::ids::event_point_id;
use memsy_core::model::{Memory, StoredEvent};
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    Distance, FieldType, Filter, GetCollectionInfoRequest, GetPointsBuilder, KeywordIndexParamsBuilder, Modifier,
    PointId, PointStruct, PrefetchQueryBuilder, Query, QueryBatchPointsBuilder, QueryPoints, QueryPointsBuilder, Rrf,
    ScrollPointsBuilder, SetPayloadPointsBuilder, SparseVectorConfig, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, UpsertPointsBuilder, Value, Vector, VectorInput, VectorParamsBuilder, VectorParamsMap,
    VectorsConfig, VectorsConfigBuilder, VectorsSelector,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    bm25_document, bm25_query, cosine, fused_rank, prefetch_limit, CollectionSettings, DenseQuery, Erased, EventScan,
    MemoryEdit, MemoryPoint, MemoryScan, MemoryStore, Scanned, ScoredId, SearchFilter, SearchHit, StoreError, ARCHIVED,
    INDEXED_FIELDS, RRF_K, RRF_WEIGHTS, SCAN_PAGE, SPARSE_NAME, VECTOR_NAME,
};

pub struct QdrantStore {
    client: Qdrant,
    memories: String,
    events: String,
    dimension: usize,
    settings: CollectionSettings,
}

impl QdrantStore {
    /// Builds the client; no request is made until the first call (use
    /// [`MemoryStore::ensure_schema`] or [`MemoryStore::ready`] to check).
    pub fn connect(
        url: &str,
        api_key: Option<&str>,
        collection_prefix: &str,
        dimension: usize,
        settings: CollectionSettings,
    ) -> Result<Self, StoreError> {
        if dimension == 0 {
            return Err(StoreError::Invalid("vector dimension must be positive".into()));
        }
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .build()
            .map_err(|e| StoreError::Invalid(format!("qdrant client for {url}: {e}")))?;
        Ok(Self {
            client,
            memories: format!("{collection_prefix}memories"),
            events: format!("{collection_prefix}events"),
            dimension,
            settings,
        })
    }

    /// The memories and events collections' names.
    pub fn collection_names(&self) -> [String; 2] {
        [self.memories.clone(), self.events.clone()]
    }

    /// The `limit` nearest memories within `filter` (at `filter.min_score`
    /// or more), with their payloads or as ids and scores only.
    fn dense_query(
        &self,
        vector: &[f32],
        filter: &SearchFilter,
        limit: usize,
        with_payload: bool,
    ) -> QueryPointsBuilder {
        let request = QueryPointsBuilder::new(&self.memories)
            .query(vector.to_vec())
            .using(VECTOR_NAME)
            .filter(search_filter(filter))
            .limit(limit as u64)
            .with_payload(with_payload);
        match filter.min_score {
            Some(min) => request.score_threshold(min),
            None => request,
        }
    }

    fn check_dimension(&self, vector: &[f32]) -> Result<(), StoreError> {
        crate::check_dimension(vector, self.dimension)
    }

    /// Creates `name` unless it exists. A concurrent creator (another
    /// replica starting at the same time) makes our create fail; that is
    /// fine as long as the collection is there afterwards.
    async fn ensure_collection(
        &self,
        name: &str,
        vectors: VectorsConfig,
        sparse: Option<SparseVectorConfig>,
    ) -> Result<(), StoreError> {
        if self.client.collection_exists(name).await.map_err(server_error)? {
            return Ok(());
        }
        let s = &self.settings;
        let mut request = CreateCollectionBuilder::new(name)
            .vectors_config(vectors)
            .shard_number(s.shard_number)
            .replication_factor(s.replication_factor)
            .write_consistency_factor(s.write_consistency_factor)
            .on_disk_payload(s.on_disk_payload);
        if let Some(sparse) = sparse {
            request = request.sparse_vectors_config(sparse);
        }
        let created = self.client.create_collection(request).await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if self.client.collection_exists(name).await.unwrap_or(false) => {
                tracing::debug!(collection = name, error = %e, "collection created concurrently");
                Ok(())
            }
            Err(e) => Err(server_error(e)),
        }
    }

    /// Keyword indexes on every filter field; re-creating an existing index
    /// with the same schema is accepted by the server, so this is idempotent.
    async fn ensure_indexes(&self, collection: &str) -> Result<(), StoreError> {
        for field in INDEXED_FIELDS {
            let mut request = CreateFieldIndexCollectionBuilder::new(collection, field, FieldType::Keyword).wait(true);
            if field == "org_id" {
                request = request.field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true));
            }
            self.client.create_field_index(request).await.map_err(server_error)?;
        }
        Ok(())
    }

    /// An existing memories collection must be one memsy can use: its dense
    /// vector of this model's dimension and cosine distance, and its BM25
    /// vector (a collection created before hybrid search has none, and a
    /// Qdrant server cannot add one to an existing collection). Say so at
    /// start rather than fail every write or search later.
    async fn check_memories_collection(&self) -> Result<(), StoreError> {
        let info = self
            .client
            .collection_info(GetCollectionInfoRequest { collection_name: self.memories.clone() })
            .await
            .map_err(server_error)?;
        let params = info.result.and_then(|r| r.config).and_then(|c| c.params);
        let dense = params.as_ref().and_then(|p| p.vectors_config.as_ref()).and_then(|v| v.config.as_ref()).and_then(
            |c| match c {
                Config::ParamsMap(m) => m.map.get(VECTOR_NAME).cloned(),
                Config::Params(_) => None,
            },
        );
        match dense {
            Some(d) if d.size == self.dimension as u64 && d.distance == Distance::Cosine as i32 => {}
            Some(d) => {
                return Err(StoreError::Invalid(format!(
                    "collection {} holds {}-dimensional {:?} vectors, but the embedding model gives {}-dimensional \
                     cosine ones: use another qdrant.collection_prefix for this model, or recreate the collection \
                     and replay the events",
                    self.memories,
                    d.size,
                    Distance::try_from(d.distance).unwrap_or(Distance::UnknownDistance),
                    self.dimension
                )))
            }
            None => {
                return Err(StoreError::Invalid(format!(
                    "collection {} has no dense vector {VECTOR_NAME:?}: it was not created by memsy; use another \
                     qdrant.collection_prefix",
                    self.memories
                )))
            }
        }
        let sparse = params.and_then(|p| p.sparse_vectors_config).and_then(|s| s.map.get(SPARSE_NAME).cloned());
        match sparse {
            Some(p) if p.modifier == Some(Modifier::Idf as i32) => Ok(()),
            Some(_) => Err(StoreError::Invalid(format!(
                "collection {}: sparse vector {SPARSE_NAME:?} exists without the IDF modifier",
                self.memories
            ))),
            None => Err(StoreError::Invalid(format!(
                "collection {} predates hybrid search: it has no sparse vector {SPARSE_NAME:?} (IDF). Re-index into \
                 a new collection prefix, or recreate the collection and replay the events",
                self.memories
            ))),
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<PointStruct>) -> Result<(), StoreError> {
        self.client
            .upsert_points(UpsertPointsBuilder::new(collection, points).wait(true))
            .await
            .map_err(server_error)?;
        Ok(())
    }

    /// Pages through `filter`'s points by id until `cap` are read (one more
    /// is asked for so that `truncated` is exact).
    async fn scan<T: DeserializeOwned>(
        &self,
        collection: &str,
        filter: Filter,
        cap: usize,
    ) -> Result<Scanned<T>, StoreError> {
        let mut items = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let want = (cap + 1 - items.len()).min(SCAN_PAGE);
            let mut request =
                ScrollPointsBuilder::new(collection).filter(filter.clone()).limit(want as u32).with_payload(true);
            if let Some(o) = offset.take() {
                request = request.offset(o);
            }
            let response = self.client.scroll(request).await.map_err(server_error)?;
            for p in response.result {
                items.push(from_payload(p.payload)?);
            }
            if items.len() > cap {
                items.truncate(cap);
                return Ok(Scanned { items, truncated: true });
            }
            match response.next_page_offset {
                Some(o) => offset = Some(o),
                None => return Ok(Scanned { items, truncated: false }),
            }
        }
    }

    /// Deletes the points matching `filter` and answers how many there were
    /// just before (a write landing in between is deleted but not counted).
    async fn delete_matching(&self, collection: &str, filter: Filter) -> Result<u64, StoreError> {
        let request = CountPointsBuilder::new(collection).filter(filter.clone()).exact(true);
        let n = self.client.count(request).await.map_err(server_error)?.result.map(|r| r.count).unwrap_or(0);
        if n == 0 {
            return Ok(0);
        }
        self.client
            .delete_points(DeletePointsBuilder::new(collection).points(filter).wait(true))
            .await
            .map_err(server_error)?;
        Ok(n)
    }

    /// Points by id, decoded, in request order; unknown ids are absent.
    async fn retrieve<T: DeserializeOwned>(&self, collection: &str, ids: Vec<String>) -> Result<Vec<T>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let point_ids: Vec<PointId> = ids.iter().map(|id| PointId::from(id.as_str())).collect();
        let response = self
            .client
            .get_points(GetPointsBuilder::new(collection, point_ids).with_payload(true))
            .await
            .map_err(server_error)?;
        let mut by_id: HashMap<String, HashMap<String, Value>> =
            response.result.into_iter().filter_map(|p| Some((point_id_string(p.id?)?, p.payload))).collect();
        ids.iter().filter_map(|id| by_id.remove(id)).map(from_payload).collect()
    }
}

#[async_trait]
impl MemoryStore for QdrantStore {
    async fn ensure_schema(&self) -> Result<(), StoreError> {
        let mut dense = VectorsConfigBuilder::default();
        dense.add_named_vector_params(
            VECTOR_NAME,
            VectorParamsBuilder::new(self.dimension as u64, Distance::Cosine).on_disk(self.settings.on_disk_vectors),
        );
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(SPARSE_NAME, SparseVectorParamsBuilder::default().modifier(Modifier::Idf));
        self.ensure_collection(&self.memories, dense.into(), Some(sparse.into())).await?;
        self.check_memories_collection().await?;
        // Events are only fetched by id: a named-vector map with no entries
        // makes a payload-only collection (REST `"vectors": {}`).
        let none = VectorsConfig { config: Some(Config::ParamsMap(VectorParamsMap { map: HashMap::new() })) };
        self.ensure_collection(&self.events, none, None).await?;
        self.ensure_indexes(&self.memories).await?;
        self.ensure_indexes(&self.events).await
    }

    async fn upsert_memories(&self, points: &[MemoryPoint]) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut structs = Vec::with_capacity(points.len());
        for point in points {
            self.check_dimension(&point.vector)?;
            let id = Uuid::parse_str(&point.memory.memory_id)
                .map_err(|_| StoreError::Invalid(format!("memory_id {:?} is not a UUID", point.memory.memory_id)))?;
            let bm25 = bm25_document(&point.memory);
            let vectors = HashMap::from([
                (VECTOR_NAME.to_string(), Vector::new_dense(point.vector.clone())),
                (SPARSE_NAME.to_string(), Vector::new_sparse(bm25.indices, bm25.values)),
            ]);
            structs.push(PointStruct::new(id.to_string(), vectors, to_payload(&point.memory)?));
        }
        self.upsert(&self.memories, structs).await
    }

    async fn replace_memories(&self, memories: &[Memory]) -> Result<(), StoreError> {
        for m in memories {
            let id = Uuid::parse_str(&m.memory_id)
                .map_err(|_| StoreError::Invalid(format!("memory_id {:?} is not a UUID", m.memory_id)))?;
            // Only a stored, unarchived point of the same org is touched, and
            // `pinned` is left out of the (merged) payload: the server checks
            // the filter when it writes, so a user's edit in between holds.
            let selector = Filter {
                must: vec![
                    Condition::has_id([PointId::from(id.to_string())]),
                    Condition::matches("org_id", m.org_id.clone()),
                ],
                must_not: vec![Condition::matches("status", ARCHIVED.to_string())],
                ..Filter::default()
            };
            let mut payload =
                serde_json::to_value(m).map_err(|e| StoreError::Invalid(format!("serialising payload: {e}")))?;
            if let Some(fields) = payload.as_object_mut() {
                fields.remove("pinned");
            }
            let payload = Payload::try_from(payload).map_err(|e| StoreError::Invalid(e.to_string()))?;
            self.client
                .set_payload(SetPayloadPointsBuilder::new(&self.memories, payload).points_selector(selector).wait(true))
                .await
                .map_err(server_error)?;
        }
        Ok(())
    }

    async fn edit_memory(
        &self,
        org_id: &str,
        memory_id: &str,
        edit: &MemoryEdit,
    ) -> Result<Option<Memory>, StoreError> {
        let Some(id) = Uuid::parse_str(memory_id).ok().map(|u| u.to_string()) else { return Ok(None) };
        if self.get_memories(org_id, std::slice::from_ref(&id)).await?.is_empty() {
            return Ok(None);
        }
        let mut fields = serde_json::Map::new();
        if let Some(pinned) = edit.pinned {
            fields.insert("pinned".into(), pinned.into());
        }
        if let Some(status) = edit.status {
            fields.insert("status".into(), status.as_str().into());
        }
        fields.insert("updated_at".into(), edit.at.clone().into());
        let payload =
            Payload::try_from(serde_json::Value::Object(fields)).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let selector = Filter::must([
            Condition::has_id([PointId::from(id.clone())]),
            Condition::matches("org_id", org_id.to_string()),
        ]);
        self.client
            .set_payload(SetPayloadPointsBuilder::new(&self.memories, payload).points_selector(selector).wait(true))
            .await
            .map_err(server_error)?;
        Ok(self.get_memories(org_id, &[id]).await?.into_iter().next())
    }

    async fn delete_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let held: Vec<String> = self.get_memories(org_id, memory_ids).await?.into_iter().map(|m| m.memory_id).collect();
        if held.is_empty() {
            return Ok(held);
        }
        let ids: Vec<PointId> = held.iter().map(|id| PointId::from(id.clone())).collect();
        let selector = Filter::must([Condition::has_id(ids), Condition::matches("org_id", org_id.to_string())]);
        self.client
            .delete_points(DeletePointsBuilder::new(&self.memories).points(selector).wait(true))
            .await
            .map_err(server_error)?;
        Ok(held)
    }

    async fn erase(&self, org_id: &str, actor_id: Option<&str>) -> Result<Erased, StoreError> {
        let mut conditions = vec![("org_id", org_id)];
        conditions.extend(actor_id.map(|a| ("actor_id", a)));
        let filter = equality_filter(&conditions);
        let memories = self.delete_matching(&self.memories, filter.clone()).await?;
        let events = self.delete_matching(&self.events, filter).await?;
        Ok(Erased { events, memories })
    }

    async fn upsert_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut structs = Vec::with_capacity(events.len());
        for event in events {
            let id = event_point_id(&event.event_id)
                .ok_or_else(|| StoreError::Invalid(format!("event_id {:?} is not a ULID", event.event_id)))?;
            structs.push(PointStruct::new(id.to_string(), HashMap::<String, Vector>::new(), to_payload(event)?));
        }
        self.upsert(&self.events, structs).await
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
            let request = self.dense_query(vector, filter, limit, true);
            let response = self.client.query(request).await.map_err(server_error)?;
            return response
                .result
                .into_iter()
                .map(|p| Ok(SearchHit { memory: from_payload(p.payload)?, score: p.score, rank: p.score }))
                .collect();
        };
        let filter = search_filter(filter);
        let n = prefetch_limit(limit) as u64;
        let dense = PrefetchQueryBuilder::default()
            .query(Query::new_nearest(vector.to_vec()))
            .using(VECTOR_NAME)
            .filter(filter.clone())
            .limit(n);
        let sparse = PrefetchQueryBuilder::default()
            .query(Query::new_nearest(VectorInput::new_sparse(sparse.indices, sparse.values)))
            .using(SPARSE_NAME)
            .filter(filter.clone())
            .limit(n);
        let request = QueryPointsBuilder::new(&self.memories)
            .add_prefetch(dense)
            .add_prefetch(sparse)
            .query(Query::new_rrf(Rrf { k: Some(RRF_K as u32), weights: RRF_WEIGHTS.to_vec() }))
            .filter(filter)
            .limit(limit as u64)
            .with_payload(true)
            .with_vectors(VectorsSelector { names: vec![VECTOR_NAME.to_string()] });
        let response = self.client.query(request).await.map_err(server_error)?;
        response
            .result
            .into_iter()
            .map(|p| {
                use qdrant_client::qdrant::vector_output::Vector as Out;
                let stored = match p.vectors.as_ref().and_then(|v| v.get_vector_by_name(VECTOR_NAME)) {
                    Some(Out::Dense(d)) => d.data,
                    _ => return Err(StoreError::Corrupt("a search hit came back without its dense vector".into())),
                };
                Ok(SearchHit {
                    score: cosine(vector, &stored),
                    rank: fused_rank(p.score),
                    memory: from_payload(p.payload)?,
                })
            })
            .collect()
    }

    /// The dense queries as in `search`, without payloads, in one
    /// `QueryBatch` request: a consolidation plan asks one per new memory.
    async fn search_dense_ids(&self, queries: &[DenseQuery]) -> Result<Vec<Vec<ScoredId>>, StoreError> {
        for q in queries {
            self.check_dimension(&q.vector)?;
        }
        let asked: Vec<QueryPoints> = queries
            .iter()
            .filter(|q| q.limit > 0)
            .map(|q| self.dense_query(&q.vector, &q.filter, q.limit, false).build())
            .collect();
        let mut results = if asked.is_empty() {
            Vec::new()
        } else {
            let request = QueryBatchPointsBuilder::new(&self.memories, asked);
            self.client.query_batch(request).await.map_err(server_error)?.result
        }
        .into_iter();
        let mut answers = Vec::with_capacity(queries.len());
        for q in queries {
            if q.limit == 0 {
                answers.push(Vec::new());
                continue;
            }
            let batch = results
                .next()
                .ok_or_else(|| StoreError::Corrupt("the server answered fewer queries than it was asked".into()))?;
            let hits = batch
                .result
                .into_iter()
                .filter_map(|p| Some(ScoredId { memory_id: point_id_string(p.id?)?, score: p.score }))
                .collect();
            answers.push(hits);
        }
        Ok(answers)
    }

    async fn get_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError> {
        // The server rejects the whole request on one malformed id, so
        // anything that is not a UUID is dropped here (it cannot exist).
        let ids = memory_ids.iter().filter_map(|id| Uuid::parse_str(id).ok()).map(|u| u.to_string()).collect();
        let memories: Vec<Memory> = self.retrieve(&self.memories, ids).await?;
        Ok(memories.into_iter().filter(|m| m.org_id == org_id).collect())
    }

    async fn get_events(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
        let ids = event_ids.iter().filter_map(|id| event_point_id(id)).map(|u| u.to_string()).collect();
        let events: Vec<StoredEvent> = self.retrieve(&self.events, ids).await?;
        Ok(events.into_iter().filter(|e| e.org_id == org_id).collect())
    }

    async fn scan_memories(&self, scan: &MemoryScan, cap: usize) -> Result<Scanned<Memory>, StoreError> {
        self.scan(&self.memories, equality_filter(&scan.conditions()), cap).await
    }

    async fn scan_events(&self, scan: &EventScan, cap: usize) -> Result<Scanned<StoredEvent>, StoreError> {
        self.scan(&self.events, equality_filter(&scan.conditions()), cap).await
    }

    async fn count_memories(&self, org_id: &str) -> Result<u64, StoreError> {
        let request = CountPointsBuilder::new(&self.memories)
            .filter(Filter::must([Condition::matches("org_id", org_id.to_string())]))
            .exact(true);
        let response = self.client.count(request).await.map_err(server_error)?;
        Ok(response.result.map(|r| r.count).unwrap_or(0))
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.client.health_check().await.map_err(server_error)?;
        Ok(())
    }
}

/// The Qdrant filter for a search; see [`SearchFilter`] for the semantics.
/// Mirrors `edge::search_filter` condition for condition.
fn search_filter(f: &SearchFilter) -> Filter {
    let mut must = vec![Condition::matches("org_id", f.org_id.clone())];
    let mut must_not = Vec::new();

    if let Some(status) = &f.status {
        must.push(Condition::matches("status", status.clone()));
    }
    for (k, v) in &f.exact {
        must.push(Condition::matches(k.as_str(), v.clone()));
    }
    if let Some(actor) = &f.actor_id {
        let mut eligible = vec![Condition::matches("actor_id", actor.clone())];
        if !f.role_ids.is_empty() {
            eligible.push(
                Filter::must([
                    Condition::matches("scope_level", "role".to_string()),
                    Condition::matches("role_id", f.role_ids.clone()),
                ])
                .into(),
            );
        }
        if !f.team_ids.is_empty() {
            eligible.push(
                Filter::must([
                    Condition::matches("scope_level", "team".to_string()),
                    Condition::matches("team_id", f.team_ids.clone()),
                ])
                .into(),
            );
        }
        // Org-level knowledge belongs to every actor of the org.
        eligible.push(Condition::matches("scope_level", "org".to_string()));
        must.push(Filter::should(eligible).into());
    }
    if let Some(session) = &f.session_id {
        // JSON null (a `None` session) and a missing key both count as
        // "no session".
        must.push(
            Filter::should([
                Condition::matches("session_id", session.clone()),
                Condition::is_null("session_id"),
                Condition::is_empty("session_id"),
            ])
            .into(),
        );
    }
    if let Some(session) = &f.exclude_session_id {
        must_not.push(Condition::matches("session_id", session.clone()));
    }

    Filter { must, must_not, ..Default::default() }
}

/// Every `(key, value)` must match exactly.
fn equality_filter(conditions: &[(&str, &str)]) -> Filter {
    Filter::must(conditions.iter().map(|(k, v)| Condition::matches(*k, v.to_string())))
}

fn to_payload<T: Serialize>(record: &T) -> Result<Payload, StoreError> {
    let value = serde_json::to_value(record).map_err(|e| StoreError::Invalid(format!("serialising payload: {e}")))?;
    Payload::try_from(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn from_payload<T: DeserializeOwned>(payload: HashMap<String, Value>) -> Result<T, StoreError> {
    let json = serde_json::Value::from(Payload::from(payload));
    serde_json::from_value(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn point_id_string(id: PointId) -> Option<String> {
    use qdrant_client::qdrant::point_id::PointIdOptions;
    match id.point_id_options? {
        PointIdOptions::Uuid(u) => Some(u),
        PointIdOptions::Num(n) => Some(n.to_string()),
    }
}

fn server_error(e: QdrantError) -> StoreError {
    match &e {
        QdrantError::ResponseError { status } if status.code() == tonic::Code::InvalidArgument => {
            StoreError::Invalid(e.to_string())
        }
        QdrantError::ConversionError(_) | QdrantError::InvalidUri(_) => StoreError::Invalid(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}
