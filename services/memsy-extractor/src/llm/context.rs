//! What the model is told besides the event itself: the promotion prompts
//! of the event's org, role and team, and the session's recent events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use memsy_core::ids::subject_token;
use memsy_proto::Event;
use tracing::warn;

use super::truncate;
use crate::ExtractorError;

/// How long a looked-up prompt (or its absence) is trusted. An edited
/// prompt takes effect within this; a batch from one org reads the bucket
/// once per record instead of once per event.
const PROMPT_TTL: Duration = Duration::from_secs(30);
/// Cached lookups kept at most (one per org, role and team key).
const MAX_CACHED_PROMPTS: usize = 10_000;
/// The broker answers in milliseconds; past this something is wrong.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The promotion prompts that apply to one event; `None` where the event
/// names no such record or the record has no prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompts {
    pub org: Option<String>,
    /// (role id, prompt).
    pub role: Option<(String, String)>,
    /// (team id, prompt).
    pub team: Option<(String, String)>,
}

/// Read-only view of the org/role/team records the gateway writes to the
/// `memsy_hierarchy` bucket (keys `o.<org>`, `r.<org>.<role_id>`,
/// `t.<org>.<team_id>`, `<org>` being `subject_token(org_id)`), with a short
/// in-memory cache.
pub(crate) struct PromotionPrompts {
    kv: kv::Store,
    cache: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl PromotionPrompts {
    pub(crate) fn new(kv: kv::Store) -> Self {
        Self { kv, cache: Mutex::new(HashMap::new()) }
    }

    pub(crate) async fn for_event(&self, event: &Event) -> Result<Prompts, ExtractorError> {
        let org = subject_token(&event.org_id);
        let mut prompts = Prompts { org: self.get(format!("o.{org}")).await?, ..Prompts::default() };
        if let Some(role) = event.role_id.as_deref().filter(|r| is_key_token(r)) {
            prompts.role = self.get(format!("r.{org}.{role}")).await?.map(|p| (role.to_string(), p));
        }
        if let Some(team) = event.team_id.as_deref().filter(|t| is_key_token(t)) {
            prompts.team = self.get(format!("t.{org}.{team}")).await?.map(|p| (team.to_string(), p));
        }
        Ok(prompts)
    }

    async fn get(&self, key: String) -> Result<Option<String>, ExtractorError> {
        if let Some((at, prompt)) = self.lock().get(&key) {
            if at.elapsed() < PROMPT_TTL {
                return Ok(prompt.clone());
            }
        }
        let value = tokio::time::timeout(LOOKUP_TIMEOUT, self.kv.get(key.clone()))
            .await
            .map_err(|_| ExtractorError::Unavailable(format!("hierarchy lookup of {key} timed out")))?
            .map_err(|e| ExtractorError::Unavailable(format!("hierarchy lookup of {key}: {e}")))?;
        let prompt = value.and_then(|bytes| match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(record) => {
                record["promotion_prompt"].as_str().map(str::trim).filter(|p| !p.is_empty()).map(String::from)
            }
            Err(e) => {
                // The gateway owns these records; one we cannot read is
                // extracted without its prompt rather than held up.
                warn!(key, error = %e, "malformed hierarchy record; extracting without its prompt");
                None
            }
        });
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED_PROMPTS {
            cache.retain(|_, (at, _)| at.elapsed() < PROMPT_TTL);
            if cache.len() >= MAX_CACHED_PROMPTS {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), prompt.clone()));
        Ok(prompt)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<String>)>> {
        // The map holds no invariant a panicking holder could break.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `id` can be the id part of a bucket key. Role and team ids the
/// gateway mints always can; anything else names no record.
fn is_key_token(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One earlier event of the session, as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recent {
    pub event_id: String,
    pub kind: String,
    pub actor_id: String,
    pub ts: String,
    /// Truncated.
    pub content: String,
    at: Option<DateTime<Utc>>,
}

type SessionKey = (String, String);

struct Slot {
    used: u64,
    events: VecDeque<Recent>,
}

#[derive(Default)]
struct Sessions {
    tick: u64,
    slots: HashMap<SessionKey, Slot>,
    /// `used` tick → session, for evicting the least recently used.
    order: BTreeMap<u64, SessionKey>,
}

/// The last few events of each (org, session), oldest first, for the
/// sessions this replica saw most recently (bounded LRU).
///
/// It lives in the memory of one extractor replica and holds only events
/// that replica has handled: with several replicas, or after a restart, an
/// event may come with a shorter window (or none). That only costs context
/// for resolving references; the event itself is always extracted.
pub(crate) struct SessionWindow {
    inner: Mutex<Sessions>,
    max_sessions: usize,
    per_session: usize,
    content_chars: usize,
}

impl SessionWindow {
    pub(crate) fn new(max_sessions: usize, per_session: usize, content_chars: usize) -> Self {
        Self { inner: Mutex::new(Sessions::default()), max_sessions: max_sessions.max(1), per_session, content_chars }
    }

    /// The session's events seen before `event` (none later than it, never
    /// the event itself, so a redelivery sees what the first attempt saw),
    /// oldest first; then remembers `event` for the ones after it.
    pub(crate) fn observe(&self, event: &Event) -> Vec<Recent> {
        if event.session_id.is_empty() || self.per_session == 0 {
            return Vec::new();
        }
        let at = parse_ts(&event.ts);
        let key = (event.org_id.clone(), event.session_id.clone());
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.tick += 1;
        let tick = s.tick;
        let slot = s.slots.entry(key.clone()).or_insert_with(|| Slot { used: 0, events: VecDeque::new() });
        let before: Vec<Recent> = slot
            .events
            .iter()
            .filter(|r| r.event_id != event.event_id)
            .filter(|r| match (r.at, at) {
                (Some(theirs), Some(ours)) => theirs <= ours,
                _ => true,
            })
            .cloned()
            .collect();
        if !slot.events.iter().any(|r| r.event_id == event.event_id) {
            slot.events.push_back(Recent {
                event_id: event.event_id.clone(),
                kind: event.kind.clone(),
                actor_id: event.actor_id.clone(),
                ts: event.ts.clone(),
                content: truncate(event.content.trim(), self.content_chars),
                at,
            });
            // Oldest first by event time (a stable sort keeps arrival order
            // for equal or unreadable times); keep the newest few, and one
            // more, so that an event redelivered at once still sees the
            // whole window its first attempt saw.
            slot.events.make_contiguous().sort_by_key(|r| r.at);
            while slot.events.len() > self.per_session + 1 {
                slot.events.pop_front();
            }
        }
        let previous = std::mem::replace(&mut slot.used, tick);
        s.order.remove(&previous);
        s.order.insert(tick, key);
        while s.slots.len() > self.max_sessions {
            let Some((_, oldest)) = s.order.pop_first() else { break };
            s.slots.remove(&oldest);
        }
        let skip = before.len().saturating_sub(self.per_session);
        before.into_iter().skip(skip).collect()
    }
}

fn parse_ts(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts.trim()).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, session: &str, ts: &str, content: &str) -> Event {
        Event {
            event_id: id.into(),
            org_id: "acme".into(),
            actor_id: "u".into(),
            session_id: session.into(),
            kind: "user_message".into(),
            content: content.into(),
            ts: ts.into(),
            ..Default::default()
        }
    }

    fn contents(r: &[Recent]) -> Vec<&str> {
        r.iter().map(|r| r.content.as_str()).collect()
    }

    #[test]
    fn the_window_holds_earlier_events_of_the_same_session_oldest_first() {
        let w = SessionWindow::new(10, 3, 10);
        assert!(w.observe(&ev("1", "s1", "2026-01-01T00:00:01Z", "one")).is_empty());
        assert_eq!(contents(&w.observe(&ev("2", "s1", "2026-01-01T00:00:02Z", "two"))), ["one"]);
        assert!(w.observe(&ev("x", "s2", "2026-01-01T00:00:02Z", "other session")).is_empty());
        // Out of order: placed by its time; later events are not shown to it.
        assert_eq!(contents(&w.observe(&ev("0", "s1", "2026-01-01T00:00:00Z", "zero"))), Vec::<&str>::new());
        assert_eq!(contents(&w.observe(&ev("3", "s1", "2026-01-01T00:00:03Z", "three"))), ["zero", "one", "two"]);
        // Bounded per session, and a redelivered event does not see itself.
        assert_eq!(contents(&w.observe(&ev("4", "s1", "2026-01-01T00:00:04Z", "four"))), ["one", "two", "three"]);
        assert_eq!(contents(&w.observe(&ev("4", "s1", "2026-01-01T00:00:04Z", "four"))), ["one", "two", "three"]);
        // Content is truncated.
        assert_eq!(w.observe(&ev("5", "s1", "2026-01-01T00:00:05Z", "x"))[2].content, "four");
        w.observe(&ev("6", "s1", "2026-01-01T00:00:06Z", "a very long message indeed"));
        assert_eq!(w.observe(&ev("7", "s1", "2026-01-01T00:00:07Z", "x")).last().unwrap().content, "a very lo…");
    }

    #[test]
    fn the_least_recently_used_sessions_are_forgotten() {
        let w = SessionWindow::new(2, 6, 100);
        w.observe(&ev("1", "a", "2026-01-01T00:00:01Z", "in a"));
        w.observe(&ev("2", "b", "2026-01-01T00:00:01Z", "in b"));
        w.observe(&ev("3", "a", "2026-01-01T00:00:02Z", "in a again"));
        w.observe(&ev("4", "c", "2026-01-01T00:00:01Z", "in c"));
        assert!(w.observe(&ev("5", "b", "2026-01-01T00:00:02Z", "b")).is_empty(), "b was evicted");
        assert_eq!(contents(&w.observe(&ev("6", "c", "2026-01-01T00:00:02Z", "c"))), ["in c"]);
        assert!(w.observe(&ev("7", "a", "2026-01-01T00:00:03Z", "a")).is_empty(), "a was evicted by b");
        assert_eq!(w.inner.lock().unwrap().slots.len(), 2);
        assert_eq!(w.inner.lock().unwrap().order.len(), 2);
    }

    #[test]
    fn key_tokens() {
        assert!(is_key_token("role_01j9abc"));
        assert!(!is_key_token("a.b"));
        assert!(!is_key_token("*"));
        assert!(!is_key_token(""));
    }
}
