//! Embedding engines. An engine turns texts into L2-normalised vectors of a
//! fixed dimension; it is synchronous CPU work, so callers run it on a
//! blocking thread.

mod minilm;
mod onnx;
mod remote;

pub use minilm::MiniLm;
pub use onnx::OnnxEngine;
pub use remote::RemoteEngine;

use tokenizers::Tokenizer;

use crate::EmbedError;

pub trait Engine: Send + Sync + 'static {
    /// Embeds every text; the result has one normalised vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn dimension(&self) -> usize;
    /// A name for the model, recorded with the vectors it made.
    fn model_name(&self) -> &str;
}

/// Tokenises `texts`, runs `run` over sub-batches of similar length (so a
/// sub-batch carries little padding) and puts the vectors back in the
/// caller's order. Shared by every local engine.
pub(crate) fn embed_by_length(
    tokenizer: &Tokenizer,
    texts: &[&str],
    sub_batch: usize,
    mut run: impl FnMut(&[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError>,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let ids = texts
        .iter()
        .map(|t| {
            tokenizer.encode(*t, true).map(|e| e.get_ids().to_vec()).map_err(|e| EmbedError::Tokenizer(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    for chunk in order.chunks(sub_batch.max(1)) {
        let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
        for (&i, v) in chunk.iter().zip(run(&seqs)?) {
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
