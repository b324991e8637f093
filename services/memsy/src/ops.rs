//! `/livez`, `/readyz` and `/metrics` for the services that have no public
//! API of their own (the stages and the status service).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use memsy_bus::Bus;
use memsy_core::Config;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub fn spawn(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    config: &Arc<Config>,
    bus: Bus,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = config.http.addr.parse()?;
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let bus = bus.clone();
                async move {
                    if bus.is_connected() {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "nats disconnected")
                    }
                }
            }),
        )
        .route("/metrics", get(|| async { memsy_core::metrics::render() }));
    let token = token.clone();
    tasks.spawn(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await?;
        Ok(())
    });
    Ok(())
}
