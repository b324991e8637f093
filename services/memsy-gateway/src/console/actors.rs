//! `GET /actors` and `/actors/{actor_id}`. Actors are not stored: they are
//! derived on every read by folding the org's memories (any status) on
//! `actor_id`. Memories without an actor (knowledge promoted to a role,
//! team or the org) belong to no actor.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::Json;
use memsy_core::model::Memory;
use memsy_store::MemoryScan;
use serde_json::{json, Value};

use super::{scan_memories, sort_param};
use crate::caller::{Authorized, Read};
use crate::fields::{page_envelope, Params};
use crate::{ApiError, AppState, Caller};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ActorSort {
    FirstDesc,
    FirstAsc,
    LastDesc,
    IdAsc,
}

/// `sort` values, the default first. There is deliberately no sort by
/// memory count: past the scan cap the counts are under-reported, so a
/// ranking by them would be silently wrong.
const SORTS: [(&str, ActorSort); 4] = [
    ("first_memory_desc", ActorSort::FirstDesc),
    ("first_memory_asc", ActorSort::FirstAsc),
    ("last_memory_desc", ActorSort::LastDesc),
    ("actor_id_asc", ActorSort::IdAsc),
];

/// One derived actor.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Actor {
    pub actor_id: String,
    /// min / max `created_at` of its memories (stored normalised, so they
    /// compare as strings); None only if every memory lacks the time.
    pub first_memory_at: Option<String>,
    pub last_memory_at: Option<String>,
    pub memory_count: u64,
    pub active_memory_count: u64,
    pub scope_levels: BTreeSet<String>,
    pub role_ids: BTreeSet<String>,
    pub team_ids: BTreeSet<String>,
}

impl Actor {
    fn to_json(&self) -> Value {
        json!({
            "actor_id": self.actor_id,
            "first_memory_at": self.first_memory_at,
            "last_memory_at": self.last_memory_at,
            "memory_count": self.memory_count,
            "active_memory_count": self.active_memory_count,
            "scope_levels": self.scope_levels,
            "role_ids": self.role_ids,
            "team_ids": self.team_ids,
        })
    }
}

/// Folds memories into actors, in `actor_id` order.
pub(super) fn fold_actors<'a>(ms: impl IntoIterator<Item = &'a Memory>) -> Vec<Actor> {
    let mut actors: BTreeMap<&str, Actor> = BTreeMap::new();
    for m in ms {
        let Some(id) = m.actor_id.as_deref().filter(|id| !id.is_empty()) else { continue };
        let a = actors.entry(id).or_insert_with(|| Actor { actor_id: id.to_string(), ..Actor::default() });
        a.memory_count += 1;
        if m.status == "active" {
            a.active_memory_count += 1;
        }
        if !m.created_at.is_empty() {
            let at = &m.created_at;
            if a.first_memory_at.as_ref().is_none_or(|f| at < f) {
                a.first_memory_at = Some(at.clone());
            }
            if a.last_memory_at.as_ref().is_none_or(|l| at > l) {
                a.last_memory_at = Some(at.clone());
            }
        }
        if !m.scope_level.is_empty() {
            a.scope_levels.insert(m.scope_level.clone());
        }
        a.role_ids.extend(m.role_id.iter().filter(|r| !r.is_empty()).cloned());
        a.team_ids.extend(m.team_id.iter().filter(|t| !t.is_empty()).cloned());
    }
    actors.into_values().collect()
}

/// Sorts by `sort`, ties broken by `actor_id` ascending so pages are stable.
pub(super) fn sort_actors(actors: &mut [Actor], sort: ActorSort) {
    actors.sort_by(|a, b| {
        let primary = match sort {
            ActorSort::FirstDesc => b.first_memory_at.cmp(&a.first_memory_at),
            ActorSort::FirstAsc => a.first_memory_at.cmp(&b.first_memory_at),
            ActorSort::LastDesc => b.last_memory_at.cmp(&a.last_memory_at),
            ActorSort::IdAsc => std::cmp::Ordering::Equal,
        };
        primary.then_with(|| a.actor_id.cmp(&b.actor_id))
    });
}

/// Case-insensitive substring match on `actor_id`.
pub(super) fn matches_q(a: &Actor, needle_lower: &str) -> bool {
    a.actor_id.to_lowercase().contains(needle_lower)
}

/// An `org_id` parameter may only name the caller's own org: the key decides.
pub(super) fn check_org(p: &Params, caller: &Caller) -> Result<(), ApiError> {
    match p.str("org_id") {
        Some(org) if org != caller.org() => Err(ApiError::forbidden(
            "org_mismatch",
            format!("org_id '{org}' is not the org of this API key; omit org_id to read your own org"),
        )
        .with("org_id", org)),
        _ => Ok(()),
    }
}

/// `GET /actors`: the org's actors, a page at a time.
pub async fn list_actors(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    check_org(&p, &caller)?;
    let sort = sort_param(&p, &SORTS)?;
    let page = p.page(100, 500)?;
    let scanned = scan_memories(&s, &MemoryScan::org(caller.org())).await?;
    let mut actors = fold_actors(&scanned.items);
    if let Some(needle) = p.str("q") {
        let needle = needle.to_lowercase();
        actors.retain(|a| matches_q(a, &needle));
    }
    sort_actors(&mut actors, sort);
    Ok(page_envelope(actors, page, scanned.truncated, Actor::to_json))
}

/// `GET /actors/{actor_id}`: one actor; 404 when it has no memories in the org.
pub async fn get_actor(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    Path(actor_id): Path<String>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    check_org(&p, &caller)?;
    let filter = MemoryScan { actor_id: Some(actor_id.clone()), ..MemoryScan::org(caller.org()) };
    let scanned = scan_memories(&s, &filter).await?;
    let actor = fold_actors(&scanned.items)
        .into_iter()
        .find(|a| a.actor_id == actor_id)
        .ok_or_else(|| ApiError::not_found(format!("actor '{actor_id}' has no memories in this org")))?;
    let mut body = actor.to_json();
    body["truncated"] = scanned.truncated.into();
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use memsy_testkit::sample_memory;

    use super::super::testing::{assert_sorts, sort_parses};
    use super::*;

    fn mem(actor: Option<&str>, at: &str) -> Memory {
        let mut m = sample_memory("org", "x", "text", at);
        m.actor_id = actor.map(str::to_string);
        m
    }

    fn ids(actors: &[Actor]) -> Vec<&str> {
        actors.iter().map(|a| a.actor_id.as_str()).collect()
    }

    #[test]
    fn folds_memories_on_actor_id() {
        let mut m1 = mem(Some("u1"), "2024-02-01T00:00:00.000Z");
        m1.role_id = Some("support".into());
        let mut m2 = mem(Some("u1"), "2024-01-01T00:00:00.000Z");
        m2.status = "superseded".into();
        m2.team_id = Some("emea".into());
        m2.role_id = Some("agent".into());
        let mut m3 = mem(Some("u1"), "2024-03-01T00:00:00.000Z");
        m3.role_id = Some("support".into());
        let m4 = mem(Some("u2"), "2024-01-15T00:00:00.000Z");
        // Promoted knowledge belongs to no actor.
        let mut promoted = mem(None, "2024-01-01T00:00:00.000Z");
        promoted.scope_level = "org".into();
        let actors = fold_actors(&[m1, m2, m3, m4, promoted]);
        assert_eq!(ids(&actors), ["u1", "u2"]);
        let u1 = &actors[0];
        assert_eq!(u1.memory_count, 3);
        assert_eq!(u1.active_memory_count, 2);
        assert_eq!(u1.first_memory_at.as_deref(), Some("2024-01-01T00:00:00.000Z"));
        assert_eq!(u1.last_memory_at.as_deref(), Some("2024-03-01T00:00:00.000Z"));
        assert_eq!(u1.role_ids.iter().collect::<Vec<_>>(), ["agent", "support"]);
        assert_eq!(u1.team_ids.iter().collect::<Vec<_>>(), ["emea"]);
        assert_eq!(u1.scope_levels.iter().collect::<Vec<_>>(), ["actor"]);
        let v = u1.to_json();
        assert_eq!(v["role_ids"], json!(["agent", "support"]));
        assert_eq!(v["scope_levels"], json!(["actor"]));
        assert_eq!(actors[1].memory_count, 1);
        assert!(actors[1].role_ids.is_empty());
        assert_eq!(actors[1].to_json()["team_ids"], json!([]));
    }

    #[test]
    fn nothing_folds_to_no_actors() {
        assert!(fold_actors(&[]).is_empty());
        assert!(
            fold_actors(&[mem(None, "2024-01-01T00:00:00.000Z"), mem(Some(""), "2024-01-01T00:00:00.000Z")]).is_empty()
        );
    }

    #[test]
    fn sorts_break_ties_by_actor_id() {
        let ms = [
            mem(Some("c"), "2024-01-01T00:00:00.000Z"),
            mem(Some("b"), "2024-01-01T00:00:00.000Z"),
            mem(Some("b"), "2024-05-01T00:00:00.000Z"),
            mem(Some("a"), "2024-03-01T00:00:00.000Z"),
            mem(Some("d"), "2024-03-01T00:00:00.000Z"),
        ];
        let cases = [
            (ActorSort::FirstDesc, ["a", "d", "b", "c"]),
            (ActorSort::FirstAsc, ["b", "c", "a", "d"]),
            (ActorSort::LastDesc, ["b", "a", "d", "c"]),
            (ActorSort::IdAsc, ["a", "b", "c", "d"]),
        ];
        assert_sorts(&fold_actors(&ms), &cases, sort_actors, |a| &a.actor_id);
    }

    #[test]
    fn only_the_listed_sorts_parse() {
        for (name, _) in SORTS {
            assert!(sort_parses(&SORTS, name), "{name}");
        }
        for name in ["memory_count_desc", "memory_count_asc", "FIRST_MEMORY_DESC"] {
            assert!(!sort_parses(&SORTS, name), "{name}");
        }
    }

    #[test]
    fn q_is_a_case_insensitive_substring() {
        let a = Actor { actor_id: "Team/User-42".into(), ..Actor::default() };
        assert!(matches_q(&a, "user-4"));
        assert!(matches_q(&a, "team/"));
        assert!(!matches_q(&a, "user-43"));
    }
}
