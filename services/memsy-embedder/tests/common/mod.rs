//! What the engine reference tests share: where the model and the
//! sentence-transformers reference embeddings are, and how a result is
//! checked against them.

#![allow(dead_code)]

use std::path::PathBuf;

use memsy_embedder::{Engine, OnnxEngine, OnnxThreads};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn model_dir() -> PathBuf {
    match std::env::var_os("MEMSY__EMBEDDER__MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("models/all-minilm-l6-v2"),
    }
}

fn reference_path() -> PathBuf {
    match std::env::var_os("MEMSY_REFERENCE_EMBEDDINGS") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-l6-v2-embeddings.json"),
    }
}

#[derive(serde::Deserialize)]
pub struct Reference {
    pub items: Vec<ReferenceItem>,
}

#[derive(serde::Deserialize)]
pub struct ReferenceItem {
    pub text: String,
    pub embedding: Vec<f32>,
}

pub fn reference() -> Reference {
    let path = reference_path();
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("reference embeddings not readable at {} ({e}); set MEMSY_REFERENCE_EMBEDDINGS", path.display())
    });
    serde_json::from_str(&raw).expect("reference JSON parses")
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn assert_unit(v: &[f32]) {
    assert_eq!(v.len(), 384);
    assert!(v.iter().all(|x| x.is_finite()), "non-finite component");
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

/// Every reference text, embedded in one batch and one by one, reaches
/// `floor` against the reference, and the two agree to `agree_floor`.
pub fn check_against_reference(engine: &dyn Engine, label: &str, floor: f32, agree_floor: f32) {
    assert_eq!(engine.dimension(), 384);
    assert_eq!(engine.model_name(), "all-MiniLM-L6-v2");
    let reference = reference();
    assert_eq!(reference.items.len(), 20);
    let texts: Vec<&str> = reference.items.iter().map(|i| i.text.as_str()).collect();
    let batch = engine.embed(&texts).expect("batch embeds");
    assert_eq!(batch.len(), texts.len());
    let mut worst = f32::INFINITY;
    for (item, from_batch) in reference.items.iter().zip(&batch) {
        let single = engine.embed(&[item.text.as_str()]).expect("single embeds");
        assert_eq!(single.len(), 1);
        let single = &single[0];
        assert_unit(from_batch);
        assert_unit(single);
        let c_batch = cosine(from_batch, &item.embedding);
        let c_single = cosine(single, &item.embedding);
        assert!(c_batch >= floor, "{label} batch {:?}: cosine {c_batch}", item.text);
        assert!(c_single >= floor, "{label} single {:?}: cosine {c_single}", item.text);
        let c_agree = cosine(from_batch, single);
        assert!(c_agree >= agree_floor, "{label} batch vs single {:?}: cosine {c_agree}", item.text);
        worst = worst.min(c_batch).min(c_single);
    }
    println!("{label}: worst cosine against the reference: {worst:.7}");
}

/// `ORT_DYLIB_PATH`, else the path `scripts/fetch-onnx.sh` recorded.
pub fn dylib_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let record = repo_root().join("models/onnxruntime.path");
    let raw = std::fs::read_to_string(&record).unwrap_or_else(|e| {
        panic!(
            "{} not readable ({e}) — run scripts/fetch-onnx.sh first \
             (or set ORT_DYLIB_PATH to libonnxruntime.so)",
            record.display()
        )
    });
    PathBuf::from(raw.trim())
}

pub fn load(onnx_file: &str, threads: OnnxThreads) -> OnnxEngine {
    let dir = model_dir();
    let model = dir.join("onnx").join(onnx_file);
    let dylib = dylib_path();
    assert!(
        model.is_file() && dir.join("tokenizer.json").is_file(),
        "{} or tokenizer.json not found — run scripts/fetch-onnx.sh first \
         (or point MEMSY__EMBEDDER__MODEL_DIR at the model directory)",
        model.display()
    );
    assert!(dylib.is_file(), "ONNX Runtime library {} not found — run scripts/fetch-onnx.sh first", dylib.display());
    OnnxEngine::load(&dir, onnx_file, Some(&dylib), threads).expect("ONNX model loads")
}

/// Ids of this process's threads named `name` (Linux).
pub fn threads_named(name: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name))
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .collect()
}
