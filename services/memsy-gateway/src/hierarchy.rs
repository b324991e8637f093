//! Org, role and team records: a name, a focus and the promotion prompt
//! derived from them, one record per org and any number of roles and teams
//! per org. They are only records: deleting one leaves memories untouched.
//!
//! Records live in the JetStream key-value bucket `memsy_hierarchy`
//! (history 1) under `o.<org>`, `r.<org>.<role_id>` and `t.<org>.<team_id>`,
//! `<org>` being [`subject_token`] of the org id. Every write is
//! compare-and-set on the entry's revision, so two gateways editing one
//! record never lose an update silently.

pub mod api;
pub mod prompt;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{push, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use futures::StreamExt;
use memsy_bus::topology::HIERARCHY_BUCKET;
use memsy_bus::{Bus, BusError};
use memsy_core::ids::subject_token;
use memsy_core::time::now_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{error, warn};

pub use prompt::{Level, LlmGenerator, PromptGenerator, PromptMeta, Subject, TemplateGenerator};

use crate::{ApiError, Component};

pub const MAX_NAME: usize = 200;
pub const MAX_FOCUS: usize = 2000;
pub const MAX_PROMPT: usize = 8000;

/// Compare-and-set attempts before a write gives up with 409.
const CAS_ATTEMPTS: usize = 5;
/// Longest a listing may take; the broker answers in milliseconds, so past
/// this something is wrong and the caller gets a 503 rather than a hang.
const SCAN_TIMEOUT: Duration = Duration::from_secs(5);

/// One stored org, role or team record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub level: Level,
    pub org_id: String,
    /// The role or team id; the org id for an org record.
    pub id: String,
    pub name: String,
    pub focus: String,
    pub promotion_prompt: String,
    pub prompt_meta: PromptMeta,
    pub created_at: String,
    pub updated_at: String,
}

impl Record {
    /// The record as the API returns it (`OrgResource`, `RoleResource`, `TeamResource`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "org_id": self.org_id,
            "name": self.name,
            "focus": self.focus,
            "promotion_prompt": self.promotion_prompt,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "prompt_meta": self.prompt_meta,
        });
        match self.level {
            Level::Org => {}
            Level::Role => v["role_id"] = json!(self.id),
            Level::Team => v["team_id"] = json!(self.id),
        }
        v
    }

    fn subject(&self) -> Subject<'_> {
        Subject { level: self.level, org_id: &self.org_id, name: &self.name, focus: &self.focus }
    }
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct Patch {
    pub name: Option<String>,
    pub focus: Option<String>,
    pub promotion_prompt: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HierarchyError {
    #[error("the record already exists")]
    Exists,
    #[error("the record kept changing concurrently")]
    Contended,
    #[error("{0}")]
    Unavailable(String),
    #[error("generating the promotion prompt failed: {0}")]
    Prompt(String),
}

fn unavailable(e: impl std::fmt::Display) -> HierarchyError {
    HierarchyError::Unavailable(e.to_string())
}

impl From<HierarchyError> for ApiError {
    fn from(e: HierarchyError) -> Self {
        match e {
            HierarchyError::Exists => ApiError::conflict("already_exists", e.to_string()),
            HierarchyError::Contended => ApiError::conflict("concurrent_update", format!("{e}; retry the request")),
            HierarchyError::Unavailable(msg) => ApiError::unavailable(Component::Nats, msg),
            HierarchyError::Prompt(msg) => ApiError::unavailable(Component::Llm, msg),
        }
    }
}

/// Role and team ids are minted here: `role_` / `team_` and a lower-case
/// ULID, which is a searchable id and a key-value key token. The ULIDs are
/// monotonic within the process, so that records created in the same
/// millisecond still list in creation order (lists sort by `created_at`,
/// then id).
pub fn new_id(level: Level) -> String {
    static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let ulid = IDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .generate()
        // Only past 2^80 ids in one millisecond; a random one is then as good.
        .unwrap_or_else(|_| ulid::Ulid::new());
    format!("{}_{}", level.as_str(), ulid.to_string().to_lowercase())
}

/// Whether `id` can be a role or team id minted by [`new_id`]. Anything else
/// cannot name a stored record (and could not be a bucket key), so it is a
/// plain 404 without asking the broker.
pub fn is_record_id(level: Level, id: &str) -> bool {
    let Some(rest) = id.strip_prefix(level.as_str()).and_then(|r| r.strip_prefix('_')) else { return false };
    !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The bucket key of a record; None for an id that cannot exist.
fn entry_key(level: Level, org_id: &str, id: &str) -> Option<String> {
    let org = subject_token(org_id);
    match level {
        Level::Org => Some(format!("o.{org}")),
        Level::Role | Level::Team if is_record_id(level, id) => Some(format!("{}.{org}.{id}", prefix(level))),
        _ => None,
    }
}

fn prefix(level: Level) -> &'static str {
    match level {
        Level::Org => "o",
        Level::Role => "r",
        Level::Team => "t",
    }
}

/// The org, role and team records of every org.
#[derive(Clone)]
pub struct Hierarchy {
    kv: kv::Store,
    client: async_nats::Client,
    prompts: Arc<dyn PromptGenerator>,
}

impl Hierarchy {
    /// Opens (creating if needed) the bucket; prompts come from the template.
    pub async fn open(bus: &Bus) -> Result<Self, BusError> {
        let kv = bus.kv(HIERARCHY_BUCKET, 1).await?;
        Ok(Self { kv, client: bus.jetstream().client(), prompts: Arc::new(TemplateGenerator) })
    }

    /// Replaces the prompt generator (for an LLM-backed one).
    pub fn with_generator(mut self, prompts: Arc<dyn PromptGenerator>) -> Self {
        self.prompts = prompts;
        self
    }

    /// Whether generating a prompt spends the org's `llm_tokens`.
    pub fn uses_llm(&self) -> bool {
        self.prompts.uses_llm()
    }

    async fn generate(&self, subject: Subject<'_>) -> Result<prompt::Generated, HierarchyError> {
        self.prompts.generate(subject).await.map_err(HierarchyError::Prompt)
    }

    /// The live record at `key` and its revision.
    async fn entry(&self, key: &str) -> Result<Option<(Record, u64)>, HierarchyError> {
        let Some(e) = self.kv.entry(key).await.map_err(unavailable)? else { return Ok(None) };
        if e.operation != Operation::Put {
            return Ok(None);
        }
        match serde_json::from_slice::<Record>(&e.value) {
            Ok(r) => Ok(Some((r, e.revision))),
            Err(err) => {
                // Only memsy writes this bucket; a record it cannot read is
                // damage an operator has to look at, not a missing record.
                error!(key, error = %err, "malformed hierarchy record");
                Err(HierarchyError::Unavailable(format!("record {key} is malformed")))
            }
        }
    }

    pub async fn get(&self, level: Level, org_id: &str, id: &str) -> Result<Option<Record>, HierarchyError> {
        let Some(key) = entry_key(level, org_id, id) else { return Ok(None) };
        Ok(self.entry(&key).await?.map(|(r, _)| r))
    }

    /// Creates a record with a generated prompt. An org record is keyed by
    /// its org (a second one is [`HierarchyError::Exists`]); a role or team
    /// gets a fresh id.
    pub async fn create(&self, level: Level, org_id: &str, name: &str, focus: &str) -> Result<Record, HierarchyError> {
        let id = match level {
            Level::Org => org_id.to_string(),
            Level::Role | Level::Team => new_id(level),
        };
        let key = entry_key(level, org_id, &id).ok_or_else(|| unavailable(format!("minted an invalid id {id}")))?;
        let generated = self.generate(Subject { level, org_id, name, focus }).await?;
        let now = now_rfc3339();
        let record = Record {
            level,
            org_id: org_id.to_string(),
            id,
            name: name.to_string(),
            focus: focus.to_string(),
            promotion_prompt: generated.prompt,
            prompt_meta: generated.meta,
            created_at: now.clone(),
            updated_at: now,
        };
        let value = serde_json::to_vec(&record).map_err(unavailable)?;
        match self.kv.create(&key, value.into()).await {
            Ok(_) => Ok(record),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Err(HierarchyError::Exists),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Applies `patch`. A changed name or focus regenerates a generated
    /// prompt but keeps one the user wrote; setting `promotion_prompt`
    /// makes the prompt the user's. Nothing changed → nothing written.
    pub async fn update(
        &self,
        level: Level,
        org_id: &str,
        id: &str,
        patch: &Patch,
    ) -> Result<Option<Record>, HierarchyError> {
        self.modify(level, org_id, id, |current| async move {
            let mut next = current.clone();
            if let Some(name) = &patch.name {
                next.name = name.clone();
            }
            if let Some(focus) = &patch.focus {
                next.focus = focus.clone();
            }
            if let Some(p) = &patch.promotion_prompt {
                if *p != current.promotion_prompt || !current.prompt_meta.is_user() {
                    next.promotion_prompt = p.clone();
                    next.prompt_meta = PromptMeta::User { edited_at: now_rfc3339() };
                }
            } else if (next.name != current.name || next.focus != current.focus) && !current.prompt_meta.is_user() {
                let g = self.generate(next.subject()).await?;
                next.promotion_prompt = g.prompt;
                next.prompt_meta = g.meta;
            }
            Ok(next)
        })
        .await
    }

    /// Regenerates the prompt from the name and focus, whoever wrote it.
    pub async fn regenerate(&self, level: Level, org_id: &str, id: &str) -> Result<Option<Record>, HierarchyError> {
        self.modify(level, org_id, id, |current| async move {
            let g = self.generate(current.subject()).await?;
            Ok(Record { promotion_prompt: g.prompt, prompt_meta: g.meta, ..current })
        })
        .await
    }

    /// Read, change, compare-and-set; again from the top when someone else
    /// wrote in between. None when there is no such record.
    async fn modify<F, Fut>(
        &self,
        level: Level,
        org_id: &str,
        id: &str,
        change: F,
    ) -> Result<Option<Record>, HierarchyError>
    where
        F: Fn(Record) -> Fut,
        Fut: std::future::Future<Output = Result<Record, HierarchyError>>,
    {
        let Some(key) = entry_key(level, org_id, id) else { return Ok(None) };
        for _ in 0..CAS_ATTEMPTS {
            let Some((current, revision)) = self.entry(&key).await? else { return Ok(None) };
            let mut next = change(current.clone()).await?;
            if next == current {
                return Ok(Some(current));
            }
            next.updated_at = now_rfc3339();
            let value = serde_json::to_vec(&next).map_err(unavailable)?;
            match self.kv.update(&key, value.into(), revision).await {
                Ok(_) => return Ok(Some(next)),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    warn!(key, "hierarchy record changed concurrently; retrying");
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(HierarchyError::Contended)
    }

    /// Deletes a record; false when there is none.
    pub async fn delete(&self, level: Level, org_id: &str, id: &str) -> Result<bool, HierarchyError> {
        let Some(key) = entry_key(level, org_id, id) else { return Ok(false) };
        for _ in 0..CAS_ATTEMPTS {
            let Some((_, revision)) = self.entry(&key).await? else { return Ok(false) };
            // Expecting the revision read makes "was there a record" and the
            // delete one step: a concurrent delete turns this one into a 404.
            match self.kv.delete_expect_revision(&key, Some(revision)).await {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(HierarchyError::Contended)
    }

    /// Removes every record of `org_id` (its own, its roles' and teams'),
    /// history and all (an org's purge); answers how many entries the
    /// bucket held for them.
    pub async fn purge_org(&self, org_id: &str) -> Result<u64, HierarchyError> {
        let org = subject_token(org_id);
        let mut purged = 0;
        for filter in [format!("o.{org}"), format!("r.{org}.*"), format!("t.{org}.*")] {
            let r = self.kv.stream.purge().filter(format!("{}{filter}", self.kv.prefix)).await.map_err(unavailable)?;
            purged += r.purged;
        }
        Ok(purged)
    }

    /// The org's roles or teams, oldest first (ties by id).
    pub async fn list(&self, level: Level, org_id: &str) -> Result<Vec<Record>, HierarchyError> {
        let filter = match level {
            Level::Org => format!("o.{}", subject_token(org_id)),
            Level::Role | Level::Team => format!("{}.{}.*", prefix(level), subject_token(org_id)),
        };
        let mut records = tokio::time::timeout(SCAN_TIMEOUT, self.scan(&filter))
            .await
            .map_err(|_| unavailable(format!("listing {filter} timed out")))??;
        records.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(records)
    }

    /// The live records under a key pattern. `kv::Store::history` cannot do
    /// this: it refuses wildcard keys and, when nothing matches, waits
    /// forever for a first message. So this is `kv::Store::keys` with a
    /// filter and values: an ordered consumer delivering the last message of
    /// each matching key, stopping when the server says none are pending.
    async fn scan(&self, filter: &str) -> Result<Vec<Record>, HierarchyError> {
        let consumer = self
            .kv
            .stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                description: Some("memsy hierarchy listing".to_string()),
                filter_subject: format!("{}{filter}", self.kv.prefix),
                replay_policy: ReplayPolicy::Instant,
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(vec![]);
        }
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(msg) = messages.next().await {
            let msg = msg.map_err(unavailable)?;
            let done = msg.info().map_err(unavailable)?.pending == 0;
            // A delete or purge marker carries an operation header; a put none.
            let live = msg.headers.as_ref().is_none_or(|h| h.get("KV-Operation").is_none());
            if live {
                match serde_json::from_slice::<Record>(&msg.payload) {
                    Ok(r) => out.push(r),
                    Err(err) => error!(subject = %msg.subject, error = %err, "skipping malformed hierarchy record"),
                }
            }
            if done {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_searchable_and_recognised() {
        for level in [Level::Role, Level::Team] {
            let id = new_id(level);
            assert!(id.starts_with(&format!("{}_", level.as_str())), "{id}");
            assert_eq!(id, id.to_lowercase());
            assert!(memsy_core::ids::is_searchable_id(&id), "{id}");
            assert!(is_record_id(level, &id));
            assert_eq!(entry_key(level, "acme.corp", &id), Some(format!("{}.acme=2Ecorp.{id}", prefix(level))));
        }
        let (a, b) = (new_id(Level::Role), new_id(Level::Role));
        assert!(a < b, "{a} {b}");
        assert!(!is_record_id(Level::Role, &new_id(Level::Team)));
        for bad in ["", "role_", "role", "role_a.b", "role_*", "role_>", "role_a b", "rolex"] {
            assert!(!is_record_id(Level::Role, bad), "{bad}");
            assert_eq!(entry_key(Level::Role, "o", bad), None);
        }
        assert_eq!(entry_key(Level::Org, "a b", "ignored"), Some("o.a=20b".to_string()));
    }

    #[test]
    fn records_render_in_the_sdk_shape() {
        let r = Record {
            level: Level::Role,
            org_id: "acme".into(),
            id: "role_x".into(),
            name: "n".into(),
            focus: "f".into(),
            promotion_prompt: "p".into(),
            prompt_meta: PromptMeta::User { edited_at: "t".into() },
            created_at: "c".into(),
            updated_at: "u".into(),
        };
        let v = r.to_json();
        assert_eq!(v["role_id"], "role_x");
        assert_eq!(v["org_id"], "acme");
        assert_eq!(v["prompt_meta"]["source"], "user");
        assert!(v.get("team_id").is_none() && v.get("level").is_none() && v.get("id").is_none());
        let org = Record { level: Level::Org, id: "acme".into(), ..r.clone() }.to_json();
        assert!(org.get("role_id").is_none());
        let stored: Record = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(stored, r);
    }

    #[test]
    fn errors_map_to_statuses() {
        use axum::http::StatusCode;
        assert_eq!(ApiError::from(HierarchyError::Exists).status, StatusCode::CONFLICT);
        assert_eq!(ApiError::from(HierarchyError::Contended).status, StatusCode::CONFLICT);
        assert_eq!(ApiError::from(HierarchyError::Unavailable("x".into())).status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
