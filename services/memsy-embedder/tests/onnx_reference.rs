//! Checks the ONNX Runtime engine (fp32 and int8 graphs from
//! `scripts/prepare-onnx.py`) against embeddings computed by
//! sentence-transformers (`tests/fixtures/minilm-l6-v2-embeddings.json`).
//! The ONNX models and the runtime library come from `scripts/fetch-onnx.sh`;
//! when they are missing the tests fail (they do not skip), so a CI without
//! them cannot pass silently.

use std::sync::OnceLock;
use std::time::Instant;

use memsy_embedder::{Engine, MiniLm, OnnxEngine, OnnxThreads};

mod common;
use common::{assert_unit, check_against_reference, cosine, load, model_dir, threads_named};

/// Two sessions side by side whatever the machine, so that every test
/// below also runs a call's sub-batches in parallel.
const TWO_SESSIONS: OnnxThreads = OnnxThreads { threads: 2, sessions: 2, spin: true };

/// Loading takes a moment, so the tests share the engines.
fn fp32() -> &'static OnnxEngine {
    static ENGINE: OnceLock<OnnxEngine> = OnceLock::new();
    ENGINE.get_or_init(|| load("model.onnx", TWO_SESSIONS))
}

fn int8() -> &'static OnnxEngine {
    static ENGINE: OnceLock<OnnxEngine> = OnceLock::new();
    ENGINE.get_or_init(|| load("model_int8.onnx", TWO_SESSIONS))
}

#[test]
fn fp32_matches_sentence_transformers() {
    check_against_reference(fp32(), "fp32", 0.999, 0.999);
}

#[test]
fn int8_matches_sentence_transformers() {
    check_against_reference(int8(), "int8", 0.98, 0.98);
}

#[test]
fn long_and_empty_texts_and_caller_order() {
    let engine = fp32();
    let long = "memory servers remember things for their users. ".repeat(250);
    let out = engine.embed(&[long.as_str(), "", "short one"]).expect("embeds");
    assert_eq!(out.len(), 3);
    out.iter().for_each(|v| assert_unit(v));
    // Truncated to the first 256 word pieces, as the reference does.
    let longer = format!("{long} but this tail is different and should be cut off");
    let again = engine.embed(&[longer.as_str()]).expect("embeds");
    assert!(cosine(&out[0], &again[0]) > 0.99999);
    assert!(engine.embed(&[]).expect("empty batch").is_empty());

    // More than one sub-batch, lengths out of order.
    let texts: Vec<String> = (0..70).map(|i| format!("note {i}: {}", "word ".repeat((i * 7) % 23))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = engine.embed(&refs).expect("embeds");
    for i in [0usize, 13, 33, 69] {
        let single = engine.embed(&[refs[i]]).expect("embeds");
        assert!(cosine(&batch[i], &single[0]) >= 0.9999, "text {i} out of place");
    }
}

/// One session with two threads inside each op, and two sessions each
/// running whole sub-batches, give the same vectors in the caller's order.
#[test]
fn one_session_and_two_sessions_agree() {
    let one = load("model.onnx", OnnxThreads { threads: 2, sessions: 1, spin: false });
    // Three sub-batches of unequal length for two sessions.
    let texts: Vec<String> = (0..75).map(|i| format!("fact {i}: {}", "more words ".repeat((i * 5) % 17))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let a = one.embed(&refs).expect("embeds");
    let b = fp32().embed(&refs).expect("embeds");
    assert_eq!((a.len(), b.len()), (75, 75));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(cosine(x, y) >= 0.9999, "text {i}: {}", cosine(x, y));
    }
    // A single text and an empty call take the one-worker path.
    assert_eq!(fp32().embed(&[refs[3]]).expect("embeds").len(), 1);
    assert!(fp32().embed(&[]).expect("empty").is_empty());
}

/// ONNX Runtime's own threads carry the model's thread name, so that the
/// model's CPU time can be told from the rest of the process. (Threads are
/// compared by id: other tests load and drop engines meanwhile.)
#[test]
fn onnx_runtime_threads_carry_the_model_thread_name() {
    let before = threads_named(memsy_embedder::MODEL_THREAD_NAME);
    // One session with three threads: the caller and two of its own.
    let engine = load("model_int8.onnx", OnnxThreads { threads: 3, sessions: 1, spin: false });
    let after = threads_named(memsy_embedder::MODEL_THREAD_NAME);
    let new = after.difference(&before).count();
    assert!(new >= 2, "{new} new model threads after loading (before: {before:?}, after: {after:?})");
    assert_eq!(engine.embed(&["still works"]).expect("embeds").len(), 1);
}

fn texts_per_second(engine: &dyn Engine) -> f64 {
    let texts: Vec<String> =
        (0..32).map(|i| format!("The user mentioned fact number {i} about their weekend plans.")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    engine.embed(&refs).expect("warm-up");
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        engine.embed(&refs).expect("embeds");
    }
    (rounds * refs.len()) as f64 / start.elapsed().as_secs_f64()
}

/// Throughput probe, not a pass/fail check:
/// `cargo test --release -p memsy-embedder --test onnx_reference -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput_batch_of_32_short_sentences() {
    let int8_rate = texts_per_second(int8());
    let fp32_rate = texts_per_second(fp32());
    let rust = MiniLm::load(&model_dir(), 0).expect("pure-Rust model loads");
    let rust_rate = texts_per_second(&rust);
    println!("batch of 32 short sentences, texts/s: onnx int8 {int8_rate:.1}, onnx fp32 {fp32_rate:.1}, pure Rust {rust_rate:.1}");
}
