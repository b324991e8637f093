//! Embedder throughput, as a ratio against the same ONNX graph run from
//! Python (onnxruntime's own API) in the same run.
//!
//!     cargo build --release -p memsy-bench
//!     flock /tmp/memsy-bench.lock target/release/bench-embedder
//!
//! (Build first, so that the lock is not held while compiling.)
//!
//! Engines: `OnnxEngine` on `model_int8.onnx` and on `model.onnx` in its
//! default layout (one ONNX Runtime session per core), `model_int8.onnx`
//! also as one session with two threads (as the Python reference runs it),
//! and the pure-Rust `MiniLm` (baseline: Python on `model.onnx`, the same
//! fp32 weights). Request sizes 1, 32 and 128 texts, cycling through ~200 distinct
//! short sentences (LoCoMo turns of at most 20 words). Each measurement warms
//! up first and then runs for at least `BENCH_SECONDS` (default 5) seconds.
//!
//! Environment (all optional): `BENCH_SECONDS`, `BENCH_MODEL_DIR` (default
//! `models/all-minilm-l6-v2`), `BENCH_ORT_PATH_FILE` (default
//! `models/onnxruntime.path`), `BENCH_PYTHON` (default `.venv/bin/python`),
//! `BENCH_SENTENCES_DIR` (default `../shared/datasets/locomo`, the shared
//! folder beside the clone),
//! `BENCH_MAX_WORDS` (default 20: the longest turn taken, in words; 8 gives
//! the short-sentence set); relative paths are taken from the workspace root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use memsy_embedder::{Engine, MiniLm, OnnxEngine, OnnxThreads};
use serde_json::Value;

const SIZES: [usize; 3] = [1, 32, 128];
const N_SENTENCES: usize = 200;
const MAX_WORDS: usize = 20;

fn max_words() -> usize {
    std::env::var("BENCH_MAX_WORDS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(MAX_WORDS)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ has a parent").to_path_buf()
}

fn env_path(var: &str, default: &str) -> PathBuf {
    let p = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_string()));
    if p.is_absolute() {
        p
    } else {
        workspace_root().join(p)
    }
}

/// Up to `N_SENTENCES` distinct turns of ≤ [`max_words`] words, in a fixed
/// order (files sorted by name, keys in map order); generated sentences
/// fill up if the data set is missing or short.
fn sentences(dir: &Path) -> Vec<String> {
    let max_words = max_words();
    let mut out: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()
        })
        .unwrap_or_default();
    files.sort();
    'files: for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&text) else { continue };
        for (key, value) in &doc {
            if !key.starts_with("session_") {
                continue;
            }
            let Value::Array(turns) = value else { continue };
            for turn in turns {
                let Some(t) = turn.get("text").and_then(Value::as_str) else { continue };
                let t = t.trim();
                let words = t.split_whitespace().count();
                if words == 0 || words > max_words || out.iter().any(|s| s == t) {
                    continue;
                }
                out.push(t.to_string());
                if out.len() == N_SENTENCES {
                    break 'files;
                }
            }
        }
    }
    let subjects = ["Alice", "The team", "My sister", "Our client", "Bob"];
    let verbs = ["likes", "moved to", "is learning", "visited", "wrote about"];
    let objects = ["Lisbon", "pottery", "the Rust book", "a marathon", "jazz piano"];
    let mut i = 0;
    while out.len() < N_SENTENCES {
        let s = format!("{} {} {} in week {}.", subjects[i % 5], verbs[(i / 5) % 5], objects[(i / 25) % 5], i);
        out.push(s);
        i += 1;
    }
    out
}

/// Texts per second for requests of `size` texts: warm-up (≥ 1 s and ≥ 3
/// requests), then requests until `seconds` have passed.
fn measure(engine: &dyn Engine, texts: &[&str], size: usize, seconds: f64) -> f64 {
    let n = texts.len();
    let mut start = 0usize;
    let request = |start: &mut usize| {
        let req: Vec<&str> = (0..size).map(|k| texts[(*start + k) % n]).collect();
        *start += size;
        let v = engine.embed(&req).expect("embed");
        assert_eq!(v.len(), size);
    };
    let t0 = Instant::now();
    let mut reqs = 0;
    while reqs < 3 || t0.elapsed() < Duration::from_secs(1) {
        request(&mut start);
        reqs += 1;
    }
    let t0 = Instant::now();
    let mut done = 0usize;
    loop {
        request(&mut start);
        done += size;
        let elapsed = t0.elapsed().as_secs_f64();
        if elapsed >= seconds {
            return done as f64 / elapsed;
        }
    }
}

struct PyResult {
    texts_per_s: Vec<f64>,
    first_vector: Vec<f32>,
    ort_version: String,
}

fn python_reference(python: &Path, model_dir: &Path, onnx_file: &str, sentences_file: &Path, seconds: f64) -> PyResult {
    let script = workspace_root().join("bench/embedder_reference.py");
    let sizes = SIZES.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let out = Command::new(python)
        .arg(&script)
        .arg(model_dir)
        .arg(onnx_file)
        .arg(sentences_file)
        .arg(&sizes)
        .arg(seconds.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    if !out.status.success() {
        panic!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("reference prints JSON");
    let texts_per_s = SIZES.iter().map(|s| v["texts_per_s"][s.to_string()].as_f64().expect("texts_per_s")).collect();
    let first_vector = v["first_vector"]
        .as_array()
        .expect("first_vector")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
        .collect();
    PyResult { texts_per_s, first_vector, ort_version: v["ort_version"].as_str().unwrap_or("?").to_string() }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

struct Row {
    engine: String,
    baseline: String,
    size: usize,
    ours: f64,
    python: f64,
}

/// Texts/s of `engine` for every request size in [`SIZES`], in that order.
fn measure_sizes(engine: &dyn Engine, name: &str, texts: &[&str], seconds: f64) -> Vec<f64> {
    SIZES
        .iter()
        .map(|&size| {
            let r = measure(engine, texts, size, seconds);
            eprintln!("{name} size {size}: {r:.1} texts/s");
            r
        })
        .collect()
}

/// One row per request size: `ours` and `python` are per [`SIZES`].
fn rows_for<'a>(
    engine: &'a str,
    baseline: &'a str,
    ours: &'a [f64],
    python: &'a [f64],
) -> impl Iterator<Item = Row> + 'a {
    SIZES.iter().enumerate().map(move |(i, &size)| Row {
        engine: engine.to_string(),
        baseline: baseline.to_string(),
        size,
        ours: ours[i],
        python: python[i],
    })
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let model_dir = env_path("BENCH_MODEL_DIR", "models/all-minilm-l6-v2");
    let ort_path_file = env_path("BENCH_ORT_PATH_FILE", "models/onnxruntime.path");
    let python = env_path("BENCH_PYTHON", ".venv/bin/python");
    let sentences_dir = env_path("BENCH_SENTENCES_DIR", "../shared/datasets/locomo");

    let dylib = PathBuf::from(
        std::fs::read_to_string(&ort_path_file)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-onnx.sh)", ort_path_file.display()))
            .trim(),
    );
    let texts = sentences(&sentences_dir);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    eprintln!(
        "{} sentences, {:.1} words on average; {seconds} s per measurement",
        texts.len(),
        words as f64 / texts.len() as f64
    );

    let sentences_file = std::env::temp_dir().join(format!("memsy-bench-sentences-{}.json", std::process::id()));
    std::fs::write(&sentences_file, serde_json::to_vec(&texts).expect("json")).expect("write sentences");

    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut fp32_reference: Option<PyResult> = None;

    for onnx_file in ["model_int8.onnx", "model.onnx"] {
        // The engine's default layout; for int8 also the layout the Python
        // reference uses (one session, its threads sharing every op).
        let mut layouts = vec![("session per core", OnnxThreads::default())];
        if onnx_file == "model_int8.onnx" {
            layouts.push(("one session, as Python", OnnxThreads { threads: 2, sessions: 1, spin: true }));
        }
        let mut measured = Vec::new();
        let mut ours_first = Vec::new();
        for (layout, threads) in layouts {
            let engine = OnnxEngine::load(&model_dir, onnx_file, Some(&dylib), threads).expect("load OnnxEngine");
            let ours = measure_sizes(&engine, &format!("OnnxEngine {onnx_file} ({layout})"), &refs, seconds);
            ours_first = engine.embed(&refs[..1]).expect("embed")[0].clone();
            measured.push((layout, ours));
        }
        let py = python_reference(&python, &model_dir, onnx_file, &sentences_file, seconds);
        eprintln!("python {onnx_file}: {:?}", py.texts_per_s);
        notes.push(format!(
            "OnnxEngine {onnx_file} vs Python, sentence 0: cosine {:.6} (onnxruntime {})",
            cosine(&ours_first, &py.first_vector),
            py.ort_version
        ));
        let baseline = format!("Python ORT `{onnx_file}`");
        for (layout, ours) in measured {
            let engine = format!("OnnxEngine `{onnx_file}` ({layout})");
            rows.extend(rows_for(&engine, &baseline, &ours, &py.texts_per_s));
        }
        if onnx_file == "model.onnx" {
            fp32_reference = Some(py);
        }
    }

    let minilm = MiniLm::load(&model_dir, 0).expect("load MiniLm");
    let ours = measure_sizes(&minilm, "MiniLm", &refs, seconds);
    let py = fp32_reference.expect("fp32 reference ran");
    let first = minilm.embed(&refs[..1]).expect("embed")[0].clone();
    notes.push(format!(
        "MiniLm (pure Rust) vs Python `model.onnx`, sentence 0: cosine {:.6}",
        cosine(&first, &py.first_vector)
    ));
    rows.extend(rows_for("MiniLm (pure Rust, fp32)", "Python ORT `model.onnx`", &ours, &py.texts_per_s));
    let _ = std::fs::remove_file(&sentences_file);

    println!("| engine | baseline | texts/request | ours texts/s | python texts/s | ratio ours/python |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2} |",
            r.engine,
            r.baseline,
            r.size,
            r.ours,
            r.python,
            r.ours / r.python
        );
    }
    println!();
    for n in &notes {
        println!("- {n}");
    }
}
