//! Checks the Rust MiniLM engine against embeddings computed by
//! sentence-transformers itself (`shared/reference/minilm-l6-v2-embeddings.json`).
//! These tests need the real model: a missing model directory is a failure,
//! not a skip, so a CI without the model cannot pass silently.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use memsy_embedder::{Engine, MiniLm};

fn model_dir() -> PathBuf {
    match std::env::var_os("MEMSY__EMBEDDER__MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-minilm-l6-v2"),
    }
}

fn reference_path() -> PathBuf {
    match std::env::var_os("MEMSY_REFERENCE_EMBEDDINGS") {
        Some(path) => PathBuf::from(path),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/minilm-l6-v2-embeddings.json")
        }
    }
}

/// Loading takes a moment, so the tests share one engine.
fn engine() -> &'static MiniLm {
    static ENGINE: OnceLock<MiniLm> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = model_dir();
        assert!(
            dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file(),
            "model files not found in {} — run scripts/fetch-model.sh first \
             (or point MEMSY__EMBEDDER__MODEL_DIR at the model directory)",
            dir.display()
        );
        MiniLm::load(&dir, 0).expect("model loads")
    })
}

#[derive(serde::Deserialize)]
struct Reference {
    items: Vec<ReferenceItem>,
}

#[derive(serde::Deserialize)]
struct ReferenceItem {
    text: String,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let path = reference_path();
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("reference embeddings not readable at {} ({e}); set MEMSY_REFERENCE_EMBEDDINGS", path.display())
    });
    serde_json::from_str(&raw).expect("reference JSON parses")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn assert_unit(v: &[f32]) {
    assert_eq!(v.len(), 384);
    assert!(v.iter().all(|x| x.is_finite()), "non-finite component");
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

#[test]
fn matches_sentence_transformers_in_batch_and_one_by_one() {
    let engine = engine();
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
        let c_agree = cosine(from_batch, single);
        assert!(c_batch >= 0.999, "batch {:?}: cosine {c_batch}", item.text);
        assert!(c_single >= 0.999, "single {:?}: cosine {c_single}", item.text);
        assert!(c_agree >= 0.9999, "batch vs single {:?}: cosine {c_agree}", item.text);
        worst = worst.min(c_batch).min(c_single);
    }
    println!("worst cosine against the reference: {worst:.7}");
}

#[test]
fn long_text_is_truncated_and_empty_text_embeds() {
    let engine = engine();
    // ~2000 word pieces, far beyond the 256 limit (and the 512 positions).
    let long = "memory servers remember things for their users. ".repeat(250);
    let out = engine.embed(&[long.as_str(), "", "short one"]).expect("embeds");
    assert_eq!(out.len(), 3);
    out.iter().for_each(|v| assert_unit(v));

    // Truncation keeps the first 256 pieces, so text beyond that changes nothing.
    let longer = format!("{long} but this tail is different and should be cut off");
    let again = engine.embed(&[longer.as_str()]).expect("embeds");
    assert!(cosine(&out[0], &again[0]) > 0.99999);

    assert!(engine.embed(&[]).expect("empty batch").is_empty());
}

#[test]
fn results_keep_caller_order_across_sub_batches() {
    let engine = engine();
    // More than one sub-batch, with lengths deliberately out of order.
    let texts: Vec<String> = (0..70).map(|i| format!("note {i}: {}", "word ".repeat((i * 7) % 23))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = engine.embed(&refs).expect("embeds");
    for i in [0usize, 13, 33, 69] {
        let single = engine.embed(&[refs[i]]).expect("embeds");
        assert!(cosine(&batch[i], &single[0]) >= 0.9999, "text {i} out of place");
    }
}

/// Throughput probe, not a pass/fail check:
/// `cargo test --release -p memsy-embedder --test reference -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput_batch_of_32_short_sentences() {
    let engine = engine();
    let texts: Vec<String> =
        (0..32).map(|i| format!("The user mentioned fact number {i} about their weekend plans.")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    engine.embed(&refs).expect("warm-up");

    let rounds = 10;
    let start = Instant::now();
    for _ in 0..rounds {
        engine.embed(&refs).expect("embeds");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "batch of 32 short sentences: {:.1} texts/s ({:.1} ms per batch)",
        (rounds * refs.len()) as f64 / secs,
        secs * 1000.0 / rounds as f64
    );
}
