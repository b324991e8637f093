//! `BENCH_LAYOUT=traces`: what tracing costs the pipeline. `memsy serve`
//! drains the same statements with traces off (no OTLP endpoint) and with
//! every trace sampled (`OTEL_TRACES_SAMPLER=always_on`) and exported over
//! OTLP/HTTP to a receiver in this process that decodes each export and
//! counts its spans, alternating off and on `BENCH_TRACE_ROUNDS` times
//! (default 3), each run on fresh nats-server and redis-server. Reports
//! events/s from ingest to all completed per run, the medians, their ratio,
//! and the spans received per event.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memsy_testkit::{free_port, NatsServer, RedisServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use serde_json::{json, Value};

use crate::{bench_api, env_or, ingest_statements, log_dir, round1, round3, server_env, Memsy, Res};

/// An OTLP/HTTP receiver on a free port that counts the spans it is sent.
async fn receiver() -> Res<(String, Arc<AtomicU64>)> {
    let spans = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let counted = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counted = counted.clone();
            async move {
                if let Ok(req) = ExportTraceServiceRequest::decode(body) {
                    let n: usize = req.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
                    counted.fetch_add(n as u64, Ordering::Relaxed);
                }
                ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, spans))
}

pub async fn run(memsy_bin: &str, model_dir: &Path, texts: &[String], http: reqwest::Client) -> Res<Value> {
    let rounds: usize = env_or("BENCH_TRACE_ROUNDS", "3").parse()?;
    let (endpoint, spans) = receiver().await?;
    let (mut off, mut on, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for traced in [false, true] {
            let before = spans.load(Ordering::Relaxed);
            let rate = one(memsy_bin, model_dir, texts, &http, traced.then_some(endpoint.as_str())).await?;
            // The exporter flushes on exit: every span of the run is in.
            let received = spans.load(Ordering::Relaxed) - before;
            let run = json!({"round": round, "traces": if traced { "on, 100 %" } else { "off" },
                "events_per_s": round1(rate), "spans_received": received,
                "spans_per_event": round3(received as f64 / texts.len() as f64)});
            eprintln!("[bench] {run}");
            runs.push(run);
            if traced {
                on.push(rate)
            } else {
                off.push(rate)
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off_m, on_m) = (median(&mut off), median(&mut on));
    Ok(json!({
        "layout": "traces",
        "statements": texts.len(),
        "runs": runs,
        "median_events_per_s_off": round1(off_m),
        "median_events_per_s_on": round1(on_m),
        "ratio_on_over_off": round3(on_m / off_m),
    }))
}

/// One `memsy serve` on fresh servers: events/s from the first ingest
/// until every statement is completed.
async fn one(
    memsy_bin: &str,
    model_dir: &Path,
    texts: &[String],
    http: &reqwest::Client,
    otlp: Option<&str>,
) -> Res<f64> {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let data = tempfile::tempdir()?;
    let port = free_port();
    let mut env = server_env(&nats, &redis, model_dir);
    match otlp {
        Some(url) => env.extend([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.to_string()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_TRACES_SAMPLER", "always_on".into()),
            // A queue that holds a run's spans between exports: the cost
            // measured is exporting them all, not dropping some.
            ("OTEL_BSP_MAX_QUEUE_SIZE", "65536".into()),
        ]),
        None => env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", String::new())),
    }
    let dir = data.path().join("data").display().to_string();
    let mut memsy = Memsy::spawn(
        memsy_bin,
        &["serve", "--http-addr", &format!("127.0.0.1:{port}"), "--data-dir", &dir],
        &env,
        log_dir(&data).join(if otlp.is_some() { "memsy-traced.log" } else { "memsy.log" }),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    memsy.wait_live(http, &base).await?;
    let api = bench_api(memsy_bin, &env, http.clone(), base).await?;
    api.warm_up().await?;
    let t0 = Instant::now();
    let ids = ingest_statements(&api, texts).await?;
    let (done, failed, _) = api.drain(&ids, Duration::from_secs(900)).await?;
    let secs = t0.elapsed().as_secs_f64();
    if done != texts.len() {
        return Err(format!("{done} of {} completed, {failed} failed", texts.len()).into());
    }
    memsy.stop()?;
    Ok(texts.len() as f64 / secs)
}
