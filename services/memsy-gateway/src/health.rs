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
    let redis = match s.dedup.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    c.insert("redis".into(), redis.into());
    let status = match s.status.ready().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    c.insert("status".into(), status.into());
    let store = match s.store.ready().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    c.insert("vector_store".into(), store.into());
    let embedder = match s.embedder.ready().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    c.insert("embedder".into(), embedder.into());
    c
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
