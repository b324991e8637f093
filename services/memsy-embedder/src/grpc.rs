//! `Embed` over gRPC: a thin translation onto a [`QueryEmbedder`].

use std::net::SocketAddr;

use memsy_core::telemetry;
use memsy_proto::embed_service_server::{EmbedService, EmbedServiceServer};
use memsy_proto::{EmbedRequest, EmbedResponse, Vector};
use tonic::{Request, Response, Status};
use tracing::{info_span, Instrument};

use crate::{EmbedError, LocalEmbedder, QueryEmbedder};

/// Requests larger than this are refused rather than allowed to monopolise the engine.
const MAX_TEXTS_PER_REQUEST: usize = 256;

pub struct EmbedGrpcServer {
    embedder: LocalEmbedder,
}

impl EmbedGrpcServer {
    pub fn new(embedder: LocalEmbedder) -> EmbedServiceServer<Self> {
        EmbedServiceServer::new(Self { embedder })
    }
}

#[tonic::async_trait]
impl EmbedService for EmbedGrpcServer {
    async fn embed(&self, req: Request<EmbedRequest>) -> Result<Response<EmbedResponse>, Status> {
        let span = info_span!(
            "grpc server",
            otel.name = "EmbedService/Embed",
            otel.kind = "server",
            rpc.method = "EmbedService/Embed",
            texts = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        telemetry::continue_grpc(&span, &req);
        let texts = req.into_inner().texts;
        span.record("texts", texts.len());
        if texts.len() > MAX_TEXTS_PER_REQUEST {
            return Err(Status::invalid_argument(format!("at most {MAX_TEXTS_PER_REQUEST} texts per request")));
        }
        let vectors = self.embedder.embed(texts).instrument(span).await.map_err(|e| Status::internal(e.to_string()))?;
        let engine = self.embedder.engine();
        Ok(Response::new(EmbedResponse {
            vectors: vectors.into_iter().map(|values| Vector { values }).collect(),
            model: engine.model_name().to_string(),
            dimension: engine.dimension() as u32,
        }))
    }
}

/// Runs the gRPC embed service on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    embedder: LocalEmbedder,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), EmbedError> {
    tonic::transport::Server::builder()
        .add_service(EmbedGrpcServer::new(embedder))
        .serve_with_shutdown(addr, shutdown)
        .await
        .map_err(|e| EmbedError::Unavailable(format!("embed gRPC server on {addr}: {e}")))
}
