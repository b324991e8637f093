//! An engine backed by any OpenAI-compatible `POST {base}/embeddings`
//! endpoint (OpenAI, Azure-style gateways, vLLM, TEI, Ollama, LM Studio…),
//! for deployments that prefer a hosted or GPU model to the local CPU one.
//!
//! Request: `{"model": "...", "input": ["...", ...]}` with
//! `Authorization: Bearer <key>` when a key is configured. Response:
//! `{"data": [{"index": i, "embedding": [...]}, ...], "model": "..."}`.
//! Results are put back in the caller's order by `index`, checked (count,
//! dimension, finite values) and L2-normalised, since not every provider
//! normalises.
//!
//! Inputs go out in requests of at most [`MAX_INPUTS_PER_REQUEST`] texts.
//! `429` and `5xx` answers (and failures to connect) are retried with
//! exponential back-off, honouring `Retry-After` (seconds) when present;
//! other `4xx` answers fail at once with the server's message.
//!
//! The engine is blocking, like every [`Engine`]: it uses reqwest's blocking
//! client, which runs its own small runtime. Create, use and drop it on a
//! plain thread (or in `spawn_blocking`), never directly on an async runtime
//! thread — the blocking client panics there.

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::EmbedError;

/// Most inputs sent in one request (OpenAI accepts up to 2048; many
/// self-hosted servers far fewer).
pub const MAX_INPUTS_PER_REQUEST: usize = 256;
/// Attempts per request, the first included.
const ATTEMPTS: u32 = 3;
/// Back-off before the first retry; doubled for each further one.
const BASE_BACKOFF: Duration = Duration::from_millis(500);
/// No single wait is longer than this, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How much of an unparseable error body is quoted in an error.
const MAX_QUOTED_BODY: usize = 300;

/// Embeds through an OpenAI-compatible `/embeddings` HTTP API.
#[derive(Debug)]
pub struct RemoteEngine {
    client: Client,
    endpoint: Url,
    model: String,
    /// `Bearer <key>`, marked sensitive: `Debug` prints `Sensitive`.
    authorization: Option<HeaderValue>,
    dimension: usize,
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

/// `{"error": {"message": "..."}}` (OpenAI) or `{"error": "..."}` / `{"message": "..."}` (others).
#[derive(Deserialize)]
struct ErrorBody {
    error: Option<serde_json::Value>,
    message: Option<String>,
}

impl RemoteEngine {
    /// `url` is the API base (e.g. `https://api.openai.com/v1`); requests go
    /// to `{url}/embeddings`. `dimension` is the vector size the model
    /// produces; every answer is checked against it. `timeout` bounds each
    /// HTTP request (connecting included).
    ///
    /// Call this off the async runtime (plain thread or `spawn_blocking`).
    pub fn new(
        url: &str,
        model: &str,
        api_key: Option<&str>,
        dimension: usize,
        timeout: Duration,
    ) -> Result<Self, EmbedError> {
        let config_err = |reason: String| EmbedError::Remote(format!("invalid configuration: {reason}"));
        if dimension == 0 {
            return Err(config_err("dimension must be positive".into()));
        }
        if model.trim().is_empty() {
            return Err(config_err("model name is empty".into()));
        }
        let endpoint = Url::parse(&format!("{}/embeddings", url.trim_end_matches('/')))
            .map_err(|e| config_err(format!("base url {url:?}: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(config_err(format!("base url {url:?}: scheme must be http or https")));
        }
        let authorization = match api_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => {
                // Never quote the key itself in the error.
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| config_err("api key contains characters not allowed in a header".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| config_err(format!("http client: {e}")))?;
        Ok(Self { client, endpoint, model: model.to_string(), authorization, dimension })
    }

    /// The full `/embeddings` URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Embeds one request's worth of texts (at most `MAX_INPUTS_PER_REQUEST`).
    fn embed_chunk(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::to_vec(&EmbeddingRequest { model: &self.model, input: texts })
            .map_err(|e| EmbedError::Remote(format!("encoding request: {e}")))?;
        let response = self.send_with_retries(body)?;
        let bytes =
            response.bytes().map_err(|e| EmbedError::Remote(format!("{}: reading response: {e}", self.endpoint)))?;
        let parsed: EmbeddingResponse = serde_json::from_slice(&bytes)
            .map_err(|e| EmbedError::Remote(format!("{}: unexpected response: {e}", self.endpoint)))?;
        self.check_and_order(texts.len(), parsed.data)
    }

    /// Posts `body`, retrying 429, 5xx and connection failures; returns the
    /// first successful response or the error that ended the attempts.
    fn send_with_retries(&self, body: Vec<u8>) -> Result<Response, EmbedError> {
        let mut attempt = 1;
        loop {
            let mut request = self
                .client
                .post(self.endpoint.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(value) = &self.authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            let (error, retry_after) = match request.send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = parse_retry_after(&response);
                    let message = error_message(response);
                    let error = EmbedError::Remote(format!("{} returned {status}: {message}", self.endpoint));
                    if !is_retryable(status) {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(e) if e.is_connect() => {
                    (EmbedError::Unavailable(format!("{}: {}", self.endpoint, without_url(e))), None)
                }
                Err(e) => return Err(EmbedError::Remote(format!("{}: {}", self.endpoint, without_url(e)))),
            };
            if attempt >= ATTEMPTS {
                return Err(error);
            }
            let wait = retry_after.unwrap_or(BASE_BACKOFF * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
            tracing::warn!(
                endpoint = %self.endpoint,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "remote embedding request failed; retrying"
            );
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// Puts `items` in input order and checks and normalises every vector.
    fn check_and_order(&self, expected: usize, items: Vec<EmbeddingItem>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let bad = |reason: String| EmbedError::Remote(format!("{}: {reason}", self.endpoint));
        if items.len() != expected {
            return Err(bad(format!("sent {expected} inputs but received {} embeddings", items.len())));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in items {
            let slot = out
                .get_mut(item.index)
                .ok_or_else(|| bad(format!("embedding index {} out of range for {expected} inputs", item.index)))?;
            if slot.is_some() {
                return Err(bad(format!("embedding index {} received twice", item.index)));
            }
            if item.embedding.len() != self.dimension {
                return Err(bad(format!(
                    "embedding {} has dimension {}, expected {} (model {})",
                    item.index,
                    item.embedding.len(),
                    self.dimension,
                    self.model
                )));
            }
            let mut vector = item.embedding;
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !norm.is_finite() || norm == 0.0 {
                return Err(bad(format!("embedding {} is zero or not finite", item.index)));
            }
            vector.iter_mut().for_each(|x| *x /= norm);
            *slot = Some(vector);
        }
        // Every slot is filled: `expected` distinct in-range indices were seen.
        Ok(out.into_iter().map(|v| v.unwrap_or_default()).collect())
    }
}

impl Engine for RemoteEngine {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_INPUTS_PER_REQUEST) {
            out.extend(self.embed_chunk(chunk)?);
        }
        Ok(out)
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn model_name(&self) -> &str {
        &self.model
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `Retry-After` in seconds; the HTTP-date form falls back to our back-off.
fn parse_retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// The server's own explanation of an error answer, as short text.
fn error_message(response: Response) -> String {
    let Ok(body) = response.text() else { return "(no readable body)".into() };
    if let Ok(parsed) = serde_json::from_str::<ErrorBody>(&body) {
        let from_error = match parsed.error {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Object(map)) => map.get("message").and_then(|m| m.as_str()).map(str::to_string),
            _ => None,
        };
        if let Some(message) = from_error.or(parsed.message) {
            return message;
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return "(empty body)".into();
    }
    match body.char_indices().nth(MAX_QUOTED_BODY) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_string(),
    }
}

/// reqwest's error text, without the URL it appends (we print ours once).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
