//! The `llm` engine against a local HTTP server playing an OpenAI-compatible
//! provider, with a real nats-server (the hierarchy bucket, the stage) and
//! redis-server (token metering, status): what the model is told, how its
//! answer becomes candidates, what an unusable answer or a failing provider
//! does to the event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use memsy_bus::topology::{self, EXTRACTOR, HIERARCHY_BUCKET};
use memsy_bus::{run_stage, Batching, Bus, OutMessage};
use memsy_core::config::{LlmConfig, NatsConfig, RedisConfig};
use memsy_extractor::{Engine, ExtractorError, ExtractorStage, LlmEngine};
use memsy_llm::{ChatClient, LlmError};
use memsy_proto::{Event, EventState, ExtractedEvent};
use memsy_status::{StatusApi, StatusStore};
use memsy_testkit::{NatsServer, RedisServer};
use memsy_usage::{Dimension, Meter};
use prost::Message;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

type Answer = Arc<dyn Fn(&str) -> (u16, Value) + Send + Sync>;

/// Answers each request with `answer(user message)`; keeps every request body.
struct Provider {
    answer: Answer,
    requests: Mutex<Vec<Value>>,
}

impl Provider {
    fn user_messages(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests.iter().map(|r| r["messages"][1]["content"].as_str().unwrap_or_default().to_string()).collect()
    }
}

async fn completions(State(p): State<Arc<Provider>>, Json(body): Json<Value>) -> Response {
    let user = body["messages"][1]["content"].as_str().unwrap_or_default().to_string();
    p.requests.lock().unwrap().push(body);
    let (status, body) = (p.answer)(&user);
    (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
}

/// A chat completion whose content is `memories` as JSON, with usage 100 + 20.
fn completion(memories: Value) -> Value {
    json!({
        "model": "fake-llm",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": memories.to_string()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    })
}

fn rex() -> Value {
    json!({
        "text": "user_42's dog is named Rex.",
        "title": "Dog's name",
        "summary": "user_42 has a dog called Rex.",
        "type": "fact",
        "memory_kind": "semantic",
        "tags": ["Pets", "dogs"],
        "entities": [{"name": "Rex", "type": "pet"}, {"name": "user_42", "type": "user"}],
        "confidence": 0.95,
    })
}

async fn start_provider(answer: Answer) -> (LlmConfig, Arc<Provider>) {
    let provider = Arc::new(Provider { answer, requests: Mutex::new(Vec::new()) });
    let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(provider.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cfg = LlmConfig {
        url: Some(format!("http://{addr}/v1")),
        model: "fake-llm".into(),
        api_key: Some("sk-test".into()),
        timeout_secs: 5,
        attempts: 1,
        temperature: 0.0,
    };
    (cfg, provider)
}

struct Env {
    _nats: NatsServer,
    _redis: RedisServer,
    bus: Bus,
    meter: Meter,
    status: Arc<dyn StatusApi>,
}

async fn env() -> Env {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let bus = Bus::connect(&NatsConfig { url: nats.url(), max_deliver: 2, ack_wait_secs: 3, ..Default::default() })
        .await
        .unwrap();
    let meter =
        Meter::new(memsy_status::redis_connection(&redis.url(), RedisConfig::default().timeouts()).await.unwrap());
    let status: Arc<dyn StatusApi> =
        Arc::new(StatusStore::connect(&redis.url(), 60, RedisConfig::default().timeouts()).await.unwrap());
    Env { _nats: nats, _redis: redis, bus, meter, status }
}

async fn engine(env: &Env, cfg: &LlmConfig) -> LlmEngine {
    let client = ChatClient::from_config(cfg).unwrap().unwrap();
    LlmEngine::open(&env.bus, client, env.meter.clone()).await.unwrap()
}

fn event(id: &str, session: &str, content: &str) -> Event {
    Event {
        event_id: id.into(),
        org_id: "acme".into(),
        actor_id: "user_42".into(),
        session_id: session.into(),
        kind: "user_message".into(),
        content: content.into(),
        role_id: Some("role_ops".into()),
        team_id: Some("team_pets".into()),
        ts: "2026-03-05T10:00:00.000Z".into(),
        ingested_at: "2026-03-05T10:00:00.000Z".into(),
        ..Default::default()
    }
}

async fn tokens(meter: &Meter, org: &str) -> u64 {
    meter.month(org, chrono::Utc::now()).await.unwrap()[&Dimension::LlmTokens]
}

#[tokio::test]
async fn the_stage_asks_with_prompts_and_window_and_forwards_validated_candidates() {
    let env = env().await;
    let kv = env.bus.kv(HIERARCHY_BUCKET, 1).await.unwrap();
    let record = |p: &str| json!({"promotion_prompt": p, "name": "x"}).to_string().into();
    kv.put("o.acme", record("Acme remembers who owns which pet.")).await.unwrap();
    kv.put("r.acme.role_ops", record("Operators keep on-call rotations.")).await.unwrap();
    kv.put("t.acme.team_pets", record("The pets team tracks vet visits.")).await.unwrap();
    // Another org's record must not leak in.
    kv.put("o.globex", record("Globex secret prompt.")).await.unwrap();

    let (cfg, provider) = start_provider(Arc::new(|user: &str| {
        let memories = if user.contains("content:\n<<<\nMy dog's name is Rex.") { vec![rex()] } else { vec![] };
        (200, completion(json!({ "memories": memories })))
    }))
    .await;
    let llm = Arc::new(engine(&env, &cfg).await);

    let events = [
        event("01J00000000000000000000001", "s1", "My dog's name is Rex."),
        event("01J00000000000000000000002", "s1", "He turns three next Friday."),
        event("01J00000000000000000000003", "s2", "ok thanks"),
    ];
    let out: Vec<OutMessage> = events
        .iter()
        .map(|e| OutMessage {
            subject: topology::events_subject("acme", &e.event_id),
            msg_id: e.event_id.clone(),
            payload: e.encode_to_vec().into(),
            traceparent: None,
        })
        .collect();
    env.bus.publish_all(out).await.unwrap();

    let stop = CancellationToken::new();
    let stage = ExtractorStage::with_engine(env.bus.clone(), env.status.clone(), Engine::Llm(llm.clone()));
    let task = tokio::spawn(run_stage(env.bus.clone(), EXTRACTOR, Arc::new(stage), Batching::new(16, 2), stop.clone()));

    let stream = env.bus.jetstream().get_stream(topology::EXTRACTED_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("t".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut msgs = consumer.messages().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(20), msgs.next()).await.unwrap().unwrap().unwrap();
        got.push(ExtractedEvent::decode(m.payload.clone()).unwrap());
        m.ack().await.unwrap();
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    got.sort_by(|a, b| a.event.as_ref().unwrap().event_id.cmp(&b.event.as_ref().unwrap().event_id));

    // The answer, validated: lowercase tags with the type first, unknown
    // entity types as "other", and the deterministic id.
    assert_eq!(got[0].memories.len(), 1);
    let m = &got[0].memories[0];
    assert_eq!(m.memory_id, memsy_core::ids::memory_id("acme", &events[0].event_id, 0).to_string());
    assert_eq!(m.text, "user_42's dog is named Rex.");
    assert_eq!((m.r#type.as_str(), m.memory_kind.as_str()), ("fact", "semantic"));
    assert_eq!(m.tags, ["fact", "pets", "dogs"]);
    let entities: Vec<(&str, &str)> = m.entities.iter().map(|e| (e.name.as_str(), e.r#type.as_str())).collect();
    assert_eq!(entities, [("Rex", "pet"), ("user_42", "other")]);
    assert!((m.confidence - 0.95).abs() < 1e-6);
    // Nothing to remember is still forwarded, so the event completes.
    assert!(got[1].memories.is_empty() && got[2].memories.is_empty());

    // What the model was told.
    let requests = provider.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    let body = &requests[0];
    assert_eq!(body["model"], "fake-llm");
    assert!(body["messages"][0]["content"].as_str().unwrap().contains("Resolve first-person words"));
    assert_eq!(body["response_format"]["json_schema"]["name"], "memories");
    let users = provider.user_messages();
    let ask = |content: &str| users.iter().find(|u| u.contains(&format!("content:\n<<<\n{content}"))).unwrap().clone();
    let first = ask("My dog's name is Rex.");
    for wanted in [
        "kind: user_message",
        "actor_id: user_42",
        "session_id: s1",
        "ts: 2026-03-05T10:00:00.000Z (Thursday 5 March 2026)",
        "Promotion prompt of the organisation acme",
        "Acme remembers who owns which pet.",
        "Promotion prompt of the role role_ops",
        "Operators keep on-call rotations.",
        "Promotion prompt of the team team_pets",
        "The pets team tracks vet visits.",
    ] {
        assert!(first.contains(wanted), "missing {wanted:?} in {first}");
    }
    assert!(!first.contains("Globex"), "{first}");
    assert!(!first.contains("Earlier events"), "the session's first event has no window: {first}");
    // The second event of the session (same batch) sees the first; the
    // other session sees neither.
    let second = ask("He turns three next Friday.");
    assert!(second.contains("Earlier events of this session"), "{second}");
    assert!(second.contains("user_message user_42] My dog's name is Rex."), "{second}");
    let other = ask("ok thanks");
    assert!(!other.contains("Earlier events") && !other.contains("Rex"), "{other}");

    // Every call's tokens, to the org.
    assert_eq!(tokens(&env.meter, "acme").await, 3 * 120);
    assert_eq!(tokens(&env.meter, "globex").await, 0);
}

#[tokio::test]
async fn unusable_answers_are_errors_and_still_metered() {
    let env = env().await;
    let script = Arc::new(Mutex::new(vec![
        (200, completion(json!({"memories": []}))),
        (
            200,
            completion(
                json!({"memories": [{"text": "x", "type": "opinion", "memory_kind": "semantic", "confidence": 1}]}),
            ),
        ),
        (
            200,
            completion(json!({"memories": [{"text": "", "type": "fact", "memory_kind": "semantic", "confidence": 1}]})),
        ),
        (200, completion(json!({"memories": "none"}))),
        (200, completion(json!({"facts": []}))),
        (200, json!({"choices": [{"message": {"role": "assistant", "content": "I think Rex is a dog."}}]})),
        (401, json!({"error": {"message": "Incorrect API key provided"}})),
    ]));
    let next = script.clone();
    let (cfg, provider) = start_provider(Arc::new(move |_: &str| next.lock().unwrap().remove(0))).await;
    let llm = engine(&env, &cfg).await;
    let e = event("01J00000000000000000000009", "s9", "hello");

    // An empty list is a valid answer: nothing to remember.
    assert!(llm.extract(&e).await.unwrap().is_empty());
    for what in ["unknown type", "empty text", "memories not a list", "no memories", "not JSON"] {
        let err = llm.extract(&e).await.unwrap_err();
        assert!(matches!(err, ExtractorError::Llm(LlmError::Invalid(_))), "{what}: {err}");
    }
    let err = llm.extract(&e).await.unwrap_err();
    assert!(matches!(err, ExtractorError::Llm(LlmError::Rejected(ref m)) if m.contains("Incorrect API key")), "{err}");
    assert_eq!(provider.requests.lock().unwrap().len(), 7);
    // Every answer that reported its usage was paid for, usable or not.
    assert_eq!(tokens(&env.meter, "acme").await, 5 * 120);
}

/// A provider that keeps failing: every delivery is retried (the stage
/// sends no output), and after `max_deliver` the event is failed with the
/// provider's message, not stored with no memories.
#[tokio::test]
async fn a_failing_provider_fails_the_event_with_its_reason() {
    let env = env().await;
    let (cfg, provider) =
        start_provider(Arc::new(|_: &str| (401, json!({"error": {"message": "Incorrect API key provided"}})))).await;
    let llm = Arc::new(engine(&env, &cfg).await);
    let e = event("01J0000000000000000000000F", "s1", "My dog's name is Rex.");
    env.bus
        .publish_all(vec![OutMessage {
            subject: topology::events_subject("acme", &e.event_id),
            msg_id: e.event_id.clone(),
            payload: e.encode_to_vec().into(),
            traceparent: None,
        }])
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let stage = ExtractorStage::with_engine(env.bus.clone(), env.status.clone(), Engine::Llm(llm));
    let task = tokio::spawn(run_stage(env.bus.clone(), EXTRACTOR, Arc::new(stage), Batching::new(16, 2), stop.clone()));

    let ids = vec![e.event_id.clone()];
    let mut status = None;
    for _ in 0..200 {
        let s = env.status.get("acme", &ids).await.unwrap().remove(0);
        if s.state == EventState::Failed {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("the event is failed");
    assert!(status.reason.contains("Incorrect API key provided"), "{}", status.reason);
    assert!(status.reason.contains("gave up after 2 attempts"), "{}", status.reason);
    assert_eq!(provider.requests.lock().unwrap().len(), 2, "one request per delivery (llm.attempts = 1)");

    let mut extracted = env.bus.jetstream().get_stream(topology::EXTRACTED_STREAM).await.unwrap();
    assert_eq!(extracted.info().await.unwrap().state.messages, 0, "nothing published for a failed extraction");
    // The letter is stored right after the failure is recorded.
    let mut dlq = env.bus.jetstream().get_stream(topology::DLQ_STREAM).await.unwrap();
    for _ in 0..50 {
        if dlq.info().await.unwrap().state.messages == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dlq.info().await.unwrap().state.messages, 1);
    stop.cancel();
    task.await.unwrap().unwrap();
}
