//! Logging and traces. Logs are structured (JSON when
//! `MEMSY_LOG_FORMAT=json`, human-readable otherwise) and filtered by
//! `RUST_LOG`. Traces are OpenTelemetry, exported over OTLP when — and only
//! when — `OTEL_EXPORTER_OTLP_ENDPOINT` (or `_TRACES_ENDPOINT`) is set, and
//! configured by the standard variables alone (`OTEL_EXPORTER_OTLP_PROTOCOL`
//! `grpc` or `http/protobuf`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`). The
//! W3C `traceparent` carries a trace across HTTP, the JetStream hops and
//! gRPC, so one ingested event is one trace through every service.
//!
//! With export off no OpenTelemetry layer is installed: spans are plain
//! `tracing` spans, and a `traceparent` that arrives on a message is passed
//! on unchanged, so a trace survives a hop through a process that does not
//! export.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// The W3C header (and NATS header, and gRPC metadata key) of a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// True once an exporting tracer is installed in this process.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Traces are exported (an OTLP endpoint is configured).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What [`init`] set up; [`Telemetry::shutdown`] sends the spans still
/// queued before the process exits.
#[must_use = "call shutdown() before exiting, or queued spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter (blocking at most a few seconds).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // The SDK's shutdown blocks on its export thread; the gRPC exporter
        // needs this runtime meanwhile.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            eprintln!("telemetry: flushing traces on exit failed: {e}");
        }
    }
}

/// Logs only, no export: for tests and tools; safe to call more than once.
pub fn init_logging() {
    let _ = tracing_subscriber::registry().with(log_layer()).try_init();
}

/// Logs, and traces when an OTLP endpoint is configured. `service` names
/// the process unless `OTEL_SERVICE_NAME` (or `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`) does. Must run inside the tokio runtime (the
/// gRPC exporter's channel lives there). A second call installs nothing.
pub fn init(service: &str) -> Telemetry {
    let provider = match tracer_provider(service) {
        Ok(p) => p,
        Err(e) => {
            // Observability must not keep the service from running.
            eprintln!("telemetry: traces are off: {e}");
            None
        }
    };
    let Some(provider) = provider else {
        init_logging();
        return Telemetry { provider: None };
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("memsy");
    let installed = tracing_subscriber::registry()
        .with(log_layer())
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // Source locations, thread names and busy/idle times on every
                // span cost the pipeline more than they tell an operator.
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_filter(EnvFilter::new(span_filter())),
        )
        .try_init()
        .is_ok();
    ENABLED.store(installed, Ordering::Relaxed);
    Telemetry { provider: installed.then_some(provider) }
}

/// The log lines: `RUST_LOG` decides which; span fields (among them
/// `trace_id`) are written with every line inside the span.
fn log_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,qdrant_edge=warn"));
    let json = std::env::var("MEMSY_LOG_FORMAT").map(|v| v == "json").unwrap_or(false);
    if json {
        fmt::layer().json().with_writer(std::io::stderr).with_filter(filter).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).with_filter(filter).boxed()
    }
}

/// Which spans become OpenTelemetry spans: memsy's own at info and above,
/// whatever `RUST_LOG` says about logs, and none of the libraries' (the
/// HTTP and gRPC clients that export the spans would otherwise trace
/// their own exports).
fn span_filter() -> String {
    let ours = [
        "memsy",
        "memsy_bus",
        "memsy_core",
        "memsy_embedder",
        "memsy_extractor",
        "memsy_gateway",
        "memsy_indexer",
        "memsy_status",
        "memsy_store",
    ];
    std::iter::once("off".to_string()).chain(ours.iter().map(|c| format!("{c}=info"))).collect::<Vec<_>>().join(",")
}

fn nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The tracer provider the standard variables describe, or None when no
/// endpoint is set (or the SDK is disabled).
fn tracer_provider(service: &str) -> Result<Option<SdkTracerProvider>, String> {
    let endpoint = nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = nonempty("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || nonempty("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none");
    if endpoint.is_none() || disabled {
        return Ok(None);
    }
    let protocol = nonempty("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| nonempty("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    // The builders read the endpoint, headers, timeout and compression
    // from the same variables.
    let exporter = match protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder().with_tonic().build(),
        "http/protobuf" => {
            use opentelemetry_otlp::WithExportConfig;
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()
        }
        other => {
            return Err(format!("OTEL_EXPORTER_OTLP_PROTOCOL {other:?} is not supported: use grpc or http/protobuf"))
        }
    }
    .map_err(|e| format!("OTLP exporter: {e}"))?;
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by the
    // resource's detectors; the command's name is only the default.
    let named = nonempty("OTEL_SERVICE_NAME").is_some()
        || nonempty("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|a| a.split(',').any(|kv| kv.trim().starts_with("service.name=")));
    let resource = if named {
        Resource::builder().build()
    } else {
        Resource::builder().with_service_name(service.to_string()).build()
    };
    // The sampler comes from OTEL_TRACES_SAMPLER(_ARG), read by the SDK.
    Ok(Some(SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build()))
}

/// A trace context read from a `traceparent` value (and `tracestate`).
struct Header<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Header<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, "tracestate"]
    }
}

/// Makes `span` continue the caller's trace given by `traceparent` (and
/// `tracestate`): its parent becomes the remote span. Must run before the
/// span is first entered. Records the span's `trace_id` field. Nothing
/// happens when export is off or the value is not a valid context.
pub fn continue_trace(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if !enabled() {
        return;
    }
    if let Some(traceparent) = traceparent {
        let cx = TraceContextPropagator::new().extract(&Header { traceparent, tracestate });
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    record_trace_id(span);
}

/// Records the span's trace id in its `trace_id` field (when it has one),
/// so that every log line written inside the span carries it.
pub fn record_trace_id(span: &Span) {
    if let Some(id) = trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

/// The trace id of `span`, hex, when traces are on.
pub fn trace_id(span: &Span) -> Option<String> {
    let sc = span_context(span)?;
    Some(sc.trace_id().to_string())
}

fn span_context(span: &Span) -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    let sc = span.context().span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The `traceparent` value of `span`'s context, to carry to the next hop.
pub fn traceparent(span: &Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` of the current span.
pub fn current_traceparent() -> Option<String> {
    traceparent(&Span::current())
}

/// Makes `span` a child of `parent` in its trace without making it one in
/// the log context (a batch's span under its first event's). Must run
/// before the span is first entered.
pub fn set_parent(span: &Span, parent: &Span) {
    if enabled() {
        let _ = span.set_parent(parent.context());
    }
}

/// Links `span` to `other`'s span (a batch to the events in it, an event
/// to the batch that did its work).
pub fn link(span: &Span, other: &Span) {
    if let Some(sc) = span_context(other) {
        span.add_link(sc);
    }
}

/// Continues a trace from any headers: `get` answers a header by name.
pub fn continue_trace_from(span: &Span, get: impl Fn(&str) -> Option<String>) {
    if !enabled() {
        return;
    }
    let (traceparent, tracestate) = (get(TRACEPARENT), get("tracestate"));
    continue_trace(span, traceparent.as_deref(), tracestate.as_deref());
}

/// The type of [`grpc_inject`], for clients' type names.
pub type GrpcInject = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// A gRPC client interceptor: the current span's context goes in the
/// request's metadata, so that the server's span continues the trace.
#[allow(clippy::result_large_err)]
pub fn grpc_inject(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if enabled() {
        let mut carrier = MetadataInjector(req.metadata_mut());
        TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    }
    Ok(req)
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) =
            (tonic::metadata::MetadataKey::from_bytes(key.as_bytes()), tonic::metadata::MetadataValue::try_from(value))
        {
            self.0.insert(k, v);
        }
    }
}

/// Continues the caller's trace from a gRPC request's metadata.
pub fn continue_grpc<T>(span: &Span, req: &tonic::Request<T>) {
    let md = req.metadata();
    continue_trace_from(span, |k| md.get(k).and_then(|v| v.to_str().ok()).map(str::to_string));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_memsy_spans_are_exported() {
        let f = span_filter();
        assert!(f.starts_with("off,"));
        assert!(f.contains("memsy_gateway=info"));
        assert!(EnvFilter::try_new(&f).is_ok());
    }

    #[test]
    fn off_without_an_endpoint() {
        // No OTEL_EXPORTER_OTLP_*ENDPOINT in the test environment: nothing
        // is exported and no context is made up.
        if nonempty("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            assert!(tracer_provider("memsy-test").unwrap().is_none());
            assert_eq!(current_traceparent(), None);
        }
    }
}
