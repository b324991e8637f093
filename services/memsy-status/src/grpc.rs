//! The status service over gRPC: a thin translation to and from
//! [`StatusApi`], and a client that implements [`StatusApi`] itself so that
//! callers do not care which side of a process boundary the store is on.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use memsy_core::config::CallTimeouts;
use memsy_core::telemetry;
use memsy_proto::status_service_client::StatusServiceClient;
use memsy_proto::status_service_server::{StatusService, StatusServiceServer};
use memsy_proto::{EventStatus, GetStatusRequest, GetStatusResponse, MarkRequest, MarkResponse};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response};
use tracing::{info_span, Instrument};

use crate::{EventState, Status, StatusApi, StatusError};

/// Serves a [`StatusApi`] over gRPC.
pub struct StatusGrpcServer {
    inner: Arc<dyn StatusApi>,
}

impl StatusGrpcServer {
    pub fn new(inner: Arc<dyn StatusApi>) -> StatusServiceServer<Self> {
        StatusServiceServer::new(Self { inner })
    }
}

#[tonic::async_trait]
impl StatusService for StatusGrpcServer {
    async fn mark(&self, req: Request<MarkRequest>) -> Result<Response<MarkResponse>, tonic::Status> {
        let span = server_span("StatusService/Mark", &req);
        let r = req.into_inner();
        let state = EventState::try_from(r.state).map_err(|_| tonic::Status::invalid_argument("unknown state"))?;
        self.inner.mark(&r.org_id, &r.event_ids, state, &r.reason).instrument(span).await?;
        Ok(Response::new(MarkResponse {}))
    }

    async fn get(&self, req: Request<GetStatusRequest>) -> Result<Response<GetStatusResponse>, tonic::Status> {
        let span = server_span("StatusService/Get", &req);
        let r = req.into_inner();
        let statuses = self.inner.get(&r.org_id, &r.event_ids).instrument(span).await?;
        Ok(Response::new(GetStatusResponse {
            statuses: statuses
                .into_iter()
                .map(|s| EventStatus { event_id: s.event_id, state: s.state as i32, reason: s.reason })
                .collect(),
        }))
    }
}

/// A call's span on the server, continuing the caller's trace.
fn server_span<T>(method: &'static str, req: &Request<T>) -> tracing::Span {
    let span = info_span!(
        "grpc server",
        otel.name = method,
        otel.kind = "server",
        rpc.method = method,
        trace_id = tracing::field::Empty
    );
    telemetry::continue_grpc(&span, req);
    span
}

/// A call's span on the client; its context rides in the call's metadata.
fn client_span(method: &'static str, org_id: &str, events: usize) -> tracing::Span {
    info_span!("grpc client", otel.name = method, otel.kind = "client", rpc.method = method, org_id, events)
}

/// Runs the gRPC status service on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    inner: Arc<dyn StatusApi>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StatusError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StatusError::Unavailable(format!("status gRPC server on {addr}: {e}")))?;
    serve_on(listener, inner, shutdown).await
}

/// [`serve`] on a listener the caller has bound already (so that a taken
/// port fails the caller's start, not a task afterwards).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    inner: Arc<dyn StatusApi>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StatusError> {
    let addr = listener.local_addr().map_err(|e| StatusError::Unavailable(format!("status gRPC listener: {e}")))?;
    // A listener's incoming stream sets no socket options (tonic applies its
    // TCP_NODELAY default only when it binds the address itself); these are
    // small request/response calls, which Nagle's algorithm would delay.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(StatusGrpcServer::new(inner))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| StatusError::Unavailable(format!("status gRPC server on {addr}: {e}")))
}

/// A [`StatusApi`] in another process.
#[derive(Clone)]
pub struct GrpcStatus {
    client: StatusServiceClient<InterceptedService<Channel, telemetry::GrpcInject>>,
}

impl GrpcStatus {
    /// Connects lazily: a status service that starts later is found then.
    pub fn connect_lazy(url: &str, timeouts: CallTimeouts) -> Result<Self, StatusError> {
        let ep = Endpoint::from_shared(url.to_string())
            .map_err(|e| StatusError::Invalid(format!("status url {url}: {e}")))?
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.call);
        Ok(Self { client: StatusServiceClient::with_interceptor(ep.connect_lazy(), telemetry::grpc_inject) })
    }
}

#[async_trait]
impl StatusApi for GrpcStatus {
    async fn mark(
        &self,
        org_id: &str,
        event_ids: &[String],
        state: EventState,
        reason: &str,
    ) -> Result<(), StatusError> {
        self.client
            .clone()
            .mark(MarkRequest {
                org_id: org_id.into(),
                event_ids: event_ids.to_vec(),
                state: state as i32,
                reason: reason.into(),
            })
            .instrument(client_span("StatusService/Mark", org_id, event_ids.len()))
            .await?;
        Ok(())
    }

    async fn get(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<Status>, StatusError> {
        let r = self
            .client
            .clone()
            .get(GetStatusRequest { org_id: org_id.into(), event_ids: event_ids.to_vec() })
            .instrument(client_span("StatusService/Get", org_id, event_ids.len()))
            .await?
            .into_inner();
        Ok(r.statuses
            .into_iter()
            .map(|s| Status {
                event_id: s.event_id,
                state: EventState::try_from(s.state).unwrap_or(EventState::NotFound),
                reason: s.reason,
            })
            .collect())
    }

    async fn ready(&self) -> Result<(), StatusError> {
        // An id that cannot exist: the service must read Redis to answer.
        self.get("", &["-".to_string()]).await.map(|_| ())
    }
}
