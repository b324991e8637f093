//! Layered configuration: built-in defaults, then an optional TOML file,
//! then `MEMSY__SECTION__KEY` environment variables (for example
//! `MEMSY__NATS__URL`). `QDRANT_URL` and `QDRANT_API_KEY` are honoured as
//! well, because that is what Qdrant's own tooling sets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use schemars::JsonSchema;
pub use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::CoreError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Config {
    /// The HTTP listener and local files.
    pub http: HttpConfig,
    /// The NATS JetStream broker that carries events between the stages.
    pub nats: NatsConfig,
    /// Redis, which holds per-event status, de-duplication claims, usage and rate limits.
    pub redis: RedisConfig,
    /// Where memories are stored: a Qdrant server, or the embedded engine.
    pub qdrant: QdrantConfig,
    /// The status gRPC service.
    pub status: StatusConfig,
    /// The embedding stage and the query-embedding service.
    pub embedder: EmbedderConfig,
    /// The extraction stage.
    pub extractor: ExtractorConfig,
    /// The indexing stage: consolidation and promotion.
    pub indexer: IndexerConfig,
    /// Bounds on what one request may carry; larger requests get a 4xx naming the field.
    pub limits: Limits,
    /// Plans, quotas and rate limits.
    pub usage: UsageConfig,
    /// An optional OpenAI-compatible language model.
    pub llm: LlmConfig,
    /// Search behaviour.
    pub search: SearchConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HttpConfig {
    /// Where the gateway (or, for a stage, its operator endpoints) listens.
    pub addr: String,
    /// Where the embedded vector store keeps its files (`--data-dir`).
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct NatsConfig {
    /// The broker's address (`nats://host:port`).
    pub url: String,
    /// How long the raw-event log keeps events (0 = forever).
    pub events_max_age_days: u64,
    /// Attempts before a stage message goes to the dead-letter stream.
    pub max_deliver: i64,
    /// How long a stage may hold a message before the broker delivers it again.
    pub ack_wait_secs: u64,
    /// Broker-side de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window_secs: u64,
    /// How long a publish, or any other request to the broker, waits for
    /// its answer.
    pub publish_timeout_ms: u64,
    /// How long a connection attempt to the broker may take.
    pub connect_timeout_ms: u64,
    /// Partitions of the indexer's input (`memsy.embedded.<p>.<org>`, an
    /// org always in the same one): the most indexer replicas that can work
    /// at once. Read only when the stream is created; afterwards the
    /// stream's own count holds (changing it means draining the stream and
    /// deleting it).
    pub indexer_partitions: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RedisConfig {
    /// The server's address (`redis://host:port`, `rediss://` for TLS).
    pub url: String,
    /// How long an event's status is kept.
    pub status_ttl_secs: u64,
    /// How long a connection attempt may take; a call made while Redis is
    /// down fails after this instead of waiting for it to return.
    pub connect_timeout_ms: u64,
    /// How long one command waits for Redis's answer.
    pub response_timeout_ms: u64,
}

impl RedisConfig {
    pub fn timeouts(&self) -> CallTimeouts {
        CallTimeouts::from_ms(self.connect_timeout_ms, self.response_timeout_ms)
    }
}

/// How long a client waits for a dependency: to connect, and for each call.
/// Every call to another process has both, so that a dependency that is
/// down or hung turns into a prompt error (a 503, a retry), never a hang.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallTimeouts {
    pub connect: Duration,
    pub call: Duration,
}

impl CallTimeouts {
    pub fn from_ms(connect_ms: u64, call_ms: u64) -> Self {
        Self { connect: Duration::from_millis(connect_ms), call: Duration::from_millis(call_ms) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct QdrantConfig {
    /// A Qdrant server; when unset, the embedded engine stores under the data dir.
    pub url: Option<String>,
    /// The server's API key; also read from `QDRANT_API_KEY`. Never
    /// printed: it is kept as a secret and left out when a config is shown.
    #[serde(skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub api_key: Option<SecretString>,
    /// Prefix of collection names, so that several deployments can share a server.
    pub collection_prefix: String,
    /// The settings below apply when memsy creates its collections on a
    /// Qdrant server (an existing collection keeps its own): shards per
    /// collection (spread over a cluster's nodes), ...
    pub shard_number: u32,
    /// ... copies of each shard, ...
    pub replication_factor: u32,
    /// ... how many copies must apply a write before it is acknowledged
    /// (at most `replication_factor`), ...
    pub write_consistency_factor: u32,
    /// ... dense vectors on disk (memory-mapped) rather than in RAM, ...
    pub on_disk_vectors: bool,
    /// ... and payloads on disk (read on demand) rather than in RAM.
    pub on_disk_payload: bool,
}

impl QdrantConfig {
    fn validate(&self) -> Result<(), CoreError> {
        for (name, v) in [
            ("shard_number", self.shard_number),
            ("replication_factor", self.replication_factor),
            ("write_consistency_factor", self.write_consistency_factor),
        ] {
            if v == 0 {
                return Err(CoreError::Config(format!("qdrant.{name} must be at least 1")));
            }
        }
        if self.write_consistency_factor > self.replication_factor {
            return Err(CoreError::Config(format!(
                "qdrant.write_consistency_factor ({}) must not exceed qdrant.replication_factor ({})",
                self.write_consistency_factor, self.replication_factor
            )));
        }
        Ok(())
    }
}

impl Default for QdrantConfig {
    fn default() -> Self {
        Self {
            url: None,
            api_key: None,
            collection_prefix: String::new(),
            shard_number: 1,
            replication_factor: 1,
            write_consistency_factor: 1,
            on_disk_vectors: false,
            on_disk_payload: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct StatusConfig {
    /// Where the status gRPC service listens.
    pub grpc_addr: String,
    /// How the gateway and the indexer reach the status service when it runs
    /// in another process.
    pub url: String,
    /// How long a connection attempt to the status service may take.
    pub connect_timeout_ms: u64,
    /// How long one call to the status service may take.
    pub timeout_ms: u64,
}

impl StatusConfig {
    pub fn timeouts(&self) -> CallTimeouts {
        CallTimeouts::from_ms(self.connect_timeout_ms, self.timeout_ms)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct EmbedderConfig {
    /// `onnx` (all-MiniLM-L6-v2 on ONNX Runtime, the fast default;
    /// `scripts/fetch-onnx.sh` prepares it), `local` (the same model in
    /// pure Rust, no native library, about a third of the speed) or `remote`
    /// (any OpenAI-compatible `/embeddings` endpoint).
    pub engine: EmbedderEngine,
    /// For `onnx` and `local`: the model's directory (`scripts/fetch-model.sh`).
    pub model_dir: PathBuf,
    /// For `onnx`: the graph under `<model_dir>/onnx/` (`model.onnx` fp32,
    /// `model_int8.onnx` int8).
    pub onnx_file: String,
    /// For `onnx`: `libonnxruntime.so`; unset = the path recorded in
    /// `models/onnxruntime.path` by `scripts/fetch-onnx.sh`, else `ORT_DYLIB_PATH`.
    pub onnxruntime_path: Option<PathBuf>,
    /// For `remote`: an OpenAI-compatible API base URL (POST `{url}/embeddings`).
    pub remote_url: Option<String>,
    /// For `remote`: the model name sent with each request.
    pub remote_model: String,
    /// For `remote`; set it through `MEMSY__EMBEDDER__REMOTE_API_KEY`, not a file.
    #[serde(skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub remote_api_key: Option<SecretString>,
    /// For `remote`: the model's vector size (the store is created with it).
    pub remote_dimension: usize,
    /// For `remote`: how long one request may take.
    pub remote_timeout_secs: u64,
    /// Most extracted events the stage takes per fetch.
    pub batch_size: usize,
    /// Most texts per engine call; callers' texts are batched up to this.
    pub batch_texts: usize,
    /// How long the batcher waits for more texts before a short batch.
    pub batch_wait_ms: u64,
    /// Stage batches in hand at once: with 2, the next batch can reach the
    /// engine while the last one's vectors are published and acked.
    pub in_flight: usize,
    /// ONNX Runtime threads in all, 0 = one per core.
    pub threads: usize,
    /// ONNX Runtime sessions side by side, sharing `threads` among them;
    /// 0 = one per thread: each sub-batch of an engine call runs on one
    /// core, and no thread waits for another between ops (the fastest on
    /// cores shared with the rest of the pipeline, docs/BENCHMARKS.md); a
    /// call with fewer texts than sessions (a search's query) runs on one
    /// more session over all the threads instead of on one core.
    /// 1 = one session whose threads share every op.
    pub sessions: usize,
    /// Let ONNX Runtime's threads busy-wait between ops (its own default;
    /// only matters with several threads per session): faster for an
    /// embedder on cores of its own; turn it off where the engine shares
    /// its cores, since the spinning takes CPU from the rest.
    pub spin: bool,
    /// Where the query-embedding gRPC service listens.
    pub grpc_addr: String,
    /// How the gateway reaches the embedder when it runs in another process.
    pub url: String,
    /// How long a connection attempt to `url` may take.
    pub connect_timeout_ms: u64,
    /// How long one call to `url` may take (a search's query embedding).
    pub timeout_ms: u64,
    /// `memsy serve` only: leave the model to `memsy embedder` processes
    /// (on cores or a GPU of their own) instead of loading it. The single
    /// node then runs no embedding stage, asks `url` for query embeddings
    /// and serves the status gRPC service (at `status.grpc_addr`) that the
    /// embedders report to.
    pub external: bool,
}

/// How texts become vectors; an unknown name fails when the config loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderEngine {
    Onnx,
    Local,
    Remote,
}

/// How events become memories; an unknown name fails when the config loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExtractorEngine {
    Rules,
    Llm,
}

impl EmbedderConfig {
    /// The vector size the store is made with, known without loading the
    /// model (services that do not embed need it too).
    pub fn dimension(&self) -> usize {
        match self.engine {
            EmbedderEngine::Remote => self.remote_dimension,
            // all-MiniLM-L6-v2, in both the ONNX and the pure-Rust engine.
            EmbedderEngine::Onnx | EmbedderEngine::Local => 384,
        }
    }

    pub fn timeouts(&self) -> CallTimeouts {
        CallTimeouts::from_ms(self.connect_timeout_ms, self.timeout_ms)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ExtractorConfig {
    /// `rules` (offline, deterministic) or `llm` (the model configured
    /// under `[llm]`, which must then have a `url`).
    pub engine: ExtractorEngine,
    /// Most events handled per batch.
    pub batch_size: usize,
    /// How long a batch waits for each next event before it is handled short.
    pub batch_wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct IndexerConfig {
    /// Most events written per store call (each call ends with a flush,
    /// whose cost hardly depends on the batch: under load 512 events per
    /// batch instead of 128 raised the pipeline's throughput by a sixth; see
    /// docs/BENCHMARKS.md).
    pub batch_size: usize,
    /// How long a batch waits for each next event before it is written
    /// short. A store write costs two flushes whatever its size, so under load
    /// fuller batches are much cheaper per event; at low load this is what a
    /// lone event waits (see docs/BENCHMARKS.md, pipeline). Longer than the
    /// gap between the embedder's batches (~80 ms for 64 texts on one core),
    /// or a batch ends after each of them.
    pub batch_wait_ms: u64,
    /// The longest a batch gathers under a steady stream (each event within
    /// `batch_wait_ms` of the last) before it is written short of
    /// `batch_size`: what an event can wait in the indexer at moderate load.
    /// Each batch costs the store ≈ 12 ms of CPU whatever its size (two
    /// shard flushes), so under load longer gathering leaves the model more
    /// CPU (docs/BENCHMARKS.md, runs of 2026-12-03, 18:45–19:09); low-load
    /// latency is `batch_wait_ms`, not this.
    pub batch_gather_ms: u64,
    /// A new memory this close (cosine) to an active memory of the same
    /// actor reinforces it instead of being stored as a twin.
    pub duplicate_similarity: f32,
    /// Memories of different actors this close count as "the same memory"
    /// for promotion.
    pub promotion_similarity: f32,
    /// Distinct actors of a role (team, org) holding the same memory before
    /// it is promoted to that level.
    pub promotion_min_actors: usize,
    /// Strength added by each reinforcement (bounded by 5.0).
    pub reinforce_step: f32,
    /// How long a replica's hold on a partition lasts without renewal: a
    /// replica that dies leaves its partitions to the others after this.
    pub lease_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Limits {
    /// Most events in one ingest request.
    pub max_events_per_ingest: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest `content` of one event, in bytes.
    pub max_content_bytes: usize,
    /// Longest id (actor, session, role, team, event), in characters.
    pub max_id_len: usize,
    /// Largest `metadata` of one event, serialised, in bytes.
    pub max_metadata_bytes: usize,
    /// Most event ids in one status request.
    pub max_status_ids: usize,
    /// Largest `limit` a search may ask for.
    pub max_search_limit: usize,
    /// Longest search query, in bytes.
    pub max_query_bytes: usize,
    /// Same (actor, session, kind, content) within this window returns the original event id.
    pub dedup_window_secs: u64,
}

/// An OpenAI-compatible chat-completions endpoint, used where a language
/// model does better than rules (promotion prompts; extraction with the
/// `llm` extractor engine). Unset `url` = no LLM: memsy works offline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LlmConfig {
    /// API base URL; requests go to `{url}/chat/completions`.
    pub url: Option<String>,
    /// The model name sent with each request.
    pub model: String,
    /// Set it through `MEMSY__LLM__API_KEY`, not a file.
    #[serde(skip_serializing)]
    #[schemars(with = "Option<String>")]
    pub api_key: Option<SecretString>,
    /// How long one request may take.
    pub timeout_secs: u64,
    /// Attempts per request on 429, 5xx and connection failures, the first included.
    pub attempts: u32,
    /// Sampling temperature; 0 makes extraction as repeatable as the provider allows.
    pub temperature: f32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self { url: None, model: "gpt-4o-mini".into(), api_key: None, timeout_secs: 60, attempts: 4, temperature: 0.0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SearchConfig {
    /// Strength each search hit adds to a memory (bounded by 5.0).
    pub recall_step: f32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self { recall_step: 0.1 }
    }
}

/// Usage dimensions, metered per org (and per key) in Redis.
pub const USAGE_DIMENSIONS: [&str; 5] =
    ["api_calls", "events_ingested", "memories_stored", "search_queries", "llm_tokens"];

/// Plans, quotas and rate limits. Every org is on `default_plan` unless
/// `orgs` names another; a plan limits each dimension per calendar month
/// (UTC) and each API key's requests per minute.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct UsageConfig {
    /// The plan of every org that `orgs` does not name.
    pub default_plan: String,
    /// Plan name → its limits (`[usage.plans.<name>]` below).
    pub plans: BTreeMap<String, Plan>,
    /// org id → plan name.
    pub orgs: BTreeMap<String, String>,
    /// Most memories (or events) one console, stats or actors request reads;
    /// past it the answer says `truncated`.
    pub console_scan_cap: usize,
    /// Rate limits are counted in fixed windows of this many seconds, each
    /// allowing its share of `requests_per_minute`. 60 unless a deployment
    /// wants finer windows (tests use short ones).
    pub rate_window_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Plan {
    /// Per API key; 0 = unlimited.
    pub requests_per_minute: u64,
    /// Live API keys an org may hold.
    pub max_keys: u64,
    /// Dimension → limit per calendar month; a missing dimension is
    /// unlimited. `memories_stored` limits the memories held, not a flow.
    pub limits: BTreeMap<String, u64>,
}

impl Default for Plan {
    fn default() -> Self {
        Self { requests_per_minute: 60_000, max_keys: 100, limits: BTreeMap::new() }
    }
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            default_plan: "self-hosted".into(),
            plans: [("self-hosted".to_string(), Plan::default())].into(),
            orgs: BTreeMap::new(),
            console_scan_cap: 20_000,
            rate_window_secs: 60,
        }
    }
}

impl UsageConfig {
    /// The plan of `org_id` and its name.
    pub fn plan_for(&self, org_id: &str) -> (&str, &Plan) {
        let name = self.orgs.get(org_id).unwrap_or(&self.default_plan);
        match self.plans.get_key_value(name) {
            Some((n, p)) => (n.as_str(), p),
            // `validate` makes this unreachable for a loaded config.
            None => (self.default_plan.as_str(), &self.plans[&self.default_plan]),
        }
    }

    fn validate(&self) -> Result<(), CoreError> {
        if !self.plans.contains_key(&self.default_plan) {
            return Err(CoreError::Config(format!("usage.default_plan {:?} is not in usage.plans", self.default_plan)));
        }
        for (org, plan) in &self.orgs {
            if !self.plans.contains_key(plan) {
                return Err(CoreError::Config(format!("usage.orgs.{org} names plan {plan:?}, not in usage.plans")));
            }
        }
        for (name, plan) in &self.plans {
            for dim in plan.limits.keys() {
                if !USAGE_DIMENSIONS.contains(&dim.as_str()) {
                    return Err(CoreError::Config(format!(
                        "usage.plans.{name}.limits.{dim}: unknown dimension (expected one of {})",
                        USAGE_DIMENSIONS.join(", ")
                    )));
                }
            }
        }
        if self.rate_window_secs == 0 {
            return Err(CoreError::Config("usage.rate_window_secs must be positive".into()));
        }
        if self.console_scan_cap == 0 {
            return Err(CoreError::Config("usage.console_scan_cap must be positive".into()));
        }
        Ok(())
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { addr: "127.0.0.1:8080".into(), data_dir: PathBuf::from("./data") }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            events_max_age_days: 30,
            max_deliver: 5,
            ack_wait_secs: 30,
            duplicate_window_secs: 120,
            publish_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            indexer_partitions: 16,
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            status_ttl_secs: 7 * 24 * 3600,
            connect_timeout_ms: 500,
            response_timeout_ms: 1_000,
        }
    }
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            grpc_addr: "127.0.0.1:50051".into(),
            url: "http://127.0.0.1:50051".into(),
            connect_timeout_ms: 1_000,
            timeout_ms: 1_000,
        }
    }
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            engine: EmbedderEngine::Onnx,
            model_dir: PathBuf::from("./models/all-minilm-l6-v2"),
            onnx_file: "model_int8.onnx".into(),
            onnxruntime_path: None,
            remote_url: None,
            remote_model: "text-embedding-3-small".into(),
            remote_api_key: None,
            remote_dimension: 1536,
            remote_timeout_secs: 30,
            batch_size: 32,
            batch_texts: 64,
            batch_wait_ms: 2,
            in_flight: 2,
            threads: 0,
            sessions: 0,
            spin: true,
            grpc_addr: "127.0.0.1:50052".into(),
            url: "http://127.0.0.1:50052".into(),
            connect_timeout_ms: 1_000,
            // A query waits at most for the engine call in progress (the
            // batcher puts queries first), a fraction of this on a busy host.
            timeout_ms: 2_000,
            external: false,
        }
    }
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        Self { engine: ExtractorEngine::Rules, batch_size: 64, batch_wait_ms: 2 }
    }
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            batch_size: 512,
            batch_wait_ms: 100,
            batch_gather_ms: 500,
            duplicate_similarity: 0.93,
            promotion_similarity: 0.88,
            promotion_min_actors: 3,
            reinforce_step: 0.5,
            lease_ttl_secs: 15,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events_per_ingest: 1_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_content_bytes: 64 * 1024,
            max_id_len: 256,
            max_metadata_bytes: 16 * 1024,
            max_status_ids: 1_000,
            max_search_limit: 100,
            max_query_bytes: 8 * 1024,
            dedup_window_secs: 60,
        }
    }
}

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, CoreError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(CoreError::Config(format!("config file {} does not exist", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed("MEMSY__").split("__"));
        let mut cfg: Config = fig.extract().map_err(|e| CoreError::Config(e.to_string()))?;
        if let Ok(url) = std::env::var("QDRANT_URL") {
            if !url.is_empty() {
                cfg.qdrant.url = Some(url);
            }
        }
        if let Ok(key) = std::env::var("QDRANT_API_KEY") {
            if !key.is_empty() {
                cfg.qdrant.api_key = Some(key.into());
            }
        }
        if cfg.qdrant.url.as_deref() == Some("") {
            cfg.qdrant.url = None;
        }
        if cfg.llm.url.as_deref() == Some("") {
            cfg.llm.url = None;
        }
        // Ingest re-publishes a duplicate under its original id and relies on
        // the broker to drop it, which it only does within its own window.
        if cfg.limits.dedup_window_secs > cfg.nats.duplicate_window_secs {
            return Err(CoreError::Config(format!(
                "limits.dedup_window_secs ({}) must not exceed nats.duplicate_window_secs ({})",
                cfg.limits.dedup_window_secs, cfg.nats.duplicate_window_secs
            )));
        }
        cfg.usage.validate()?;
        cfg.qdrant.validate()?;
        if cfg.nats.indexer_partitions == 0 || cfg.nats.indexer_partitions > 1024 {
            return Err(CoreError::Config("nats.indexer_partitions must be 1 to 1024".into()));
        }
        let timeouts = [
            ("nats.publish_timeout_ms", cfg.nats.publish_timeout_ms),
            ("nats.connect_timeout_ms", cfg.nats.connect_timeout_ms),
            ("redis.connect_timeout_ms", cfg.redis.connect_timeout_ms),
            ("redis.response_timeout_ms", cfg.redis.response_timeout_ms),
            ("status.connect_timeout_ms", cfg.status.connect_timeout_ms),
            ("status.timeout_ms", cfg.status.timeout_ms),
            ("embedder.connect_timeout_ms", cfg.embedder.connect_timeout_ms),
            ("embedder.timeout_ms", cfg.embedder.timeout_ms),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, ms)| *ms == 0) {
            return Err(CoreError::Config(format!("{name} must be positive (a call without a timeout can hang)")));
        }
        if cfg.indexer.lease_ttl_secs < 3 {
            return Err(CoreError::Config("indexer.lease_ttl_secs must be at least 3".into()));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memsy.toml");
        std::fs::write(&f, "[nats]\nurl = \"nats://file:4222\"\nmax_deliver = 9\n[limits]\nmax_id_len = 64\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("MEMSY__NATS__URL", "nats://env:4222");
            let cfg = Config::load(Some(&f)).unwrap();
            assert_eq!(cfg.nats.url, "nats://env:4222");
            assert_eq!(cfg.nats.max_deliver, 9);
            assert_eq!(cfg.limits.max_id_len, 64);
            assert_eq!(cfg.redis.url, "redis://127.0.0.1:6379");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn plans_merge_with_the_default_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memsy.toml");
        std::fs::write(
            &f,
            "[usage.plans.team]\nrequests_per_minute = 5\nlimits = { events_ingested = 10 }\n[usage.orgs]\nacme = \"team\"\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&f)).unwrap();
        let (name, plan) = cfg.usage.plan_for("acme");
        assert_eq!((name, plan.requests_per_minute, plan.limits["events_ingested"]), ("team", 5, 10));
        assert_eq!(cfg.usage.plan_for("other").0, "self-hosted");
        std::fs::write(&f, "[usage.plans.team.limits]\nbananas = 1\n").unwrap();
        assert!(Config::load(Some(&f)).unwrap_err().to_string().contains("bananas"));
        std::fs::write(&f, "[usage.orgs]\nacme = \"gold\"\n").unwrap();
        assert!(Config::load(Some(&f)).is_err());
    }

    #[test]
    fn every_call_has_a_timeout_and_none_may_be_zero() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memsy.toml");
        std::fs::write(&f, "[status]\ntimeout_ms = 250\n").unwrap();
        let cfg = Config::load(Some(&f)).unwrap();
        assert_eq!(cfg.status.timeouts(), CallTimeouts::from_ms(1_000, 250));
        assert_eq!(cfg.redis.timeouts(), CallTimeouts::from_ms(500, 1_000));
        assert_eq!(cfg.embedder.timeouts(), CallTimeouts::from_ms(1_000, 2_000));
        std::fs::write(&f, "[redis]\nresponse_timeout_ms = 0\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("redis.response_timeout_ms must be positive"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn an_unknown_engine_fails_at_load_and_secrets_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memsy.toml");
        std::fs::write(&f, "[embedder]\nengine = \"gpu\"\n").unwrap();
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains("gpu") && e.contains("onnx"), "{e}");
        std::fs::write(&f, "[extractor]\nengine = \"llm\"\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("MEMSY__LLM__API_KEY", "sk-do-not-print");
            jail.set_env("QDRANT_API_KEY", "qdrant-do-not-print");
            let cfg = Config::load(Some(&f)).unwrap();
            assert_eq!(cfg.extractor.engine, ExtractorEngine::Llm);
            assert_eq!(cfg.llm.api_key.as_ref().map(|k| k.expose_secret()), Some("sk-do-not-print"));
            let shown = format!("{cfg:?} {}", serde_json::to_string(&cfg).unwrap());
            assert!(!shown.contains("do-not-print"), "a secret was printed: {shown}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/memsy.toml"))).is_err());
    }
}
