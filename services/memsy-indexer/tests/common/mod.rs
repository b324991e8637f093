//! What the tests that need real embeddings share: the model the server
//! embeds with by default (all-MiniLM-L6-v2, `model_int8.onnx`, through
//! ONNX Runtime), an embedded store of its dimension, and memory points
//! consolidated as the indexer stage does.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use memsy_core::config::IndexerConfig;
use memsy_core::model::Memory;
use memsy_embedder::{Engine, OnnxEngine, OnnxThreads};
use memsy_indexer::{slots::slot_of, Consolidator, Plan};
use memsy_store::{EdgeStore, MemoryPoint, MemoryScan, MemoryStore};
use memsy_testkit::{model_dir, sample_memory};

/// The server's default engine. A missing model or runtime fails the test
/// (scripts/setup.sh fetches both).
pub fn engine() -> OnnxEngine {
    let dir = model_dir();
    // fetch-onnx.sh records where the onnxruntime wheel put the library.
    let dylib = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).or_else(|| {
        let record = dir.parent()?.join("onnxruntime.path");
        std::fs::read_to_string(record).ok().map(|s| PathBuf::from(s.trim()))
    });
    OnnxEngine::load(&dir, "model_int8.onnx", dylib.as_deref(), OnnxThreads { threads: 2, sessions: 1, spin: false })
        .expect("model_int8.onnx loads (run scripts/fetch-onnx.sh)")
}

pub fn embed(engine: &OnnxEngine, texts: &[&str]) -> Vec<Vec<f32>> {
    texts.chunks(64).flat_map(|chunk| engine.embed(chunk).expect("texts embed")).collect()
}

pub async fn store() -> (tempfile::TempDir, Arc<EdgeStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(dir.path(), 384).unwrap();
    store.ensure_schema().await.unwrap();
    (dir, Arc::new(store))
}

/// A new actor memory of `text` from `event`, with its slot, as the stage
/// hands it to the consolidator.
pub fn point(actor: &str, event: &str, text: &str, observed: &str, vector: Vec<f32>) -> MemoryPoint {
    let mut m: Memory = sample_memory("org", actor, text, observed);
    m.memory_id = memsy_core::ids::memory_id("org", event, 0).to_string();
    m.source_event_ids = vec![event.to_string()];
    m.slot = slot_of(text);
    m.created_at = observed.into();
    m.updated_at = observed.into();
    MemoryPoint { memory: m, vector }
}

/// Plans `points` with the default policy and writes the plan.
pub async fn apply(store: &Arc<EdgeStore>, points: Vec<MemoryPoint>) -> Plan {
    let plan = Consolidator::new(store.clone(), (&IndexerConfig::default()).into()).plan(points).await.unwrap();
    store.replace_memories(&plan.replaces).await.unwrap();
    store.upsert_memories(&plan.inserts).await.unwrap();
    plan
}

/// Every actor-level memory of the org.
pub async fn actor_memories(store: &Arc<EdgeStore>) -> Vec<Memory> {
    let scan = MemoryScan { scope_level: Some("actor".into()), ..MemoryScan::org("org") };
    let scanned = store.scan_memories(&scan, 100_000).await.unwrap();
    assert!(!scanned.truncated, "scan cut short");
    scanned.items
}
