//! The gateway: memsy's public HTTP API. It authenticates API keys,
//! meters usage, validates input, publishes ingested events to JetStream,
//! reads event status from the status service and answers searches and
//! console reads from the vector store.
//!
//! The core API (what the SDK's `MemsyClient` calls) is served under `/v1`
//! and at the root; the control plane (`MemsyControlClient`) under `/api`.
//! `/livez`, `/readyz` and `/metrics` are unauthenticated, for operators, as
//! are the OpenAPI document (`/openapi.json`), its browsable page (`/docs`)
//! and the web console's static files under `/console/`. Every API route is
//! a row of the route table (`routes.rs`), which the router and the document
//! are both built from.

pub mod auth;
mod caller;
mod console;
mod control;
mod dedup;
mod docs;
pub mod erasure;
mod error;
mod fields;
mod health;
pub mod hierarchy;
mod ingest;
pub mod openapi;
mod rank;
mod recall;
mod routes;
mod schemas;
mod search;
mod status;
mod trace;
mod webconsole;

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::Router;
use memsy_bus::{Bus, Erasures};
use memsy_core::Config;
use memsy_embedder::QueryEmbedder;
use memsy_status::StatusApi;
use memsy_store::MemoryStore;
use memsy_usage::Meter;
use routes::Api;

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

/// The routers of the three APIs, from the route table (`routes.rs`):
/// core (mounted under `/v1` and at the root), control (under `/api`) and
/// open (at the root, no key).
fn api_routers() -> [Router<AppState>; 3] {
    let mut apis: [Router<AppState>; 3] = Default::default();
    for route in routes::table() {
        let i = match route.api {
            Api::Core => 0,
            Api::Control => 1,
            Api::Open => 2,
        };
        // Rows of one path with several methods merge into one route.
        apis[i] = std::mem::take(&mut apis[i]).route(route.path, route.handler);
    }
    apis
}

pub fn router(state: AppState) -> Router {
    let metered = |r: Router<AppState>| r.route_layer(from_fn_with_state(state.clone(), caller::admit));
    let [core, control, open] = api_routers();
    let core = metered(core);
    Router::new()
        .nest("/v1", core.clone())
        .merge(core)
        .nest("/api", metered(control))
        .merge(open)
        .merge(webconsole::routes())
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

#[cfg(test)]
mod tests {
    /// The table makes a valid router: no row repeats a method and path,
    /// and no two paths conflict (axum panics on either).
    #[test]
    fn the_route_table_builds_a_router() {
        let [core, control, open] = super::api_routers();
        let _: axum::Router<super::AppState> =
            axum::Router::new().nest("/v1", core.clone()).merge(core).nest("/api", control).merge(open);
    }

    /// Routes come from the table alone: a route added here beside it would
    /// be served without a row, so undocumented.
    #[test]
    fn no_route_bypasses_the_table() {
        let needle = concat!(".rou", "te(");
        assert_eq!(include_str!("lib.rs").matches(needle).count(), 1, "only api_routers adds routes");
    }
}
