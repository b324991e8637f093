//! `bench-pipeline`: what the memsy write path costs, each number next to a
//! baseline measured in the same run on the same machine.
//!
//! 1. Embedder baseline: `OnnxEngine` (model_int8.onnx) embedding the
//!    pipeline texts in batches of 32 and of 64, as one session with both
//!    threads in every op (spinning or not) and as one session per core
//!    (the fastest counts), before anything else runs; texts per second and
//!    per CPU-second of the bench process.
//! 2. Ingest, against the gateway deployed on its own (`memsy status` +
//!    `memsy gateway`, no stage consuming), on its own nats-server and
//!    redis-server (testkit): gateway `POST /v1/ingest` (1- and 50-event
//!    batches, 8 in flight, closed loop) vs raw JetStream async publish of the
//!    same JSON event bodies to a stream of our own on the same nats-server;
//!    then a 50-event open loop at half the measured gateway rate, through
//!    the gateway and, as its baseline, straight to JetStream.
//! 3. Fresh servers and `memsy serve` (every service in one process).
//! 4. Pipeline: N statements from ingest to `completed` vs the embedder alone,
//!    with where the phase's CPU went (`/proc`: the model's threads, the
//!    rest of `memsy serve`, nats-server, redis-server, the bench, the rest
//!    of the machine) and the ratio as the product of two factors — the
//!    cores the model kept busy and the texts per CPU-second it embedded,
//!    each against the embedder alone.
//! 5. Freshness: 1 event / 200 ms; time from the ingest 200 until a search by
//!    that actor returns the new memory.
//! 6. For reference: 50-event batches through the gateway of `memsy serve`,
//!    whose pipeline drains them on the same cores, vs raw JetStream.
//!
//! With `BENCH_LAYOUT=traces`, only the pipeline of `memsy serve` with
//! traces off and at 100 % sampling, alternating (see `traces.rs`).
//!
//! With `BENCH_LAYOUT=dedicated`, only this instead (see `dedicated.rs`):
//! the embedder alone on one core with one thread, then the pipeline with
//! `memsy embedder` on that core and `memsy serve` (`embedder.external`),
//! nats-server, redis-server and the bench on another (the first two cores
//! the bench may use: 0 and 1 on a machine of its own).
//!
//! Prints one JSON document on stdout. Environment: `MEMSY_BIN` (default
//! `$CARGO_TARGET_DIR/release/memsy`, else `target/release/memsy` of the
//! workspace), `MEMSY_MODEL_DIR` (default
//! <workspace>/models/all-minilm-l6-v2), `BENCH_SECS` (default 10),
//! `BENCH_PIPELINE_N` (default 2000), `BENCH_SKIP_INGEST=1` (pipeline and
//! freshness only), `BENCH_ONLY_INGEST=1` (part 2 only), `BENCH_TRACE_SLOW=1`
//! (print each gateway open-loop request slower than 30 ms with when it
//! was sent), `BENCH_LOG_DIR` (keep the servers' logs there), `BENCH_RUST_LOG`
//! (the servers' `RUST_LOG`, default `warn`).

mod cpu;
mod dedicated;
mod stores;
mod traces;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use memsy_embedder::{Engine, OnnxEngine, OnnxThreads};
use memsy_testkit::{free_port, workspace_root, NatsServer, RedisServer};
use serde_json::{json, Value};

const CONCURRENCY: usize = 8;
/// The pause before each open loop (see there).
const SETTLE: Duration = Duration::from_secs(5);
const THINGS: [&str; 16] = [
    "apples",
    "jazz",
    "hiking",
    "green tea",
    "chess",
    "sushi",
    "sailing",
    "poetry",
    "tennis",
    "pottery",
    "cycling",
    "opera",
    "gardening",
    "astronomy",
    "photography",
    "baking",
];

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    ms(sorted[idx.min(sorted.len() - 1)])
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A memsy process (`serve`, `gateway` or `status`), killed when dropped.
struct Memsy {
    child: Child,
    log: PathBuf,
    what: String,
}

impl Drop for Memsy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Memsy {
    fn spawn(bin: &str, args: &[&str], env: &[(&str, String)], log: PathBuf) -> Res<Memsy> {
        Self::spawn_on(None, bin, args, env, log)
    }

    /// `spawn`, confined to the cores `cpus` (a `taskset` list) if given.
    fn spawn_on(cpus: Option<&str>, bin: &str, args: &[&str], env: &[(&str, String)], log: PathBuf) -> Res<Memsy> {
        let logf = std::fs::File::create(&log)?;
        let mut command = match cpus {
            // taskset execs `bin`: the child's pid stays the server's.
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(logf.try_clone()?))
            .stderr(Stdio::from(logf))
            .spawn()
            .map_err(|e| format!("spawn {bin}: {e}"))?;
        Ok(Memsy { child, log, what: format!("memsy {}", args[0]) })
    }

    /// SIGTERM, and wait until it has drained and exited.
    fn stop(&mut self) -> Res<()> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let t0 = Instant::now();
        while self.child.try_wait()?.is_none() {
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!("{} still running 60 s after SIGTERM", self.what).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn tail_log(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits for `GET <base>/livez`; returns the seconds it took.
    async fn wait_live(&mut self, http: &reqwest::Client, base: &str) -> Res<f64> {
        let t0 = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/livez")).send().await {
                if r.status().is_success() {
                    return Ok(t0.elapsed().as_secs_f64());
                }
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("{} exited with {st}:\n{}", self.what, self.tail_log()).into());
            }
            if t0.elapsed() > Duration::from_secs(120) {
                return Err(format!("{} not live after 120 s:\n{}", self.what, self.tail_log()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Mints a read/write key for org `bench` and waits until the gateway at
/// `base`, which learns of keys through a watch, accepts it.
async fn bench_api(bin: &str, env: &[(&str, String)], http: reqwest::Client, base: String) -> Res<Api> {
    let out = Command::new(bin)
        .args(["keys", "create", "--org", "bench", "--scopes", "read,write"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(format!("memsy keys create failed: {}", String::from_utf8_lossy(&out.stdout)).into());
    }
    let key = String::from_utf8(out.stdout)?.trim().to_string();
    let api = Api { http, base, key };
    let t_key = Instant::now();
    loop {
        let (code, v) = api.post("/v1/status", &json!({ "event_ids": [] })).await?;
        if code == 200 {
            return Ok(api);
        }
        if t_key.elapsed() > Duration::from_secs(30) {
            return Err(format!("key not accepted after 30 s: {code} {v}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn post(&self, path: &str, body: &Value) -> Res<(u16, Value)> {
        let resp = self.http.post(format!("{}{}", self.base, path)).bearer_auth(&self.key).json(body).send().await?;
        let code = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((code, v))
    }

    /// Ingest; Ok(ids) only on 200.
    async fn ingest(&self, events: &[Value]) -> Res<Vec<String>> {
        let (code, v) = self.post("/v1/ingest", &json!({ "events": events })).await?;
        if code != 200 {
            return Err(format!("ingest answered {code}: {v}").into());
        }
        Ok(v["event_ids"]
            .as_array()
            .ok_or("no event_ids")?
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect())
    }

    /// One event all the way through, so that a measured phase starts on
    /// a pipeline that is ready.
    async fn warm_up(&self) -> Res<()> {
        let event = json!({"actor_id":"warm","session_id":"warm","kind":"user_message","content":"I like warm soup."});
        let ids = self.ingest(&[event]).await?;
        self.drain(&ids, Duration::from_secs(60)).await?;
        Ok(())
    }

    /// States of up to 1000 ids: (completed, failed, still pending ids).
    async fn status(&self, ids: &[String]) -> Res<(usize, usize, Vec<String>)> {
        let (code, v) = self.post("/v1/status", &json!({ "event_ids": ids })).await?;
        if code != 200 {
            return Err(format!("status answered {code}: {v}").into());
        }
        let n = |k: &str| v[k].as_array().map_or(0, |a| a.len());
        let pending = v["pendingIds"]
            .as_array()
            .map_or_else(Vec::new, |a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect());
        Ok((n("completedIds"), n("failedIds"), pending))
    }

    /// Waits until none of `ids` is pending (or `limit` passes); returns
    /// how many completed and failed, and the time taken. Completed and
    /// failed are final, so each round asks only about the ids still
    /// pending, 1000 at a time in ingest order, and stops at the first
    /// thousand that still has one (the rest cannot all be done yet, and
    /// they will be asked next round): the polling stays a small load next
    /// to the pipeline it measures, instead of re-reading every id's state
    /// ten times a second.
    async fn drain(&self, ids: &[String], limit: Duration) -> Res<(usize, usize, Duration)> {
        let t0 = Instant::now();
        let (mut completed, mut failed) = (0, 0);
        let mut left: Vec<String> = ids.to_vec();
        while !left.is_empty() && t0.elapsed() < limit {
            let mut still = Vec::new();
            let mut asked = 0;
            for chunk in left.chunks(1000) {
                let (c, f, pending) = self.status(chunk).await?;
                completed += c;
                failed += f;
                asked += chunk.len();
                let more = !pending.is_empty();
                still.extend(pending);
                if more {
                    break;
                }
            }
            still.extend_from_slice(&left[asked..]);
            left = still;
            if !left.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok((completed, failed, t0.elapsed()))
    }
}

fn filler_event(run: &str, worker: usize, seq: u64) -> Value {
    // Short, distinct (no de-duplication) and yields no memory, so the
    // extractor's share of the background work stays small.
    json!({
        "actor_id": format!("bench-{}", worker),
        "session_id": format!("s-{run}-{worker}"),
        "kind": "user_message",
        "content": format!("ok thanks {run}-{worker}-{seq}"),
    })
}

fn statement(i: usize) -> String {
    format!("I like {} number {}.", THINGS[i % THINGS.len()], i)
}

// ---------------------------------------------------------------- embedder

/// The layouts the embedder baseline tries on all cores.
const ALL_CORE_LAYOUTS: [(&str, OnnxThreads); 3] = [
    ("one_session_spin", OnnxThreads { threads: 0, sessions: 1, spin: true }),
    ("one_session_no_spin", OnnxThreads { threads: 0, sessions: 1, spin: false }),
    ("session_per_core", OnnxThreads { threads: 0, sessions: 0, spin: false }),
];

fn embedder_baseline(model_dir: &Path, texts: &[String], layouts: &[(&str, OnnxThreads)]) -> Res<Value> {
    let dylib_file = workspace_root().join("models/onnxruntime.path");
    let dylib = std::fs::read_to_string(&dylib_file)?.trim().to_string();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // The pipeline's stage batches are 32 events and its batcher merges
    // them up to 64 texts, and the engine may run one session with every
    // thread in each op (spinning between ops or not) or one session per
    // core, so it is measured every way and the fastest is the baseline.
    // Three passes over all texts each; the median is the number (the
    // machine is shared).
    let mut ways = serde_json::Map::new();
    let mut best = (String::new(), 0.0f64, 0.0f64);
    let mut n = 0;
    for &(layout, threads) in layouts {
        let engine = OnnxEngine::load(model_dir, "model_int8.onnx", Some(Path::new(&dylib)), threads)?;
        // Warm-up (graph optimisation, allocator).
        engine.embed(&refs[..32.min(refs.len())])?;
        for batch in [32usize, 64] {
            // (texts/s, texts per CPU-second of this process) per pass.
            let mut passes = Vec::new();
            for _ in 0..3 {
                let (t0, cpu0) = (Instant::now(), cpu::process(std::process::id()));
                n = 0;
                for chunk in refs.chunks(batch) {
                    n += engine.embed(chunk)?.len();
                }
                let cpu_s = cpu::process(std::process::id()).since(&cpu0);
                passes.push((n as f64 / t0.elapsed().as_secs_f64(), n as f64 / cpu_s));
            }
            let rates: Vec<f64> = passes.iter().map(|p| p.0).collect();
            passes.sort_by(|a, b| a.0.total_cmp(&b.0));
            let median = passes[1];
            let way = format!("batch_{batch}_{layout}");
            ways.insert(
                way.clone(),
                json!({
                    "passes_texts_per_s": rates.iter().map(|r| round1(*r)).collect::<Vec<_>>(),
                    "texts_per_s": round1(median.0),
                    "texts_per_cpu_s": round1(median.1),
                }),
            );
            if median.0 > best.1 {
                best = (way, median.0, median.1);
            }
        }
    }
    let threads: Vec<usize> = layouts.iter().map(|l| l.1.threads).collect();
    Ok(json!({
        "engine": format!("onnx model_int8.onnx, threads={threads:?} (0 = all cores)"),
        "texts": n,
        "ways": Value::Object(ways),
        "fastest": best.0,
        "texts_per_s": round1(best.1),
        "texts_per_cpu_s": round1(best.2),
    }))
}

/// Where the servers' logs go: `BENCH_LOG_DIR` if set (kept after the
/// run), else the run's temporary directory.
/// What every `memsy` child of the bench is started with: its servers, the
/// model, its log level, and a plan without a rate limit. The default plan's
/// limit (60,000 requests a minute per key) is a deployment's policy, and
/// the 1-event closed loop alone can pass it: 429s would cut the runs after
/// it short.
fn server_env(nats: &NatsServer, redis: &RedisServer, model_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("MEMSY__NATS__URL", nats.url()),
        ("MEMSY__REDIS__URL", redis.url()),
        ("MEMSY__EMBEDDER__MODEL_DIR", model_dir.display().to_string()),
        ("RUST_LOG", env_or("BENCH_RUST_LOG", "warn")),
        ("MEMSY__USAGE__DEFAULT_PLAN", "bench".into()),
        ("MEMSY__USAGE__PLANS__BENCH__REQUESTS_PER_MINUTE", "0".into()),
    ]
}

fn log_dir(data: &tempfile::TempDir) -> PathBuf {
    match std::env::var_os("BENCH_LOG_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            let _ = std::fs::create_dir_all(&d);
            d
        }
        None => data.path().to_path_buf(),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

/// The CPU counters of the pipeline phase's processes at one instant.
struct CpuSnapshot {
    at: Instant,
    machine: cpu::Machine,
    memsy: cpu::Process,
    nats: cpu::Process,
    redis: cpu::Process,
    bench: cpu::Process,
}

impl CpuSnapshot {
    fn take(memsy: &Memsy, nats: &NatsServer, redis: &RedisServer) -> Self {
        Self {
            at: Instant::now(),
            machine: cpu::machine(),
            memsy: cpu::process(memsy.child.id()),
            nats: cpu::process(nats.pid()),
            redis: cpu::process(redis.pid()),
            bench: cpu::process(std::process::id()),
        }
    }

    /// Where the phase's CPU went (shares of all cores over the phase), and
    /// the pipeline / embedder ratio as the product of two factors: how many
    /// cores the model's threads kept busy, against the embedder alone, and
    /// how many texts each of their CPU-seconds embedded, against the
    /// embedder alone. The product is the ratio itself: the pipeline embeds
    /// each statement once.
    ///
    /// Also the ceiling the rest of the pipeline puts on that ratio: with `m`
    /// the model's CPU per text alone and `r` the CPU per event of
    /// everything else the pipeline needs (`memsy serve` but the model,
    /// nats-server, redis-server), the pipeline cannot go faster than
    /// `m / (m + r)` of the embedder alone even if it kept as many cores
    /// busy as the embedder did and its model ran as fast per CPU-second:
    /// each event takes `m + r` of the CPU the embedder alone spends `m` on.
    /// A ratio of 0.8 needs `r ≤ m / 4`.
    fn split_since(&self, start: &Self, texts: usize, embed: &Value) -> Value {
        let wall = (self.at - start.at).as_secs_f64();
        let cpu::MachineTime { busy, stolen, all } = self.machine.since(&start.machine);
        let (memsy_rest, model) = self.memsy.split_since(&start.memsy, memsy_embedder::MODEL_THREAD_NAME);
        let nats = self.nats.since(&start.nats);
        let redis = self.redis.since(&start.redis);
        let bench = self.bench.since(&start.bench);
        let others = (busy - model - memsy_rest - nats - redis - bench).max(0.0);
        let share = |s: f64| round3(s / all);
        let base_tps = embed["texts_per_s"].as_f64().unwrap_or(f64::NAN);
        let base_per_cpu_s = embed["texts_per_cpu_s"].as_f64().unwrap_or(f64::NAN);
        let base_cores = base_tps / base_per_cpu_s;
        let model_cores = model / wall;
        let model_per_cpu_s = texts as f64 / model;
        let per_event = |cpu_s: f64| cpu_s * 1e3 / texts as f64;
        let model_alone_ms = 1e3 / base_per_cpu_s;
        let rest_ms = per_event(memsy_rest + nats + redis);
        json!({
            "wall_s": round3(wall),
            "cpu_s_all_cores": round1(all),
            "shares_of_all_cores": {
                "busy": share(busy),
                "memsy_model_threads": share(model),
                "memsy_other_threads": share(memsy_rest),
                "nats_server": share(nats),
                "redis_server": share(redis),
                "bench_client": share(bench),
                "other_processes": share(others),
                "stolen_by_the_hypervisor": share(stolen),
            },
            "model_cores_busy": round3(model_cores),
            "embedder_alone_cores_busy": round3(base_cores),
            "model_texts_per_cpu_s": round1(model_per_cpu_s),
            "embedder_alone_texts_per_cpu_s": round1(base_per_cpu_s),
            "ratio_factors": {
                "model_cores_vs_alone": round3(model_cores / base_cores),
                "texts_per_model_cpu_s_vs_alone": round3(model_per_cpu_s / base_per_cpu_s),
            },
            "cpu_ms_per_event": {
                "model_alone_per_text": round3(model_alone_ms),
                "model_per_text": round3(per_event(model)),
                "rest": round3(rest_ms),
                "memsy_other_threads": round3(per_event(memsy_rest)),
                "nats_server": round3(per_event(nats)),
                "redis_server": round3(per_event(redis)),
            },
            "ratio_ceiling_from_rest": round3(model_alone_ms / (model_alone_ms + rest_ms)),
            "rest_ms_per_event_for_ratio_0_8": round3(model_alone_ms / 4.0),
        })
    }
}

/// Ingests `texts` as user messages of 20 actors, 50 events per request,
/// `CONCURRENCY` requests in flight; the event ids in text order.
async fn ingest_statements(api: &Api, texts: &[String]) -> Res<Vec<String>> {
    let mut ids: Vec<String> = Vec::with_capacity(texts.len());
    let mut set = tokio::task::JoinSet::new();
    let chunks: Vec<Vec<Value>> = texts
        .chunks(50)
        .enumerate()
        .map(|(c, ch)| {
            ch.iter()
                .enumerate()
                .map(|(i, t)| {
                    json!({"actor_id": format!("pipe-{}", (c * 50 + i) % 20), "session_id": "pipe",
                            "kind": "user_message", "content": t})
                })
                .collect()
        })
        .collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    for (c, evs) in chunks.into_iter().enumerate() {
        let api = api.clone();
        let permit = sem.clone().acquire_owned().await?;
        set.spawn(async move {
            let r = api.ingest(&evs).await;
            drop(permit);
            (c, r)
        });
    }
    let mut parts = Vec::new();
    while let Some(r) = set.join_next().await {
        let (c, r) = r?;
        parts.push((c, r?));
    }
    parts.sort_by_key(|(c, _)| *c);
    for (_, p) in parts {
        ids.extend(p);
    }
    Ok(ids)
}

// ---------------------------------------------------------------- ingest

struct LoadResult {
    events: u64,
    requests: u64,
    errors: u64,
    secs: f64,
    lat: Vec<Duration>,
    last_ids: Vec<String>,
}

impl LoadResult {
    fn to_json(&self) -> Value {
        json!({
            "events": self.events,
            "requests": self.requests,
            "errors": self.errors,
            "secs": round3(self.secs),
            "events_per_s": round1(self.events as f64 / self.secs),
            "requests_per_s": round1(self.requests as f64 / self.secs),
            "p50_ms": pct(&self.lat, 50.0),
            "p99_ms": pct(&self.lat, 99.0),
            "max_ms": pct(&self.lat, 100.0),
        })
    }
}

/// Closed loop: `CONCURRENCY` workers, each sending batches back to back for `dur`.
async fn gateway_closed(api: &Api, run: &str, batch: usize, dur: Duration) -> LoadResult {
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let api = api.clone();
        let run = run.to_string();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut seq = 0u64;
            let mut events = 0u64;
            let mut last = Vec::new();
            while t0.elapsed() < dur {
                let evs: Vec<Value> = (0..batch)
                    .map(|_| {
                        seq += 1;
                        filler_event(&run, w, seq)
                    })
                    .collect();
                let s = Instant::now();
                match api.ingest(&evs).await {
                    Ok(ids) => {
                        lat.push(s.elapsed());
                        events += ids.len() as u64;
                        last = ids;
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("ingest error: {e}");
                        }
                    }
                }
            }
            (lat, events, last)
        }));
    }
    let mut out = LoadResult { events: 0, requests: 0, errors: 0, secs: 0.0, lat: vec![], last_ids: vec![] };
    for t in tasks {
        let (lat, events, last) = t.await.expect("worker");
        out.requests += lat.len() as u64;
        out.lat.extend(lat);
        out.events += events;
        out.last_ids.extend(last);
    }
    out.secs = t0.elapsed().as_secs_f64();
    out.errors = errors.load(Ordering::Relaxed);
    out.lat.sort();
    out
}

/// The same closed loop against raw JetStream: publish each event's JSON
/// body, then await every ack of the batch.
async fn raw_closed(js: &jetstream::Context, run: &str, batch: usize, dur: Duration) -> LoadResult {
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let js = js.clone();
        let run = run.to_string();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut seq = 0u64;
            let mut events = 0u64;
            while t0.elapsed() < dur {
                let payloads: Vec<Vec<u8>> = (0..batch)
                    .map(|_| {
                        seq += 1;
                        serde_json::to_vec(&filler_event(&run, w, seq)).expect("json")
                    })
                    .collect();
                let s = Instant::now();
                if publish_acked(&js, w, payloads).await {
                    lat.push(s.elapsed());
                    events += batch as u64;
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            (lat, events)
        }));
    }
    let mut out = LoadResult { events: 0, requests: 0, errors: 0, secs: 0.0, lat: vec![], last_ids: vec![] };
    for t in tasks {
        let (lat, events) = t.await.expect("worker");
        out.requests += lat.len() as u64;
        out.lat.extend(lat);
        out.events += events;
    }
    out.secs = t0.elapsed().as_secs_f64();
    out.errors = errors.load(Ordering::Relaxed);
    out.lat.sort();
    out
}

/// Publishes `payloads` to `bench.events.{w}` asynchronously, then waits
/// for every ack (what the gateway does with a batch); true if all acked.
async fn publish_acked(js: &jetstream::Context, w: usize, payloads: Vec<Vec<u8>>) -> bool {
    let mut acks = Vec::with_capacity(payloads.len());
    let mut ok = true;
    for p in payloads {
        match js.publish(format!("bench.events.{w}"), p.into()).await {
            Ok(a) => acks.push(a),
            Err(_) => ok = false,
        }
    }
    for r in futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
        ok &= r.is_ok();
    }
    ok
}

/// The baseline of [`gateway_open`]: the same batches at the same rate,
/// published straight to JetStream, so the gateway's tail can be told from
/// the broker's and the machine's.
async fn raw_open(js: &jetstream::Context, run: &str, batch: usize, rps: f64, dur: Duration) -> LoadResult {
    let (t0, tasks) = open_loop(rps, dur, |k, due| {
        let js = js.clone();
        let w = (k % 1000) as usize;
        let payloads: Vec<Vec<u8>> =
            (0..batch).map(|i| serde_json::to_vec(&filler_event(run, w, k * 1000 + i as u64)).expect("json")).collect();
        tokio::spawn(async move { publish_acked(&js, w, payloads).await.then(|| due.elapsed()) })
    })
    .await;
    let mut out = LoadResult { events: 0, requests: 0, errors: 0, secs: 0.0, lat: vec![], last_ids: vec![] };
    for t in tasks {
        match t.await.expect("request") {
            Some(d) => {
                out.lat.push(d);
                out.requests += 1;
                out.events += batch as u64;
            }
            None => out.errors += 1,
        }
    }
    out.secs = t0.elapsed().as_secs_f64();
    out.lat.sort();
    out
}

/// Starts request `k` with `start(k, due)` at its due time, one every
/// `1/rps` s for `dur`, whatever the answers; returns the start instant and
/// the requests' tasks.
async fn open_loop<T>(
    rps: f64,
    dur: Duration,
    mut start: impl FnMut(u64, Instant) -> tokio::task::JoinHandle<T>,
) -> (Instant, Vec<tokio::task::JoinHandle<T>>) {
    let interval = Duration::from_secs_f64(1.0 / rps);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let mut k = 0u64;
    loop {
        let due = t0 + interval.mul_f64(k as f64);
        if due.duration_since(t0) >= dur {
            return (t0, tasks);
        }
        tokio::time::sleep_until(due.into()).await;
        tasks.push(start(k, due));
        k += 1;
    }
}

/// Open loop: a 50-event request every `1/rps` s regardless of answers;
/// latency counted from the scheduled send time (no coordinated omission).
async fn gateway_open(api: &Api, run: &str, batch: usize, rps: f64, dur: Duration) -> LoadResult {
    let errors = Arc::new(AtomicU64::new(0));
    let (t0, tasks) = open_loop(rps, dur, |k, due| {
        let api = api.clone();
        let errors = errors.clone();
        let evs: Vec<Value> = (0..batch).map(|i| filler_event(run, (k % 1000) as usize, k * 1000 + i as u64)).collect();
        tokio::spawn(async move {
            match api.ingest(&evs).await {
                Ok(ids) => Some((due.elapsed(), ids)),
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("ingest error: {e}");
                    }
                    None
                }
            }
        })
    })
    .await;
    let mut out = LoadResult { events: 0, requests: 0, errors: 0, secs: 0.0, lat: vec![], last_ids: vec![] };
    let n = tasks.len();
    let trace_slow = env_or("BENCH_TRACE_SLOW", "0") == "1";
    for (i, t) in tasks.into_iter().enumerate() {
        if let Some((d, ids)) = t.await.expect("request") {
            // Where in the run the slow requests fall tells a stall of
            // everything (a burst at one moment) from queueing (spread out).
            if d > Duration::from_millis(30) && trace_slow {
                eprintln!("[slow] sent at {:.3} s: {:.1} ms", i as f64 / rps, d.as_secs_f64() * 1e3);
            }
            out.lat.push(d);
            out.requests += 1;
            out.events += ids.len() as u64;
            if i + CONCURRENCY >= n {
                out.last_ids.extend(ids);
            }
        }
    }
    out.secs = t0.elapsed().as_secs_f64();
    out.errors = errors.load(Ordering::Relaxed);
    out.lat.sort();
    out
}

/// A JetStream context with the baseline's own stream (`BENCH`, subjects
/// `bench.>`, file storage) on the server at `url`.
async fn raw_stream(url: &str) -> Res<jetstream::Context> {
    let js = jetstream::new(async_nats::connect(url).await?);
    js.get_or_create_stream(jetstream::stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    Ok(js)
}

// ---------------------------------------------------------------- main

#[tokio::main]
async fn main() -> Res<()> {
    let secs: u64 = env_or("BENCH_SECS", "10").parse()?;
    let dur = Duration::from_secs(secs);
    let n_pipeline: usize = env_or("BENCH_PIPELINE_N", "2000").parse()?;
    let target =
        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace_root().join("target"));
    let memsy_bin = env_or("MEMSY_BIN", &target.join("release/memsy").display().to_string());
    let model_dir = PathBuf::from(env_or(
        "MEMSY_MODEL_DIR",
        &workspace_root().join("models/all-minilm-l6-v2").display().to_string(),
    ));
    let texts: Vec<String> = (0..n_pipeline).map(statement).collect();
    let load_start = loadavg();
    let skip_ingest = env_or("BENCH_SKIP_INGEST", "0") == "1";
    let only_ingest = env_or("BENCH_ONLY_INGEST", "0") == "1";
    if env_or("BENCH_LAYOUT", "shared") == "stores" {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        let mut result = stores::run(&memsy_bin, &model_dir, &texts, http).await?;
        result["memsy_bin"] = json!(memsy_bin);
        result["loadavg_start"] = json!(load_start);
        result["loadavg_end"] = json!(loadavg());
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    if env_or("BENCH_LAYOUT", "shared") == "traces" {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        let mut result = traces::run(&memsy_bin, &model_dir, &texts, http).await?;
        result["memsy_bin"] = json!(memsy_bin);
        result["loadavg_start"] = json!(load_start);
        result["loadavg_end"] = json!(loadavg());
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    if env_or("BENCH_LAYOUT", "shared") == "dedicated" {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        let mut result = dedicated::run(&memsy_bin, &model_dir, &texts, http).await?;
        result["memsy_bin"] = json!(memsy_bin);
        result["loadavg_start"] = json!(load_start);
        result["loadavg_end"] = json!(loadavg());
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }

    // 1. The embedder alone, before anything else competes for the cores.
    let embed = if only_ingest {
        Value::Null
    } else {
        eprintln!("[bench] embedder baseline: {} texts", texts.len());
        let embed = tokio::task::block_in_place(|| embedder_baseline(&model_dir, &texts, &ALL_CORE_LAYOUTS))?;
        eprintln!("[bench] {embed}");
        embed
    };

    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;

    // 2. Ingest, against the gateway deployed on its own: `memsy status` and
    //    `memsy gateway`, no pipeline stage consuming (the raw JetStream
    //    baseline has no consumer either), on a nats-server and redis-server
    //    of their own.
    let mut ingest = serde_json::Map::new();
    if !skip_ingest {
        let nats = NatsServer::start();
        let redis = RedisServer::start();
        let data = tempfile::tempdir()?;
        let status_port = free_port();
        let mut env = server_env(&nats, &redis, &model_dir);
        env.extend([
            ("MEMSY__STATUS__GRPC_ADDR", format!("127.0.0.1:{status_port}")),
            ("MEMSY__STATUS__URL", format!("http://127.0.0.1:{status_port}")),
            // A gateway on its own reads memories from a Qdrant server, and
            // none can run here; ingest never touches it (only search does),
            // and the client connects lazily, so a port with no server will do.
            ("MEMSY__QDRANT__URL", format!("http://127.0.0.1:{}", free_port())),
        ]);
        let logs = log_dir(&data);
        let status_ops = format!("127.0.0.1:{}", free_port());
        let mut status =
            Memsy::spawn(&memsy_bin, &["status", "--http-addr", &status_ops], &env, logs.join("status.log"))?;
        status.wait_live(&http, &format!("http://{status_ops}")).await?;
        let port = free_port();
        let mut gateway = Memsy::spawn(
            &memsy_bin,
            &["gateway", "--http-addr", &format!("127.0.0.1:{port}")],
            &env,
            logs.join("gateway.log"),
        )?;
        let base = format!("http://127.0.0.1:{port}");
        gateway.wait_live(&http, &base).await?;
        let api = bench_api(&memsy_bin, &env, http.clone(), base).await?;
        let js = raw_stream(&nats.url()).await?;
        for batch in [1usize, 50] {
            eprintln!("[bench] raw JetStream, batch {batch}");
            let raw = raw_closed(&js, &format!("r{batch}"), batch, dur).await;
            eprintln!("[bench] {}", raw.to_json());
            eprintln!("[bench] gateway alone, batch {batch}");
            let gw = gateway_closed(&api, &format!("g{batch}"), batch, dur).await;
            eprintln!("[bench] {}", gw.to_json());
            let ratio = (gw.events as f64 / gw.secs) / (raw.events as f64 / raw.secs);
            ingest.insert(
                format!("batch_{batch}"),
                json!({
                    "raw_jetstream": raw.to_json(),
                    "gateway": gw.to_json(),
                    "ratio_events_per_s_gateway_over_raw": round3(ratio),
                    "ratio_p50_gateway_over_raw": round3(pct(&gw.lat, 50.0) / pct(&raw.lat, 50.0)),
                    "ratio_p99_gateway_over_raw": round3(pct(&gw.lat, 99.0) / pct(&raw.lat, 99.0)),
                }),
            );
            if batch == 50 {
                let half_eps = gw.events as f64 / gw.secs / 2.0;
                let rps = half_eps / 50.0;
                // Every event the gateway publishes carries a `Nats-Msg-Id`,
                // which nats-server keeps in a table for the stream's
                // de-duplication window; how full it is when the open loop
                // starts decides whether that table grows during the run.
                let mut events_stream = js.get_stream(memsy_bus::topology::EVENTS_STREAM).await?;
                let in_window = events_stream.info().await?.state.messages;
                eprintln!(
                    "[bench] gateway alone, open loop, batch 50 at {rps:.1} req/s ({in_window} ids in the window)"
                );
                // The closed loop just ran the servers flat out; let what it
                // left behind (broker and Redis housekeeping, their garbage)
                // settle before measuring a service at half its capacity.
                tokio::time::sleep(SETTLE).await;
                let open = gateway_open(&api, "h50", 50, rps, dur).await;
                eprintln!("[bench] {}", open.to_json());
                tokio::time::sleep(SETTLE).await;
                eprintln!("[bench] raw JetStream, open loop, batch 50 at {rps:.1} req/s");
                let raw_half = raw_open(&js, "rh50", 50, rps, dur).await;
                eprintln!("[bench] {}", raw_half.to_json());
                let mut j = open.to_json();
                j["target_events_per_s"] = json!(round1(half_eps));
                j["target_requests_per_s"] = json!(round3(rps));
                j["msg_ids_in_gateway_stream_window_at_start"] = json!(in_window);
                j["raw_jetstream_same_rate"] = raw_half.to_json();
                j["ratio_p99_gateway_over_raw"] = json!(round3(pct(&open.lat, 99.0) / pct(&raw_half.lat, 99.0)));
                ingest.insert("batch_50_half_rate_open_loop".into(), j);
            }
        }
        drop(gateway);
        drop(status);
    }
    // The result: these fields, then what each part measured.
    let mut result = json!({
        "memsy_bin": memsy_bin,
        "concurrency": CONCURRENCY,
        "duration_s_per_load_run": secs,
        "loadavg_start": load_start,
    });
    if only_ingest {
        result["loadavg_end"] = json!(loadavg());
        result["ingest"] = Value::Object(ingest);
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }

    // 3. `memsy serve` (every service in one process) on fresh servers, for
    //    the pipeline and freshness.
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let data = tempfile::tempdir()?;
    let port = free_port();
    let mut env = server_env(&nats, &redis, &model_dir);
    env.extend([("MEMSY__EMBEDDER__ENGINE", "onnx".into()), ("MEMSY__EMBEDDER__ONNX_FILE", "model_int8.onnx".into())]);
    let qdrant = data.path().join("qdrant").display().to_string();
    let mut memsy = Memsy::spawn(
        &memsy_bin,
        &["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir", &qdrant],
        &env,
        log_dir(&data).join("memsy.log"),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let startup_s = memsy.wait_live(&http, &base).await?;
    eprintln!("[bench] memsy serve live after {startup_s:.2} s");
    let api = bench_api(&memsy_bin, &env, http.clone(), base).await?;
    // Readiness: one event all the way through.
    api.warm_up().await?;

    // 4. Pipeline: N statements, ingest → completed.
    eprintln!("[bench] pipeline: {n_pipeline} statements");
    let cpu0 = CpuSnapshot::take(&memsy, &nats, &redis);
    let t0 = Instant::now();
    let ids = ingest_statements(&api, &texts).await?;
    let ingest_s = t0.elapsed().as_secs_f64();
    let (done, failed, _) = api.drain(&ids, Duration::from_secs(600)).await?;
    let pipe_s = t0.elapsed().as_secs_f64();
    let cpu_split = CpuSnapshot::take(&memsy, &nats, &redis).split_since(&cpu0, n_pipeline, &embed);
    let pipe_eps = n_pipeline as f64 / pipe_s;
    let embed_tps = embed["texts_per_s"].as_f64().unwrap_or(f64::NAN);
    // How many memories the statements made (one per statement expected).
    let (_, probe) =
        api.post("/v1/search", &json!({"query": statement(7), "actor_id": "pipe-7", "limit": 100})).await?;
    let probe_hits = probe["results"].as_array().map_or(0, |a| a.len());
    let pipeline = json!({
        "statements": n_pipeline,
        "ingest_batch": 50,
        "ingest_concurrency": CONCURRENCY,
        "ingest_s": round3(ingest_s),
        "to_all_completed_s": round3(pipe_s),
        "completed": done,
        "failed": failed,
        "events_per_s": round1(pipe_eps),
        "embedder_alone_texts_per_s": embed_tps,
        "ratio_pipeline_over_embedder": round3(pipe_eps / embed_tps),
        "probe_search_pipe7_hits_limit100": probe_hits,
        "probe_expected": n_pipeline / 20,
        "cpu": cpu_split,
    });
    eprintln!("[bench] {pipeline}");

    // 5. Freshness.
    eprintln!("[bench] freshness: 50 events, 1 per 200 ms");
    let mut set = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for i in 0..50usize {
        tick.tick().await;
        let api = api.clone();
        set.spawn(async move {
            let actor = format!("fresh-{i}");
            let content = format!("I like {} number {}.", THINGS[(i * 7) % THINGS.len()], 10_000 + i);
            let ev = json!({"actor_id": actor, "session_id": "fresh", "kind": "user_message", "content": content});
            let ids = api.ingest(&[ev]).await?;
            let t = Instant::now();
            let mut searches = 0u32;
            loop {
                searches += 1;
                let (code, v) =
                    api.post("/v1/search", &json!({"query": content, "actor_id": actor, "limit": 5})).await?;
                let found = code == 200
                    && v["results"].as_array().is_some_and(|a| {
                        a.iter().any(|r| {
                            r["metadata"].to_string().contains(&ids[0])
                                || r["content"].as_str().is_some_and(|c| c.contains(&format!("{}", 10_000 + i)))
                        })
                    });
                if found {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>((t.elapsed(), searches));
                }
                if t.elapsed() > Duration::from_secs(60) {
                    return Err("memory not searchable after 60 s".into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let mut fresh = Vec::new();
    let mut searches = Vec::new();
    let mut fresh_err = 0;
    while let Some(r) = set.join_next().await {
        match r? {
            Ok((d, s)) => {
                fresh.push(d);
                searches.push(s);
            }
            Err(e) => {
                fresh_err += 1;
                eprintln!("freshness error: {e}");
            }
        }
    }
    fresh.sort();
    let freshness = json!({
        "events": 50,
        "interval_ms": 200,
        "search_poll_interval_ms": 20,
        "found": fresh.len(),
        "errors": fresh_err,
        "p50_ms": pct(&fresh, 50.0),
        "p95_ms": pct(&fresh, 95.0),
        "max_ms": pct(&fresh, 100.0),
        "min_ms": pct(&fresh, 0.0),
        "mean_searches_until_found": round1(searches.iter().map(|&s| s as f64).sum::<f64>() / searches.len().max(1) as f64),
    });
    eprintln!("[bench] {freshness}");

    // 6. For reference: the gateway of `memsy serve`, sharing the cores with
    //    the pipeline that drains what it accepts.
    if !skip_ingest {
        let js = raw_stream(&nats.url()).await?;
        eprintln!("[bench] raw JetStream next to memsy serve, batch 50");
        let raw = raw_closed(&js, "sr50", 50, dur).await;
        eprintln!("[bench] {}", raw.to_json());
        eprintln!("[bench] memsy serve gateway, batch 50");
        let gw = gateway_closed(&api, "s50", 50, dur).await;
        eprintln!("[bench] {}", gw.to_json());
        let (_, _, backlog) = api.drain(&gw.last_ids, Duration::from_secs(300)).await?;
        eprintln!("[bench] backlog drained after {:.2} s", backlog.as_secs_f64());
        let ratio = (gw.events as f64 / gw.secs) / (raw.events as f64 / raw.secs);
        ingest.insert(
            "serve_batch_50".into(),
            json!({
                "raw_jetstream": raw.to_json(),
                "gateway": gw.to_json(),
                "ratio_events_per_s_gateway_over_raw": round3(ratio),
                "pipeline_backlog_drain_s_after_run": round3(backlog.as_secs_f64()),
            }),
        );
    }

    result["memsy_startup_s"] = json!(round3(startup_s));
    result["loadavg_end"] = json!(loadavg());
    result["embedder_alone"] = embed;
    result["ingest"] = Value::Object(ingest);
    result["pipeline"] = pipeline;
    result["freshness"] = freshness;
    println!("{}", serde_json::to_string_pretty(&result)?);
    drop(memsy);
    drop(redis);
    drop(nats);
    drop(data);
    Ok(())
}
