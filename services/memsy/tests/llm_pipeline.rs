//! The single-node server with `extractor.engine = "llm"`, against a local
//! HTTP server playing an OpenAI-compatible provider (and a real
//! nats-server, redis-server, embedded Qdrant and the real model): an
//! ingested event's memories are the model's and are searchable; a provider
//! that keeps failing ends the event `failed` with the provider's error.

use memsy_core::config::{ExtractorEngine, RedisConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use memsy::SingleNode;
use memsy_bus::Bus;
use memsy_core::Config;
use memsy_gateway::KeyRegistry;
use memsy_testkit::{model_dir, NatsServer, RedisServer};
use memsy_usage::{Dimension, Meter};
use serde_json::{json, Value};

type Answer = Arc<dyn Fn(&str) -> (u16, Value) + Send + Sync>;

struct Provider {
    answer: Answer,
    calls: Mutex<usize>,
}

async fn completions(State(p): State<Arc<Provider>>, Json(body): Json<Value>) -> Response {
    *p.calls.lock().unwrap() += 1;
    let (status, body) = (p.answer)(body["messages"][1]["content"].as_str().unwrap_or_default());
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

/// Serves `answer` at `{url}/chat/completions`; returns the base url.
async fn start_provider(answer: Answer) -> (String, Arc<Provider>) {
    let provider = Arc::new(Provider { answer, calls: Mutex::new(0) });
    let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(provider.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), provider)
}

struct App {
    node: Option<SingleNode>,
    base: String,
    _nats: NatsServer,
    redis: RedisServer,
    _data: tempfile::TempDir,
    config: Arc<Config>,
    http: reqwest::Client,
}

async fn spawn_app(llm_url: &str, max_deliver: i64) -> App {
    memsy_core::telemetry::init_logging();
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.nats.url = nats.url();
    config.nats.publish_timeout_ms = 1_000;
    config.nats.max_deliver = max_deliver;
    config.redis.url = redis.url();
    config.http.addr = "127.0.0.1:0".into();
    config.http.data_dir = data.path().to_path_buf();
    config.embedder.model_dir = model_dir();
    config.qdrant.url = None;
    config.extractor.engine = ExtractorEngine::Llm;
    config.llm.url = Some(llm_url.into());
    config.llm.model = "fake-llm".into();
    config.llm.attempts = 1;
    config.llm.timeout_secs = 5;
    let config = Arc::new(config);
    let node = SingleNode::start(config.clone()).await.expect("node starts");
    let base = format!("http://{}", node.addr);
    App { node: Some(node), base, _nats: nats, redis, _data: data, config, http: reqwest::Client::new() }
}

impl App {
    async fn key(&self, org: &str) -> String {
        let bus = Bus::connect(&self.config.nats).await.unwrap();
        let reg = KeyRegistry::open_unwatched(&bus).await.unwrap();
        reg.create(org, "test", &["read".to_string(), "write".to_string()], None).await.unwrap().0
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let resp = self.http.post(format!("{}{path}", self.base)).bearer_auth(key).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        resp.json().await.unwrap()
    }

    async fn ingest(&self, key: &str, events: Value) -> Vec<String> {
        let v = self.post(key, "/v1/ingest", json!({ "events": events })).await;
        v["event_ids"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
    }

    /// The status once no id is pending.
    async fn settled(&self, key: &str, ids: &[String]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.post(key, "/v1/status", json!({ "event_ids": ids })).await;
            if v["pendingIds"].as_array().unwrap().is_empty() {
                return v;
            }
            assert!(Instant::now() < deadline, "events still pending: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        self.node.take().unwrap().services.stop().await.unwrap();
    }
}

fn ev(session: &str, content: &str) -> Value {
    json!({"actor_id": "user_42", "session_id": session, "kind": "user_message", "content": content,
           "ts": "2026-03-05T10:00:00Z"})
}

#[tokio::test]
async fn the_models_memories_are_stored_and_searchable() {
    let (url, provider) = start_provider(Arc::new(|user: &str| {
        let memories = if user.contains("My dog's name is Rex.") {
            json!([{
                "text": "user_42 has a beagle named Rex.", "title": "Rex the beagle",
                "summary": "user_42's dog is a beagle called Rex.", "type": "fact", "memory_kind": "semantic",
                "tags": ["pets"], "entities": [{"name": "Rex", "type": "pet"}], "confidence": 0.9,
            }])
        } else {
            json!([])
        };
        let content = json!({ "memories": memories }).to_string();
        let completion = json!({
            "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 200, "completion_tokens": 50},
        });
        (200, completion)
    }))
    .await;
    let app = spawn_app(&url, 5).await;
    let key = app.key("acme").await;
    let ids = app.ingest(&key, json!([ev("s1", "My dog's name is Rex."), ev("s1", "ok thanks")])).await;
    let st = app.settled(&key, &ids).await;
    assert_eq!(st["completedIds"].as_array().unwrap().len(), 2, "{st}");
    assert_eq!(*provider.calls.lock().unwrap(), 2);

    let v = app.post(&key, "/v1/search", json!({"query": "pets", "actor_id": "user_42"})).await;
    let results = v["results"].as_array().unwrap();
    let rex = results
        .iter()
        .find(|r| r["content"] == "user_42 has a beagle named Rex.")
        .unwrap_or_else(|| panic!("the model's memory is searchable: {v}"));
    assert_eq!(rex["metadata"]["title"], "Rex the beagle");
    assert_eq!(rex["metadata"]["type"], "fact");
    assert_eq!(rex["metadata"]["source_event_ids"][0], ids[0].as_str());
    // Only the model's memories: the rules engine did not run.
    assert_eq!(results.len(), 1, "{v}");

    let meter =
        Meter::new(memsy_status::redis_connection(&app.redis.url(), RedisConfig::default().timeouts()).await.unwrap());
    let now = memsy_core::time::parse_ts(&memsy_core::time::now_rfc3339()).unwrap();
    let month = meter.month("acme", now).await.unwrap();
    assert_eq!(month[&Dimension::LlmTokens], 2 * 250);
    app.stop().await;
}

#[tokio::test]
async fn a_provider_that_keeps_failing_fails_the_event_with_its_error() {
    let (url, provider) =
        start_provider(Arc::new(|_: &str| (500, json!({"error": {"message": "model overloaded, try later"}})))).await;
    let app = spawn_app(&url, 2).await;
    let key = app.key("acme").await;
    let ids = app.ingest(&key, json!([ev("s1", "My dog's name is Rex.")])).await;
    let st = app.settled(&key, &ids).await;
    assert_eq!(st["failedIds"], json!(ids), "{st}");
    assert_eq!(st["statuses"][&ids[0]], "failed");
    let reason = st["reasons"][&ids[0]].as_str().unwrap_or_default();
    assert!(reason.contains("model overloaded, try later") && reason.contains("500"), "{st}");
    assert!(reason.contains("gave up after 2 attempts"), "{st}");
    // One request per delivery (llm.attempts = 1), two deliveries.
    assert_eq!(*provider.calls.lock().unwrap(), 2);
    let v = app.post(&key, "/v1/search", json!({"query": "dog", "actor_id": "user_42"})).await;
    assert!(v["results"].as_array().unwrap().is_empty(), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn the_llm_engine_needs_an_endpoint() {
    let mut config = Config::default();
    config.extractor.engine = ExtractorEngine::Llm;
    let err = SingleNode::start(Arc::new(config)).await.err().expect("refused");
    assert!(format!("{err:#}").contains("llm.url"), "{err:#}");
    // An unknown engine name cannot reach this far: `Config::load` refuses it.
}
