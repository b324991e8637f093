//! One span per API request, continuing the caller's W3C `traceparent`:
//! named by method and route (never by the path's ids), with the status
//! code and, once the key is known, the org. Operator endpoints (`/livez`,
//! `/readyz`, `/metrics`) are not traced: probes would drown the requests.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use memsy_core::telemetry;
use tracing::field::Empty;
use tracing::{info_span, Instrument};

const UNTRACED: [&str; 3] = ["/livez", "/readyz", "/metrics"];

pub async fn http_span(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    if route.as_deref().is_some_and(|r| UNTRACED.contains(&r)) {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let route = route.unwrap_or_default();
    let span = info_span!(
        "http request",
        otel.name = format!("{method} {route}").trim_end(),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        org_id = Empty,
        trace_id = Empty,
    );
    let headers = req.headers();
    telemetry::continue_trace_from(&span, |k| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string));
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    resp
}
