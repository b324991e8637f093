//! Embedding engines. An engine turns texts into L2-normalised vectors of a
//! fixed dimension; it is synchronous CPU work, so callers run it on a
//! blocking thread.

mod minilm;
mod onnx;
mod remote;

pub use minilm::MiniLm;
pub use onnx::{OnnxEngine, OnnxThreads};
pub use remote::RemoteEngine;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use tokenizers::Tokenizer;

use crate::EmbedError;

pub trait Engine: Send + Sync + 'static {
    /// Embeds every text; the result has one normalised vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn dimension(&self) -> usize;
    /// A name for the model, recorded with the vectors it made.
    fn model_name(&self) -> &str;
}

/// What one sub-batch gave.
type Embedded = Result<Vec<Vec<f32>>, EmbedError>;

/// Tokenises `texts`, runs `run` over sub-batches of similar length (so a
/// sub-batch carries little padding) and puts the vectors back in the
/// caller's order. Shared by every local engine.
///
/// With `workers` > 1 the sub-batches run side by side on that many threads
/// (the caller's and `workers - 1` scoped ones), `run(worker, seqs)` being
/// called with each thread's own index; the texts are then cut into at
/// least one sub-batch per worker, and the longest sub-batches go first so
/// that the threads finish together. An engine with one runtime session per
/// worker uses this instead of parallelism inside each operation: the
/// threads never wait for each other mid-call, which matters most when the
/// cores are shared with other work (docs/BENCHMARKS.md).
pub(crate) fn embed_by_length(
    tokenizer: &Tokenizer,
    texts: &[&str],
    sub_batch: usize,
    workers: usize,
    run: impl Fn(usize, &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> + Sync,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let ids = texts
        .iter()
        .map(|t| {
            tokenizer.encode(*t, true).map(|e| e.get_ids().to_vec()).map_err(|e| EmbedError::Tokenizer(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let workers = workers.max(1);
    let size = sub_batch.max(1).min(texts.len().div_ceil(workers)).max(1);
    let chunks: Vec<&[usize]> = order.chunks(size).collect();
    let run_chunk = |worker: usize, chunk: &[usize]| {
        let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
        run(worker, &seqs)
    };
    // Each worker takes the next sub-batch, longest first (the last is the
    // longest), until none is left or one has failed. With one worker (or
    // one sub-batch) no thread is spawned: the caller runs them all.
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // One entry per sub-batch; None: not run, because another one failed.
    let slots: Vec<Mutex<Option<Embedded>>> = chunks.iter().map(|_| Mutex::new(None)).collect();
    let work = |worker: usize| loop {
        let taken = next.fetch_add(1, Ordering::Relaxed);
        if taken >= chunks.len() || failed.load(Ordering::Relaxed) {
            return;
        }
        let c = chunks.len() - 1 - taken;
        let r = run_chunk(worker, chunks[c]);
        failed.fetch_or(r.is_err(), Ordering::Relaxed);
        *slots[c].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    std::thread::scope(|s| {
        for worker in 1..workers.min(chunks.len()) {
            let work = &work;
            s.spawn(move || work(worker));
        }
        work(0);
    });
    let mut results: Vec<Option<Embedded>> =
        slots.into_iter().map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    if let Some(i) = results.iter().position(|r| matches!(r, Some(Err(_)))) {
        if let Some(Err(e)) = results.swap_remove(i) {
            return Err(e);
        }
    }
    let mut out = vec![Vec::new(); texts.len()];
    for (chunk, result) in chunks.iter().zip(results) {
        let Some(Ok(vectors)) = result else {
            return Err(EmbedError::Compute("a sub-batch was not embedded".into()));
        };
        if vectors.len() != chunk.len() {
            return Err(EmbedError::Compute(format!(
                "engine returned {} vectors for {} texts",
                vectors.len(),
                chunk.len()
            )));
        }
        for (&i, v) in chunk.iter().zip(vectors) {
            out[i] = v;
        }
    }
    Ok(out)
}

/// Mean of each sequence's real-token rows (`is_real(row index)`), then
/// L2-normalised: the sentence-transformers pooling of this model. `hidden`
/// is `[batch, seq_len, dim]`, row-major.
pub(crate) fn mean_pool(hidden: &[f32], seq_len: usize, dim: usize, is_real: impl Fn(usize) -> bool) -> Vec<Vec<f32>> {
    hidden
        .chunks_exact(seq_len * dim)
        .enumerate()
        .map(|(item, rows)| {
            let mut sum = vec![0.0f64; dim];
            let mut count = 0usize;
            for (t, row) in rows.chunks_exact(dim).enumerate() {
                if is_real(item * seq_len + t) {
                    sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
                    count += 1;
                }
            }
            let count = count.max(1) as f64;
            let mut mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
            normalise(&mut mean);
            mean
        })
        .collect()
}

/// Scales to unit length; like torch's F.normalize the norm is clamped so a
/// zero vector stays zero instead of turning into NaN.
pub(crate) fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
}
