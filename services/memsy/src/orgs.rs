//! `memsy orgs purge --org ORG`: erases a whole tenant (see
//! `memsy_gateway::erasure`) and prints what it removed, one JSON object.

use anyhow::{bail, Context};
use memsy_bus::Erasures;
use memsy_core::Config;
use memsy_gateway::{Dedup, Eraser, Hierarchy, KeyRegistry};

use crate::cli::OrgsCommand;

pub async fn run(config: &Config, command: OrgsCommand) -> anyhow::Result<()> {
    let OrgsCommand::Purge { org, data_dir } = command;
    let mut config = config.clone();
    if let Some(dir) = data_dir {
        config.http.data_dir = dir;
    }
    let config = &config;
    if org.trim().is_empty() || org.chars().count() > config.limits.max_id_len {
        bail!("--org must be 1 to {} characters", config.limits.max_id_len);
    }
    let bus = super::connect_bus(config).await?;
    // The embedded store may be opened here only while no `memsy serve`
    // holds the data directory.
    let store = super::open_store(config, config.embedder.dimension(), true, true).await?;
    let dedup = Dedup::connect(&config.redis.url, config.limits.dedup_window_secs, config.redis.timeouts())
        .await
        .with_context(|| format!("connecting to Redis at {}", config.redis.url))?;
    let eraser = Eraser {
        erasures: Erasures::open(&bus).await?,
        bus: bus.clone(),
        store,
        dedup,
        min_holders: config.indexer.promotion_min_actors.max(2),
    };
    let keys = KeyRegistry::open_unwatched(&bus).await?;
    let hierarchy = Hierarchy::open(&bus).await?;
    let purged = eraser
        .purge_org(&org, &keys, &hierarchy)
        .await
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))
        .with_context(|| format!("purging org {org}"))?;
    println!("{}", serde_json::to_string(&purged)?);
    Ok(())
}
