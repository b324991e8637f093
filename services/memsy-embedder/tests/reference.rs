//! Checks the Rust MiniLM engine against embeddings computed by
//! sentence-transformers itself (`tests/fixtures/minilm-l6-v2-embeddings.json`).
//! These tests need the real model: a missing model directory is a failure,
//! not a skip, so a CI without the model cannot pass silently.

use std::sync::OnceLock;
use std::time::Instant;

use memsy_embedder::{Engine, MiniLm};

mod common;
use common::{assert_unit, check_against_reference, cosine, model_dir};

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

#[test]
fn matches_sentence_transformers_in_batch_and_one_by_one() {
    check_against_reference(engine(), "pure Rust", 0.999, 0.9999);
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
