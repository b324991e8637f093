//! The connection to JetStream and durable publishing.

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::future::join_all;
use memsy_core::config::NatsConfig;

use crate::topology::{self, Stage};
use crate::BusError;

/// One message to publish: subject, broker de-duplication id, payload and
/// the trace context to carry (None: the current span's).
#[derive(Debug, Clone)]
pub struct OutMessage {
    pub subject: String,
    pub msg_id: String,
    pub payload: Bytes,
    pub traceparent: Option<String>,
}

/// A JetStream connection with memsy's topology.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    cfg: NatsConfig,
    /// The indexer partitions, as `MEMSY_EMBEDDED` records them.
    partitions: u32,
}

impl Bus {
    /// Connects and makes sure every stream and consumer exists.
    pub async fn connect(cfg: &NatsConfig) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("memsy")
            .connection_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            // Keep retrying in the background after the first connect: a broker
            // restart must not take the service down.
            .retry_on_initial_connect()
            .connect(&cfg.url)
            .await
            .map_err(BusError::unavailable)?;
        // retry_on_initial_connect returns at once; wait until we are really connected.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() > deadline {
                return Err(BusError::Unavailable(format!("could not connect to NATS at {}", cfg.url)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(cfg.publish_timeout_ms));
        let mut bus = Self { client, js, cfg: cfg.clone(), partitions: cfg.indexer_partitions };
        bus.partitions = bus.ensure_topology().await?;
        Ok(bus)
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn config(&self) -> &NatsConfig {
        &self.cfg
    }

    /// True while the client holds a connection to the broker.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// How many partitions the indexer's input has (from the stream, which
    /// may predate this process's configuration).
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Creates the streams (idempotent; existing ones are left as they are)
    /// and answers the indexer partition count the embedded stream holds.
    pub async fn ensure_topology(&self) -> Result<u32, BusError> {
        let dup = Duration::from_secs(self.cfg.duplicate_window_secs);
        let max_age = if self.cfg.events_max_age_days == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(self.cfg.events_max_age_days * 86_400)
        };
        let streams = [
            stream::Config {
                name: topology::EVENTS_STREAM.into(),
                subjects: vec!["memsy.events.>".into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                max_age,
                duplicate_window: dup,
                description: Some("raw events, the durable replayable log".into()),
                ..Default::default()
            },
            stream::Config {
                name: topology::EXTRACTED_STREAM.into(),
                subjects: vec!["memsy.extracted.>".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: dup,
                description: Some("candidate memories waiting for the embedder".into()),
                ..Default::default()
            },
            stream::Config {
                name: topology::EMBEDDED_STREAM.into(),
                subjects: vec!["memsy.embedded.>".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: dup,
                description: Some("embedded memories waiting for the indexer, partitioned by org".into()),
                metadata: [(topology::PARTITIONS_METADATA.to_string(), self.cfg.indexer_partitions.to_string())].into(),
                ..Default::default()
            },
            stream::Config {
                name: topology::DLQ_STREAM.into(),
                subjects: vec!["memsy.dlq.>".into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                max_age: Duration::from_secs(30 * 86_400),
                description: Some("messages a stage gave up on".into()),
                ..Default::default()
            },
        ];
        for s in streams {
            self.js.get_or_create_stream(s).await.map_err(BusError::unavailable)?;
        }
        self.embedded_partitions().await
    }

    /// The partition count `MEMSY_EMBEDDED` was created with. A stream of
    /// the unpartitioned layout (one `indexer` consumer, no count) is taken
    /// over once its consumer has nothing left: its queued messages would
    /// match no partition.
    async fn embedded_partitions(&self) -> Result<u32, BusError> {
        let mut stream = self.js.get_stream(topology::EMBEDDED_STREAM).await.map_err(BusError::unavailable)?;
        let info = stream.info().await.map_err(BusError::unavailable)?.clone();
        if let Some(n) = info.config.metadata.get(topology::PARTITIONS_METADATA) {
            return n.parse().map_err(|_| {
                BusError::Unavailable(format!("{} has a malformed partition count {n:?}", topology::EMBEDDED_STREAM))
            });
        }
        if let Ok(mut legacy) = stream.get_consumer::<consumer::pull::Config>(topology::INDEXER_CONSUMER).await {
            let c = legacy.info().await.map_err(BusError::unavailable)?;
            if c.num_pending + c.num_ack_pending as u64 > 0 {
                return Err(BusError::Unavailable(format!(
                    "{} still holds {} messages for the unpartitioned indexer: let the previous memsy version's \
                     indexer drain them first",
                    topology::EMBEDDED_STREAM,
                    c.num_pending + c.num_ack_pending as u64
                )));
            }
            stream.delete_consumer(topology::INDEXER_CONSUMER).await.map_err(BusError::unavailable)?;
        }
        let mut config = info.config;
        config.metadata.insert(topology::PARTITIONS_METADATA.into(), self.cfg.indexer_partitions.to_string());
        self.js.update_stream(config).await.map_err(BusError::unavailable)?;
        Ok(self.cfg.indexer_partitions)
    }

    /// The durable pull consumer of a stage, shared by all its replicas.
    pub async fn consumer(&self, stage: Stage) -> Result<consumer::PullConsumer, BusError> {
        self.durable(stage, stage.name.to_string(), String::new()).await
    }

    /// The durable pull consumer of one partition of a partitioned stage.
    pub async fn partition_consumer(&self, stage: Stage, partition: u32) -> Result<consumer::PullConsumer, BusError> {
        self.durable(stage, topology::indexer_consumer(partition), topology::embedded_partition_filter(partition)).await
    }

    async fn durable(&self, stage: Stage, name: String, filter: String) -> Result<consumer::PullConsumer, BusError> {
        let s = self.js.get_stream(stage.stream).await.map_err(BusError::unavailable)?;
        s.get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: filter,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(self.cfg.ack_wait_secs),
                // Unlimited at the broker: the runner counts failed attempts
                // and dead-letters, so the broker never stops redelivering a
                // message nobody has settled (a replica that died mid-batch).
                max_deliver: -1,
                max_ack_pending: 10_000,
                description: Some(format!("memsy {name} stage")),
                ..Default::default()
            },
        )
        .await
        .map_err(BusError::unavailable)
    }

    /// Publishes every message and waits for every broker ack. Ok means all
    /// of them are durably stored (or were already, per `Nats-Msg-Id`).
    pub async fn publish_all(&self, messages: Vec<OutMessage>) -> Result<(), BusError> {
        let mut pending = Vec::with_capacity(messages.len());
        for m in messages {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", m.msg_id.as_str());
            if let Some(tp) = m.traceparent.or_else(memsy_core::telemetry::current_traceparent) {
                headers.insert(memsy_core::telemetry::TRACEPARENT, tp.as_str());
            }
            let fut =
                self.js.publish_with_headers(m.subject, headers, m.payload).await.map_err(BusError::unavailable)?;
            pending.push(fut);
        }
        for r in join_all(pending.into_iter().map(|f| f.into_future())).await {
            r.map_err(BusError::unavailable)?;
        }
        Ok(())
    }

    /// A key-value bucket, created if missing. The bucket's stream is
    /// created here rather than through `create_key_value`, whose account
    /// query does not parse the answers of the NATS 2.9 servers that Debian
    /// ships; the stream settings are the ones the KV protocol prescribes.
    pub async fn kv(&self, bucket: &str, history: i64) -> Result<kv::Store, BusError> {
        self.kv_with(bucket, history, Duration::ZERO).await
    }

    /// A bucket whose entries expire `max_age` after they were last written.
    pub async fn kv_expiring(&self, bucket: &str, max_age: Duration) -> Result<kv::Store, BusError> {
        self.kv_with(bucket, 1, max_age).await
    }

    async fn kv_with(&self, bucket: &str, history: i64, max_age: Duration) -> Result<kv::Store, BusError> {
        if let Ok(s) = self.js.get_key_value(bucket).await {
            return Ok(s);
        }
        let cfg = stream::Config {
            max_age,
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: history.max(1),
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        };
        self.js.get_or_create_stream(cfg).await.map_err(BusError::unavailable)?;
        self.js.get_key_value(bucket).await.map_err(BusError::unavailable)
    }

    /// Stream depth, for readiness and metrics: what the stage's consumer
    /// (every partition's, for the indexer) has not settled yet.
    pub async fn pending(&self, stage: Stage) -> Result<u64, BusError> {
        let mut consumers = Vec::new();
        if stage.partitioned {
            for p in 0..self.partitions {
                consumers.push(self.partition_consumer(stage, p).await?);
            }
        } else {
            consumers.push(self.consumer(stage).await?);
        }
        let mut total = 0;
        for mut c in consumers {
            let info = c.info().await.map_err(BusError::unavailable)?;
            total += info.num_pending + info.num_ack_pending as u64;
        }
        Ok(total)
    }
}
