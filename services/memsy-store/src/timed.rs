//! A [`MemoryStore`] that times every call of the store it wraps, by
//! operation, for `/metrics` (`memsy_store_request_duration_seconds{op}`):
//! whichever engine is behind it, the figures mean the same.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use memsy_core::metrics::STORE_DURATION;
use memsy_core::model::{Memory, StoredEvent};

use crate::{
    DenseQuery, Erased, EventScan, MemoryEdit, MemoryPoint, MemoryScan, MemoryStore, Scanned, ScoredId, SearchFilter,
    SearchHit, StoreError,
};

pub struct Timed {
    inner: Arc<dyn MemoryStore>,
}

impl Timed {
    pub fn new(inner: Arc<dyn MemoryStore>) -> Self {
        Self { inner }
    }
}

async fn timed<T>(op: &'static str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    metrics::histogram!(STORE_DURATION, "op" => op).record(started.elapsed().as_secs_f64());
    out
}

#[async_trait]
impl MemoryStore for Timed {
    async fn ensure_schema(&self) -> Result<(), StoreError> {
        timed("ensure_schema", self.inner.ensure_schema()).await
    }

    async fn upsert_memories(&self, points: &[MemoryPoint]) -> Result<(), StoreError> {
        timed("upsert_memories", self.inner.upsert_memories(points)).await
    }

    async fn replace_memories(&self, memories: &[Memory]) -> Result<(), StoreError> {
        timed("replace_memories", self.inner.replace_memories(memories)).await
    }

    async fn write_memories(&self, replaces: &[Memory], inserts: &[MemoryPoint]) -> Result<(), StoreError> {
        timed("write_memories", self.inner.write_memories(replaces, inserts)).await
    }

    async fn edit_memory(
        &self,
        org_id: &str,
        memory_id: &str,
        edit: &MemoryEdit,
    ) -> Result<Option<Memory>, StoreError> {
        timed("edit_memory", self.inner.edit_memory(org_id, memory_id, edit)).await
    }

    async fn delete_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<String>, StoreError> {
        timed("delete_memories", self.inner.delete_memories(org_id, memory_ids)).await
    }

    async fn erase(&self, org_id: &str, actor_id: Option<&str>) -> Result<Erased, StoreError> {
        timed("erase", self.inner.erase(org_id, actor_id)).await
    }

    async fn upsert_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        timed("upsert_events", self.inner.upsert_events(events)).await
    }

    async fn search(
        &self,
        vector: &[f32],
        text: Option<&str>,
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        timed("search", self.inner.search(vector, text, filter, limit)).await
    }

    async fn search_dense_ids(&self, queries: &[DenseQuery]) -> Result<Vec<Vec<ScoredId>>, StoreError> {
        timed("search_dense_ids", self.inner.search_dense_ids(queries)).await
    }

    async fn get_memories(&self, org_id: &str, memory_ids: &[String]) -> Result<Vec<Memory>, StoreError> {
        timed("get_memories", self.inner.get_memories(org_id, memory_ids)).await
    }

    async fn get_events(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
        timed("get_events", self.inner.get_events(org_id, event_ids)).await
    }

    async fn scan_memories(&self, scan: &MemoryScan, cap: usize) -> Result<Scanned<Memory>, StoreError> {
        timed("scan_memories", self.inner.scan_memories(scan, cap)).await
    }

    async fn scan_events(&self, scan: &EventScan, cap: usize) -> Result<Scanned<StoredEvent>, StoreError> {
        timed("scan_events", self.inner.scan_events(scan, cap)).await
    }

    async fn count_memories(&self, org_id: &str) -> Result<u64, StoreError> {
        timed("count_memories", self.inner.count_memories(org_id)).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        timed("ready", self.inner.ready()).await
    }
}
