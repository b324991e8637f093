//! `ChatClient` against a local HTTP server playing an OpenAI-compatible
//! provider: the request it sends, JSON answers, token usage, retries on
//! 429/5xx with `Retry-After`, refusals and unusable answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use memsy_core::config::LlmConfig;
use memsy_llm::{ChatClient, LlmError};
use serde_json::{json, Value};

/// One scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Value);

/// Answers given in order; when none are left, the last one again.
#[derive(Default)]
struct Provider {
    script: Mutex<VecDeque<Answer>>,
    requests: Mutex<Vec<(HeaderMap, Value)>>,
}

async fn completions(State(p): State<Arc<Provider>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    p.requests.lock().unwrap().push((headers, body));
    let mut script = p.script.lock().unwrap();
    let (status, headers, body) = if script.len() > 1 { script.pop_front().unwrap() } else { script[0].clone() };
    let mut resp = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn start(script: Vec<Answer>) -> (ChatClient, Arc<Provider>) {
    let provider = Arc::new(Provider { script: Mutex::new(script.into()), ..Provider::default() });
    let app = Router::new().route("/v1/chat/completions", post(completions)).with_state(provider.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cfg = LlmConfig {
        url: Some(format!("http://{addr}/v1/")),
        model: "test-model".into(),
        api_key: Some("sk-secret".into()),
        timeout_secs: 5,
        attempts: 3,
        temperature: 0.0,
    };
    (ChatClient::from_config(&cfg).unwrap().unwrap(), provider)
}

fn answer(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "model": "test-model-2026",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    })
}

fn schema() -> Value {
    json!({"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"], "additionalProperties": false})
}

#[tokio::test]
async fn sends_the_schema_and_returns_the_object_with_its_usage() {
    let (client, provider) = start(vec![(200, vec![], answer(r#"{"prompt": "Promote shared norms."}"#))]).await;
    let got = client.complete_json("be brief", "write a prompt", "promotion_prompt", &schema()).await.unwrap();
    assert_eq!(got.value["prompt"], "Promote shared norms.");
    assert_eq!((got.usage.prompt_tokens, got.usage.completion_tokens, got.usage.total()), (120, 30, 150));
    assert_eq!(got.model, "test-model-2026");

    let requests = provider.requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert_eq!(headers["authorization"], "Bearer sk-secret");
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "be brief"}));
    assert_eq!(body["messages"][1], json!({"role": "user", "content": "write a prompt"}));
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "promotion_prompt");
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema());
}

#[tokio::test]
async fn retries_429_and_5xx_honouring_retry_after() {
    let (client, provider) = start(vec![
        (429, vec![("retry-after", "0.3".to_string())], json!({"error": {"message": "slow down"}})),
        (503, vec![], json!({"error": {"message": "overloaded"}})),
        (200, vec![], answer(r#"{"prompt": "ok"}"#)),
    ])
    .await;
    let started = Instant::now();
    let got = client.complete_json("s", "u", "x", &schema()).await.unwrap();
    assert_eq!(got.value["prompt"], "ok");
    assert_eq!(provider.requests.lock().unwrap().len(), 3);
    // 0.3 s as asked, then the 1 s second back-off step (0.5 s doubled).
    assert!(started.elapsed() >= Duration::from_millis(1_250), "{:?}", started.elapsed());
}

#[tokio::test]
async fn gives_up_after_the_last_attempt_as_unavailable() {
    let (client, provider) = start(vec![(500, vec![], json!({"error": "boom"}))]).await;
    let err = client.complete_json("s", "u", "x", &schema()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Unavailable(ref m) if m.contains("after 3 attempts") && m.contains("boom")),
        "{err}"
    );
    assert_eq!(provider.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn client_errors_fail_at_once() {
    let (client, provider) = start(vec![(401, vec![], json!({"error": {"message": "bad key"}}))]).await;
    let err = client.complete_json("s", "u", "x", &schema()).await.unwrap_err();
    assert!(matches!(err, LlmError::Rejected(ref m) if m.contains("bad key")), "{err}");
    assert_eq!(provider.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unusable_answers_are_errors_not_empty_results() {
    for content in ["not json at all", "[1, 2]", ""] {
        let (client, _) = start(vec![(200, vec![], answer(content))]).await;
        let err = client.complete_json("s", "u", "x", &schema()).await.unwrap_err();
        assert!(matches!(err, LlmError::Invalid(_)), "{content:?}: {err}");
    }
    let refusal = json!({"choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't help"}}]});
    let (client, _) = start(vec![(200, vec![], refusal)]).await;
    let err = client.complete_json("s", "u", "x", &schema()).await.unwrap_err();
    assert!(matches!(err, LlmError::Rejected(ref m) if m.contains("I can't help")), "{err}");
    // A fenced answer is still read.
    let (client, _) = start(vec![(200, vec![], answer("```json\n{\"prompt\": \"fenced\"}\n```"))]).await;
    assert_eq!(client.complete_json("s", "u", "x", &schema()).await.unwrap().value["prompt"], "fenced");
}
