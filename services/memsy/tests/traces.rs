//! Traces end to end: real `memsy` processes (this package's binary) on a
//! real nats-server, redis-server (and Qdrant server for the separate
//! services) export over OTLP to a receiver this test runs — the one test
//! double, standing in for a collector. One event ingested under a caller's
//! `traceparent` must come back as one trace in the caller's trace id, rooted
//! at the caller's span, through the gateway, extractor, embedder and
//! indexer with correct parent links; no span attribute may hold content;
//! and the log lines written while handling it carry the trace id.
//!
//! `memsy serve` exports over gRPC, the separate services over HTTP
//! (protobuf), so both protocols are covered.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memsy_testkit::{free_port, model_dir, shared_qdrant, NatsServer, RedisServer};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};

/// One exported span and the `service.name` of the process that sent it.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    span: Span,
}

/// What the receiver has been sent, whichever protocol carried it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Got>>>);

impl Sink {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
            let service = string_attr(&attrs, "service.name").unwrap_or_default();
            for ss in rs.scope_spans {
                all.extend(ss.spans.into_iter().map(|span| Got { service: service.clone(), span }));
            }
        }
    }

    fn all(&self) -> Vec<Got> {
        self.0.lock().unwrap().clone()
    }

    fn trace(&self, trace_id: &[u8]) -> Vec<Got> {
        self.all().into_iter().filter(|g| g.span.trace_id == trace_id).collect()
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The OTLP receiver: gRPC and HTTP (`/v1/traces`, protobuf) into one sink.
struct Receiver {
    sink: Sink,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl Receiver {
    async fn start() -> Self {
        let sink = Sink::default();
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = grpc_listener.local_addr().unwrap();
        let s = sink.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(s))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc_listener))
                .await
                .unwrap()
        });
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let s = sink.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: bytes::Bytes| {
                let s = s.clone();
                async move {
                    match ExportTraceServiceRequest::decode(body) {
                        Ok(req) => {
                            s.add(req);
                            let ok = ExportTraceServiceResponse { partial_success: None }.encode_to_vec();
                            (axum::http::StatusCode::OK, [("content-type", "application/x-protobuf")], ok)
                        }
                        Err(_) => (axum::http::StatusCode::BAD_REQUEST, [("content-type", "text/plain")], Vec::new()),
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(http_listener, app).await.unwrap() });
        Self { sink, grpc, http }
    }
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        _ => None,
    })
}

/// Every string an attribute anywhere holds: the spans', their events' and
/// their links'.
fn attribute_strings(g: &Got) -> Vec<String> {
    fn walk(v: &AnyValue, out: &mut Vec<String>) {
        match v.value.as_ref() {
            Some(Any::StringValue(s)) => out.push(s.clone()),
            Some(Any::ArrayValue(a)) => a.values.iter().for_each(|v| walk(v, out)),
            Some(Any::KvlistValue(l)) => l.values.iter().filter_map(|kv| kv.value.as_ref()).for_each(|v| walk(v, out)),
            Some(Any::BytesValue(b)) => out.push(String::from_utf8_lossy(b).into_owned()),
            _ => {}
        }
    }
    let mut out = vec![g.span.name.clone()];
    let lists = std::iter::once(&g.span.attributes)
        .chain(g.span.events.iter().map(|e| &e.attributes))
        .chain(g.span.links.iter().map(|l| &l.attributes));
    for list in lists {
        for kv in list {
            if let Some(v) = &kv.value {
                walk(v, &mut out);
            }
        }
    }
    out
}

/// A caller's trace context: (traceparent, trace id, span id).
fn caller_context(salt: u64) -> (String, Vec<u8>, Vec<u8>) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let trace = format!("{:032x}", nanos ^ (u128::from(std::process::id()) << 64) ^ u128::from(salt));
    let span = format!("{:016x}", (nanos as u64).rotate_left(17) ^ salt | 1);
    let bytes = |h: &str| (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect();
    (format!("00-{trace}-{span}-01"), bytes(&trace), bytes(&span))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A `memsy` process, killed when dropped.
struct Memsy {
    child: Child,
    log: PathBuf,
    what: String,
}

impl Memsy {
    fn spawn(args: &[&str], env: &[(String, String)], log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_memsy"))
            .args(args)
            .env_remove("QDRANT_URL")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Self { child, log, what: format!("memsy {}", args[0]) }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_live(&mut self, ops: &str) {
        let t0 = Instant::now();
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("http://{ops}/livez")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited with {st}:\n{}", self.what, self.log_text());
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "{} not live:\n{}", self.what, self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, the way an orchestrator stops it, and wait for the exit.
    fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not stop within 30 s of SIGTERM", self.what);
    }
}

impl Drop for Memsy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP API with a key of `org`, once the gateway accepts the key.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn new(env: &[(String, String)], base: String, org: &str) -> Self {
        let out = Command::new(env!("CARGO_BIN_EXE_memsy"))
            .args(["keys", "create", "--org", org])
            .env_remove("QDRANT_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "keys create failed");
        let api =
            Self { http: reqwest::Client::new(), base, key: String::from_utf8(out.stdout).unwrap().trim().into() };
        let t0 = Instant::now();
        while api.post("/v1/status", json!({"event_ids": []}), None).await.0 != 200 {
            assert!(t0.elapsed() < Duration::from_secs(30), "the gateway never accepted the key");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        api
    }

    async fn post(&self, path: &str, body: Value, traceparent: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.key).json(&body);
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// Ingests one event under the caller's context; waits until it is completed.
    async fn ingest_completed(&self, content: &str, traceparent: &str) -> String {
        let event = json!({"actor_id": "ada", "session_id": "s1", "kind": "user_message", "content": content});
        let (code, v) = self.post("/v1/ingest", json!({"events": [event]}), Some(traceparent)).await;
        assert_eq!(code, 200, "{v}");
        let id = v["event_ids"][0].as_str().unwrap().to_string();
        let t0 = Instant::now();
        loop {
            let (_, v) = self.post("/v1/status", json!({"event_ids": [id]}), None).await;
            if v["completedIds"].as_array().is_some_and(|a| !a.is_empty()) {
                return id;
            }
            assert!(v["failedIds"].as_array().is_none_or(|a| a.is_empty()), "event failed: {v}");
            assert!(t0.elapsed() < Duration::from_secs(60), "event not completed: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn by_name<'a>(trace: &'a [Got], name: &str) -> &'a Got {
    let found: Vec<&Got> = trace.iter().filter(|g| g.span.name == name).collect();
    assert_eq!(found.len(), 1, "one span named {name:?} in the trace: {:?}", names(trace));
    found[0]
}

fn names(trace: &[Got]) -> Vec<String> {
    trace.iter().map(|g| format!("{}:{}", g.service, g.span.name)).collect()
}

fn assert_child(trace: &[Got], child: &str, parent: &str) {
    let (c, p) = (by_name(trace, child), by_name(trace, parent));
    assert_eq!(hex(&c.span.parent_span_id), hex(&p.span.span_id), "{child} is a child of {parent}");
}

/// One tree: the root's parent is the caller's span, and every other span's
/// parent is a span of the trace.
fn assert_rooted(trace: &[Got], root: &str, caller_span: &[u8]) {
    assert_eq!(hex(&by_name(trace, root).span.parent_span_id), hex(caller_span), "{root} continues the caller's span");
    let ids: HashSet<&[u8]> = trace.iter().map(|g| g.span.span_id.as_slice()).collect();
    for g in trace {
        let p = g.span.parent_span_id.as_slice();
        assert!(
            p == caller_span || ids.contains(p),
            "{} has a parent outside the trace: {:?}",
            g.span.name,
            names(trace)
        );
    }
}

/// No exported attribute, of any span of any trace, holds `needle`.
fn assert_no_content(all: &[Got], needle: &str) {
    for g in all {
        for s in attribute_strings(g) {
            assert!(!s.contains(needle), "span {:?} of {} carries content: {s:?}", g.span.name, g.service);
        }
    }
}

/// Polls until `pred` holds for the trace (spans arrive in export batches).
async fn wait_trace(sink: &Sink, trace_id: &[u8], what: &str, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let t0 = Instant::now();
    loop {
        let t = sink.trace(trace_id);
        if pred(&t) {
            return t;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}: got {:?}", names(&t));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_one_trace_per_event_over_grpc_and_logs_its_id() {
    let receiver = Receiver::start().await;
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = env(&[
        ("MEMSY__NATS__URL", nats.url()),
        ("MEMSY__REDIS__URL", redis.url()),
        ("MEMSY__EMBEDDER__MODEL_DIR", model_dir().display().to_string()),
    ]);
    let mut e = base.clone();
    e.extend(env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.grpc)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        // Nothing is exported until the process stops: the spans that
        // arrive prove the flush on SIGTERM.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".into()),
        ("MEMSY_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info,memsy_extractor=debug".into()),
    ]));
    let addr = format!("127.0.0.1:{port}");
    let data = dir.path().join("data").display().to_string();
    let mut serve =
        Memsy::spawn(&["serve", "--http-addr", &addr, "--data-dir", &data], &e, dir.path().join("serve.log"));
    serve.wait_live(&addr).await;
    let api = Api::new(&base, format!("http://{addr}"), "trace-org").await;

    let (tp, trace_id, caller_span) = caller_context(1);
    let event_id = api.ingest_completed("I like purple zebras very much.", &tp).await;
    let (search_tp, search_trace, search_caller) = caller_context(2);
    let query = "which striped animals are liked";
    let (code, v) = api.post("/v1/search", json!({"query": query, "actor_id": "ada"}), Some(&search_tp)).await;
    assert_eq!(code, 200, "{v}");
    assert!(receiver.sink.all().is_empty(), "spans are batched until the schedule delay or the exit");
    serve.terminate();

    let trace = wait_trace(&receiver.sink, &trace_id, "the ingest's trace", |t| {
        t.iter().any(|g| g.span.name == "index event") && t.iter().any(|g| g.span.name == "status mark")
    })
    .await;
    assert!(trace.iter().all(|g| g.service == "memsy-serve"), "the command names the service: {:?}", names(&trace));
    assert_rooted(&trace, "POST /v1/ingest", &caller_span);
    assert_child(&trace, "ingest publish", "POST /v1/ingest");
    assert_child(&trace, "extract event", "ingest publish");
    assert_child(&trace, "extract batch", "extract event");
    assert_child(&trace, "embed event", "extract event");
    assert_child(&trace, "embed batch", "embed event");
    assert_child(&trace, "embed texts", "embed batch");
    assert_child(&trace, "index event", "embed event");
    assert_child(&trace, "index batch", "index event");
    assert_child(&trace, "store write", "index batch");
    assert_child(&trace, "status mark", "index batch");
    let extract = &by_name(&trace, "extract event").span;
    assert_eq!(string_attr(&extract.attributes, "org_id").as_deref(), Some("trace-org"), "{:?}", extract.attributes);
    assert_eq!(string_attr(&extract.attributes, "event_id").as_deref(), Some(event_id.as_str()));
    assert_eq!(string_attr(&extract.attributes, "batch_size").as_deref(), Some("1"));

    let search = wait_trace(&receiver.sink, &search_trace, "the search's trace", |t| t.len() >= 3).await;
    assert_rooted(&search, "POST /v1/search", &search_caller);
    assert_child(&search, "embed query", "POST /v1/search");
    assert_child(&search, "store search", "POST /v1/search");

    let all = receiver.sink.all();
    assert_no_content(&all, "zebras");
    assert_no_content(&all, "striped");

    // The log lines written while handling the event carry its trace id:
    // the gateway's for the request, the extractor's for the message.
    let log = serve.log_text();
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).map(str::to_string).collect::<Vec<_>>();
    let trace_hex = hex(&trace_id);
    let ingested = lines("\"ingested\"");
    assert!(!ingested.is_empty(), "no ingest log line:\n{log}");
    assert!(ingested.iter().all(|l| l.contains(&trace_hex)), "the ingest's log line lacks {trace_hex}: {ingested:?}");
    let extracted: Vec<String> = lines("\"extracted\"").into_iter().filter(|l| l.contains(&event_id)).collect();
    assert!(!extracted.is_empty(), "no extraction log line:\n{log}");
    assert!(
        extracted.iter().all(|l| l.contains(&trace_hex)),
        "the extractor's log line lacks {trace_hex}: {extracted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_services_export_one_trace_over_http() {
    let Some(qdrant) = shared_qdrant() else { return };
    let receiver = Receiver::start().await;
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let (status_grpc, embed_grpc) = (free_port(), free_port());
    let base = env(&[
        ("MEMSY__NATS__URL", nats.url()),
        ("MEMSY__REDIS__URL", redis.url()),
        ("MEMSY__EMBEDDER__MODEL_DIR", model_dir().display().to_string()),
        ("MEMSY__STATUS__GRPC_ADDR", format!("127.0.0.1:{status_grpc}")),
        ("MEMSY__STATUS__URL", format!("http://127.0.0.1:{status_grpc}")),
        ("MEMSY__EMBEDDER__GRPC_ADDR", format!("127.0.0.1:{embed_grpc}")),
        ("MEMSY__EMBEDDER__URL", format!("http://127.0.0.1:{embed_grpc}")),
        ("MEMSY__QDRANT__COLLECTION_PREFIX", format!("traces_{}_", std::process::id())),
        ("QDRANT_URL", qdrant.url()),
    ]);
    let mut procs = Vec::new();
    let mut gateway_addr = String::new();
    for service in ["status", "embedder", "indexer", "extractor", "gateway"] {
        let ops = format!("127.0.0.1:{}", free_port());
        let mut e = base.clone();
        e.extend(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.http)),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_SERVICE_NAME", format!("t-{service}")),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ]));
        let mut p = Memsy::spawn(&[service, "--http-addr", &ops], &e, dir.path().join(format!("{service}.log")));
        p.wait_live(&ops).await;
        if service == "gateway" {
            gateway_addr = ops;
        }
        procs.push(p);
    }
    let mut key_env = base.clone();
    key_env.retain(|(k, _)| k != "QDRANT_URL");
    let api = Api::new(&key_env, format!("http://{gateway_addr}"), "topo-org").await;
    let (tp, trace_id, caller_span) = caller_context(3);
    api.ingest_completed("I like purple zebras in the rain.", &tp).await;

    let services = ["t-gateway", "t-extractor", "t-embedder", "t-indexer", "t-status"];
    let trace = wait_trace(&receiver.sink, &trace_id, "a trace from every service", |t| {
        let have: HashSet<&str> = t.iter().map(|g| g.service.as_str()).collect();
        services.iter().all(|s| have.contains(s)) && t.iter().any(|g| g.span.name == "status mark")
    })
    .await;
    assert_rooted(&trace, "POST /v1/ingest", &caller_span);
    assert_child(&trace, "extract event", "ingest publish");
    assert_child(&trace, "embed event", "extract event");
    assert_child(&trace, "index event", "embed event");
    let of = |name: &str| by_name(&trace, name).service.clone();
    assert_eq!(
        [of("POST /v1/ingest"), of("extract event"), of("embed event"), of("index event"), of("status mark")],
        services,
        "each stage's span comes from its own process"
    );
    // The indexer's status call continues over gRPC into the status service.
    let calls: HashMap<String, &Got> =
        trace.iter().filter(|g| g.span.name == "StatusService/Mark").map(|g| (g.service.clone(), g)).collect();
    let (client, server) = (calls["t-indexer"], calls["t-status"]);
    assert_eq!(hex(&server.span.parent_span_id), hex(&client.span.span_id), "the server span continues the call");
    assert_eq!(hex(&by_name(&trace, "status mark").span.parent_span_id), hex(&server.span.span_id));
    assert_no_content(&receiver.sink.all(), "zebras");
}
