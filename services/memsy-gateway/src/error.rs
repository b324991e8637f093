//! The gateway's one error type, rendered in the shape the SDK reads:
//! `{"detail": {"error": "<code>", "message": "<text>", …}}`. Bad input is
//! always a 4xx that names the field; a dependency that is down is a 503.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Boxed: every handler returns `Result<_, ApiError>`, and a small error
    /// keeps their `Ok` path small.
    pub extra: Box<Map<String, Value>>,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: Box::default(), retry_after: None }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message)
    }

    pub fn insufficient_scope(required: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "insufficient_scope", format!("this API key lacks the '{required}' scope"))
            .with("required_scope", required)
    }

    /// 422 naming the field (`events[3].kind`) and, for ingest, the event index.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        let mut e =
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", message).with("field", field.clone());
        if let Some(idx) = event_index(&field) {
            e = e.with("event_index", idx);
        }
        e
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn org_id_not_allowed() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "org_id_not_allowed",
            "org_id may not be sent in a request body: the org is the API key's",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 429 past the key's requests per minute.
    pub fn rate_limited(retry_after: u64, plan: &memsy_core::config::Plan) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "rate limit of {} requests per minute for this API key exceeded; retry in {retry_after} s",
                plan.requests_per_minute
            ),
        )
        .with("retry_after", retry_after);
        e.retry_after = Some(retry_after);
        e
    }

    /// 429 past a plan's monthly quota.
    pub fn usage_limit_exceeded(dimension: &str, current: u64, limit: u64, plan: &str) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "usage_limit_exceeded",
            format!("monthly {dimension} quota of plan '{plan}' reached ({current} of {limit})"),
        )
        .with("dimension", dimension)
        .with("current", current)
        .with("limit", limit)
        .with("plan", plan)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503 naming the dependency that is down (the `component` a client
    /// and an operator see, the same names `/readyz` reports).
    pub fn unavailable(component: Component, err: impl std::fmt::Display) -> Self {
        let what = component.as_str();
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("{what} is unavailable: {err}; retry later"),
        )
        .with("component", what)
    }
}

/// A dependency of the gateway, by the name `/readyz` and 503s give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// NATS JetStream: the event log and the key, hierarchy and lease buckets.
    Nats,
    /// Redis: de-duplication, usage, pending marks.
    Redis,
    /// The status service (event state).
    Status,
    /// The vector store (embedded engine or Qdrant server).
    VectorStore,
    /// The embedder (query embeddings).
    Embedder,
    /// The LLM that writes promotion prompts.
    Llm,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nats => "nats",
            Self::Redis => "redis",
            Self::Status => "status",
            Self::VectorStore => "vector_store",
            Self::Embedder => "embedder",
            Self::Llm => "llm",
        }
    }
}

/// `events[12].kind` → 12.
fn event_index(field: &str) -> Option<u64> {
    let rest = field.strip_prefix("events[")?;
    rest[..rest.find(']')?].parse().ok()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut detail = Map::new();
        detail.insert("error".into(), self.code.into());
        detail.insert("message".into(), self.message.into());
        detail.extend(*self.extra);
        let mut resp = (self.status, axum::Json(json!({ "detail": detail }))).into_response();
        let retry_after = retry_after.or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(secs) = retry_after {
            resp.headers_mut().insert("Retry-After", HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_field_and_index() {
        let e = ApiError::invalid("events[7].ts", "not a timestamp");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.extra["field"], "events[7].ts");
        assert_eq!(e.extra["event_index"], 7);
        assert!(e.message.starts_with("events[7].ts: "));
        assert!(ApiError::invalid("query", "x").extra.get("event_index").is_none());
    }
}
