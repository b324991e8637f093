//! The web console's static files, served under `/console/`. They are
//! embedded in the binary (no CDN, works offline) and served without
//! authentication: the page asks for an API key and its calls to the API
//! carry it as the bearer. The files are plain ES modules; `vendor/` holds
//! Preact and htm as `scripts/vendor-console.sh` fetched them.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// `(path under /console/, bytes)`, one per file of `assets/console`; a
/// test checks that the list and the folder agree.
macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/console/", $path)) as &[u8])),*]
    };
}

const ASSETS: &[(&str, &[u8])] = assets![
    "index.html",
    "style.css",
    "js/actors.js",
    "js/api.js",
    "js/app.js",
    "js/events.js",
    "js/hierarchy.js",
    "js/keys.js",
    "js/memories.js",
    "js/memory.js",
    "js/stats.js",
    "js/ui.js",
    "js/usage.js",
    "vendor/LICENSE-htm",
    "vendor/LICENSE-preact",
    "vendor/hooks.mjs",
    "vendor/htm.mjs",
    "vendor/preact.mjs",
];

/// The page may load only its own files and talk only to its own origin.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

fn asset(path: &'static str, bytes: &'static [u8]) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The files change with the binary: a browser revalidates rather than
    // running last version's scripts against this version's API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `/console` (redirected to `/console/`), `/console/` (the page) and each
/// embedded file. Each file has a route of its own, so the console's static
/// paths never shadow the API's `/console/memories…` served at the root;
/// any other path under `/console/` is the API's JSON 404.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut r = Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { asset("index.html", ASSETS[0].1) }));
    for &(path, bytes) in ASSETS {
        r = r.route(&format!("/console/{path}"), get(move || async move { asset(path, bytes) }));
    }
    r
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                files_under(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_folder_is_embedded_and_nothing_else() {
        let mut on_disk = Vec::new();
        files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/console"), "", &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        assert_eq!(ASSETS[0].0, "index.html");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("vendor/preact.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("vendor/LICENSE-htm"), "text/plain; charset=utf-8");
    }
}
