//! `BENCH_LAYOUT=stores`: the pipeline of `memsy serve` on the embedded
//! store and on a Qdrant server, one after the other in the same run, each
//! on fresh nats-server and redis-server: statements from ingest to
//! completed (events/s) and, once they are stored, search latency through
//! the gateway (p50/p95). The Qdrant server comes from `QDRANT_BIN` (started
//! on free ports with its own storage) or `QDRANT_URL`; without either only
//! the embedded store runs. Search latency over 100k memories in each store,
//! without the HTTP layer, is `bench-search`'s (same variables).

use std::path::Path;
use std::time::{Duration, Instant};

use memsy_testkit::{free_port, NatsServer, Qdrant, RedisServer};
use serde_json::{json, Value};

use crate::{bench_api, ingest_statements, log_dir, ms, pct, round1, round3, server_env, statement, Memsy, Res};

/// Search queries timed per store, after a warm-up of a tenth as many.
const QUERIES: usize = 500;

pub async fn run(memsy_bin: &str, model_dir: &Path, texts: &[String], http: reqwest::Client) -> Res<Value> {
    let qdrant = Qdrant::from_env();
    if qdrant.is_none() {
        eprintln!("[bench] no Qdrant server (set QDRANT_BIN or QDRANT_URL): the embedded store only");
    }
    let mut rows = Vec::new();
    rows.push(one(memsy_bin, model_dir, texts, &http, None).await?);
    if let Some(q) = &qdrant {
        rows.push(one(memsy_bin, model_dir, texts, &http, Some(q)).await?);
    }
    Ok(json!({ "layout": "stores", "statements": texts.len(), "stores": rows }))
}

async fn one(
    memsy_bin: &str,
    model_dir: &Path,
    texts: &[String],
    http: &reqwest::Client,
    qdrant: Option<&Qdrant>,
) -> Res<Value> {
    let name = if qdrant.is_some() { "qdrant server" } else { "embedded" };
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let data = tempfile::tempdir()?;
    let port = free_port();
    let mut env = server_env(&nats, &redis, model_dir);
    env.extend([("MEMSY__EMBEDDER__ENGINE", "onnx".into()), ("MEMSY__EMBEDDER__ONNX_FILE", "model_int8.onnx".into())]);
    if let Some(q) = qdrant {
        env.push(("QDRANT_URL", q.url()));
        // Collections of this run only, on a server that may be shared.
        env.push(("MEMSY__QDRANT__COLLECTION_PREFIX", format!("bench_{}_", std::process::id())));
    }
    let dir = data.path().join("data").display().to_string();
    let mut memsy = Memsy::spawn(
        memsy_bin,
        &["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir", &dir],
        &env,
        log_dir(&data).join("memsy.log"),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    memsy.wait_live(http, &base).await?;
    let api = bench_api(memsy_bin, &env, http.clone(), base).await?;
    api.warm_up().await?;

    eprintln!("[bench] {name}: {} statements", texts.len());
    let t0 = Instant::now();
    let ids = ingest_statements(&api, texts).await?;
    let (done, failed, _) = api.drain(&ids, Duration::from_secs(900)).await?;
    let pipe_s = t0.elapsed().as_secs_f64();

    let mut lat = Vec::with_capacity(QUERIES);
    for i in 0..QUERIES + QUERIES / 10 {
        let body =
            json!({"query": statement(i * 7919 % texts.len()), "actor_id": format!("pipe-{}", i % 20), "limit": 10});
        let t = Instant::now();
        let (code, _) = api.post("/v1/search", &body).await?;
        if code != 200 {
            return Err(format!("{name}: search answered {code}").into());
        }
        if i >= QUERIES / 10 {
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let row = json!({
        "store": name,
        "to_all_completed_s": round3(pipe_s),
        "completed": done,
        "failed": failed,
        "events_per_s": round1(texts.len() as f64 / pipe_s),
        "search_queries": QUERIES,
        "search_p50_ms": round3(pct(&lat, 50.0)),
        "search_p95_ms": round3(pct(&lat, 95.0)),
        "search_mean_ms": round3(lat.iter().map(|d| ms(*d)).sum::<f64>() / lat.len() as f64),
    });
    eprintln!("[bench] {row}");
    Ok(row)
}
