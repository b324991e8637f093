//! `memsy replay`: re-extraction. Reads an org's events that the raw-event
//! log `MEMSY_EVENTS` still holds, oldest first, keeps those the options
//! select (`--since` on the time the gateway accepted the event, `--actor`
//! on its actor), marks them pending and publishes them again, so that the
//! current extraction, embedding and indexing run on them; the indexer
//! makes a second pass over an event change nothing but what the new
//! extraction says differently. A progress bar (count, rate, ETA) goes to
//! stderr, one summary line to stdout.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use memsy_bus::{Bus, RetainedEvent};
use memsy_core::Config;
use memsy_status::{EventState, StatusApi, StatusStore};

use crate::cli::ReplayArgs;

/// Events marked pending and published at a time.
const CHUNK: usize = 256;

/// Why an event was left out.
#[derive(Debug, Clone, Copy)]
enum Skip {
    BeforeSince,
    OtherActor,
    Undecodable,
}

/// How many events were left out, by why.
#[derive(Debug, Default)]
struct Skipped {
    before_since: u64,
    other_actor: u64,
    undecodable: u64,
}

impl Skipped {
    fn add(&mut self, why: Skip) {
        match why {
            Skip::BeforeSince => self.before_since += 1,
            Skip::OtherActor => self.other_actor += 1,
            Skip::Undecodable => self.undecodable += 1,
        }
    }

    fn total(&self) -> u64 {
        self.before_since + self.other_actor + self.undecodable
    }
}

pub async fn run(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    if args.org.trim().is_empty() || args.org.chars().count() > config.limits.max_id_len {
        bail!("--org must be 1 to {} characters", config.limits.max_id_len);
    }
    let bus = super::connect_bus(config).await?;
    let status = if args.dry_run { None } else { Some(super::status_store(config).await?) };
    let started = Instant::now();
    // One run's copies share a de-duplication id prefix no earlier run used.
    let run = format!("r{}", chrono::Utc::now().timestamp_millis());
    let mut events = bus.retained_events(&args.org).await.context("reading MEMSY_EVENTS")?;
    let bar = bar(events.count, if args.dry_run { "counting" } else { "replaying" });
    let (mut chunk, mut replayed, mut skipped) = (Vec::new(), Vec::new(), Skipped::default());
    while let Some(e) = events.next().await {
        let e = e.context("reading MEMSY_EVENTS")?;
        bar.inc(1);
        match selected(&args, &e) {
            Ok(()) => chunk.push(e),
            Err(why) => skipped.add(why),
        }
        if chunk.len() >= CHUNK {
            replayed.extend(send(&bus, status.as_ref(), &args.org, &run, std::mem::take(&mut chunk)).await?);
        }
        bar.set_message(format!("{} replayed, {} skipped", replayed.len() + chunk.len(), skipped.total()));
    }
    replayed.extend(send(&bus, status.as_ref(), &args.org, &run, chunk).await?);
    bar.finish_and_clear();
    let took = started.elapsed().as_secs_f64();
    let why = format!(
        "{} before --since, {} of other actors, {} undecodable",
        skipped.before_since, skipped.other_actor, skipped.undecodable
    );
    if args.dry_run {
        println!("would replay {} events of org {}, skip {} ({why})", replayed.len(), args.org, skipped.total());
        return Ok(());
    }
    let settled = match (&status, args.wait) {
        (Some(status), true) => {
            let failed = settle(status, &args.org, &replayed, Duration::from_secs(args.wait_secs)).await?;
            format!(", settled with {failed} failed")
        }
        _ => String::new(),
    };
    println!(
        "replayed {} events of org {}, skipped {} ({why}) in {took:.1} s{settled}",
        replayed.len(),
        args.org,
        skipped.total()
    );
    Ok(())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{what} {{pos}}/{{len}} [{{bar:30}}] {{per_sec}} ETA {{eta}} {{msg}}");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

/// Ok when the options take `e`; else why not.
fn selected(args: &ReplayArgs, e: &RetainedEvent) -> Result<(), Skip> {
    let Some(event) = &e.event else { return Err(Skip::Undecodable) };
    if let Some(since) = args.since {
        // The gateway's time, which a replay leaves as it was; the event's
        // own `ts` is the caller's and may be anything.
        let at = memsy_core::time::parse_ts(&event.ingested_at).or_else(|| memsy_core::time::parse_ts(&event.ts));
        if at.is_none_or(|at| at < since) {
            return Err(Skip::BeforeSince);
        }
    }
    if args.actor.as_ref().is_some_and(|a| *a != event.actor_id) {
        return Err(Skip::OtherActor);
    }
    Ok(())
}

/// Marks the events pending, then publishes them again (a dry run does
/// neither); answers their ids. Pending first, so that a fast pipeline's
/// `completed` comes after it; when the publish fails, the events that
/// read completed or failed before read so again.
async fn send(
    bus: &Bus,
    status: Option<&StatusStore>,
    org: &str,
    run: &str,
    chunk: Vec<RetainedEvent>,
) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = chunk.iter().filter_map(|e| e.event.as_ref().map(|ev| ev.event_id.clone())).collect();
    let Some(status) = status else { return Ok(ids) };
    if chunk.is_empty() {
        return Ok(ids);
    }
    let before = status.get(org, &ids).await.context("reading the events' status")?;
    status.reopen(org, &ids).await.context("marking the events pending")?;
    if let Err(e) = bus.republish_events(run, &chunk).await {
        for s in before {
            if matches!(s.state, EventState::Completed | EventState::Failed) {
                status.mark(org, std::slice::from_ref(&s.event_id), s.state, &s.reason).await.ok();
            }
        }
        return Err(anyhow::Error::new(e).context("publishing the events again"));
    }
    Ok(ids)
}

/// Waits until none of `ids` is pending; answers how many failed.
async fn settle(status: &StatusStore, org: &str, ids: &[String], limit: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + limit;
    let bar = bar(ids.len() as u64, "settling");
    let mut open: Vec<String> = ids.to_vec();
    let mut failed = 0;
    while !open.is_empty() {
        let mut still = Vec::new();
        for part in open.chunks(1_000) {
            for s in status.get(org, part).await.context("reading the events' status")? {
                match s.state {
                    EventState::Pending => still.push(s.event_id),
                    EventState::Failed => failed += 1,
                    _ => {}
                }
            }
        }
        bar.set_position((ids.len() - still.len()) as u64);
        open = still;
        if open.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!("{} replayed events still pending after {} s", open.len(), limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    Ok(failed)
}
