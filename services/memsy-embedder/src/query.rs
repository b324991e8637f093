//! Query embedding as the gateway sees it: [`LocalEmbedder`] runs the engine
//! in this process, [`GrpcEmbedder`] asks an embedder service elsewhere.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use memsy_core::config::CallTimeouts;
use memsy_core::telemetry;
use memsy_proto::embed_service_client::EmbedServiceClient;
use memsy_proto::EmbedRequest;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::{info_span, Instrument};

use crate::batcher::{Batcher, Priority};
use crate::{EmbedError, Engine};

#[async_trait]
pub trait QueryEmbedder: Send + Sync + 'static {
    /// One normalised vector per text.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Answers when queries can be embedded (for `/readyz`): the engine in
    /// this process always can.
    async fn ready(&self) -> Result<(), EmbedError> {
        Ok(())
    }
}

/// The engine in this process, behind the dynamic batcher: searches and
/// the embedding stage share it, searches first.
#[derive(Clone)]
pub struct LocalEmbedder {
    engine: Arc<dyn Engine>,
    batcher: Batcher,
}

impl LocalEmbedder {
    /// Batches of up to `max_batch` texts, gathered for at most `max_wait`.
    pub fn new(engine: Arc<dyn Engine>, max_batch: usize, max_wait: Duration) -> Self {
        Self { batcher: Batcher::spawn(engine.clone(), max_batch, max_wait), engine }
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// For the pipeline: served after any waiting search.
    pub async fn embed_bulk(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.batcher.embed(texts, Priority::Bulk).await
    }
}

#[async_trait]
impl QueryEmbedder for LocalEmbedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.batcher.embed(texts, Priority::Query).await
    }
}

/// An embedder service in another process.
#[derive(Clone)]
pub struct GrpcEmbedder {
    client: EmbedServiceClient<InterceptedService<Channel, telemetry::GrpcInject>>,
}

impl GrpcEmbedder {
    pub fn connect_lazy(url: &str, timeouts: CallTimeouts) -> Result<Self, EmbedError> {
        let ep = Endpoint::from_shared(url.to_string())
            .map_err(|e| EmbedError::Unavailable(format!("embedder url {url}: {e}")))?
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.call);
        Ok(Self { client: EmbedServiceClient::with_interceptor(ep.connect_lazy(), telemetry::grpc_inject) })
    }
}

#[async_trait]
impl QueryEmbedder for GrpcEmbedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let span = info_span!(
            "grpc client",
            otel.name = "EmbedService/Embed",
            otel.kind = "client",
            rpc.method = "EmbedService/Embed",
            texts = texts.len()
        );
        let r = self
            .client
            .clone()
            .embed(EmbedRequest { texts })
            .instrument(span)
            .await
            .map_err(|s| EmbedError::Unavailable(format!("embedder service: {}", s.message())))?
            .into_inner();
        Ok(r.vectors.into_iter().map(|v| v.values).collect())
    }

    /// An empty request: the service answers it without the engine.
    async fn ready(&self) -> Result<(), EmbedError> {
        self.embed(Vec::new()).await.map(|_| ())
    }
}
