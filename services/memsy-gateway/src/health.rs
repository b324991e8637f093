//! `GET /health` for API clients (authenticated, as the SDK expects) and
//! the operator endpoints `/livez`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::{ApiError, AppState};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Each dependency: "ok" or what is wrong with it; asked at once, each
/// given at most a second.
async fn components(s: &AppState) -> Map<String, Value> {
    let (redis, status, store, embedder) = tokio::join!(
        bounded(s.dedup.ping()),
        bounded(s.status.ready()),
        bounded(s.store.ready()),
        bounded(s.embedder.ready()),
    );
    let mut c = Map::new();
    c.insert("nats".into(), (if s.bus.is_connected() { "ok".to_string() } else { "disconnected".to_string() }).into());
    c.insert("redis".into(), redis);
    c.insert("status".into(), status);
    c.insert("vector_store".into(), store);
    c.insert("embedder".into(), embedder);
    c
}

/// What ingest needs: a gateway that has these takes events, and stays in
/// its Service while search's dependencies (the store, the embedder) are
/// down — search answers 503 naming them meanwhile.
const NEEDED_FOR_READY: [&str; 2] = ["nats", "redis"];

/// A component's entry: "ok", or "error: " and what went wrong.
async fn bounded<E: std::fmt::Display>(check: impl std::future::Future<Output = Result<(), E>>) -> Value {
    match tokio::time::timeout(std::time::Duration::from_secs(1), check).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => format!("error: {e}").into(),
        Err(_) => "error: no answer within 1 s".into(),
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
    let ok = NEEDED_FOR_READY.iter().all(|k| c.get(*k).is_some_and(|v| v == "ok"));
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "ready": ok, "components": c })))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
