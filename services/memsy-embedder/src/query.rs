//! Query embedding as the gateway sees it: [`LocalEmbedder`] runs the engine
//! in this process, [`GrpcEmbedder`] asks an embedder service elsewhere.

use std::sync::Arc;

use async_trait::async_trait;
use memsy_proto::embed_service_client::EmbedServiceClient;
use memsy_proto::EmbedRequest;
use tonic::transport::{Channel, Endpoint};

use crate::{EmbedError, Engine};

#[async_trait]
pub trait QueryEmbedder: Send + Sync + 'static {
    /// One normalised vector per text.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Runs an engine on the blocking pool, so CPU work never stalls the async runtime.
#[derive(Clone)]
pub struct LocalEmbedder {
    engine: Arc<dyn Engine>,
}

impl LocalEmbedder {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { engine }
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }
}

#[async_trait]
impl QueryEmbedder for LocalEmbedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            engine.embed(&refs)
        })
        .await
        .map_err(|e| EmbedError::Compute(format!("embedding task failed: {e}")))?
    }
}

/// An embedder service in another process.
#[derive(Clone)]
pub struct GrpcEmbedder {
    client: EmbedServiceClient<Channel>,
}

impl GrpcEmbedder {
    pub fn connect_lazy(url: &str) -> Result<Self, EmbedError> {
        let ep = Endpoint::from_shared(url.to_string())
            .map_err(|e| EmbedError::Unavailable(format!("embedder url {url}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(10));
        Ok(Self { client: EmbedServiceClient::new(ep.connect_lazy()) })
    }
}

#[async_trait]
impl QueryEmbedder for GrpcEmbedder {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let r = self
            .client
            .clone()
            .embed(EmbedRequest { texts })
            .await
            .map_err(|s| EmbedError::Unavailable(format!("embedder service: {}", s.message())))?
            .into_inner();
        Ok(r.vectors.into_iter().map(|v| v.values).collect())
    }
}
