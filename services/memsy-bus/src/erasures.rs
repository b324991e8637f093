//! Erasure markers: which actors of an org were erased, or when the whole
//! org was purged, so that events already on their way when that happened
//! cannot bring anything back. One entry per org in the `memsy_erasures`
//! bucket (`o.<org>`), kept forever: a stage reads one entry per org of a
//! batch, however many actors the batch holds.
//!
//! An event is covered when it was ingested at or before the marker of its
//! actor (or of its org): an actor id used again after the erasure is a new
//! actor from then on.

use std::collections::BTreeMap;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use chrono::{DateTime, Utc};
use memsy_core::ids::subject_token;
use serde::{Deserialize, Serialize};

use crate::topology::ERASURES_BUCKET;
use crate::{Bus, BusError};

/// Writers of one org's entry retry this many times when another writer
/// got there first.
const CAS_ATTEMPTS: usize = 20;

/// One org's markers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgErasures {
    /// When the whole org was last purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<DateTime<Utc>>,
    /// Actor id → when it was last erased.
    #[serde(default)]
    pub actors: BTreeMap<String, DateTime<Utc>>,
}

impl OrgErasures {
    /// Whether an event of `actor_id` ingested at `ingested_at` (RFC 3339)
    /// predates an erasure of its actor or org. An event whose time does not
    /// parse is covered by any marker of its actor: erasure errs on the side
    /// of forgetting.
    pub fn covers(&self, actor_id: &str, ingested_at: &str) -> bool {
        let marker = [self.org, self.actors.get(actor_id).copied()].into_iter().flatten().max();
        let Some(marker) = marker else { return false };
        memsy_core::time::parse_ts(ingested_at).is_none_or(|t| t <= marker)
    }

    pub fn is_empty(&self) -> bool {
        self.org.is_none() && self.actors.is_empty()
    }
}

/// The markers bucket; cheap to clone.
#[derive(Clone)]
pub struct Erasures {
    kv: kv::Store,
}

fn entry_key(org_id: &str) -> String {
    format!("o.{}", subject_token(org_id))
}

impl Erasures {
    pub async fn open(bus: &Bus) -> Result<Self, BusError> {
        Ok(Self { kv: bus.kv(ERASURES_BUCKET, 1).await? })
    }

    /// The org's markers (none: empty).
    pub async fn of_org(&self, org_id: &str) -> Result<OrgErasures, BusError> {
        Ok(self.entry(org_id).await?.map(|(e, _)| e).unwrap_or_default())
    }

    /// Records that `actor_id` of `org_id` was erased at `at`.
    pub async fn mark_actor(&self, org_id: &str, actor_id: &str, at: DateTime<Utc>) -> Result<(), BusError> {
        self.change(org_id, |e| {
            e.actors.insert(actor_id.to_string(), at);
        })
        .await
    }

    /// Records that the whole org was purged at `at`; its actor markers are
    /// older, so they are dropped.
    pub async fn mark_org(&self, org_id: &str, at: DateTime<Utc>) -> Result<(), BusError> {
        self.change(org_id, |e| {
            e.org = Some(at);
            e.actors.clear();
        })
        .await
    }

    async fn entry(&self, org_id: &str) -> Result<Option<(OrgErasures, u64)>, BusError> {
        let Some(e) = self.kv.entry(entry_key(org_id)).await.map_err(BusError::unavailable)? else {
            return Ok(None);
        };
        if e.operation != kv::Operation::Put {
            return Ok(None);
        }
        let markers = serde_json::from_slice(&e.value)
            .map_err(|err| BusError::Rejected(format!("erasure markers of org {org_id:?} are malformed: {err}")))?;
        Ok(Some((markers, e.revision)))
    }

    /// Read, change, write back expecting the revision read.
    async fn change(&self, org_id: &str, change: impl Fn(&mut OrgErasures)) -> Result<(), BusError> {
        let key = entry_key(org_id);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.entry(org_id).await?;
            let mut markers = current.as_ref().map(|(m, _)| m.clone()).unwrap_or_default();
            change(&mut markers);
            let value = serde_json::to_vec(&markers).map_err(BusError::unavailable)?;
            match current {
                Some((_, revision)) => match self.kv.update(&key, value.into(), revision).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => return Err(BusError::unavailable(e)),
                },
                None => match self.kv.create(&key, value.into()).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(BusError::unavailable(e)),
                },
            }
        }
        Err(BusError::Unavailable(format!("the erasure markers of org {org_id:?} kept changing; try again")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        memsy_core::time::parse_ts(s).unwrap()
    }

    #[test]
    fn a_marker_covers_what_was_ingested_up_to_it() {
        let mut m = OrgErasures::default();
        assert!(!m.covers("alice", "2026-01-01T00:00:00Z"));
        m.actors.insert("alice".into(), at("2026-01-02T00:00:00Z"));
        assert!(m.covers("alice", "2026-01-01T00:00:00Z"));
        assert!(m.covers("alice", "2026-01-02T00:00:00Z"));
        assert!(!m.covers("alice", "2026-01-03T00:00:00Z"), "the id used again afterwards");
        assert!(!m.covers("bob", "2026-01-01T00:00:00Z"));
        assert!(m.covers("alice", "not a time"));
        m.org = Some(at("2026-01-05T00:00:00Z"));
        assert!(m.covers("bob", "2026-01-04T00:00:00Z"));
        assert!(m.covers("alice", "2026-01-03T00:00:00Z"));
        assert!(!m.covers("bob", "2026-01-06T00:00:00Z"));
    }
}
