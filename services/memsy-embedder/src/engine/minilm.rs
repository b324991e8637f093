//! A pure-Rust CPU implementation of sentence-transformers
//! `all-MiniLM-L6-v2`: a 6-layer, 384-wide BERT encoder followed by mean
//! pooling over the attention mask and L2 normalisation. The weights come
//! straight from the model's `model.safetensors` and the word pieces from
//! its `tokenizer.json`, so no Python or ONNX runtime is needed. The goal is
//! to reproduce the reference implementation to within float32 rounding
//! (cosine ≥ 0.999 against sentence-transformers output), while keeping
//! throughput reasonable: texts are grouped by length into sub-batches and
//! every dense layer of a sub-batch runs as a single matrix product through
//! `matrixmultiply`, so the cost per text falls as the batch grows.

use super::{embed_by_length, mean_pool};
use std::fmt;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use tokenizers::{Tokenizer, TruncationParams};

use super::Engine;
use crate::EmbedError;

const MODEL_NAME: &str = "all-MiniLM-L6-v2";
const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const INTERMEDIATE: usize = 1536;
const LAYERS: usize = 6;
const VOCAB: usize = 30522;
const MAX_POSITIONS: usize = 512;
const LAYER_NORM_EPS: f32 = 1e-12;
/// sentence-transformers' `max_seq_length` for this model (special tokens
/// included); longer inputs are truncated, as the reference does.
const MAX_SEQ_LEN: usize = 256;
/// Texts per sub-batch. Larger sub-batches give `sgemm` taller matrices, but
/// also more padding when lengths differ and more memory for the
/// `[batch*seq, 1536]` activations; 32 is a good middle ground.
const SUB_BATCH: usize = 32;

/// The all-MiniLM-L6-v2 embedding engine. Immutable after loading, so one
/// instance can serve concurrent callers.
pub struct MiniLm {
    tokenizer: Tokenizer,
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    threads: usize,
}

impl fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiniLm").field("model", &MODEL_NAME).field("threads", &self.threads).finish_non_exhaustive()
    }
}

impl MiniLm {
    /// Loads `model.safetensors` and `tokenizer.json` from `model_dir`.
    ///
    /// `threads` bounds the worker threads used for the attention step
    /// (0 = the number of available cores). The dense matrix products use
    /// `matrixmultiply`'s own process-wide pool, sized by the
    /// `MATMUL_NUM_THREADS` environment variable (default: physical cores,
    /// at most 4), which cannot be set per engine.
    pub fn load(model_dir: &Path, threads: usize) -> Result<MiniLm, EmbedError> {
        let tokenizer = load_tokenizer(&model_dir.join("tokenizer.json"))?;

        let weights_path = model_dir.join("model.safetensors");
        let model_err = |reason: String| EmbedError::Model { path: weights_path.display().to_string(), reason };
        let bytes = std::fs::read(&weights_path).map_err(|e| model_err(e.to_string()))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| model_err(e.to_string()))?;
        let get = |name: &str, shape: &[usize]| tensor(&st, name, shape).map_err(&model_err);

        let embeddings = Embeddings {
            word: get("embeddings.word_embeddings.weight", &[VOCAB, HIDDEN])?,
            position: get("embeddings.position_embeddings.weight", &[MAX_POSITIONS, HIDDEN])?,
            token_type: get("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?,
            norm: LayerNorm {
                weight: get("embeddings.LayerNorm.weight", &[HIDDEN])?,
                bias: get("embeddings.LayerNorm.bias", &[HIDDEN])?,
            },
        };

        let mut layers = Vec::with_capacity(LAYERS);
        for n in 0..LAYERS {
            let p = format!("encoder.layer.{n}");
            let linear = |name: &str, out: usize, inp: usize| -> Result<Linear, EmbedError> {
                Ok(Linear {
                    weight: get(&format!("{p}.{name}.weight"), &[out, inp])?,
                    bias: get(&format!("{p}.{name}.bias"), &[out])?,
                    out,
                    inp,
                })
            };
            let norm = |name: &str| -> Result<LayerNorm, EmbedError> {
                Ok(LayerNorm {
                    weight: get(&format!("{p}.{name}.weight"), &[HIDDEN])?,
                    bias: get(&format!("{p}.{name}.bias"), &[HIDDEN])?,
                })
            };

            // Fuse Q, K and V into one [1152, 384] projection: one taller
            // GEMM is cheaper than three. The 1/sqrt(head_dim) attention
            // scale is folded into Q; it is 1/8, a power of two, so this is
            // exact and saves scaling every score.
            let mut q = linear("attention.self.query", HIDDEN, HIDDEN)?;
            let k = linear("attention.self.key", HIDDEN, HIDDEN)?;
            let v = linear("attention.self.value", HIDDEN, HIDDEN)?;
            let scale = 1.0 / (HEAD_DIM as f32).sqrt();
            q.weight.iter_mut().chain(q.bias.iter_mut()).for_each(|w| *w *= scale);
            let qkv = Linear {
                weight: [q.weight, k.weight, v.weight].concat(),
                bias: [q.bias, k.bias, v.bias].concat(),
                out: 3 * HIDDEN,
                inp: HIDDEN,
            };

            layers.push(EncoderLayer {
                qkv,
                attn_out: linear("attention.output.dense", HIDDEN, HIDDEN)?,
                attn_norm: norm("attention.output.LayerNorm")?,
                ffn_in: linear("intermediate.dense", INTERMEDIATE, HIDDEN)?,
                ffn_out: linear("output.dense", HIDDEN, INTERMEDIATE)?,
                ffn_norm: norm("output.LayerNorm")?,
            });
        }

        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(MiniLm { tokenizer, embeddings, layers, threads })
    }

    /// Runs the encoder on one padded sub-batch and returns one pooled,
    /// normalised vector per sequence.
    fn embed_padded(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let seq_len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if seq_len == 0 {
            return Err(EmbedError::Compute("empty token sequence".into()));
        }
        if seq_len > MAX_POSITIONS {
            return Err(EmbedError::Compute(format!("sequence of {seq_len} tokens exceeds {MAX_POSITIONS} positions")));
        }
        let rows = seqs.len() * seq_len;

        // Row r = item * seq_len + position; `mask[r]` marks real tokens.
        let mut mask = vec![false; rows];
        let mut x = vec![0.0f32; rows * HIDDEN];
        for (item, ids) in seqs.iter().enumerate() {
            for pos in 0..seq_len {
                let r = item * seq_len + pos;
                // Padding rows get the [PAD] (id 0) embedding like the
                // reference does; they never reach real rows (masked as keys)
                // nor the pooled output, but this keeps them finite.
                let id = match ids.get(pos) {
                    Some(&id) => {
                        mask[r] = true;
                        id as usize
                    }
                    None => 0,
                };
                if id >= VOCAB {
                    return Err(EmbedError::Compute(format!("token id {id} outside vocabulary")));
                }
                self.embeddings.lookup(id, pos, &mut x[r * HIDDEN..(r + 1) * HIDDEN]);
            }
        }
        self.embeddings.norm.apply_rows(&mut x);

        for layer in &self.layers {
            x = layer.forward(&x, &mask, seq_len, self.threads);
        }

        Ok(mean_pool(&x, seq_len, HIDDEN, |k| mask[k]))
    }
}

impl Engine for MiniLm {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // One worker: the attention step has threads of its own.
        embed_by_length(&self.tokenizer, texts, SUB_BATCH, 1, |_, seqs| self.embed_padded(seqs))
    }

    fn dimension(&self) -> usize {
        HIDDEN
    }

    fn model_name(&self) -> &str {
        MODEL_NAME
    }
}

pub(crate) fn load_tokenizer(path: &Path) -> Result<Tokenizer, EmbedError> {
    let model_err = |reason: String| EmbedError::Model { path: path.display().to_string(), reason };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| model_err(e.to_string()))?;
    // tokenizer.json pads every input to 128 tokens; we pad per sub-batch
    // ourselves, and the model's real limit is 256 word pieces, not 128.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: MAX_SEQ_LEN, ..Default::default() }))
        .map_err(|e| model_err(e.to_string()))?;
    Ok(tokenizer)
}

/// Reads one float32 tensor, checking its shape so a wrong or corrupt file
/// fails at load time rather than as an index panic mid-request.
fn tensor(st: &SafeTensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    let view = st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))?;
    if view.dtype() != Dtype::F32 {
        return Err(format!("tensor {name}: expected F32, found {:?}", view.dtype()));
    }
    if view.shape() != shape {
        return Err(format!("tensor {name}: expected shape {shape:?}, found {:?}", view.shape()));
    }
    Ok(view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

struct Embeddings {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    norm: LayerNorm,
}

impl Embeddings {
    /// Writes word + position + token-type embedding into `out`; token type
    /// is always 0 since we only embed single sentences.
    fn lookup(&self, id: usize, pos: usize, out: &mut [f32]) {
        let word = &self.word[id * HIDDEN..(id + 1) * HIDDEN];
        let position = &self.position[pos * HIDDEN..(pos + 1) * HIDDEN];
        let token_type = &self.token_type[..HIDDEN];
        for (o, ((w, p), t)) in out.iter_mut().zip(word.iter().zip(position).zip(token_type)) {
            *o = w + p + t;
        }
    }
}

/// A torch-style `Linear`: `weight` is `[out, in]` row-major.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
    inp: usize,
}

impl Linear {
    /// `x` is `[rows, in]`; returns `[rows, out]`.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        // Start from the bias and let the GEMM accumulate onto it (beta = 1).
        let mut y: Vec<f32> = Vec::with_capacity(rows * self.out);
        for _ in 0..rows {
            y.extend_from_slice(&self.bias);
        }
        // The weight is read as its transpose through strides, so no
        // transposed copy is kept: sgemm packs its operands anyway.
        let w_t = MatRef::row_major(&self.weight, self.out, self.inp).t();
        matmul(MatRef::row_major(x, rows, self.inp), w_t, 1.0, &mut y, self.out);
        y
    }
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    /// Normalises each `HIDDEN`-wide row of `x` in place.
    fn apply_rows(&self, x: &mut [f32]) {
        for row in x.chunks_exact_mut(HIDDEN) {
            layer_norm(row, &self.weight, &self.bias, LAYER_NORM_EPS);
        }
    }
}

struct EncoderLayer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: LayerNorm,
}

impl EncoderLayer {
    /// One post-norm BERT layer over `x` = `[items * seq_len, HIDDEN]`.
    fn forward(&self, x: &[f32], mask: &[bool], seq_len: usize, threads: usize) -> Vec<f32> {
        let rows = mask.len();
        let qkv = self.qkv.forward(x, rows);

        let mut ctx = vec![0.0f32; rows * HIDDEN];
        attention(&qkv, mask, seq_len, &mut ctx, threads);

        let mut h = self.attn_out.forward(&ctx, rows);
        add_assign(&mut h, x);
        self.attn_norm.apply_rows(&mut h);

        let mut inner = self.ffn_in.forward(&h, rows);
        inner.iter_mut().for_each(|v| *v = gelu(*v));
        let mut out = self.ffn_out.forward(&inner, rows);
        add_assign(&mut out, &h);
        self.ffn_norm.apply_rows(&mut out);
        out
    }
}

/// Multi-head self-attention for every sequence of the sub-batch. `qkv` is
/// `[rows, 3*HIDDEN]` (Q already scaled); the per-head context vectors are
/// written into `ctx` (`[rows, HIDDEN]`).
///
/// Sequences are independent, so they are split across scoped worker
/// threads; each owns a contiguous block of `ctx` rows, which keeps the
/// split safe without locks.
fn attention(qkv: &[f32], mask: &[bool], seq_len: usize, ctx: &mut [f32], threads: usize) {
    let items = mask.len() / seq_len;
    let per_worker = items.div_ceil(threads.clamp(1, items.max(1)));
    let work = |first_item: usize, ctx_block: &mut [f32]| {
        let mut scores = vec![0.0f32; seq_len * seq_len];
        for (n, ctx_item) in ctx_block.chunks_exact_mut(seq_len * HIDDEN).enumerate() {
            let item = first_item + n;
            let rows = item * seq_len..(item + 1) * seq_len;
            attend_one(&qkv[rows.start * 3 * HIDDEN..rows.end * 3 * HIDDEN], &mask[rows], ctx_item, &mut scores);
        }
    };

    let block = per_worker * seq_len * HIDDEN;
    if per_worker >= items {
        work(0, ctx);
        return;
    }
    std::thread::scope(|s| {
        for (w, ctx_block) in ctx.chunks_mut(block).enumerate() {
            let work = &work;
            s.spawn(move || work(w * per_worker, ctx_block));
        }
    });
}

/// Attention for one sequence: `qkv` is `[seq, 3*HIDDEN]`, `key_mask` marks
/// real tokens, `ctx` is `[seq, HIDDEN]`, `scores` is `[seq, seq]` scratch.
fn attend_one(qkv: &[f32], key_mask: &[bool], ctx: &mut [f32], scores: &mut [f32]) {
    let seq = key_mask.len();
    let stride = 3 * HIDDEN;
    for h in 0..HEADS {
        let col = h * HEAD_DIM;
        let q = MatRef { data: &qkv[col..], rows: seq, cols: HEAD_DIM, rs: stride, cs: 1 };
        let k = MatRef { data: &qkv[HIDDEN + col..], rows: seq, cols: HEAD_DIM, rs: stride, cs: 1 };
        let v = MatRef { data: &qkv[2 * HIDDEN + col..], rows: seq, cols: HEAD_DIM, rs: stride, cs: 1 };

        matmul(q, k.t(), 0.0, scores, seq);
        for row in scores.chunks_exact_mut(seq) {
            masked_softmax(row, key_mask);
        }
        matmul(MatRef::row_major(scores, seq, seq), v, 0.0, &mut ctx[col..], HIDDEN);
    }
}

/// Softmax over the positions where `mask` is true; masked positions get
/// probability 0, exactly as an additive -inf mask would give. A row with no
/// visible position becomes all zeros instead of NaN.
fn masked_softmax(row: &mut [f32], mask: &[bool]) {
    let max = row.iter().zip(mask).filter(|(_, &m)| m).fold(f32::NEG_INFINITY, |acc, (&v, _)| acc.max(v));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sum = 0.0f32;
    for (v, &m) in row.iter_mut().zip(mask) {
        *v = if m { (*v - max).exp() } else { 0.0 };
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Layer normalisation of one row. Statistics are accumulated in f64: with
/// eps = 1e-12 there is no slack to absorb cancellation in the variance.
fn layer_norm(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv_std = 1.0 / (var + eps as f64).sqrt();
    for ((v, &w), &b) in row.iter_mut().zip(weight).zip(bias) {
        *v = ((*v as f64 - mean) * inv_std) as f32 * w + b;
    }
}

/// GELU in BERT's exact form, `x/2 * (1 + erf(x/√2))`, not the tanh
/// approximation: the reference uses the exact one.
fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// The error function, from the Chebyshev-fitted `erfc` of Numerical Recipes
/// (fractional error < 1.2e-7 everywhere), which is well below what float32
/// activations can resolve and needs a single `exp`.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

fn add_assign(acc: &mut [f32], other: &[f32]) {
    acc.iter_mut().zip(other).for_each(|(a, b)| *a += b);
}

/// A read-only strided view of a matrix: element (i, j) is at
/// `data[i * rs + j * cs]`. Strides let transposes and per-head column
/// blocks be passed to `sgemm` without copying.
#[derive(Clone, Copy)]
struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, rs: cols, cs: 1 }
    }

    fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// One past the largest index the view touches (for a non-empty view).
    fn span(&self) -> usize {
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .and_then(|r| (self.cols - 1).checked_mul(self.cs).and_then(|c| r.checked_add(c)))
            .expect("matrix view span overflows usize");
        last + 1
    }
}

/// `c = a · b + beta * c`, where `c` is `a.rows × b.cols` with row stride
/// `rsc` and unit column stride.
#[allow(unsafe_code)]
fn matmul(a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32], rsc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(n <= rsc, "output rows would overlap");
    let c_span = (m - 1).checked_mul(rsc).and_then(|v| v.checked_add(n)).expect("output span overflows");
    assert!(c_span <= c.len(), "output slice too short");
    if k == 0 {
        // Empty inner product: only the beta term remains. Handled here so
        // the span checks below never see an empty operand.
        for row in c.chunks_mut(rsc).take(m) {
            row[..n].iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    assert!(a.span() <= a.data.len(), "left operand slice too short");
    assert!(b.span() <= b.data.len(), "right operand slice too short");
    let stride = |s: usize| isize::try_from(s).expect("stride exceeds isize");

    // SAFETY: sgemm reads A at a + i*rsa + p*csa for i < m, p < k, and B at
    // b + p*rsb + j*csb for p < k, j < n; the span checks above prove every
    // such offset lies inside `a.data` / `b.data`. It writes C at
    // c + i*rsc + j for i < m, j < n: all below `c_span <= c.len()`, and since
    // n <= rsc no two (i, j) share an element, so its worker threads never
    // write the same location. `c` is an exclusive borrow, so nothing else
    // reads or writes it concurrently and it cannot alias A or B. Strides fit
    // in isize, as checked by `stride`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            stride(a.rs),
            stride(a.cs),
            b.data.as_ptr(),
            stride(b.rs),
            stride(b.cs),
            beta,
            c.as_mut_ptr(),
            stride(rsc),
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn erf_matches_known_values() {
        // Values from tables of erf (to 10 digits).
        let known = [
            (0.0, 0.0),
            (0.1, 0.112_462_916_0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (1.5, 0.966_105_146_5),
            (2.0, 0.995_322_265_0),
            (3.0, 0.999_977_909_5),
        ];
        for (x, want) in known {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {} want {want}", erf(x));
            assert!((erf(-x) + want).abs() < 2e-7, "erf is odd");
        }
        assert!((erf(10.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gelu_is_exact_form() {
        assert_eq!(gelu(0.0), 0.0);
        // torch.nn.functional.gelu(x) (approximate='none').
        assert!(close(gelu(1.0), 0.841_344_7, 1e-6));
        assert!(close(gelu(-1.0), -0.158_655_3, 1e-6));
        assert!(close(gelu(2.0), 1.954_499_7, 1e-6));
        assert!(close(gelu(-3.0), -0.004_049_7, 1e-6));
        // Far from the origin GELU is the identity / zero.
        assert!(close(gelu(10.0), 10.0, 1e-6));
        assert!(close(gelu(-10.0), 0.0, 1e-6));
    }

    #[test]
    fn layer_norm_normalises_then_scales() {
        let mut row = [1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut row, &[1.0; 4], &[0.0; 4], 1e-12);
        // mean 2.5, population variance 1.25
        let s = 1.25f32.sqrt();
        for (v, want) in row.iter().zip([-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]) {
            assert!(close(*v, want, 1e-6), "{v} vs {want}");
        }

        let mut row = [1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut row, &[2.0; 4], &[0.5; 4], 1e-12);
        assert!(close(row[0], 2.0 * (-1.5 / s) + 0.5, 1e-6));

        // A constant row has zero variance: the result is just the bias.
        let mut row = [7.0f32; 4];
        layer_norm(&mut row, &[1.0; 4], &[0.25; 4], 1e-12);
        assert!(row.iter().all(|&v| close(v, 0.25, 1e-6)));
    }

    #[test]
    fn softmax_ignores_masked_positions() {
        let mut row = [1.0f32, 2.0, 1000.0, 3.0];
        masked_softmax(&mut row, &[true, true, false, true]);
        assert_eq!(row[2], 0.0, "masked position must get no weight");
        let e = [1.0f32.exp(), 2.0f32.exp(), 3.0f32.exp()];
        let sum: f32 = e.iter().sum();
        assert!(close(row[0], e[0] / sum, 1e-6));
        assert!(close(row[1], e[1] / sum, 1e-6));
        assert!(close(row[3], e[2] / sum, 1e-6));
        assert!(close(row.iter().sum::<f32>(), 1.0, 1e-6));

        // Large scores must not overflow.
        let mut row = [1e4f32, 1e4];
        masked_softmax(&mut row, &[true, true]);
        assert!(close(row[0], 0.5, 1e-6) && close(row[1], 0.5, 1e-6));

        let mut row = [1.0f32, 2.0];
        masked_softmax(&mut row, &[false, false]);
        assert_eq!(row, [0.0, 0.0]);
    }

    #[test]
    fn mean_pool_skips_padding_and_normalises() {
        let seq_len = 3;
        let mut x = vec![0.0f32; 2 * seq_len * HIDDEN];
        // Item 0: rows [1, 0, ...] and [3, 0, ...] are real, row 2 is padding
        // full of large values that must not leak into the mean.
        x[0] = 1.0;
        x[HIDDEN] = 3.0;
        x[2 * HIDDEN..3 * HIDDEN].fill(100.0);
        // Item 1: one real row pointing along dims 0 and 1.
        let item1 = seq_len * HIDDEN;
        x[item1] = 3.0;
        x[item1 + 1] = 4.0;
        let mask = [true, true, false, true, false, false];

        let pooled = mean_pool(&x, seq_len, HIDDEN, |k| mask[k]);
        assert_eq!(pooled.len(), 2);
        assert!(close(pooled[0][0], 1.0, 1e-6));
        assert!(pooled[0][1..].iter().all(|&v| v == 0.0));
        assert!(close(pooled[1][0], 0.6, 1e-6) && close(pooled[1][1], 0.8, 1e-6));
    }

    #[test]
    fn matmul_handles_strides_and_beta() {
        // a = [[1, 2], [3, 4]]; b^T given as row-major [[5, 6], [7, 8]].
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let bt = [5.0f32, 6.0, 7.0, 8.0];
        let mut c = [1.0f32; 4];
        matmul(MatRef::row_major(&a, 2, 2), MatRef::row_major(&bt, 2, 2).t(), 1.0, &mut c, 2);
        // a · b = [[1*5+2*6, 1*7+2*8], [3*5+4*6, 3*7+4*8]] plus the 1s.
        assert_eq!(c, [18.0, 24.0, 40.0, 54.0]);

        // Writing into a column block of a wider matrix leaves the rest alone.
        let mut wide = [0.0f32; 6];
        matmul(MatRef::row_major(&a, 2, 2), MatRef::row_major(&a, 2, 2), 0.0, &mut wide[1..], 3);
        assert_eq!(wide, [0.0, 7.0, 10.0, 0.0, 15.0, 22.0]);
    }
}
