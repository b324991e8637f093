//! `GET /health` for API clients (authenticated, as the SDK expects) and
//! the operator endpoints `/livez`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::{ApiError, AppState};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Each dependency: "ok" or what is wrong with it.
async fn components(s: &AppState) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("nats".into(), (if s.bus.is_connected() { "ok".to_string() } else { "disconnected".to_string() }).into());
    c.insert("redis".into(), state(s.dedup.ping().await));
    c.insert("status".into(), state(s.status.ready().await));
    c.insert("vector_store".into(), state(s.store.ready().await));
    c.insert("embedder".into(), state(s.embedder.ready().await));
    c
}

/// A component's entry: "ok", or "error: " and what went wrong.
fn state<E: std::fmt::Display>(r: Result<(), E>) -> Value {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("error: {e}").into(),
    }
}

/// Any valid key may ask (the SDK's `health()` is its connectivity check).
pub async fn health(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let c = components(&s).await;
    let ok = c.values().all(|v| v == "ok");
    Ok(Json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": VERSION,
        "billing_enabled": false,
        "components": c,
    })))
}

pub async fn livez() -> &'static str {
    "ok"
}

pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let c = components(&s).await;
    let ok = c.values().all(|v| v == "ok");
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "ready": ok, "components": c })))
}

pub async fn metrics() -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], memsy_core::metrics::render())
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
