//! Logging and trace propagation. Logs are structured (JSON when
//! `MEMSY_LOG_FORMAT=json`, human-readable otherwise) and filtered by
//! `RUST_LOG`. A W3C `traceparent` rides on every stage message and gRPC call
//! so that one ingest can be followed through all services.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; safe to call more than once.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,qdrant_edge=warn"));
    let json = std::env::var("MEMSY_LOG_FORMAT").map(|v| v == "json").unwrap_or(false);
    let res = if json {
        fmt().with_env_filter(filter).json().with_writer(std::io::stderr).try_init()
    } else {
        fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init()
    };
    let _ = res;
}

/// A fresh W3C trace context: `00-<trace-id>-<span-id>-01`.
pub fn new_traceparent() -> String {
    let t = uuid::Uuid::new_v4().simple().to_string();
    let s = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{t}-{s}-01")
}

/// The same trace with a new span id, for the next hop.
pub fn child_traceparent(parent: &str) -> String {
    let parts: Vec<&str> = parent.split('-').collect();
    if parts.len() == 4 && parts[1].len() == 32 {
        let s = &uuid::Uuid::new_v4().simple().to_string()[..16];
        format!("00-{}-{s}-{}", parts[1], parts[3])
    } else {
        new_traceparent()
    }
}

/// The trace id of a traceparent, for log fields.
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_keeps_trace_id() {
        let p = new_traceparent();
        let c = child_traceparent(&p);
        assert_eq!(trace_id(&p), trace_id(&c));
        assert_ne!(p, c);
        assert_eq!(trace_id(&p).len(), 32);
    }
}
