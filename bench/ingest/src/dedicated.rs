//! `BENCH_LAYOUT=dedicated`: the pipeline with the model on a core of its
//! own, as a deployment that scales the embedder on its own runs it.
//!
//! The default layout shares both cores between the model and everything
//! else, so its pipeline / embedder ratio is mostly the model's share of
//! the CPU. This one asks the other question: when the embedder has its
//! cores to itself, does the rest of the pipeline keep it fed? The first
//! core this process may use (the model's core; core 0 on a machine of its
//! own) runs `memsy embedder` (one ONNX Runtime thread); the second (the
//! rest's core) runs `memsy serve` with `embedder.external` (gateway,
//! extractor, indexer, status, store), nats-server, redis-server and this
//! bench. The baseline is the same engine alone on the model's core, and
//! the report says how busy each core was and how many cores the rest of
//! the pipeline took per core of the embedder.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memsy_embedder::OnnxThreads;
use memsy_testkit::{free_port, NatsServer, RedisServer};
use serde_json::{json, Value};

use crate::{bench_api, cpu, embedder_baseline, ingest_statements, log_dir, round1, round3, server_env, Memsy, Res};

/// The two cores of the layout.
#[derive(Clone, Copy)]
struct Cores {
    model: usize,
    rest: usize,
}

/// Confines every thread of `pid` (and the threads it starts later) to `core`.
fn pin(pid: u32, core: usize) -> Res<()> {
    let cpus = core.to_string();
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if !status.success() {
        return Err(format!("taskset -a -p -c {cpus} {pid}: {status}").into());
    }
    Ok(())
}

/// CPU counters of both cores and of every process of the layout.
struct Snapshot {
    at: Instant,
    model_core: cpu::Machine,
    rest_core: cpu::Machine,
    embedder: cpu::Process,
    serve: cpu::Process,
    nats: cpu::Process,
    redis: cpu::Process,
    bench: cpu::Process,
}

impl Snapshot {
    fn take(cores: Cores, embedder: &Memsy, serve: &Memsy, nats: &NatsServer, redis: &RedisServer) -> Self {
        Self {
            at: Instant::now(),
            model_core: cpu::core(cores.model),
            rest_core: cpu::core(cores.rest),
            embedder: cpu::process(embedder.child.id()),
            serve: cpu::process(serve.child.id()),
            nats: cpu::process(nats.pid()),
            redis: cpu::process(redis.pid()),
            bench: cpu::process(std::process::id()),
        }
    }

    fn since(&self, start: &Self, texts: usize) -> Value {
        let wall = (self.at - start.at).as_secs_f64();
        let (model_core, rest_core) =
            (self.model_core.since(&start.model_core), self.rest_core.since(&start.rest_core));
        let (embedder_rest, model) = self.embedder.split_since(&start.embedder, memsy_embedder::MODEL_THREAD_NAME);
        let serve = self.serve.since(&start.serve);
        let nats = self.nats.since(&start.nats);
        let redis = self.redis.since(&start.redis);
        let bench = self.bench.since(&start.bench);
        let cores = |s: f64| round3(s / wall);
        json!({
            "wall_s": round3(wall),
            "busy_share_model_core": round3(model_core.busy / model_core.all),
            "busy_share_rest_core": round3(rest_core.busy / rest_core.all),
            "stolen_share_model_core": round3(model_core.stolen / model_core.all),
            "stolen_share_rest_core": round3(rest_core.stolen / rest_core.all),
            "cores_busy": {
                "embedder_model_threads": cores(model),
                "embedder_other_threads": cores(embedder_rest),
                "memsy_serve": cores(serve),
                "nats_server": cores(nats),
                "redis_server": cores(redis),
                "bench_client": cores(bench),
            },
            "model_texts_per_cpu_s": round1(texts as f64 / model),
            // What a deployment needs beside each busy embedder core.
            "rest_cores_per_embedder_core": round3((serve + nats + redis) / (model + embedder_rest)),
        })
    }
}

/// Runs the layout over `texts`; the result's JSON.
pub async fn run(memsy_bin: &str, model_dir: &Path, texts: &[String], http: reqwest::Client) -> Res<Value> {
    let allowed = cpu::allowed_cores();
    let [model, rest, ..] = allowed[..] else {
        return Err(format!("the dedicated layout needs two cores, this process may use {allowed:?}").into());
    };
    let me = std::process::id();

    // The embedder alone on the model's core: one session, one thread.
    pin(me, model)?;
    eprintln!("[bench] embedder baseline on core {model}: {} texts, one thread", texts.len());
    let one = [("one_thread", OnnxThreads { threads: 1, sessions: 1, spin: false })];
    let embed = tokio::task::block_in_place(|| embedder_baseline(model_dir, texts, &one))?;
    eprintln!("[bench] {embed}");
    pin(me, rest)?;

    let nats = NatsServer::start();
    let redis = RedisServer::start();
    pin(nats.pid(), rest)?;
    pin(redis.pid(), rest)?;
    let data = tempfile::tempdir()?;
    let logs = log_dir(&data);
    let (port, status_port, grpc_port) = (free_port(), free_port(), free_port());
    let mut env = server_env(&nats, &redis, model_dir);
    env.extend([
        ("MEMSY__EMBEDDER__ENGINE", "onnx".into()),
        ("MEMSY__EMBEDDER__ONNX_FILE", "model_int8.onnx".into()),
        ("MEMSY__EMBEDDER__THREADS", "1".into()),
        ("MEMSY__EMBEDDER__SESSIONS", "1".into()),
        ("MEMSY__EMBEDDER__SPIN", "false".into()),
        ("MEMSY__EMBEDDER__EXTERNAL", "true".into()),
        ("MEMSY__EMBEDDER__GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
        ("MEMSY__EMBEDDER__URL", format!("http://127.0.0.1:{grpc_port}")),
        ("MEMSY__STATUS__GRPC_ADDR", format!("127.0.0.1:{status_port}")),
        ("MEMSY__STATUS__URL", format!("http://127.0.0.1:{status_port}")),
    ]);
    let qdrant = data.path().join("qdrant").display().to_string();
    let serve_args = ["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir", &qdrant];
    let mut serve = Memsy::spawn_on(Some(&rest.to_string()), memsy_bin, &serve_args, &env, logs.join("memsy.log"))?;
    let ops = free_port();
    let embedder_args = ["embedder", "--http-addr", &format!("127.0.0.1:{ops}")];
    let mut embedder =
        Memsy::spawn_on(Some(&model.to_string()), memsy_bin, &embedder_args, &env, logs.join("embedder.log"))?;
    let base = format!("http://127.0.0.1:{port}");
    serve.wait_live(&http, &base).await?;
    embedder.wait_live(&http, &format!("http://127.0.0.1:{ops}")).await?;
    let api = bench_api(memsy_bin, &env, http.clone(), base).await?;
    api.warm_up().await?;

    eprintln!("[bench] pipeline, model on core {model}, the rest on core {rest}: {} statements", texts.len());
    let start = Snapshot::take(Cores { model, rest }, &embedder, &serve, &nats, &redis);
    let ids = ingest_statements(&api, texts).await?;
    let ingest_s = start.at.elapsed().as_secs_f64();
    let (done, failed, _) = api.drain(&ids, Duration::from_secs(600)).await?;
    let end = Snapshot::take(Cores { model, rest }, &embedder, &serve, &nats, &redis);
    let pipe_s = (end.at - start.at).as_secs_f64();
    let eps = texts.len() as f64 / pipe_s;
    let alone = embed["texts_per_s"].as_f64().unwrap_or(f64::NAN);
    let pipeline = json!({
        "statements": texts.len(),
        "ingest_s": round3(ingest_s),
        "to_all_completed_s": round3(pipe_s),
        "completed": done,
        "failed": failed,
        "events_per_s": round1(eps),
        "embedder_alone_one_core_texts_per_s": alone,
        "ratio_pipeline_over_embedder": round3(eps / alone),
        "model_core": model,
        "rest_core": rest,
        "cpu": end.since(&start, texts.len()),
    });
    eprintln!("[bench] {pipeline}");
    drop(embedder);
    drop(serve);
    Ok(json!({ "embedder_alone_one_core": embed, "pipeline_dedicated_cores": pipeline }))
}
