//! Metrics through the `metrics` facade, rendered in the Prometheus text
//! format on every process's `/metrics` (metrics-exporter-prometheus), with
//! the process's CPU, memory and file descriptors (metrics-process). The
//! names live here so that the code, the chart's alerts, the dashboard in
//! deploy/ and the README's table agree. Labels are bounded: routes,
//! stages, streams, consumers, outcomes and store operations, never an org
//! or an actor.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "memsy_http_requests_total";
pub const HTTP_DURATION: &str = "memsy_http_request_duration_seconds";
pub const STAGE_MESSAGES: &str = "memsy_stage_messages_total";
pub const STAGE_BATCH_DURATION: &str = "memsy_stage_batch_duration_seconds";
pub const STAGE_BATCH_SIZE: &str = "memsy_stage_batch_size";
pub const STREAM_PENDING: &str = "memsy_stream_pending_messages";
pub const STREAM_ACK_PENDING: &str = "memsy_stream_ack_pending";
pub const DLQ_MESSAGES: &str = "memsy_dlq_messages";
pub const EMBEDDER_TEXTS: &str = "memsy_embedder_texts_total";
pub const EMBEDDER_QUEUE_DEPTH: &str = "memsy_embedder_queue_depth";
pub const STORE_DURATION: &str = "memsy_store_request_duration_seconds";
pub const EVENT_FRESHNESS: &str = "memsy_event_freshness_seconds";
pub const EVENTS_INGESTED: &str = "memsy_events_ingested_total";
pub const SEARCHES: &str = "memsy_search_queries_total";

/// Latencies from a cached store read to a slow batch.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Ingest to searchable: a fraction of a second when idle, minutes behind a backlog.
const FRESHNESS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0];
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

fn exporter() -> &'static Exporter {
    static E: OnceLock<Exporter> = OnceLock::new();
    E.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(EVENT_FRESHNESS.into()), FRESHNESS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STAGE_BATCH_SIZE.into()), BATCH))
            .expect("bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test's) may already be installed; ours then
        // renders nothing, which is what that process asked for.
        let _ = metrics::set_global_recorder(recorder);
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        // Histograms buffer samples until drained; a scrape drains them too,
        // but a process nobody scrapes must not grow.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("spawning the metrics upkeep thread");
        Exporter { handle, process }
    })
}

/// Installs the recorder; call once at start so that metrics recorded
/// before the first scrape are kept. Idempotent.
pub fn init() {
    exporter();
}

/// Everything recorded so far, in the Prometheus text format.
pub fn render() -> String {
    let e = exporter();
    e.process.collect();
    e.handle.render()
}

/// The `/metrics` response.
pub async fn endpoint() -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "text/plain; version=0.0.4")], render())
}

/// Middleware counting and timing every request by its route pattern
/// (`/v1/memories/{memory_id}`, not the path), method and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "route" => route.clone()).record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status).increment(1);
    response
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route pattern, method and status");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request duration by route pattern");
    describe_counter!(STAGE_MESSAGES, "Stage messages settled, by stage and outcome (ok, retry, backoff, dead_letter)");
    describe_histogram!(STAGE_BATCH_DURATION, Unit::Seconds, "Time a stage spends on one batch");
    describe_histogram!(STAGE_BATCH_SIZE, Unit::Count, "Messages per stage batch");
    describe_gauge!(STREAM_PENDING, Unit::Count, "Messages of a stream its consumer has not been given yet");
    describe_gauge!(STREAM_ACK_PENDING, Unit::Count, "Messages given to a consumer and not yet settled");
    describe_gauge!(DLQ_MESSAGES, Unit::Count, "Messages in the dead-letter stream MEMSY_DLQ");
    describe_counter!(EMBEDDER_TEXTS, Unit::Count, "Texts embedded");
    describe_gauge!(EMBEDDER_QUEUE_DEPTH, Unit::Count, "Texts waiting for the embedding engine");
    describe_histogram!(STORE_DURATION, Unit::Seconds, "Vector store calls by operation");
    describe_histogram!(EVENT_FRESHNESS, Unit::Seconds, "From an event's ingest to its memories being stored");
    describe_counter!(EVENTS_INGESTED, Unit::Count, "Events accepted by ingest");
    describe_counter!(SEARCHES, Unit::Count, "Searches answered");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_labels_and_process_metrics() {
        init();
        metrics::counter!(STAGE_MESSAGES, "stage" => "extractor", "outcome" => "ok").increment(2);
        metrics::counter!(STAGE_MESSAGES, "stage" => "extractor", "outcome" => "ok").increment(1);
        metrics::histogram!(EVENT_FRESHNESS).record(0.3);
        let text = render();
        assert!(text.contains("# TYPE memsy_stage_messages_total counter"), "{text}");
        assert!(text.contains(r#"memsy_stage_messages_total{stage="extractor",outcome="ok"} 3"#), "{text}");
        assert!(text.contains(r#"memsy_event_freshness_seconds_bucket{le="0.5"} 1"#), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
