//! The whole single-node server (`memsy serve`'s composition) against a
//! real nats-server, redis-server, the embedded Qdrant engine and the real
//! model, driven over HTTP as a client would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use memsy::{EmbedderNode, SingleNode};
use memsy_bus::{topology, Bus};
use memsy_core::Config;
use memsy_gateway::KeyRegistry;
use memsy_testkit::{free_port, model_dir, NatsServer, RedisServer};
use serde_json::{json, Value};

struct App {
    node: Option<SingleNode>,
    /// With `embedder.external`: the `memsy embedder` beside the node.
    embedder: Option<EmbedderNode>,
    base: String,
    nats: NatsServer,
    _redis: RedisServer,
    _data: tempfile::TempDir,
    config: Arc<Config>,
    http: reqwest::Client,
}

/// A single node on these servers and data directory, the gateway on a free port.
fn node_config(nats: &NatsServer, redis: &RedisServer, data: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.nats.url = nats.url();
    config.redis.url = redis.url();
    config.http.addr = "127.0.0.1:0".into();
    config.http.data_dir = data.path().to_path_buf();
    config.embedder.model_dir = model_dir();
    config.qdrant.url = None;
    config
}

async fn spawn_app() -> App {
    spawn_app_with(false).await
}

/// `external`: the node leaves the model to an embedder service (what
/// `memsy embedder` runs) that reports to the node's status service.
async fn spawn_app_with(external: bool) -> App {
    memsy_core::telemetry::init_logging();
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let mut config = node_config(&nats, &redis, &data);
    config.nats.publish_timeout_ms = 1_000;
    let mut embedder = None;
    if external {
        let (status, grpc) = (free_port(), free_port());
        config.embedder.external = true;
        config.status.grpc_addr = format!("127.0.0.1:{status}");
        config.status.url = format!("http://127.0.0.1:{status}");
        config.embedder.grpc_addr = format!("127.0.0.1:{grpc}");
        config.embedder.url = format!("http://127.0.0.1:{grpc}");
        embedder = Some(start_embedder(&config).await);
        // The node must not need the model: it cannot load one from here.
        config.embedder.model_dir = data.path().join("no-model-here");
    }
    let config = Arc::new(config);
    let node = SingleNode::start(config.clone()).await.expect("node starts");
    let base = format!("http://{}", node.addr);
    App { node: Some(node), embedder, base, nats, _redis: redis, _data: data, config, http: reqwest::Client::new() }
}

/// The `memsy embedder` of a node with `embedder.external`.
async fn start_embedder(node: &Config) -> EmbedderNode {
    let mut alone = node.clone();
    alone.http.addr = format!("127.0.0.1:{}", free_port());
    alone.embedder.model_dir = model_dir();
    EmbedderNode::start(Arc::new(alone)).await.expect("embedder starts")
}

impl App {
    async fn bus(&self) -> Bus {
        Bus::connect(&self.config.nats).await.unwrap()
    }

    async fn key(&self, org: &str, scopes: &[&str]) -> String {
        let reg = KeyRegistry::open_unwatched(&self.bus().await).await.unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        reg.create(org, "test", &scopes, None).await.unwrap().0
    }

    async fn call(
        &self,
        method: &str,
        key: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let url = format!("{}{}", self.base, path);
        let mut req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, headers)
    }

    async fn ingest(&self, key: &str, events: Value) -> Vec<String> {
        let (code, v, _) = self.call("POST", Some(key), "/v1/ingest", Some(json!({ "events": events }))).await;
        assert_eq!(code, 200, "{v}");
        v["event_ids"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
    }

    async fn wait_completed(&self, key: &str, ids: &[String]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, v, _) = self.call("POST", Some(key), "/v1/status", Some(json!({ "event_ids": ids }))).await;
            assert_eq!(code, 200, "{v}");
            if v["pendingIds"].as_array().unwrap().is_empty() {
                return v;
            }
            assert!(Instant::now() < deadline, "events still pending: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn status(&self, key: &str, ids: &[String]) -> Value {
        let (code, v, _) = self.call("POST", Some(key), "/v1/status", Some(json!({ "event_ids": ids }))).await;
        assert_eq!(code, 200, "{v}");
        v
    }

    async fn search(&self, key: &str, body: Value) -> Vec<Value> {
        let (code, v, _) = self.call("POST", Some(key), "/v1/search", Some(body)).await;
        assert_eq!(code, 200, "{v}");
        v["results"].as_array().unwrap().clone()
    }

    async fn events_in_broker(&self) -> u64 {
        let mut s = self.bus().await.jetstream().get_stream(topology::EVENTS_STREAM).await.unwrap();
        s.info().await.unwrap().state.messages
    }

    async fn stop(mut self) {
        self.node.take().unwrap().services.stop().await.unwrap();
        if let Some(e) = self.embedder.take() {
            e.services.stop().await.unwrap();
        }
    }
}

fn ev(actor: &str, session: &str, content: &str) -> Value {
    json!({"actor_id": actor, "session_id": session, "kind": "user_message", "content": content})
}

fn contents(results: &[Value]) -> Vec<String> {
    results.iter().map(|r| r["content"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn ingest_to_search_with_scoping_and_isolation() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    let other_org = app.key("globex", &["read", "write"]).await;

    let mut ids = app
        .ingest(
            &key,
            json!([{"actor_id": "user_42", "session_id": "s1", "kind": "user_message",
            "content": "My dog's name is Rex.", "metadata": "{\"source\":\"chat\"}", "ts": "2025-01-15T14:22:10Z"}]),
        )
        .await;
    ids.extend(app.ingest(&key, json!([ev("user_42", "s2", "Book a vet visit for tomorrow.")])).await);
    ids.extend(app.ingest(&key, json!([ev("user_7", "s3", "My cat is called Tom.")])).await);
    let st = app.wait_completed(&key, &ids).await;
    assert_eq!(st["completedIds"].as_array().unwrap().len(), 3, "{st}");
    assert_eq!(st["total"], 3);
    assert_eq!(st["statuses"][&ids[0]], "completed");

    let results = app.search(&key, json!({"query": "pets", "actor_id": "user_42"})).await;
    let rex = results.iter().find(|r| r["content"].as_str().unwrap().contains("Rex")).expect("Rex memory found");
    let score = rex["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score));
    let meta = &rex["metadata"];
    for field in [
        "title",
        "summary",
        "tags",
        "entities",
        "session_id",
        "source_event_ids",
        "source_metadata",
        "kind",
        "type",
        "strength",
        "confidence",
        "observed_at",
    ] {
        assert!(meta.get(field).is_some(), "metadata lacks {field}: {meta}");
    }
    assert_eq!(meta["session_id"], "s1");
    assert_eq!(meta["source_event_ids"][0], ids[0].as_str());
    assert_eq!(meta["source_metadata"][0]["metadata"]["source"], "chat");
    assert_eq!(meta["observed_at"], "2025-01-15T14:22:10.000Z");
    assert_eq!(meta["strength"], 1.0);
    assert!(meta.get("source_events").is_none());
    // Another actor's memories never show up in an actor-scoped search.
    assert!(contents(&results).iter().all(|c| !c.contains("Tom")));

    // Other actor, other org: never Rex.
    let other = app.search(&key, json!({"query": "pets", "actor_id": "user_7"})).await;
    assert!(contents(&other).iter().all(|c| !c.contains("Rex")), "{other:?}");
    assert!(contents(&other).iter().any(|c| c.contains("Tom")));
    let foreign = app.search(&other_org, json!({"query": "pets"})).await;
    assert!(foreign.is_empty(), "{foreign:?}");
    let foreign = app.search(&other_org, json!({"query": "dog named Rex", "actor_id": "user_42"})).await;
    assert!(foreign.is_empty());

    // Org-wide search sees both actors.
    let all = contents(&app.search(&key, json!({"query": "pets", "limit": 20})).await);
    assert!(all.iter().any(|c| c.contains("Rex")) && all.iter().any(|c| c.contains("Tom")));

    // Conversation scoping.
    let s2 = contents(&app.search(&key, json!({"query": "pets", "actor_id": "user_42", "session_id": "s2"})).await);
    assert!(s2.iter().all(|c| !c.contains("Rex")) && s2.iter().any(|c| c.contains("vet")), "{s2:?}");
    let not_s1 =
        contents(&app.search(&key, json!({"query": "pets", "actor_id": "user_42", "exclude_session_id": "s1"})).await);
    assert!(not_s1.iter().all(|c| !c.contains("Rex")), "{not_s1:?}");
    let empty_is_unset = app
        .search(&key, json!({"query": "pets", "actor_id": "user_42", "session_id": "", "exclude_session_id": "s2"}))
        .await;
    assert!(contents(&empty_is_unset).iter().any(|c| c.contains("Rex")));

    // limit, threshold, source events.
    assert_eq!(app.search(&key, json!({"query": "pets", "limit": 1})).await.len(), 1);
    assert!(app.search(&key, json!({"query": "pets", "threshold": 0.99})).await.is_empty());
    let with_src =
        app.search(&key, json!({"query": "dog", "actor_id": "user_42", "include_source_events": true})).await;
    let src = &with_src.iter().find(|r| r["content"].as_str().unwrap().contains("Rex")).unwrap()["metadata"]
        ["source_events"][0];
    assert_eq!(src["event_id"], ids[0].as_str());
    assert_eq!(src["content"], "My dog's name is Rex.");
    assert_eq!(src["kind"], "user_message");

    // Status of another org's ids: not found, reported as failed so pollers stop.
    let (_, v, _) =
        app.call("POST", Some(&other_org), "/v1/status", Some(json!({"event_ids": [ids[0], "nope"]}))).await;
    assert_eq!(v["failedIds"].as_array().unwrap().len(), 2);
    assert_eq!(v["statuses"][&ids[0]], "not_found");
    assert_eq!(v["statuses"]["nope"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_node_with_an_external_embedder_completes_and_finds() {
    let app = spawn_app_with(true).await;
    let key = app.key("acme", &["read", "write"]).await;
    let ids = app
        .ingest(
            &key,
            json!([ev("user_42", "s1", "My dog's name is Rex."), ev("user_7", "s2", "My cat is called Tom.")]),
        )
        .await;
    // Completion is reported by the embedder process (through the node's
    // status service) and then by the node's indexer.
    let st = app.wait_completed(&key, &ids).await;
    assert_eq!(st["completedIds"].as_array().unwrap().len(), 2, "{st}");
    // Query embeddings come from the embedder process too.
    let results = app.search(&key, json!({"query": "what is the dog called", "actor_id": "user_42"})).await;
    assert!(contents(&results).first().is_some_and(|c| c.contains("Rex")), "{results:?}");
    let results = app.search(&key, json!({"query": "pets", "actor_id": "user_7"})).await;
    assert!(contents(&results).iter().all(|c| !c.contains("Rex")), "{results:?}");
    let (code, v, _) = app.call("GET", None, "/readyz", None).await;
    assert_eq!((code, &v["components"]["embedder"]), (200, &json!("ok")), "{v}");
    // Without its embedder the node still takes events (it stays ready),
    // says what is down, and search answers a prompt 503 naming it.
    let mut app = app;
    app.embedder.take().unwrap().services.stop().await.unwrap();
    let (code, v, _) = app.call("GET", None, "/readyz", None).await;
    assert_eq!(code, 200, "{v}");
    assert!(v["components"]["embedder"].as_str().is_some_and(|e| e.starts_with("error")), "{v}");
    let started = Instant::now();
    let (code, v, _) = app.call("POST", Some(&key), "/v1/search", Some(json!({"query": "pets"}))).await;
    assert_eq!((code, &v["detail"]["component"]), (503, &json!("embedder")), "{v}");
    assert!(started.elapsed() < Duration::from_secs(2), "search answered after {:?}", started.elapsed());
    app.ingest(&key, json!([ev("user_9", "s", "I keep bees.")])).await;
    app.stop().await;
}

/// Redis losing every event's state (here FLUSHALL; a restart without its
/// append-only file is the same) does not make any event `not_found`: the
/// durable records answer for the ids Redis no longer knows. A completed
/// event is completed (the store's raw events), a dead-lettered one failed
/// with its stage and reason (`MEMSY_DLQ`), one whose next stage is stopped
/// pending (still in `MEMSY_EVENTS`); another org's ids stay not_found.
#[tokio::test]
async fn status_survives_redis_losing_its_state() {
    let mut app = spawn_app_with(true).await;
    let key = app.key("acme", &["read", "write"]).await;
    let other = app.key("globex", &["read", "write"]).await;
    let done = app.ingest(&key, json!([ev("a", "s", "I live in Oslo.")])).await;
    app.wait_completed(&key, &done).await;
    // A message the extractor cannot read: dead-lettered, its event failed.
    let bad = memsy_core::ids::new_event_id();
    let bus = app.bus().await;
    let garbage = memsy_bus::OutMessage {
        subject: topology::events_subject("acme", &bad),
        msg_id: bad.clone(),
        payload: bytes::Bytes::from_static(&[0xff; 16]),
        traceparent: None,
    };
    bus.publish_all(vec![garbage]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.status(&key, std::slice::from_ref(&bad)).await["statuses"][&bad] != "failed" {
        assert!(Instant::now() < deadline, "the undecodable event never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The embedding stage stopped: a new event is extracted and waits.
    app.embedder.take().unwrap().services.stop().await.unwrap();
    let queued = app.ingest(&key, json!([ev("b", "s", "My sister is called Ada.")])).await;
    let queued = &queued[0];

    let mut redis = redis::Client::open(app.config.redis.url.as_str()).unwrap().get_connection().unwrap();
    redis::cmd("FLUSHALL").query::<()>(&mut redis).unwrap();
    let never = memsy_core::ids::new_event_id();
    let ids = vec![done[0].clone(), bad.clone(), queued.clone(), never.clone(), "not-an-id".into()];
    let v = app.status(&key, &ids).await;
    assert_eq!(v["statuses"][&done[0]], "completed", "{v}");
    assert_eq!(v["statuses"][&bad], "failed", "{v}");
    let reason = v["reasons"][&bad].as_str().unwrap_or_default();
    assert!(reason.starts_with("extractor: ") && reason.contains("undecodable"), "{reason}");
    assert_eq!(v["statuses"][queued], "pending", "{v}");
    assert_eq!(v["statuses"][&never], "not_found", "{v}");
    assert_eq!(v["statuses"]["not-an-id"], "not_found", "{v}");
    let v = app.status(&other, &ids).await;
    assert!(ids.iter().all(|id| v["statuses"][id] == "not_found"), "another org's ids: {v}");

    // Once the stage is back the queued event completes.
    app.embedder = Some(start_embedder(&app.config).await);
    let v = app.wait_completed(&key, std::slice::from_ref(queued)).await;
    assert_eq!(v["statuses"][queued], "completed", "{v}");
    app.stop().await;
}

/// A node whose status port is taken refuses to start and names the
/// address (what an operator needs to fix it).
#[tokio::test]
async fn a_node_whose_status_port_is_taken_does_not_start() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let mut config = node_config(&nats, &redis, &data);
    config.embedder.external = true;
    config.embedder.url = format!("http://127.0.0.1:{}", free_port());
    config.status.grpc_addr = taken_addr.clone();
    let err = SingleNode::start(Arc::new(config)).await.err().expect("a taken status port is refused");
    let message = format!("{err:#}");
    assert!(message.contains(&taken_addr) && message.contains("status gRPC"), "{message}");
    drop(taken);
}

#[tokio::test]
async fn auth_scopes_and_operator_endpoints() {
    let app = spawn_app().await;
    let rw = app.key("acme", &["read", "write"]).await;
    let ro = app.key("acme", &["read"]).await;
    for path in ["/v1/health", "/health"] {
        assert_eq!(app.call("GET", None, path, None).await.0, 401);
        let (code, v, _) = app.call("GET", Some("msy_definitely_invalid"), path, None).await;
        assert_eq!(code, 401);
        assert_eq!(v["detail"]["error"], "invalid_api_key");
        let (code, v, _) = app.call("GET", Some(&rw), path, None).await;
        assert_eq!(code, 200);
        assert_eq!(v["status"], "ok", "{v}");
        assert_eq!(v["billing_enabled"], false);
    }
    for path in ["/v1/search", "/v1/status", "/v1/ingest"] {
        assert_eq!(app.call("POST", Some("msy_nope"), path, Some(json!({}))).await.0, 401);
    }
    let (code, v, _) =
        app.call("POST", Some(&ro), "/v1/ingest", Some(json!({"events": [ev("a", "s", "I like tea.")]}))).await;
    assert_eq!(code, 403);
    assert_eq!(v["detail"]["error"], "insufficient_scope");
    assert_eq!(v["detail"]["required_scope"], "write");
    assert_eq!(app.call("POST", Some(&ro), "/v1/search", Some(json!({"query": "tea"}))).await.0, 200);
    assert_eq!(app.call("GET", None, "/livez", None).await.0, 200);
    let (code, v, _) = app.call("GET", None, "/readyz", None).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(app.call("GET", None, "/metrics", None).await.0, 200);
    assert_eq!(app.call("GET", Some(&rw), "/v1/nowhere", None).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_batch_stores_nothing() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    let cases = vec![
        (
            json!({"events": [ev("a", "s", "fine"), {"actor_id": "a", "session_id": "s", "kind": "not_a_real_kind", "content": "x"}]}),
            422,
            "events[1].kind",
        ),
        (
            json!({"events": [ev("a", "s", "fine"), {"actor_id": "", "session_id": "s", "kind": "user_message", "content": "x"}]}),
            422,
            "events[1].actor_id",
        ),
        (
            json!({"events": [{"actor_id": "a", "session_id": "s", "kind": "user_message", "content": "x", "ts": "not a time"}]}),
            422,
            "events[0].ts",
        ),
        (
            json!({"events": [{"actor_id": "a", "session_id": "s", "kind": "user_message", "content": "x".repeat(70_000)}]}),
            422,
            "events[0].content",
        ),
        (json!({"events": (0..1001).map(|_| ev("a", "s", "x")).collect::<Vec<_>>()}), 422, "events"),
        (json!({"events": "nope"}), 422, "events"),
        (json!({"org_id": "other", "events": [ev("a", "s", "x")]}), 400, ""),
    ];
    for (body, code, field) in cases {
        let (got, v, _) = app.call("POST", Some(&key), "/v1/ingest", Some(body)).await;
        assert_eq!(got, code, "{v}");
        if !field.is_empty() {
            assert_eq!(v["detail"]["field"], field, "{v}");
            assert!(v["detail"]["message"].as_str().unwrap().contains(field));
        } else {
            assert_eq!(v["detail"]["error"], "org_id_not_allowed");
        }
    }
    // Not JSON at all, and a body over the limit.
    let resp =
        app.http.post(format!("{}/v1/ingest", app.base)).bearer_auth(&key).body("{not json").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let big = format!("{{\"events\": [], \"pad\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let resp = app.http.post(format!("{}/v1/ingest", app.base)).bearer_auth(&key).body(big).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(app.events_in_broker().await, 0, "nothing from a rejected batch reaches the broker");

    // Search and status validation.
    for (body, field) in [
        (json!({"query": "q", "session_id": "a", "exclude_session_id": "b"}), "exclude_session_id"),
        (json!({"query": "q", "actor_id": "bad id!"}), "actor_id"),
        (json!({"query": "q", "limit": 0}), "limit"),
        (json!({"query": ""}), "query"),
    ] {
        let (code, v, _) = app.call("POST", Some(&key), "/v1/search", Some(body)).await;
        assert_eq!(code, 422, "{v}");
        assert_eq!(v["detail"]["field"], field);
    }
    let many: Vec<String> = (0..1001).map(|i| format!("id{i}")).collect();
    let (code, v, _) = app.call("POST", Some(&key), "/v1/status", Some(json!({"event_ids": many}))).await;
    assert_eq!(code, 422, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn duplicates_within_the_window_return_the_original_id() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    // The ingest answer carries the month's count of ingested events, which
    // the gateway writes with the pending marks: duplicates are not counted.
    let ingest = |events: Value| {
        let (app, key) = (&app, &key);
        async move {
            let (code, v, headers) = app.call("POST", Some(key), "/v1/ingest", Some(json!({ "events": events }))).await;
            assert_eq!(code, 200, "{v}");
            let ids: Vec<String> =
                v["event_ids"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().into()).collect();
            let counted: u64 = headers["x-usage-eventsingested"].to_str().unwrap().parse().unwrap();
            (ids, counted)
        }
    };
    let (first, counted) = ingest(json!([ev("a", "s", "I prefer tea over coffee.")])).await;
    assert_eq!(counted, 1);
    // Every returned id is known to the status service at once.
    let (_, v, _) = app.call("POST", Some(&key), "/v1/status", Some(json!({ "event_ids": first }))).await;
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["pendingIds"].as_array().unwrap().len() + v["completedIds"].as_array().unwrap().len(), 1, "{v}");
    let (again, counted) =
        ingest(json!([ev("a", "s", "I prefer tea over coffee."), ev("a", "s", "I prefer tea over coffee.")])).await;
    assert_eq!(again, vec![first[0].clone(), first[0].clone()]);
    assert_eq!(counted, 1, "duplicates are not counted");
    let (other_session, counted) = ingest(json!([ev("a", "s2", "I prefer tea over coffee.")])).await;
    assert_ne!(other_session[0], first[0]);
    assert_eq!(counted, 2);
    assert_eq!(app.events_in_broker().await, 2);
    app.wait_completed(&key, &[first[0].clone(), other_session[0].clone()]).await;
    app.stop().await;
}

#[tokio::test]
async fn broker_outage_is_a_503_not_a_lie() {
    let mut app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    app.nats.kill();
    let (code, v, _) =
        app.call("POST", Some(&key), "/v1/ingest", Some(json!({"events": [ev("a", "s", "I live in Oslo.")]}))).await;
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["detail"]["error"], "service_unavailable");
    let _ = tokio::time::timeout(Duration::from_secs(10), app.node.take().unwrap().services.stop()).await;
}

#[tokio::test]
async fn revoked_keys_stop_working_within_a_second() {
    let app = spawn_app().await;
    let bus = app.bus().await;
    let reg = KeyRegistry::open(&bus).await.unwrap();
    let (raw, record) = reg.create("acme", "temp", &["read".to_string()], None).await.unwrap();
    assert_eq!(app.call("GET", Some(&raw), "/v1/health", None).await.0, 200);
    assert!(reg.revoke("acme", &record.key_id).await.unwrap());
    let start = Instant::now();
    loop {
        if app.call("GET", Some(&raw), "/v1/health", None).await.0 == 401 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "revoked key still accepted after 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

/// A payload no stage can read, published straight onto each stage's
/// subject, goes to the dead-letter stream and fails its event (named by
/// the message's subject and id) with the stage and the reason; events
/// after it go through.
#[tokio::test]
async fn undecodable_messages_on_each_stage_fail_their_event() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    let bus = app.bus().await;
    let ids: Vec<String> = (0..3).map(|_| memsy_core::ids::new_event_id()).collect();
    let stages = [
        (topology::events_subject("acme", &ids[0]), "", "extractor"),
        (topology::extracted_subject("acme"), "x:", "embedder"),
        (topology::embedded_subject("acme", bus.partitions()), "e:", "indexer"),
    ];
    let garbage = bytes::Bytes::from_static(&[0xff; 16]);
    for ((subject, prefix, _), id) in stages.iter().zip(&ids) {
        let m = memsy_bus::OutMessage {
            subject: subject.clone(),
            msg_id: format!("{prefix}{id}"),
            payload: garbage.clone(),
            traceparent: None,
        };
        bus.publish_all(vec![m]).await.unwrap();
    }
    let good = app.ingest(&key, json!([ev("a", "s", "I live in Oslo.")])).await;
    let v = app.wait_completed(&key, &good).await;
    assert_eq!(v["completedIds"], json!(good));

    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let (_, v, _) = app.call("POST", Some(&key), "/v1/status", Some(json!({ "event_ids": ids }))).await;
        // Unknown ids are failed too (not_found) until the letters are in.
        let failed = ids.iter().filter(|id| v["statuses"][id.as_str()] == "failed").count();
        if failed == 3 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for ((_, _, stage), id) in stages.iter().zip(&ids) {
        assert_eq!(v["statuses"][id], "failed", "{v}");
        let reason = v["reasons"][id].as_str().unwrap_or_default();
        assert!(reason.starts_with(&format!("{stage}: ")) && reason.contains("undecodable"), "{id}: {reason}");
    }
    let mut dlq = bus.jetstream().get_stream(topology::DLQ_STREAM).await.unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, 3);
    app.stop().await;
}

/// `memsy dlq` (the binary, configured by environment like any command):
/// `list` shows every letter or one org's, `show` the letter with the event
/// it carries, `replay` sends a letter's event back through the pipeline
/// (pending again, then completed and searchable; the letter gone), `purge`
/// drops letters.
#[tokio::test]
async fn the_dlq_command_lists_shows_replays_and_purges_dead_letters() {
    use memsy_status::StatusApi as _;
    use prost::Message as _;
    let app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    let bus = app.bus().await;
    let status =
        memsy_status::StatusStore::connect(&app.config.redis.url, 3_600, app.config.redis.timeouts()).await.unwrap();
    let event = memsy_proto::Event {
        event_id: memsy_core::ids::new_event_id(),
        org_id: "acme".into(),
        actor_id: "user_42".into(),
        session_id: "s1".into(),
        kind: "user_message".into(),
        content: "My dog's name is Rex.".into(),
        ts: "2026-01-05T10:00:00Z".into(),
        ingested_at: "2026-01-05T10:00:00Z".into(),
        ..Default::default()
    };
    let id = event.event_id.clone();
    let letter = |org: &str, id: &str, payload: Vec<u8>| memsy_proto::DeadLetter {
        stage: "extractor".into(),
        subject: topology::events_subject(org, id),
        payload,
        reason: "gave up after 5 attempts: model unavailable".into(),
        deliveries: 5,
        org_id: org.into(),
        event_ids: vec![id.into()],
    };
    let other_id = memsy_core::ids::new_event_id();
    let letters = [letter("acme", &id, event.encode_to_vec()), letter("globex", &other_id, vec![0xff; 4])];
    for (i, l) in letters.iter().enumerate() {
        let m = memsy_bus::OutMessage {
            subject: topology::dlq_subject(&l.stage, &l.org_id, &l.event_ids[0]),
            msg_id: format!("test-letter-{i}"),
            payload: l.encode_to_vec().into(),
            traceparent: None,
        };
        bus.publish_all(vec![m]).await.unwrap();
        status.mark(&l.org_id, &l.event_ids, memsy_status::EventState::Failed, &l.reason).await.unwrap();
    }
    let dlq = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_memsy"))
            .arg("dlq")
            .args(args)
            .env("MEMSY__NATS__URL", &app.config.nats.url)
            .env("MEMSY__REDIS__URL", &app.config.redis.url)
            .output()
            .expect("memsy dlq runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "memsy dlq {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let list = dlq(&["list"]);
    let lines: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("1 ") && lines[0].contains("extractor") && lines[0].contains("acme"), "{list}");
    assert!(lines[0].contains(&id) && lines[0].contains("gave up after 5 attempts"), "{list}");
    assert!(lines[1].starts_with("2 ") && lines[1].contains("globex") && lines[1].contains(&other_id), "{list}");
    let only = dlq(&["list", "--org", "globex"]);
    assert_eq!(only.lines().skip(1).collect::<Vec<_>>(), vec![lines[1]], "{only}");

    let shown = dlq(&["show", "1"]);
    println!("memsy dlq list:\n{list}\nmemsy dlq show 1:\n{shown}");
    for want in [id.as_str(), "user_42", "s1", "user_message", "My dog's name is Rex.", "model unavailable"] {
        assert!(shown.contains(want), "{want} not in:\n{shown}");
    }
    assert!(dlq(&["show", "2"]).contains("does not decode"));

    let replayed = dlq(&["replay", "1"]);
    assert!(replayed.contains("replayed 1"), "{replayed}");
    let v = app.status(&key, std::slice::from_ref(&id)).await;
    assert!(v["statuses"][&id] == "pending" || v["statuses"][&id] == "completed", "{v}");
    let v = app.wait_completed(&key, std::slice::from_ref(&id)).await;
    assert_eq!(v["statuses"][&id], "completed", "{v}");
    let found = app.search(&key, json!({"query": "what is the dog called", "actor_id": "user_42"})).await;
    assert!(contents(&found).first().is_some_and(|c| c.contains("Rex")), "{found:?}");
    assert!(bus.dead_letter(1).await.unwrap().is_none(), "a replayed letter is deleted");

    // Another org's letters are left alone by `--org`.
    let purged = dlq(&["purge", "--all", "--org", "acme"]);
    assert_eq!(purged.trim(), "", "{purged}");
    assert_eq!(dlq(&["list"]).lines().count(), 2);
    assert_eq!(dlq(&["purge", "2"]).trim(), "purged 2");
    assert_eq!(dlq(&["list"]).lines().count(), 1, "only the header is left");
    app.stop().await;
}
