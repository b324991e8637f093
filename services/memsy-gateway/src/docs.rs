//! `/openapi.json` and the browsable page at `/docs`: Redoc, vendored by
//! scripts/vendor-redoc.sh and embedded in the binary, so the page loads
//! nothing from another host. Neither needs an API key.

use std::sync::LazyLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse};

/// Built once, on first request: the route table does not change while running.
static DOCUMENT: LazyLock<String> = LazyLock::new(crate::openapi::to_json);

const PAGE: &str = include_str!("../assets/redoc/index.html");
const REDOC: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub async fn redoc_js() -> impl IntoResponse {
    // A day: the script changes only with the binary.
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8"), (CACHE_CONTROL, "public, max-age=86400")], REDOC)
}
