//! The command line.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "memsy", version, about = "A self-hostable server for the Memsy memory API")]
pub struct Cli {
    /// A TOML configuration file (environment variables MEMSY__SECTION__KEY override it).
    #[arg(long, global = true, env = "MEMSY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every service in one process (single node).
    Serve(ServeArgs),
    /// The public HTTP API only.
    Gateway(ServeArgs),
    /// The extraction stage only.
    Extractor(ServeArgs),
    /// The embedding stage and the query-embedding gRPC service.
    Embedder(ServeArgs),
    /// The indexing stage only.
    Indexer(ServeArgs),
    /// The status gRPC service only.
    Status(ServeArgs),
    /// API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Dead letters: the messages a stage gave up on (`MEMSY_DLQ`).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Prints the HTTP API's OpenAPI 3.1 document (the one served at /openapi.json).
    Openapi,
    /// Sends an org's events still in `MEMSY_EVENTS` through extraction,
    /// embedding and indexing again (after a model, rules or prompt change).
    Replay(ReplayArgs),
    /// Whole tenants.
    Orgs {
        #[command(subcommand)]
        command: OrgsCommand,
    },
}

impl Command {
    /// The trace service name when `OTEL_SERVICE_NAME` gives none.
    pub fn service_name(&self) -> &'static str {
        match self {
            Command::Serve(_) => "memsy-serve",
            Command::Gateway(_) => "memsy-gateway",
            Command::Extractor(_) => "memsy-extractor",
            Command::Embedder(_) => "memsy-embedder",
            Command::Indexer(_) => "memsy-indexer",
            Command::Status(_) => "memsy-status",
            Command::Keys { .. } => "memsy-keys",
            Command::Dlq { .. } => "memsy-dlq",
            Command::Openapi => "memsy-openapi",
            Command::Replay(_) => "memsy-replay",
            Command::Orgs { .. } => "memsy-orgs",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API (for a stage: its /livez, /readyz, /metrics).
    /// Default: 127.0.0.1:8080 for serve and gateway; 127.0.0.1:9091 to 9094
    /// for extractor, embedder, indexer and status, so that all can share a host.
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Where the embedded vector store keeps its files [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mints a key and prints it (the only line on stdout); only its hash is stored.
    Create {
        #[arg(long)]
        org: String,
        /// Comma-separated: read, write, admin.
        #[arg(long, default_value = "read,write")]
        scopes: String,
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Lists an org's keys (never the keys themselves).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revokes a key everywhere.
    Revoke {
        #[arg(long)]
        org: String,
        #[arg(long)]
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// One line per letter, oldest first: sequence, time, stage, org,
    /// events, deliveries, reason.
    List {
        /// Only this org's letters.
        #[arg(long)]
        org: Option<String>,
    },
    /// One letter in full, with the event it carries when that decodes.
    Show { seq: u64 },
    /// Sends letters' messages back to the stage that gave up on them,
    /// marks their events pending and deletes the letters.
    Replay(DlqSelection),
    /// Deletes letters.
    Purge(DlqSelection),
}

/// Which letters: the sequences given, or `--all` (of `--org`).
#[derive(Debug, Clone, Args)]
pub struct DlqSelection {
    /// Letter sequences, as `memsy dlq list` shows them.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub seqs: Vec<u64>,
    /// Every letter (of `--org`, when given).
    #[arg(long)]
    pub all: bool,
    /// With `--all`: only this org's letters.
    #[arg(long, requires = "all")]
    pub org: Option<String>,
}

/// Which of an org's retained events `memsy replay` takes.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    #[arg(long)]
    pub org: String,
    /// Only events accepted at or after this time (their `ingested_at`),
    /// RFC 3339 (`2026-12-01T00:00:00Z`) or a date (`2026-12-01`, UTC).
    #[arg(long, value_parser = since)]
    pub since: Option<DateTime<Utc>>,
    /// Only this actor's events.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only count what would be replayed.
    #[arg(long)]
    pub dry_run: bool,
    /// Then wait until no replayed event is pending any more.
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub wait_secs: u64,
}

fn since(s: &str) -> Result<DateTime<Utc>, String> {
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
    date.or_else(|| memsy_core::time::parse_ts(s))
        .ok_or_else(|| format!("'{s}' is not an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"))
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Erases everything of an org: memories, events, status, its messages
    /// in the streams, API keys, usage and hierarchy; prints what it removed.
    /// With the embedded store, stop `memsy serve` first (one process at a time).
    Purge {
        #[arg(long)]
        org: String,
        /// Where the embedded vector store keeps its files (without a Qdrant server).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}
