//! With one ONNX Runtime session per core, a call with fewer texts than
//! sessions (a search's query) runs on one more session whose threads span
//! every core, not on one core while the others idle. A test binary of its
//! own: it tells that session's thread from the others by name and CPU
//! time, which engines loaded by tests running beside it would blur.

use memsy_embedder::{Engine, OnnxThreads, MODEL_THREAD_NAME};

mod common;
use common::{cosine, load, threads_named};

/// CPU ticks (user + system) this process's thread `tid` has used (Linux).
fn cpu_ticks(tid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("thread stat");
    memsy_testkit::stat_ticks(&stat).expect("a stat line").1
}

#[test]
fn a_lone_text_runs_on_every_core() {
    let before = threads_named(MODEL_THREAD_NAME);
    let engine = load("model_int8.onnx", OnnxThreads { threads: 2, sessions: 2, spin: false });
    // The two one-thread sessions run on their callers' threads; only the
    // session over both cores has a thread of its own.
    let new: Vec<String> = threads_named(MODEL_THREAD_NAME).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "new model threads after loading: {new:?}");
    let whole = &new[0];

    // Calls of two texts or more go to the one-thread sessions.
    let pair = ["the first of two facts about the user", "and the second one, a little longer than that"];
    let idle_at = cpu_ticks(whole);
    for _ in 0..200 {
        assert_eq!(engine.embed(&pair).expect("embeds").len(), 2);
    }
    let after_pairs = cpu_ticks(whole) - idle_at;

    // A lone text: that session's own thread takes part in every op.
    let text = "The user said they moved to Berlin last spring and now work at a bakery near the river.";
    let lone = engine.embed(&[text]).expect("embeds");
    let start = cpu_ticks(whole);
    for _ in 0..300 {
        engine.embed(&[text]).expect("embeds");
    }
    let after_lone = cpu_ticks(whole) - start;
    assert!(
        after_lone > after_pairs,
        "the whole-machine session's thread used {after_lone} ticks over 300 lone texts, {after_pairs} over 200 pairs"
    );

    // The same vector as a call that goes to the one-thread sessions.
    let in_pair = engine.embed(&[text, pair[0]]).expect("embeds");
    assert!(cosine(&lone[0], &in_pair[0]) >= 0.9999, "cosine {}", cosine(&lone[0], &in_pair[0]));
}
