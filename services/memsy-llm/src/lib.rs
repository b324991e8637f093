//! A client for any OpenAI-compatible `POST {url}/chat/completions`
//! endpoint (OpenAI, Azure-style gateways, vLLM, Ollama, LM Studio…).
//!
//! [`ChatClient::complete_json`] asks for output that follows a JSON schema
//! (`response_format: {type: json_schema, …}`) and returns the parsed
//! object with the token usage the provider reports, so that callers can
//! meter `llm_tokens` per org. A reply that is not a JSON object is an
//! error, never an empty result.
//!
//! `429` and `5xx` answers and failures to connect are retried with
//! exponential back-off, honouring `Retry-After` (seconds); other `4xx`
//! answers fail at once with the provider's message.

use std::time::Duration;

use memsy_core::config::{ExposeSecret, LlmConfig};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::warn;

/// Back-off before the first retry; doubled for each further one.
const BASE_BACKOFF: Duration = Duration::from_millis(500);
/// No single wait is longer than this, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// How much of an error body is quoted in an error.
const MAX_QUOTED_BODY: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached or kept failing (429/5xx) through
    /// every attempt; worth trying again later.
    #[error("LLM unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx other than 429).
    #[error("LLM refused the request: {0}")]
    Rejected(String),
    /// The answer was not what was asked for.
    #[error("LLM answer unusable: {0}")]
    Invalid(String),
    #[error("LLM configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// What went wrong, without the provider's own words: those can carry
    /// its URL, account details or part of the API key, and this summary is
    /// meant for the people a deployment serves (the details are for logs).
    pub fn summary(&self) -> &'static str {
        match self {
            LlmError::Unavailable(_) => "the LLM could not be reached or kept failing",
            LlmError::Rejected(_) => "the LLM refused the request",
            LlmError::Invalid(_) => "the LLM's answer was unusable",
            LlmError::Config(_) => "the LLM is misconfigured",
        }
    }
}

/// Tokens a call used, as the provider reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        // Saturating: the figures are whatever the provider claims.
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// A parsed JSON answer and what it cost.
#[derive(Debug, Clone)]
pub struct JsonCompletion {
    pub value: Value,
    pub usage: TokenUsage,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct ChatClient {
    http: Client,
    endpoint: Url,
    model: String,
    /// `Bearer <key>`, marked sensitive: `Debug` prints `Sensitive`.
    authorization: Option<HeaderValue>,
    attempts: u32,
    temperature: f32,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl ChatClient {
    /// The configured client, or None when no LLM is configured.
    pub fn from_config(cfg: &LlmConfig) -> Result<Option<Self>, LlmError> {
        let Some(url) = cfg.url.as_deref() else { return Ok(None) };
        let base =
            Url::parse(url.trim_end_matches('/')).map_err(|e| LlmError::Config(format!("llm.url {url}: {e}")))?;
        let endpoint = Url::parse(&format!("{}/chat/completions", base.as_str().trim_end_matches('/')))
            .map_err(|e| LlmError::Config(format!("llm.url {url}: {e}")))?;
        let authorization = match cfg.api_key.as_ref().map(|k| k.expose_secret()).filter(|k| !k.is_empty()) {
            None => None,
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| LlmError::Config("llm.api_key is not a valid header value".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        let http = Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .build()
            .map_err(|e| LlmError::Config(format!("http client: {e}")))?;
        Ok(Some(Self {
            http,
            endpoint,
            model: cfg.model.clone(),
            authorization,
            attempts: cfg.attempts.max(1),
            temperature: cfg.temperature,
        }))
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// One chat completion whose answer must be a JSON object following
    /// `schema` (named `schema_name`).
    pub async fn complete_json(
        &self,
        system: &str,
        user: &str,
        schema_name: &str,
        schema: &Value,
    ) -> Result<JsonCompletion, LlmError> {
        let body = json!({
            "model": self.model,
            "temperature": self.temperature,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": true, "schema": schema},
            },
        });
        let response = self.post(&body).await?;
        let parsed: ChatResponse =
            serde_json::from_str(&response).map_err(|e| LlmError::Invalid(format!("not a chat completion: {e}")))?;
        let usage = parsed
            .usage
            .map(|u| TokenUsage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens })
            .unwrap_or_default();
        let choice = parsed.choices.into_iter().next().ok_or_else(|| LlmError::Invalid("no choices".into()))?;
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
            return Err(LlmError::Rejected(format!("the model refused: {}", quote(&refusal))));
        }
        let content = choice.message.content.unwrap_or_default();
        let value: Value = serde_json::from_str(strip_fences(&content))
            .map_err(|e| LlmError::Invalid(format!("answer is not JSON ({e}): {}", quote(&content))))?;
        if !value.is_object() {
            return Err(LlmError::Invalid(format!("answer is not a JSON object: {}", quote(&content))));
        }
        Ok(JsonCompletion { value, usage, model: parsed.model.unwrap_or_else(|| self.model.clone()) })
    }

    /// Posts `body`, retrying 429, 5xx and connection failures; the body of
    /// the first successful answer.
    async fn post(&self, body: &Value) -> Result<String, LlmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.post(self.endpoint.clone()).json(body);
            if let Some(value) = &self.authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            let (error, retry_after) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(text);
                    }
                    let message = format!("{status}: {}", quote(&text));
                    if !is_retryable(status) {
                        return Err(LlmError::Rejected(message));
                    }
                    (message, retry_after)
                }
                Err(e) => (e.to_string(), None),
            };
            if attempt >= self.attempts {
                return Err(LlmError::Unavailable(format!("after {attempt} attempts: {error}")));
            }
            let backoff = BASE_BACKOFF.saturating_mul(2u32.saturating_pow(attempt - 1));
            let wait = retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
            warn!(attempt, wait_ms = wait.as_millis() as u64, error, "LLM request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

/// `Retry-After` in seconds; a value that is negative, not a number or
/// past what a `Duration` holds is ignored (the back-off applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<f64>().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Some models wrap JSON in a Markdown code fence despite being asked not to.
fn strip_fences(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else { return t };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

fn quote(s: &str) -> String {
    let mut q: String = s.chars().take(MAX_QUOTED_BODY).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_are_stripped() {
        assert_eq!(strip_fences("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_fences(" {\"a\":1} "), "{\"a\":1}");
    }

    #[test]
    fn retry_after_is_seconds_or_nothing() {
        let header = |v: &str| HeaderMap::from_iter([(RETRY_AFTER, HeaderValue::from_str(v).unwrap())]);
        assert_eq!(retry_after(&header("0.3")), Some(Duration::from_millis(300)));
        assert_eq!(retry_after(&header(" 2 ")), Some(Duration::from_secs(2)));
        // Each of these used to panic in Duration::from_secs_f64 or is not a number of seconds.
        for v in ["1e300", "-5", "NaN", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            assert_eq!(retry_after(&header(v)), None, "{v}");
        }
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn summaries_leave_the_providers_words_out() {
        let e = LlmError::Rejected("401: Incorrect API key provided: sk-****abcd".into());
        assert!(e.to_string().contains("sk-****abcd"));
        assert_eq!(e.summary(), "the LLM refused the request");
        assert_eq!(TokenUsage { prompt_tokens: u64::MAX, completion_tokens: 1 }.total(), u64::MAX);
    }

    #[test]
    fn no_url_means_no_client() {
        assert!(ChatClient::from_config(&LlmConfig::default()).unwrap().is_none());
        let bad = LlmConfig { url: Some("not a url".into()), ..LlmConfig::default() };
        assert!(matches!(ChatClient::from_config(&bad), Err(LlmError::Config(_))));
    }
}
