//! `memsy dlq`: the dead letters for operators. `list` prints one line a
//! letter; `show` one letter with the event it carries; `replay` marks the
//! letters' events pending and sends their messages back to the stage that
//! gave up on them; `purge` drops letters. Letters are addressed by their
//! sequence in `MEMSY_DLQ`, as `list` shows it.

use anyhow::{bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use memsy_bus::{Bus, StoredLetter};
use memsy_core::Config;
use memsy_status::{EventState, StatusApi, StatusStore};

use crate::cli::{DlqCommand, DlqSelection};

pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let bus = super::connect_bus(config).await?;
    match command {
        DlqCommand::List { org } => {
            let letters = bus.dead_letters(org.as_deref()).await?;
            println!(
                "{:<8} {:<20} {:<9} {:<16} {:<27} {:>10}  reason",
                "seq", "time", "stage", "org", "events", "deliveries"
            );
            for l in &letters {
                println!("{}", list_line(l));
            }
        }
        DlqCommand::Show { seq } => {
            let l = bus.dead_letter(seq).await?.with_context(|| format!("no dead letter {seq}"))?;
            print!("{}", show(&l));
        }
        DlqCommand::Replay(which) => {
            let status = super::status_store(config).await?;
            for seq in selected(&bus, &which).await? {
                replay(&bus, &status, seq).await?;
            }
        }
        DlqCommand::Purge(which) => {
            for seq in selected(&bus, &which).await? {
                if !bus.purge_dead_letter(seq).await? {
                    bail!("no dead letter {seq}");
                }
                println!("purged {seq}");
            }
        }
    }
    Ok(())
}

/// The sequences given, or every letter's (of `--org`) with `--all`.
async fn selected(bus: &Bus, which: &DlqSelection) -> anyhow::Result<Vec<u64>> {
    if !which.all {
        return Ok(which.seqs.clone());
    }
    Ok(bus.dead_letters(which.org.as_deref()).await?.iter().map(|l| l.seq).collect())
}

/// Pending first, so that the `completed` of a fast pipeline is never
/// overwritten; back to failed if the message could not be sent.
async fn replay(bus: &Bus, status: &StatusStore, seq: u64) -> anyhow::Result<()> {
    let l = bus.dead_letter(seq).await?.with_context(|| format!("no dead letter {seq}"))?;
    let (org, ids) = (&l.letter.org_id, &l.letter.event_ids);
    if !ids.is_empty() {
        status.requeue(org, ids).await.context("marking the events pending")?;
    }
    if let Err(e) = bus.replay_dead_letter(seq).await {
        let reason = format!("{}: {}", l.letter.stage, l.letter.reason);
        if !ids.is_empty() {
            status.mark(org, ids, EventState::Failed, &reason).await.ok();
        }
        return Err(anyhow::Error::new(e).context(format!("replaying dead letter {seq}")));
    }
    println!("replayed {seq}: {} {} to {} ({})", org_label(&l), events_label(&l), l.letter.stage, l.letter.subject);
    Ok(())
}

fn time(l: &StoredLetter) -> String {
    DateTime::<Utc>::from(l.time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn org_label(l: &StoredLetter) -> &str {
    if l.letter.org_id.is_empty() {
        "-"
    } else {
        &l.letter.org_id
    }
}

fn events_label(l: &StoredLetter) -> String {
    if l.letter.event_ids.is_empty() {
        "-".into()
    } else {
        l.letter.event_ids.join(",")
    }
}

fn list_line(l: &StoredLetter) -> String {
    format!(
        "{:<8} {:<20} {:<9} {:<16} {:<27} {:>10}  {}",
        l.seq,
        time(l),
        l.letter.stage,
        org_label(l),
        events_label(l),
        l.letter.deliveries,
        one_line(&l.letter.reason)
    )
}

fn show(l: &StoredLetter) -> String {
    let d = &l.letter;
    let mut out = format!(
        "seq:        {}\ntime:       {}\nstage:      {}\nsubject:    {}\norg:        {}\nevents:     {}\ndeliveries: {}\nreason:     {}\n",
        l.seq,
        time(l),
        d.stage,
        d.subject,
        org_label(l),
        events_label(l),
        d.deliveries,
        d.reason
    );
    match l.event() {
        Some(e) => {
            let or_dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
            out += &format!(
                "event:\n  org:      {}\n  event id: {}\n  actor:    {}\n  session:  {}\n  role:     {}\n  kind:     {}\n  ts:       {}\n  content:  {}\n",
                e.org_id,
                e.event_id,
                e.actor_id,
                or_dash(Some(&e.session_id)),
                or_dash(e.role_id.as_deref()),
                e.kind,
                e.ts,
                e.content
            );
        }
        None => out += &format!("event:      the payload ({} bytes) does not decode\n", d.payload.len()),
    }
    out
}

/// A reason on one line of the list.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
