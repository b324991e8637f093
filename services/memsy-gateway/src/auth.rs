//! API keys. A key is `msy_` + 40 random hex characters; only its SHA-256
//! is stored, in the JetStream key-value bucket `memsy_keys` (one entry per
//! key, `h.<sha256>`). Every gateway watches the bucket, so a key created
//! or revoked anywhere is seen everywhere within milliseconds; a key not
//! yet in the local cache is looked up directly, so a brand-new key works at
//! once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use axum::http::HeaderMap;
use futures::StreamExt;
use memsy_bus::topology::KEYS_BUCKET;
use memsy_bus::{Bus, BusError};
use memsy_core::ids::sha256_hex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::ApiError;

pub const SCOPES: [&str; 3] = ["read", "write", "admin"];

/// What is stored for a key (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub org_id: String,
    pub name: String,
    /// The first characters of the raw key, for people to recognise it by.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    /// RFC 3339; past it the key is refused like a revoked one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl ApiKeyRecord {
    /// `admin` includes `read` and `write`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }

    pub fn is_expired(&self) -> bool {
        self.expires_at.as_deref().and_then(memsy_core::time::parse_ts).is_some_and(|t| t <= chrono::Utc::now())
    }
}

#[derive(Clone)]
pub struct KeyRegistry {
    kv: kv::Store,
    cache: Arc<RwLock<HashMap<String, ApiKeyRecord>>>,
}

fn entry_key(hash: &str) -> String {
    format!("h.{hash}")
}

pub fn hash_key(raw: &str) -> String {
    sha256_hex(&[raw])
}

impl KeyRegistry {
    /// Opens the bucket without watching it (for the command line).
    pub async fn open_unwatched(bus: &Bus) -> Result<Self, BusError> {
        let kv = bus.kv(KEYS_BUCKET, 1).await?;
        Ok(Self { kv, cache: Arc::default() })
    }

    /// Opens the bucket, loads every key and keeps the cache current.
    pub async fn open(bus: &Bus) -> Result<Self, BusError> {
        let reg = Self::open_unwatched(bus).await?;
        let mut watch = reg
            .kv
            .watch_with_history(">")
            .await
            .map_err(|e| BusError::Unavailable(format!("watching {KEYS_BUCKET}: {e}")))?;
        let cache = reg.cache.clone();
        let kvs = reg.kv.clone();
        tokio::spawn(async move {
            loop {
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(e) => apply(&cache, e).await,
                        Err(err) => warn!(error = %err, "key watch error"),
                    }
                }
                // The watch ends when the connection drops; start again with
                // history so that nothing missed meanwhile is lost.
                warn!("key watch ended; re-subscribing");
                tokio::time::sleep(Duration::from_millis(500)).await;
                match kvs.watch_with_history(">").await {
                    Ok(w) => {
                        cache.write().await.clear();
                        watch = w;
                    }
                    Err(err) => warn!(error = %err, "key watch re-subscribe failed"),
                }
            }
        });
        Ok(reg)
    }

    /// Mints a key; returns the raw key (shown once) and its record.
    pub async fn create(
        &self,
        org_id: &str,
        name: &str,
        scopes: &[String],
        expires_at: Option<String>,
    ) -> Result<(String, ApiKeyRecord), BusError> {
        let mut bytes = [0u8; 20];
        rand::rng().fill_bytes(&mut bytes);
        let raw = format!("msy_{}", hex::encode(bytes));
        let hash = hash_key(&raw);
        let record = ApiKeyRecord {
            key_id: ulid::Ulid::new().to_string(),
            org_id: org_id.to_string(),
            name: name.to_string(),
            prefix: raw[..12].to_string(),
            scopes: scopes.to_vec(),
            created_at: memsy_core::time::now_rfc3339(),
            expires_at,
        };
        let value = serde_json::to_vec(&record).expect("record serialises");
        self.kv
            .put(entry_key(&hash), value.into())
            .await
            .map_err(|e| BusError::Unavailable(format!("storing key: {e}")))?;
        self.cache.write().await.insert(hash, record.clone());
        info!(key_id = record.key_id, org_id, "api key created");
        Ok((raw, record))
    }

    /// Revokes a key of `org_id` by id; false when there is no such key.
    pub async fn revoke(&self, org_id: &str, key_id: &str) -> Result<bool, BusError> {
        let hash = {
            let cache = self.cache.read().await;
            cache.iter().find(|(_, r)| r.key_id == key_id && r.org_id == org_id).map(|(h, _)| h.clone())
        };
        let Some(hash) = hash else { return Ok(false) };
        self.kv.delete(entry_key(&hash)).await.map_err(|e| BusError::Unavailable(format!("revoking key: {e}")))?;
        self.cache.write().await.remove(&hash);
        Ok(true)
    }

    /// Deletes every key of `org_id` (an org's purge) and answers their
    /// records. Read from the bucket itself, not the cache, so that a
    /// command line that has not watched the bucket finds them all.
    pub async fn remove_org(&self, org_id: &str) -> Result<Vec<ApiKeyRecord>, BusError> {
        let unavailable = |e: &dyn std::fmt::Display| BusError::Unavailable(format!("listing keys: {e}"));
        let mut names = self.kv.keys().await.map_err(|e| unavailable(&e))?;
        let mut removed = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(|e| unavailable(&e))?;
            let Some(value) = self.kv.get(&name).await.map_err(|e| unavailable(&e))? else { continue };
            let Ok(record) = serde_json::from_slice::<ApiKeyRecord>(&value) else { continue };
            if record.org_id != org_id {
                continue;
            }
            self.kv.purge(&name).await.map_err(|e| BusError::Unavailable(format!("deleting key: {e}")))?;
            if let Some(hash) = name.strip_prefix("h.") {
                self.cache.write().await.remove(hash);
            }
            removed.push(record);
        }
        Ok(removed)
    }

    /// The record of a raw key, if it is a live, unexpired key.
    pub async fn lookup(&self, raw: &str) -> Result<Option<ApiKeyRecord>, BusError> {
        let hash = hash_key(raw);
        let cached = self.cache.read().await.get(&hash).cloned();
        let record = match cached {
            Some(r) => Some(r),
            // Not cached: maybe created a moment ago elsewhere.
            None => match self.kv.get(entry_key(&hash)).await {
                Ok(Some(v)) => serde_json::from_slice::<ApiKeyRecord>(&v).ok(),
                Ok(None) => None,
                Err(e) => return Err(BusError::Unavailable(format!("reading key: {e}"))),
            },
        };
        Ok(record.filter(|r| !r.is_expired()))
    }

    /// Every live key of an org.
    pub async fn list(&self, org_id: &str) -> Vec<ApiKeyRecord> {
        let mut v: Vec<_> = self.cache.read().await.values().filter(|r| r.org_id == org_id).cloned().collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        v
    }
}

async fn apply(cache: &RwLock<HashMap<String, ApiKeyRecord>>, e: kv::Entry) {
    let Some(hash) = e.key.strip_prefix("h.") else { return };
    match e.operation {
        Operation::Put => match serde_json::from_slice::<ApiKeyRecord>(&e.value) {
            Ok(r) => {
                cache.write().await.insert(hash.to_string(), r);
            }
            Err(err) => warn!(key = e.key, error = %err, "ignoring malformed key record"),
        },
        Operation::Delete | Operation::Purge => {
            cache.write().await.remove(hash);
        }
    }
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let v = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing Authorization header: send 'Authorization: Bearer <api key>'")
    })?;
    let v = v.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let token = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer <api key>'"))?
        .trim();
    if token.is_empty() {
        return Err(ApiError::unauthorized("empty API key"));
    }
    Ok(token)
}

/// Parses `read,write,admin`; unknown scopes are an error.
pub fn parse_scopes(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !SCOPES.contains(&part) {
            return Err(format!("unknown scope '{part}' (expected read, write or admin)"));
        }
        if !out.iter().any(|x| x == part) {
            out.push(part.to_string());
        }
    }
    if out.is_empty() {
        return Err("at least one scope is required".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_admin_implies_all() {
        assert_eq!(parse_scopes("read, write").unwrap(), vec!["read", "write"]);
        assert!(parse_scopes("read,root").is_err());
        assert!(parse_scopes("").is_err());
        let r = ApiKeyRecord {
            key_id: "k".into(),
            org_id: "o".into(),
            name: "n".into(),
            prefix: "p".into(),
            scopes: vec!["admin".into()],
            created_at: "t".into(),
            expires_at: None,
        };
        assert!(r.has_scope("read") && r.has_scope("write"));
        let ro = ApiKeyRecord { scopes: vec!["read".into()], ..r };
        assert!(ro.has_scope("read") && !ro.has_scope("write") && !ro.has_scope("admin"));
        let past = ApiKeyRecord { expires_at: Some("2020-01-01T00:00:00Z".into()), ..ro.clone() };
        let future = ApiKeyRecord { expires_at: Some("2999-01-01T00:00:00Z".into()), ..ro };
        assert!(past.is_expired() && !future.is_expired());
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert("authorization", "Bearer msy_abc".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), "msy_abc");
        h.insert("authorization", "Basic xyz".parse().unwrap());
        assert!(bearer(&h).is_err());
    }
}
