//! The ingest de-duplication window: the same (actor, session, kind,
//! content) sent again within the window gets the original event id back
//! instead of becoming a second event. One Redis round trip per batch:
//! `SET key id NX GET EX window` either claims the key or returns the id
//! that holds it.

use redis::aio::ConnectionManager;

use memsy_core::ids::sha256_hex;

#[derive(Clone)]
pub struct Dedup {
    conn: ConnectionManager,
    window_secs: u64,
}

/// Identity of an event for de-duplication.
pub fn fingerprint(org_id: &str, actor_id: &str, session_id: &str, kind: &str, content: &str) -> String {
    format!("memsy:dedup:{}", sha256_hex(&[org_id, actor_id, session_id, kind, content]))
}

impl Dedup {
    pub async fn connect(
        url: &str,
        window_secs: u64,
        timeouts: memsy_core::config::CallTimeouts,
    ) -> Result<Self, memsy_status::StatusError> {
        Ok(Self { conn: memsy_status::redis_connection(url, timeouts).await?, window_secs })
    }

    /// For each (fingerprint, proposed id): None when the proposal now holds
    /// the window, Some(original) when an earlier event does.
    pub async fn claim(&self, items: &[(String, String)]) -> Result<Vec<Option<String>>, redis::RedisError> {
        if items.is_empty() || self.window_secs == 0 {
            return Ok(vec![None; items.len()]);
        }
        let mut pipe = redis::pipe();
        for (key, id) in items {
            pipe.cmd("SET").arg(key).arg(id).arg("NX").arg("GET").arg("EX").arg(self.window_secs);
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await
    }

    /// Releases the claims of these fingerprints (an erasure); answers how
    /// many were held.
    pub async fn release(&self, fingerprints: &[String]) -> Result<u64, redis::RedisError> {
        let mut conn = self.conn.clone();
        let mut total = 0;
        for keys in fingerprints.chunks(500) {
            total += redis::cmd("DEL").arg(keys).query_async::<u64>(&mut conn).await?;
        }
        Ok(total)
    }

    /// The Redis connection, for the erasure of what else lives there.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ())
    }
}
