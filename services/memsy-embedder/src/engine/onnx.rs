//! all-MiniLM-L6-v2 through ONNX Runtime, on a graph made by
//! `scripts/prepare-onnx.py` (`model.onnx`, fp32, or `model_int8.onnx`, with
//! int8 dense layers). The runtime library (`libonnxruntime.so`) is loaded at
//! run time from a path — the one shipped in the `onnxruntime` Python wheel,
//! which `scripts/fetch-onnx.sh` records in `models/onnxruntime.path` — so
//! nothing is downloaded or linked at build time.
//!
//! Graph contract: inputs `input_ids` and `attention_mask`, both int64
//! `[batch, seq]` (no `token_type_ids`: always 0, folded into the graph).
//! Output either `sentence_embedding` `[batch, 384]` (mean pooling and L2
//! normalisation done in the graph, as `prepare-onnx.py` builds it) or
//! `last_hidden_state` `[batch, seq, 384]` (pooled here). Tokenisation is
//! the same as the pure-Rust [`MiniLm`](super::MiniLm) engine's.

use super::{embed_by_length, mean_pool, normalise};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use tokenizers::Tokenizer;

use super::minilm::load_tokenizer;
use super::Engine;
use crate::EmbedError;

const MODEL_NAME: &str = "all-MiniLM-L6-v2";
const HIDDEN: usize = 384;
/// Texts per `Session::run`: sorted by length first, so little padding.
const SUB_BATCH: usize = 32;
const POOLED_OUTPUT: &str = "sentence_embedding";
const HIDDEN_OUTPUT: &str = "last_hidden_state";

/// ONNX Runtime allows one environment (and one loaded library) per process;
/// every `OnnxEngine` shares it. Holds the library path it was loaded from.
static ENVIRONMENT: OnceLock<Result<(Environment, Option<PathBuf>), String>> = OnceLock::new();

fn environment(dylib: Option<&Path>) -> Result<Environment, EmbedError> {
    let requested = dylib.map(Path::to_path_buf).or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from));
    let init = || -> Result<(Environment, Option<PathBuf>), String> {
        let builder = match &requested {
            Some(path) => ort::init_from(path).map_err(|e| e.to_string())?,
            // Falls back to `libonnxruntime.so` on the loader's search path.
            None => ort::init(),
        };
        let env = builder.with_name("memsy-embedder").build().map_err(|e| e.to_string())?;
        Ok((env, requested.clone()))
    };
    let runtime_err = |reason: String| EmbedError::Model {
        path: requested.as_ref().map_or("libonnxruntime.so".into(), |p| p.display().to_string()),
        reason,
    };
    match ENVIRONMENT.get_or_init(init) {
        Ok((env, loaded)) => {
            if let (Some(want), Some(have)) = (&requested, loaded) {
                if want != have {
                    return Err(runtime_err(format!(
                        "ONNX Runtime is already loaded from {} in this process",
                        have.display()
                    )));
                }
            }
            Ok(env.clone())
        }
        Err(reason) => Err(runtime_err(format!("ONNX Runtime could not be loaded: {reason}"))),
    }
}

/// How an [`OnnxEngine`] uses the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnnxThreads {
    /// Cores to use in all, 0 = every core.
    pub threads: usize,
    /// ONNX Runtime sessions run side by side, each with `threads /
    /// sessions` intra-op threads; 0 = one per thread. With one session per
    /// thread a call's sub-batches run in parallel, one per core, and no
    /// thread waits for another between ops (a call with fewer texts than
    /// sessions goes to one more session over all the threads); with one
    /// session the threads share every op instead.
    pub sessions: usize,
    /// Let the intra-op threads busy-wait between ops (only matters with
    /// more than one thread per session): faster when the engine has the
    /// cores to itself, but the spinning takes CPU from whatever else runs
    /// on them.
    pub spin: bool,
}

impl Default for OnnxThreads {
    fn default() -> Self {
        Self { threads: 0, sessions: 0, spin: true }
    }
}

impl OnnxThreads {
    /// (sessions, intra-op threads per session) on a machine with `cores`.
    fn layout(&self, cores: usize) -> (usize, usize) {
        let threads = if self.threads == 0 { cores.max(1) } else { self.threads };
        let sessions = if self.sessions == 0 { threads } else { self.sessions.min(threads) };
        (sessions, threads / sessions)
    }
}

/// The all-MiniLM-L6-v2 engine on ONNX Runtime's CPU provider.
///
/// `Session::run` needs exclusive access: each worker thread of a call has
/// a session of its own (see [`OnnxThreads::sessions`]); concurrent callers
/// take turns.
pub struct OnnxEngine {
    tokenizer: Tokenizer,
    sessions: Vec<Mutex<Session>>,
    /// With several sessions, one more whose threads span all of theirs,
    /// for a call with fewer texts than sessions (a search's query): one
    /// session would run it on one core while the others idle. On a VNNI
    /// host one text took 1.6 ms on one thread and 1.0 ms on two
    /// (docs/BENCHMARKS.md, 2026-12-04).
    whole: Option<Mutex<Session>>,
    pooled_output: bool,
    onnx_file: String,
    threads: OnnxThreads,
}

impl fmt::Debug for OnnxEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxEngine")
            .field("model", &MODEL_NAME)
            .field("onnx_file", &self.onnx_file)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl OnnxEngine {
    /// Loads `model_dir/onnx/<onnx_file>` (or `model_dir/<onnx_file>` when
    /// there is no `onnx/` copy) and `model_dir/tokenizer.json`.
    ///
    /// `onnx_file` is `"model_int8.onnx"` or `"model.onnx"`. `dylib` is the
    /// ONNX Runtime library to load; `None` means `ORT_DYLIB_PATH`, then
    /// `libonnxruntime.so` on the loader's search path. The library is
    /// loaded once per process: a later engine asking for a different one
    /// gets an error.
    pub fn load(
        model_dir: &Path,
        onnx_file: &str,
        dylib: Option<&Path>,
        threads: OnnxThreads,
    ) -> Result<OnnxEngine, EmbedError> {
        let tokenizer = load_tokenizer(&model_dir.join("tokenizer.json"))?;
        let model_path = [model_dir.join("onnx").join(onnx_file), model_dir.join(onnx_file)]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| EmbedError::Model {
                path: model_dir.join("onnx").join(onnx_file).display().to_string(),
                reason: "file not found (make it with scripts/fetch-onnx.sh)".into(),
            })?;
        let model_err = |reason: String| EmbedError::Model { path: model_path.display().to_string(), reason };

        let env = environment(dylib)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (count, intra) = threads.layout(cores);
        let session = |intra: usize| {
            Session::builder(&env)
                .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::All).map_err(Into::into))
                .and_then(|b| b.with_intra_threads(intra).map_err(Into::into))
                .and_then(|b| b.with_intra_op_spinning(threads.spin).map_err(Into::into))
                // One op at a time; any parallelism is across sessions or inside the ops.
                .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
                .and_then(|mut b| b.commit_from_file(&model_path))
                .map_err(|e| model_err(e.to_string()))
        };
        // Created on a thread named like the model's others: ONNX Runtime
        // starts each session's threads there, and they inherit its name.
        let (sessions, whole) = std::thread::scope(|s| {
            let create = || -> Result<(Vec<Session>, Option<Session>), EmbedError> {
                let sessions = (0..count).map(|_| session(intra)).collect::<Result<Vec<_>, _>>()?;
                let whole = if count > 1 { Some(session(count * intra)?) } else { None };
                Ok((sessions, whole))
            };
            std::thread::Builder::new()
                .name(crate::MODEL_THREAD_NAME.into())
                .spawn_scoped(s, create)
                .map_err(|e| model_err(format!("cannot start a thread: {e}")))?
                .join()
                .map_err(|_| model_err("session creation panicked".into()))?
        })?;
        let session = &sessions[0];

        let inputs: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        for needed in ["input_ids", "attention_mask"] {
            if !inputs.contains(&needed) {
                return Err(model_err(format!("graph has no `{needed}` input (inputs: {inputs:?})")));
            }
        }
        if inputs.len() != 2 {
            return Err(model_err(format!("expected inputs input_ids and attention_mask, found {inputs:?}")));
        }
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let pooled_output = if outputs.contains(&POOLED_OUTPUT) {
            true
        } else if outputs.contains(&HIDDEN_OUTPUT) {
            false
        } else {
            return Err(model_err(format!(
                "graph has neither `{POOLED_OUTPUT}` nor `{HIDDEN_OUTPUT}` output (outputs: {outputs:?})"
            )));
        };

        Ok(OnnxEngine {
            tokenizer,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            whole: whole.map(Mutex::new),
            pooled_output,
            onnx_file: onnx_file.to_string(),
            threads: OnnxThreads { threads: count * intra, sessions: count, spin: threads.spin },
        })
    }

    /// Runs one padded sub-batch on `session`; one normalised vector per sequence.
    fn embed_padded(&self, session: &Mutex<Session>, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = seqs.len();
        let seq_len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if seq_len == 0 {
            return Err(EmbedError::Compute("empty token sequence".into()));
        }
        let mut ids = vec![0i64; batch * seq_len];
        let mut mask = vec![0i64; batch * seq_len];
        for (item, seq) in seqs.iter().enumerate() {
            for (pos, &id) in seq.iter().enumerate() {
                ids[item * seq_len + pos] = i64::from(id);
                mask[item * seq_len + pos] = 1;
            }
        }
        let compute = |e: ort::Error| EmbedError::Compute(e.to_string());
        let shape = [batch as i64, seq_len as i64];
        let ids = Tensor::from_array((shape, ids)).map_err(compute)?;
        let mask_tensor = Tensor::from_array((shape, mask.clone())).map_err(compute)?;

        let mut session = session.lock().map_err(|_| EmbedError::Compute("ONNX session lock poisoned".into()))?;
        let outputs = session
            .run(ort::inputs![
                "input_ids" => ids,
                "attention_mask" => mask_tensor,
            ])
            .map_err(compute)?;
        let name = if self.pooled_output { POOLED_OUTPUT } else { HIDDEN_OUTPUT };
        let (out_shape, data) = outputs[name].try_extract_tensor::<f32>().map_err(compute)?;

        let mut vectors = if self.pooled_output {
            if **out_shape != [batch as i64, HIDDEN as i64] {
                return Err(EmbedError::Compute(format!(
                    "`{name}` has shape {out_shape:?}, expected [{batch}, {HIDDEN}]"
                )));
            }
            data.chunks_exact(HIDDEN).map(<[f32]>::to_vec).collect()
        } else {
            if **out_shape != [batch as i64, seq_len as i64, HIDDEN as i64] {
                return Err(EmbedError::Compute(format!(
                    "`{name}` has shape {out_shape:?}, expected [{batch}, {seq_len}, {HIDDEN}]"
                )));
            }
            mean_pool(data, seq_len, HIDDEN, |k| mask[k] != 0)
        };
        // The pooled graph normalises already; doing it again is cheap and
        // keeps the unit-length promise whatever graph was loaded.
        vectors.iter_mut().for_each(|v| normalise(v));
        Ok(vectors)
    }
}

impl Engine for OnnxEngine {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match &self.whole {
            Some(whole) if texts.len() < self.sessions.len() => {
                embed_by_length(&self.tokenizer, texts, SUB_BATCH, 1, |_, seqs| self.embed_padded(whole, seqs))
            }
            _ => embed_by_length(&self.tokenizer, texts, SUB_BATCH, self.sessions.len(), |worker, seqs| {
                self.embed_padded(&self.sessions[worker % self.sessions.len()], seqs)
            }),
        }
    }

    fn dimension(&self) -> usize {
        HIDDEN
    }

    fn model_name(&self) -> &str {
        MODEL_NAME
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_split_among_sessions() {
        let t = |threads, sessions| OnnxThreads { threads, sessions, spin: true }.layout(4);
        assert_eq!(t(0, 0), (4, 1), "one session per core");
        assert_eq!(t(0, 1), (1, 4), "one session, every core inside each op");
        assert_eq!(t(2, 0), (2, 1));
        assert_eq!(t(4, 2), (2, 2));
        assert_eq!(t(2, 8), (2, 1), "never more sessions than threads");
    }

    #[test]
    fn normalise_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalise(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }
}
