//! Event state in Redis: one string key per event,
//! `memsy:status:<org>:<event_id>` → `pending` | `completed` | `failed:<reason>`,
//! each with the configured TTL. The org is part of the key, so another
//! org's ids are simply absent.

use std::time::Duration;

use async_trait::async_trait;
use memsy_core::config::CallTimeouts;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tracing::{info_span, Instrument};

use crate::{EventState, Status, StatusApi, StatusError};

#[derive(Clone)]
pub struct StatusStore {
    conn: ConnectionManager,
    ttl_secs: u64,
}

fn key(org_id: &str, event_id: &str) -> String {
    // Length-prefix the org so that an org id containing ':' cannot collide.
    format!("memsy:status:{}:{org_id}:{event_id}", org_id.len())
}

/// A reconnecting Redis connection whose calls time out: a Redis that stops
/// answering must turn into errors (503s, retries), never into hung requests.
pub async fn redis_connection(url: &str, timeouts: CallTimeouts) -> Result<ConnectionManager, StatusError> {
    let client = redis::Client::open(url)?;
    // A call waits for the reconnection in progress, and the client's
    // default (six retries, exponentially apart) held calls for minutes
    // while Redis was down: one attempt per call instead, so that a call
    // fails within the connection timeout and the next call tries again.
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(timeouts.connect)
        .set_response_timeout(timeouts.call)
        .set_number_of_retries(0);
    tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager_with_config(cfg))
        .await
        .map_err(|_| StatusError::Unavailable(format!("redis at {url} did not answer")))?
        .map_err(Into::into)
}

/// Records a state unless the event already completed: a late failure
/// report (a redelivery during an outage) must not undo a stored event.
const MARK_FAILED: &str = r#"
if redis.call('GET', KEYS[1]) == 'completed' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"#;

/// Marks an event pending again unless it completed meanwhile: for a
/// dead-lettered event sent back through the pipeline, whose `failed` a
/// plain pending mark (`SET … NX`) would keep.
const REQUEUE: &str = r#"
if redis.call('GET', KEYS[1]) == 'completed' then return 0 end
redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[1])
return 1
"#;

/// Adds to `pipe` the commands that mark `event_ids` pending (their replies
/// ignored): `SET … NX`, so a state already recorded is never overwritten.
/// For the gateway, which writes the marks in the same round trip as the
/// usage count of the events it accepts.
pub fn mark_pending(pipe: &mut redis::Pipeline, org_id: &str, event_ids: &[String], ttl_secs: u64) {
    for id in event_ids {
        pipe.cmd("SET").arg(key(org_id, id)).arg("pending").arg("EX").arg(ttl_secs).arg("NX").ignore();
    }
}

/// Deletes the state of `event_ids` of `org_id` (for erasure); answers how
/// many were recorded.
pub async fn forget(conn: &mut ConnectionManager, org_id: &str, event_ids: &[String]) -> Result<u64, StatusError> {
    let mut total = 0;
    for ids in event_ids.chunks(500) {
        let keys: Vec<String> = ids.iter().map(|id| key(org_id, id)).collect();
        total += conn.del::<_, u64>(keys).await?;
    }
    Ok(total)
}

/// Deletes the state of every event of `org_id` (for an org's purge);
/// answers how many were recorded.
pub async fn forget_org(conn: &mut ConnectionManager, org_id: &str) -> Result<u64, StatusError> {
    let prefix = key(org_id, "");
    Ok(delete_matching(conn, &format!("{}*", glob_escape(&prefix))).await?)
}

/// `s` as a literal in a Redis glob pattern (`SCAN … MATCH`).
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Deletes every key matching the glob `pattern`, a `SCAN` page at a time
/// (never `KEYS`, which blocks the server); answers how many were deleted.
/// The cost is a walk of the whole keyspace.
pub async fn delete_matching(conn: &mut ConnectionManager, pattern: &str) -> Result<u64, redis::RedisError> {
    let mut cursor: u64 = 0;
    let mut total = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(conn).await?;
        if !keys.is_empty() {
            total += conn.del::<_, u64>(keys).await?;
        }
        if next == 0 {
            return Ok(total);
        }
        cursor = next;
    }
}

impl StatusStore {
    pub async fn connect(url: &str, ttl_secs: u64, timeouts: CallTimeouts) -> Result<Self, StatusError> {
        Ok(Self { conn: redis_connection(url, timeouts).await?, ttl_secs })
    }

    /// Marks `event_ids` pending even over `failed` (never over
    /// `completed`): they are about to go through the pipeline again.
    pub async fn requeue(&self, org_id: &str, event_ids: &[String]) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        let script = redis::Script::new(REQUEUE);
        for id in event_ids {
            script.key(key(org_id, id)).arg(self.ttl_secs).invoke_async::<i64>(&mut conn).await?;
        }
        Ok(())
    }

    /// Marks `event_ids` pending whatever they read (completed included):
    /// they are being processed again (`memsy replay`), and whoever waits
    /// for them must see them pending until the indexer is done.
    pub async fn reopen(&self, org_id: &str, event_ids: &[String]) -> Result<(), StatusError> {
        if event_ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for id in event_ids {
            pipe.cmd("SET").arg(key(org_id, id)).arg("pending").arg("EX").arg(self.ttl_secs).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

#[async_trait]
impl StatusApi for StatusStore {
    async fn mark(
        &self,
        org_id: &str,
        event_ids: &[String],
        state: EventState,
        reason: &str,
    ) -> Result<(), StatusError> {
        let span = info_span!("status mark", org_id, events = event_ids.len(), state = state.as_str_name());
        self.write(org_id, event_ids, state, reason).instrument(span).await
    }

    async fn get(&self, org_id: &str, event_ids: &[String]) -> Result<Vec<Status>, StatusError> {
        if event_ids.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<String> = event_ids.iter().map(|id| key(org_id, id)).collect();
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = conn.mget(&keys).await?;
        Ok(event_ids
            .iter()
            .zip(values)
            .map(|(id, v)| {
                let (state, reason) = match v.as_deref() {
                    Some("pending") => (EventState::Pending, String::new()),
                    Some("completed") => (EventState::Completed, String::new()),
                    Some(s) if s.starts_with("failed:") => (EventState::Failed, s["failed:".len()..].to_string()),
                    _ => (EventState::NotFound, String::new()),
                };
                Status { event_id: id.clone(), state, reason }
            })
            .collect())
    }

    async fn ready(&self) -> Result<(), StatusError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

impl StatusStore {
    async fn write(
        &self,
        org_id: &str,
        event_ids: &[String],
        state: EventState,
        reason: &str,
    ) -> Result<(), StatusError> {
        let value = match state {
            EventState::Pending => "pending".to_string(),
            EventState::Completed => "completed".to_string(),
            EventState::Failed => format!("failed:{reason}"),
            other => return Err(StatusError::Invalid(format!("cannot record state {other:?}"))),
        };
        let mut conn = self.conn.clone();
        if state == EventState::Failed {
            let script = redis::Script::new(MARK_FAILED);
            for id in event_ids {
                script.key(key(org_id, id)).arg(&value).arg(self.ttl_secs).invoke_async::<i64>(&mut conn).await?;
            }
            return Ok(());
        }
        let mut pipe = redis::pipe();
        if state == EventState::Pending {
            mark_pending(&mut pipe, org_id, event_ids, self.ttl_secs);
        } else {
            for id in event_ids {
                pipe.cmd("SET").arg(key(org_id, id)).arg(&value).arg("EX").arg(self.ttl_secs).ignore();
            }
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}
