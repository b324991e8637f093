//! `GET /health` for API clients (authenticated, as the SDK expects) and
//! the operator endpoints `/livez`, `/readyz`, `/metrics`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ApiError, AppState};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Each dependency by name (`nats`, `redis`, `status`, `vector_store`,
/// `embedder`): "ok", or "error: " / "disconnected" and what is wrong.
type Components = BTreeMap<&'static str, String>;

/// `GET /health`: the SDK's `HealthResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` when every component is, else `degraded`.
    pub status: HealthStatus,
    /// The server's version.
    pub version: &'static str,
    /// Always false: a self-hosted deployment bills nobody.
    pub billing_enabled: bool,
    #[schema(value_type = BTreeMap<String, String>)]
    pub components: Components,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

/// `GET /readyz`: 200 when ingest's dependencies (NATS, Redis) are up, 503 otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
    #[schema(value_type = BTreeMap<String, String>)]
    pub components: Components,
}

/// Each dependency: "ok" or what is wrong with it; asked at once, each
/// given at most a second.
async fn components(s: &AppState) -> Components {
    let (redis, status, store, embedder) = tokio::join!(
        bounded(s.dedup.ping()),
        bounded(s.status.ready()),
        bounded(s.store.ready()),
        bounded(s.embedder.ready()),
    );
    let nats = if s.bus.is_connected() { "ok" } else { "disconnected" };
    BTreeMap::from([
        ("nats", nats.to_string()),
        ("redis", redis),
        ("status", status),
        ("vector_store", store),
        ("embedder", embedder),
    ])
}

/// What ingest needs: a gateway that has these takes events, and stays in
/// its Service while search's dependencies (the store, the embedder) are
/// down — search answers 503 naming them meanwhile.
const NEEDED_FOR_READY: [&str; 2] = ["nats", "redis"];

/// A component's entry: "ok", or "error: " and what went wrong.
async fn bounded<E: std::fmt::Display>(check: impl std::future::Future<Output = Result<(), E>>) -> String {
    match tokio::time::timeout(std::time::Duration::from_secs(1), check).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: no answer within 1 s".into(),
    }
}

/// Any valid key may ask (the SDK's `health()` is its connectivity check).
pub async fn health(State(s): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    let components = components(&s).await;
    let ok = components.values().all(|v| v == "ok");
    let status = if ok { HealthStatus::Ok } else { HealthStatus::Degraded };
    Ok(Json(HealthResponse { status, version: VERSION, billing_enabled: false, components }))
}

pub async fn livez() -> &'static str {
    "ok"
}

pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let components = components(&s).await;
    let ready = NEEDED_FOR_READY.iter().all(|k| components.get(k).is_some_and(|v| v == "ok"));
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(ReadyResponse { ready, components }))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
