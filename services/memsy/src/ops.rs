//! `/livez`, `/readyz` and `/metrics` for the services that have no public
//! API of their own (the stages and the status service). `/readyz` reflects
//! the process's own dependencies: NATS for every one, plus what it names
//! (the indexer its store, the status service Redis); the embedder serves
//! these endpoints only once its model is loaded.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use memsy_bus::Bus;
use memsy_core::Config;
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// One dependency's readiness check, by the name `/readyz` reports.
pub type Check = (&'static str, Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>);

/// A check of the vector store.
pub fn store_check(store: Arc<dyn memsy_store::MemoryStore>) -> Check {
    (
        "vector_store",
        Arc::new(move || {
            let store = store.clone();
            Box::pin(async move { store.ready().await.map_err(|e| e.to_string()) })
        }),
    )
}

/// A check of Redis through the status store.
pub fn status_check(status: Arc<dyn memsy_status::StatusApi>) -> Check {
    (
        "redis",
        Arc::new(move || {
            let status = status.clone();
            Box::pin(async move { status.ready().await.map_err(|e| e.to_string()) })
        }),
    )
}

pub fn spawn(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    config: &Arc<Config>,
    bus: Bus,
    token: &CancellationToken,
    checks: Vec<Check>,
) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = config.http.addr.parse()?;
    let checks = Arc::new(checks);
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let (bus, checks) = (bus.clone(), checks.clone());
                async move { readyz(&bus, &checks).await }
            }),
        )
        .route("/metrics", get(memsy_core::metrics::endpoint))
        .layer(axum::middleware::from_fn(memsy_core::metrics::track_http));
    let token = token.clone();
    tasks.spawn(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await?;
        Ok(())
    });
    Ok(())
}

async fn readyz(bus: &Bus, checks: &[Check]) -> (StatusCode, Json<Value>) {
    let mut c = Map::new();
    c.insert("nats".into(), (if bus.is_connected() { "ok" } else { "disconnected" }).into());
    for (name, check) in checks {
        let answer = match tokio::time::timeout(std::time::Duration::from_secs(1), check()).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "error: no answer within 1 s".to_string(),
        };
        c.insert((*name).into(), answer.into());
    }
    let ready = c.values().all(|v| v == "ok");
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "ready": ready, "components": c })))
}
