//! Wiring: which services a command runs and how they reach each other.
//! `memsy serve` composes every service in one process and connects them
//! directly (the status store and the embedding engine are shared in
//! memory, the embedded vector store is used), or with `embedder.external`
//! all but the embedder, which then runs as `memsy embedder` beside it; the
//! per-service commands run one service each and reach the others over gRPC
//! and a Qdrant server.

pub mod cli;
mod dlq;
mod ops;
mod orgs;
mod replay;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use memsy_bus::topology::{EMBEDDER, EXTRACTOR, INDEXER};
use memsy_bus::{run_partitioned_stage, run_stage, Batching, Bus, Erasures, Leases, StageHandler};
use memsy_core::config::{EmbedderEngine, ExposeSecret, ExtractorEngine};
use memsy_core::Config;
use memsy_embedder::{Engine, LocalEmbedder, MiniLm, OnnxEngine, OnnxThreads, QueryEmbedder, RemoteEngine};
use memsy_gateway::hierarchy::LlmGenerator;
use memsy_gateway::{AppState, Dedup, Hierarchy, KeyRegistry, MemoryLevels, Recalls};
use memsy_status::{GrpcStatus, StatusApi, StatusStore};
use memsy_store::{EdgeStore, MemoryStore, QdrantStore, Timed};
use memsy_usage::Meter;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use cli::{Cli, Command, KeysCommand};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    let args = match &cli.command {
        Command::Serve(a)
        | Command::Gateway(a)
        | Command::Extractor(a)
        | Command::Embedder(a)
        | Command::Indexer(a)
        | Command::Status(a) => Some(a.clone()),
        Command::Keys { .. } | Command::Dlq { .. } | Command::Openapi | Command::Replay(_) | Command::Orgs { .. } => {
            None
        }
    };
    if let Some(a) = &args {
        // A flag beats the configuration; a stage without one gets a port of
        // its own rather than the gateway's.
        let ops_port = match &cli.command {
            Command::Extractor(_) => Some(9091),
            Command::Embedder(_) => Some(9092),
            Command::Indexer(_) => Some(9093),
            Command::Status(_) => Some(9094),
            _ => None,
        };
        match (&a.http_addr, ops_port) {
            (Some(addr), _) => config.http.addr = addr.clone(),
            (None, Some(port)) if config.http.addr == memsy_core::config::HttpConfig::default().addr => {
                config.http.addr = format!("127.0.0.1:{port}");
            }
            _ => {}
        }
        if let Some(dir) = &a.data_dir {
            config.http.data_dir = dir.clone();
        }
    }
    let config = Arc::new(config);
    match cli.command {
        Command::Keys { command } => keys(&config, command).await,
        Command::Dlq { command } => dlq::run(&config, command).await,
        Command::Openapi => {
            print!("{}", memsy_gateway::openapi::to_json());
            Ok(())
        }
        Command::Replay(args) => replay::run(&config, args).await,
        Command::Orgs { command } => orgs::run(&config, command).await,
        Command::Serve(_) => serve_all(config).await,
        Command::Gateway(_) => gateway(config).await,
        Command::Extractor(_) => extractor(config).await,
        Command::Embedder(_) => embedder(config).await,
        Command::Indexer(_) => indexer(config).await,
        Command::Status(_) => status(config).await,
    }
}

fn addr(s: &str, what: &str) -> anyhow::Result<SocketAddr> {
    s.parse().with_context(|| format!("{what} '{s}' is not a host:port address"))
}

/// Cancels `token` on SIGINT or SIGTERM, so every service drains and stops.
fn stop_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        info!("shutting down");
        token.cancel();
    });
}

async fn connect_bus(config: &Config) -> anyhow::Result<Bus> {
    Bus::connect(&config.nats).await.with_context(|| format!("connecting to NATS at {}", config.nats.url))
}

async fn status_store(config: &Config) -> anyhow::Result<StatusStore> {
    StatusStore::connect(&config.redis.url, config.redis.status_ttl_secs, config.redis.timeouts())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis.url))
}

fn load_engine(config: &Config) -> anyhow::Result<Arc<dyn Engine>> {
    let e = &config.embedder;
    let dir = &e.model_dir;
    match e.engine {
        EmbedderEngine::Local => {
            let engine = MiniLm::load(dir, e.threads).with_context(|| {
                format!("loading the embedding model from {} (run scripts/fetch-model.sh)", dir.display())
            })?;
            Ok(Arc::new(engine))
        }
        EmbedderEngine::Onnx => {
            // fetch-onnx.sh records where the onnxruntime wheel put the library.
            let recorded =
                dir.parent().map(|p| p.join("onnxruntime.path")).and_then(|f| std::fs::read_to_string(f).ok());
            let dylib = e.onnxruntime_path.clone().or_else(|| recorded.map(|s| s.trim().into()));
            let threads = OnnxThreads { threads: e.threads, sessions: e.sessions, spin: e.spin };
            let engine = OnnxEngine::load(dir, &e.onnx_file, dylib.as_deref(), threads).with_context(|| {
                format!("loading {} from {} with ONNX Runtime (run scripts/fetch-onnx.sh)", e.onnx_file, dir.display())
            })?;
            Ok(Arc::new(engine))
        }
        EmbedderEngine::Remote => {
            let url = e.remote_url.as_deref().context("embedder.engine = remote needs embedder.remote_url")?;
            let timeout = std::time::Duration::from_secs(e.remote_timeout_secs);
            let (u, model, key, dim) =
                (url.to_string(), e.remote_model.clone(), e.remote_api_key.clone(), e.dimension());
            // Its blocking HTTP client must be made outside the async runtime.
            let engine = std::thread::spawn(move || {
                RemoteEngine::new(&u, &model, key.as_ref().map(|k| k.expose_secret()), dim, timeout)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("setting up the embeddings endpoint panicked"))?
            .with_context(|| format!("setting up the embeddings endpoint {url}"))?;
            Ok(Arc::new(engine))
        }
    }
}

fn local_embedder(config: &Config, engine: Arc<dyn Engine>) -> LocalEmbedder {
    let e = &config.embedder;
    LocalEmbedder::new(engine, e.batch_texts, std::time::Duration::from_millis(e.batch_wait_ms))
}

/// The vector store: a Qdrant server when configured, else (single process
/// only) the embedded engine under the data directory.
/// The vector store. `prepare` creates collections and indexes first (and
/// waits for a Qdrant server that is still starting); the gateway does not
/// prepare: it only reads, starts without the store and reports it through
/// `/readyz` until the store answers.
async fn open_store(
    config: &Config,
    dimension: usize,
    allow_embedded: bool,
    prepare: bool,
) -> anyhow::Result<Arc<dyn MemoryStore>> {
    let store: Arc<dyn MemoryStore> = match &config.qdrant.url {
        Some(url) => Arc::new(
            QdrantStore::connect(
                url,
                config.qdrant.api_key.as_ref().map(|k| k.expose_secret()),
                &config.qdrant.collection_prefix,
                dimension,
                (&config.qdrant).into(),
            )
            .with_context(|| format!("connecting to Qdrant at {url}"))?,
        ),
        None if allow_embedded => {
            let dir = config.http.data_dir.join("qdrant");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            Arc::new(
                EdgeStore::open(&dir, dimension)
                    .with_context(|| format!("opening the embedded store in {}", dir.display()))?,
            )
        }
        None => {
            bail!("this service needs a Qdrant server: set QDRANT_URL (the embedded store serves only `memsy serve`)")
        }
    };
    let store: Arc<dyn MemoryStore> = Arc::new(Timed::new(store));
    if !prepare {
        return Ok(store);
    }
    // A Qdrant server may still be starting (containers come up together):
    // keep trying for a while before giving up.
    let mut attempt = 0;
    loop {
        match store.ensure_schema().await {
            Ok(()) => return Ok(store),
            Err(e) if attempt < 30 && config.qdrant.url.is_some() => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "vector store not ready; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("preparing the vector store")),
        }
    }
}

fn spawn_stage(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    bus: &Bus,
    stage: memsy_bus::topology::Stage,
    handler: Arc<dyn StageHandler>,
    batching: Batching,
    token: &CancellationToken,
) {
    let (bus, token) = (bus.clone(), token.clone());
    memsy_bus::spawn_backlog_gauges(bus.clone(), vec![stage], token.clone());
    tasks.spawn(async move { run_stage(bus, stage, handler, batching, token).await.map_err(Into::into) });
}

/// The indexer stage on the partitions this replica leases; the leases are
/// handed over when `token` is cancelled.
async fn spawn_indexer(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    bus: &Bus,
    handler: Arc<dyn StageHandler>,
    config: &Config,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let ttl = std::time::Duration::from_secs(config.indexer.lease_ttl_secs);
    let (leases, keeper) = Leases::start(bus, bus.partitions(), ttl, token.clone())
        .await
        .context("joining the indexer partitions (NATS key-value bucket)")?;
    let (bus, token, batching) = (bus.clone(), token.clone(), indexer_batching(config));
    memsy_bus::spawn_backlog_gauges(bus.clone(), vec![INDEXER], token.clone());
    tasks.spawn(async move {
        let r = run_partitioned_stage(bus, INDEXER, handler, batching, leases, token).await;
        // The leases are given up only after the stage has stopped.
        let _ = keeper.await;
        r.map_err(Into::into)
    });
    Ok(())
}

fn extractor_batching(config: &Config) -> Batching {
    Batching::new(config.extractor.batch_size, config.extractor.batch_wait_ms)
}

/// The stage gathers events as briefly as its batcher gathers texts; its
/// batches are independent, so more than one may be in hand. The extractor
/// keeps one (its LLM engine remembers each session's last events, in
/// order), and so does the indexer, whose consolidation must see the last
/// batch's writes.
fn embedder_batching(config: &Config) -> Batching {
    Batching::new(config.embedder.batch_size, config.embedder.batch_wait_ms).in_flight(config.embedder.in_flight)
}

fn indexer_batching(config: &Config) -> Batching {
    Batching::new(config.indexer.batch_size, config.indexer.batch_wait_ms).gather(config.indexer.batch_gather_ms)
}

/// The services of one process: they run until the token is cancelled or
/// one of them fails, which cancels the others.
pub struct Services {
    pub token: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Services {
    /// Runs until the token is cancelled or a service fails; returns the
    /// first failure once every service has drained.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        while let Some(r) = self.tasks.join_next().await {
            let r = r.map_err(anyhow::Error::from).and_then(|x| x);
            if let Err(e) = r {
                tracing::error!(error = %format!("{e:#}"), "service failed; stopping");
                self.token.cancel();
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Stops every service and waits for them to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.token.cancel();
        self.wait().await
    }
}

/// Every service in one process, started and running.
pub struct SingleNode {
    /// Where the gateway listens (the real port when 0 was asked for).
    pub addr: SocketAddr,
    pub services: Services,
}

impl SingleNode {
    /// Connects to NATS and Redis, loads the model, opens the store and
    /// starts the gateway and the three stages. With `embedder.external`,
    /// the model and the embedding stage are left to `memsy embedder`
    /// processes: query embeddings come from `embedder.url`, and the status
    /// service those processes report to is served at `status.grpc_addr`.
    pub async fn start(config: Arc<Config>) -> anyhow::Result<Self> {
        check_extractor(&config)?;
        let token = CancellationToken::new();
        let bus = connect_bus(&config).await?;
        let status: Arc<dyn StatusApi> = Arc::new(status_store(&config).await?);
        // Everything that can fail (a taken port, a model that does not
        // load) comes before any stage is started: a stage that is dropped
        // mid-batch leaves its messages to the ack timeout.
        let (embedder, store, embedding_stage, status_listener) = if config.embedder.external {
            let embedder: Arc<dyn QueryEmbedder> =
                Arc::new(memsy_embedder::GrpcEmbedder::connect_lazy(&config.embedder.url, config.embedder.timeouts())?);
            let grpc = addr(&config.status.grpc_addr, "status.grpc_addr")?;
            let listener = tokio::net::TcpListener::bind(grpc)
                .await
                .with_context(|| format!("binding the status gRPC service to {grpc}"))?;
            (embedder, open_store(&config, config.embedder.dimension(), true, true).await?, None, Some(listener))
        } else {
            let engine = load_engine(&config)?;
            let local = local_embedder(&config, engine.clone());
            let store = open_store(&config, engine.dimension(), true, true).await?;
            let stage = memsy_embedder::EmbedderStage::new(bus.clone(), local.clone(), status.clone());
            (Arc::new(local) as Arc<dyn QueryEmbedder>, store, Some(stage), None)
        };
        let listener = tokio::net::TcpListener::bind(addr(&config.http.addr, "--http-addr")?)
            .await
            .with_context(|| format!("binding {}", config.http.addr))?;
        let bound = listener.local_addr()?;
        let engine = extraction_engine(&config, &bus).await?;
        let (state, recalls) = gateway_state(&config, bus.clone(), status.clone(), embedder, store.clone()).await?;

        let mut tasks = JoinSet::new();
        if let Some(listener) = status_listener {
            let (s, t) = (status.clone(), token.clone());
            tasks.spawn(
                async move { memsy_status::serve_on(listener, s, t.cancelled_owned()).await.map_err(Into::into) },
            );
        }
        // The indexer first: joining its partitions can fail.
        let indexer = memsy_indexer::IndexerStage::new(store, status.clone(), (&config.indexer).into())
            .with_erasures(Erasures::open(&bus).await?);
        spawn_indexer(&mut tasks, &bus, Arc::new(indexer), &config, &token).await?;
        let extractor = memsy_extractor::ExtractorStage::with_engine(bus.clone(), status, engine);
        spawn_stage(&mut tasks, &bus, EXTRACTOR, Arc::new(extractor), extractor_batching(&config), &token);
        if let Some(stage) = embedding_stage {
            spawn_stage(&mut tasks, &bus, EMBEDDER, Arc::new(stage), embedder_batching(&config), &token);
        }
        tasks.spawn(async move {
            recalls.await;
            Ok(())
        });
        let t = token.clone();
        tasks
            .spawn(async move { memsy_gateway::serve(listener, state, t.cancelled_owned()).await.map_err(Into::into) });
        if config.embedder.external {
            info!(addr = %bound, embedder = config.embedder.url, status_grpc = config.status.grpc_addr,
                "memsy serve: gateway, extractor, indexer and status running in one process; embedding in memsy embedder");
        } else {
            info!(addr = %bound, "memsy serve: gateway, extractor, embedder, indexer and status running in one process");
        }
        Ok(Self { addr: bound, services: Services { token, tasks } })
    }
}

/// Refuses to start with an unknown extraction engine, or with `llm` and no
/// usable model endpoint, before anything is connected.
fn check_extractor(config: &Config) -> anyhow::Result<()> {
    match config.extractor.engine {
        ExtractorEngine::Rules => Ok(()),
        ExtractorEngine::Llm => match memsy_llm::ChatClient::from_config(&config.llm) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => bail!(
                "extractor.engine = llm needs an OpenAI-compatible endpoint: set llm.url (MEMSY__LLM__URL), \
                 and llm.model and llm.api_key as the provider requires"
            ),
            Err(e) => Err(anyhow::Error::new(e).context("extractor.engine = llm")),
        },
    }
}

/// The configured extraction engine. `llm` reads promotion prompts from the
/// hierarchy bucket and counts its tokens in Redis.
async fn extraction_engine(config: &Config, bus: &Bus) -> anyhow::Result<memsy_extractor::Engine> {
    check_extractor(config)?;
    if config.extractor.engine != ExtractorEngine::Llm {
        return Ok(memsy_extractor::Engine::Rules(memsy_extractor::RulesEngine::new()));
    }
    let client = memsy_llm::ChatClient::from_config(&config.llm)?.context("extractor.engine = llm needs llm.url")?;
    let redis = memsy_status::redis_connection(&config.redis.url, config.redis.timeouts())
        .await
        .with_context(|| format!("connecting to Redis at {} (llm_tokens metering)", config.redis.url))?;
    let engine = memsy_extractor::LlmEngine::open(bus, client, Meter::new(redis)).await?;
    info!(model = engine.model(), "extraction by the configured LLM");
    Ok(memsy_extractor::Engine::Llm(Arc::new(engine)))
}

async fn serve_all(config: Arc<Config>) -> anyhow::Result<()> {
    let node = SingleNode::start(config).await?;
    stop_on_signal(node.services.token.clone());
    node.services.wait().await
}

async fn gateway(config: Arc<Config>) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    stop_on_signal(token.clone());
    let bus = connect_bus(&config).await?;
    let status: Arc<dyn StatusApi> = Arc::new(GrpcStatus::connect_lazy(&config.status.url, config.status.timeouts())?);
    let embedder: Arc<dyn QueryEmbedder> =
        Arc::new(memsy_embedder::GrpcEmbedder::connect_lazy(&config.embedder.url, config.embedder.timeouts())?);
    let store = open_store(&config, config.embedder.dimension(), false, false).await?;
    let (state, recalls) = gateway_state(&config, bus, status, embedder, store).await?;
    let recalls = tokio::spawn(recalls);
    let listener = tokio::net::TcpListener::bind(addr(&config.http.addr, "--http-addr")?).await?;
    memsy_gateway::serve(listener, state, token.cancelled_owned()).await?;
    // The last recalls are written before the process ends.
    let _ = recalls.await;
    Ok(())
}

/// The gateway's shared state: its key registry (watching the bucket), its
/// Redis connections (de-duplication, usage) and its view of the store.
async fn gateway_state(
    config: &Arc<Config>,
    bus: Bus,
    status: Arc<dyn StatusApi>,
    embedder: Arc<dyn QueryEmbedder>,
    store: Arc<dyn MemoryStore>,
) -> anyhow::Result<(AppState, impl std::future::Future<Output = ()> + Send + 'static)> {
    let keys = KeyRegistry::open(&bus).await?;
    let redis = || format!("connecting to Redis at {}", config.redis.url);
    let dedup = Dedup::connect(&config.redis.url, config.limits.dedup_window_secs, config.redis.timeouts())
        .await
        .with_context(redis)?;
    let meter = Meter::new(
        memsy_status::redis_connection(&config.redis.url, config.redis.timeouts()).await.with_context(redis)?,
    );
    let levels = MemoryLevels::new(store.clone(), meter.clone());
    let mut hierarchy = Hierarchy::open(&bus).await?;
    // With an LLM configured, promotion prompts are written by it.
    if let Some(llm) = memsy_llm::ChatClient::from_config(&config.llm)? {
        info!(model = llm.model(), "promotion prompts are written by the configured LLM");
        hierarchy = hierarchy.with_generator(Arc::new(LlmGenerator::new(llm, meter.clone())));
    }
    let (recalls, worker) = Recalls::new(store.clone(), config.search.recall_step);
    let erasures = Erasures::open(&bus).await?;
    let state = AppState {
        config: config.clone(),
        bus,
        keys,
        status,
        embedder,
        store,
        dedup,
        meter,
        levels,
        hierarchy,
        recalls,
        erasures,
    };
    Ok((state, worker))
}

async fn extractor(config: Arc<Config>) -> anyhow::Result<()> {
    check_extractor(&config)?;
    let token = CancellationToken::new();
    stop_on_signal(token.clone());
    let bus = connect_bus(&config).await?;
    let status: Arc<dyn StatusApi> = Arc::new(GrpcStatus::connect_lazy(&config.status.url, config.status.timeouts())?);
    let engine = extraction_engine(&config, &bus).await?;
    let mut tasks = JoinSet::new();
    let stage = memsy_extractor::ExtractorStage::with_engine(bus.clone(), status, engine);
    spawn_stage(&mut tasks, &bus, EXTRACTOR, Arc::new(stage), extractor_batching(&config), &token);
    ops::spawn(&mut tasks, &config, bus, &token, vec![])?;
    Services { token, tasks }.wait().await
}

async fn embedder(config: Arc<Config>) -> anyhow::Result<()> {
    let node = EmbedderNode::start(config).await?;
    stop_on_signal(node.services.token.clone());
    node.services.wait().await
}

/// `memsy embedder`: the embedding stage and the query-embedding gRPC
/// service, started and running.
pub struct EmbedderNode {
    pub services: Services,
}

impl EmbedderNode {
    /// Loads the model and starts the stage (reporting to the status
    /// service at `status.url`), the gRPC service at `embedder.grpc_addr`
    /// and the ops endpoints at `http.addr`.
    pub async fn start(config: Arc<Config>) -> anyhow::Result<Self> {
        let token = CancellationToken::new();
        let bus = connect_bus(&config).await?;
        let status: Arc<dyn StatusApi> =
            Arc::new(GrpcStatus::connect_lazy(&config.status.url, config.status.timeouts())?);
        let local = local_embedder(&config, load_engine(&config)?);
        let mut tasks = JoinSet::new();
        let stage = memsy_embedder::EmbedderStage::new(bus.clone(), local.clone(), status);
        spawn_stage(&mut tasks, &bus, EMBEDDER, Arc::new(stage), embedder_batching(&config), &token);
        let grpc = addr(&config.embedder.grpc_addr, "embedder.grpc_addr")?;
        let t = token.clone();
        tasks.spawn(async move { memsy_embedder::serve(grpc, local, t.cancelled_owned()).await.map_err(Into::into) });
        ops::spawn(&mut tasks, &config, bus, &token, vec![])?;
        Ok(Self { services: Services { token, tasks } })
    }
}

async fn indexer(config: Arc<Config>) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    stop_on_signal(token.clone());
    let bus = connect_bus(&config).await?;
    let status: Arc<dyn StatusApi> = Arc::new(GrpcStatus::connect_lazy(&config.status.url, config.status.timeouts())?);
    let store = open_store(&config, config.embedder.dimension(), false, true).await?;
    let mut tasks = JoinSet::new();
    let stage = memsy_indexer::IndexerStage::new(store.clone(), status, (&config.indexer).into())
        .with_erasures(Erasures::open(&bus).await?);
    spawn_indexer(&mut tasks, &bus, Arc::new(stage), &config, &token).await?;
    ops::spawn(&mut tasks, &config, bus, &token, vec![ops::store_check(store)])?;
    Services { token, tasks }.wait().await
}

async fn status(config: Arc<Config>) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    stop_on_signal(token.clone());
    let bus = connect_bus(&config).await?;
    let store: Arc<dyn StatusApi> = Arc::new(status_store(&config).await?);
    let grpc = addr(&config.status.grpc_addr, "status.grpc_addr")?;
    let mut tasks = JoinSet::new();
    let (t, checked) = (token.clone(), store.clone());
    tasks.spawn(async move { memsy_status::serve(grpc, store, t.cancelled_owned()).await.map_err(Into::into) });
    ops::spawn(&mut tasks, &config, bus, &token, vec![ops::status_check(checked)])?;
    Services { token, tasks }.wait().await
}

async fn keys(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let bus = connect_bus(config).await?;
    let registry = KeyRegistry::open_unwatched(&bus).await?;
    match command {
        KeysCommand::Create { org, scopes, name } => {
            if org.trim().is_empty() || org.chars().count() > config.limits.max_id_len {
                bail!("--org must be 1 to {} characters", config.limits.max_id_len);
            }
            let scopes = memsy_gateway::auth::parse_scopes(&scopes).map_err(anyhow::Error::msg)?;
            let (raw, record) = registry.create(&org, &name, &scopes, None).await?;
            info!(key_id = record.key_id, org, "created api key");
            println!("{raw}");
        }
        KeysCommand::List { org } => {
            let registry = KeyRegistry::open(&bus).await?;
            // The watch fills the cache asynchronously; give it a moment.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            for k in registry.list(&org).await {
                println!("{}", serde_json::to_string(&k)?);
            }
        }
        KeysCommand::Revoke { org, key_id } => {
            let registry = KeyRegistry::open(&bus).await?;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if !registry.revoke(&org, &key_id).await? {
                bail!("no key {key_id} in org {org}");
            }
            println!("revoked {key_id}");
        }
    }
    Ok(())
}
