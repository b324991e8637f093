//! The gateway: memsy's public HTTP API. It authenticates API keys,
//! meters usage, validates input, publishes ingested events to JetStream,
//! reads event status from the status service and answers searches and
//! console reads from the vector store.
//!
//! The core API (what the SDK's `MemsyClient` calls) is served under `/v1`
//! and at the root; the control plane (`MemsyControlClient`) under `/api`.
//! `/livez`, `/readyz` and `/metrics` are unauthenticated, for operators.

pub mod auth;
mod caller;
mod console;
mod control;
mod dedup;
pub mod erasure;
mod error;
mod fields;
mod health;
pub mod hierarchy;
mod ingest;
mod rank;
mod recall;
mod search;
mod status;
mod trace;

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use hierarchy::api::{self as hier, Orgs, Roles, Teams};
use memsy_bus::{Bus, Erasures};
use memsy_core::Config;
use memsy_embedder::QueryEmbedder;
use memsy_status::StatusApi;
use memsy_store::MemoryStore;
use memsy_usage::Meter;

pub use auth::{ApiKeyRecord, KeyRegistry};
pub use caller::{Caller, Consumed, Counted, MemoryLevels};
pub use dedup::Dedup;
pub use erasure::{ActorErasure, Eraser, OrgPurge};
pub use error::{ApiError, Component};
pub use hierarchy::Hierarchy;
pub use recall::Recalls;

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
    pub meter: Meter,
    pub levels: MemoryLevels,
    pub recalls: Recalls,
    /// Org, role and team records.
    pub hierarchy: Hierarchy,
    /// Erasure markers (see [`erasure`]).
    pub erasures: Erasures,
}

/// The core API, without prefix; every route is authenticated and metered.
fn core_api() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ingest", post(ingest::ingest))
        .route("/status", post(status::status))
        .route("/search", post(search::search))
        .route("/orgs", get(hier::list_orgs).post(hier::create::<Orgs>))
        .route("/orgs/{org_id}", get(hier::get::<Orgs>).patch(hier::update::<Orgs>).delete(hier::delete::<Orgs>))
        .route("/orgs/{org_id}/regenerate-prompt", post(hier::regenerate::<Orgs>))
        .route("/roles", get(hier::list::<Roles>).post(hier::create::<Roles>))
        .route("/roles/{role_id}", get(hier::get::<Roles>).patch(hier::update::<Roles>).delete(hier::delete::<Roles>))
        .route("/roles/{role_id}/regenerate-prompt", post(hier::regenerate::<Roles>))
        .route("/teams", get(hier::list::<Teams>).post(hier::create::<Teams>))
        .route("/teams/{team_id}", get(hier::get::<Teams>).patch(hier::update::<Teams>).delete(hier::delete::<Teams>))
        .route("/teams/{team_id}/regenerate-prompt", post(hier::regenerate::<Teams>))
        .route("/console/memories", get(console::list_memories))
        .route("/console/memories/stats", get(console::memory_stats))
        .route("/console/memories/{memory_id}", get(console::get_memory))
        .route("/memories/{memory_id}", patch(console::patch_memory).delete(console::delete_memory))
        .route("/actors", get(console::list_actors))
        .route("/actors/{actor_id}", get(console::get_actor).delete(console::erase_actor))
        .route("/actors/{actor_id}/export", get(console::export_actor))
}

/// The control plane, served under `/api`; authenticated and metered.
fn control_api() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/me", get(control::me))
        .route("/keys", get(control::list_keys).post(control::create_key))
        .route("/keys/{key_id}", delete(control::revoke_key))
        .route("/keys/{key_id}/usage", get(control::key_usage))
        .route("/usage/summary", get(control::usage_summary))
        .route("/usage/timeseries", get(control::usage_timeseries))
        .route("/console/events", get(console::console_events))
        .route("/billing/{*rest}", get(control::billing).post(control::billing).put(control::billing))
        .route("/interest/{*rest}", get(control::billing).post(control::billing))
        .route("/connectors", get(control::connectors))
        .route(
            "/connectors/{*rest}",
            get(control::connectors).post(control::connectors).put(control::connectors).delete(control::connectors),
        )
}

pub fn router(state: AppState) -> Router {
    let metered = |r: Router<AppState>| r.route_layer(from_fn_with_state(state.clone(), caller::admit));
    let core = metered(core_api());
    Router::new()
        .nest("/v1", core.clone())
        .merge(core)
        .nest("/api", metered(control_api()))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(memsy_core::metrics::endpoint))
        .fallback(health::not_found)
        .layer(axum::middleware::from_fn(memsy_core::metrics::track_http))
        .layer(axum::middleware::from_fn(trace::http_span))
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
    // `into_make_service` prepares the routes once; serving the `Router`
    // itself rebuilds every route for each new connection, which a burst of
    // new connections (clients opening more while answers are slow) turns
    // into a stall of the accept loop.
    axum::serve(listener, router(state).into_make_service()).with_graceful_shutdown(shutdown).await
}
