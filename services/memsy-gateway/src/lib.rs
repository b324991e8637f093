//! The gateway: memsy's public HTTP API. It authenticates API keys,
//! validates input, publishes ingested events to JetStream, reads event
//! status from the status service and answers searches from the vector
//! store. Every route is served under `/v1` and at the root; `/livez`,
//! `/readyz` and `/metrics` are unauthenticated, for operators.

pub mod auth;
mod dedup;
mod error;
mod fields;
mod health;
mod ingest;
mod search;
mod status;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use memsy_bus::Bus;
use memsy_core::Config;
use memsy_embedder::QueryEmbedder;
use memsy_status::StatusApi;
use memsy_store::MemoryStore;

pub use auth::{ApiKeyRecord, KeyRegistry};
pub use dedup::Dedup;
pub use error::ApiError;

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub bus: Bus,
    pub keys: KeyRegistry,
    pub status: Arc<dyn StatusApi>,
    pub embedder: Arc<dyn QueryEmbedder>,
    pub store: Arc<dyn MemoryStore>,
    pub dedup: Dedup,
}

impl AppState {
    /// The key behind the request, if it is valid and has `scope`.
    pub async fn authorize(&self, headers: &HeaderMap, scope: &str) -> Result<ApiKeyRecord, ApiError> {
        let raw = auth::bearer(headers)?;
        let key = self
            .keys
            .lookup(raw)
            .await
            .map_err(|e| ApiError::unavailable("key store", e))?
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked API key"))?;
        if !key.has_scope(scope) {
            return Err(ApiError::insufficient_scope(scope));
        }
        Ok(key)
    }
}

/// The API routes, without prefix.
fn api() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ingest", post(ingest::ingest))
        .route("/status", post(status::status))
        .route("/search", post(search::search))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/v1", api())
        .merge(api())
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(health::not_found)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
