//! `GET /console/memories`, `/console/memories/stats` and
//! `/console/memories/{memory_id}`: the org's memories as the SDK's
//! `MemoryItemResource`, a page at a time, and aggregates over all of them.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::{Path, State};
use axum::Json;
use memsy_core::model::Memory;
use memsy_store::MemoryScan;
use serde_json::{json, Value};

use super::{scan_memories, short, sort_param, store_unavailable};
use crate::caller::{Authorized, Read};
use crate::fields::{page_envelope, Params};
use crate::{ApiError, AppState};

/// `all` and `any` lift the status filter; the rest are the statuses a memory can have.
const STATUSES: [&str; 5] = ["active", "superseded", "archived", "all", "any"];

/// How many entities `stats` lists.
const TOP_ENTITIES: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MemorySort {
    ObservedDesc,
    ObservedAsc,
    StrengthDesc,
    ConfidenceDesc,
    CreatedDesc,
}

/// `sort` values, the default first.
const SORTS: [(&str, MemorySort); 5] = [
    ("observed_at_desc", MemorySort::ObservedDesc),
    ("observed_at_asc", MemorySort::ObservedAsc),
    ("strength_desc", MemorySort::StrengthDesc),
    ("confidence_desc", MemorySort::ConfidenceDesc),
    ("created_at_desc", MemorySort::CreatedDesc),
];

/// Sorts by `sort`, then by `memory_id` (ascending whatever the direction),
/// so that equal keys keep one order from page to page. Times are stored
/// normalised (RFC 3339, UTC, milliseconds), so they compare as strings.
pub(super) fn sort_memories(ms: &mut [Memory], sort: MemorySort) {
    ms.sort_by(|a, b| {
        let primary = match sort {
            MemorySort::ObservedDesc => b.observed_at.cmp(&a.observed_at),
            MemorySort::ObservedAsc => a.observed_at.cmp(&b.observed_at),
            MemorySort::StrengthDesc => b.strength.total_cmp(&a.strength),
            MemorySort::ConfidenceDesc => b.confidence.total_cmp(&a.confidence),
            MemorySort::CreatedDesc => b.created_at.cmp(&a.created_at),
        };
        primary.then_with(|| a.memory_id.cmp(&b.memory_id))
    });
}

/// Case-insensitive substring match on text, title and summary.
pub(super) fn matches_search(m: &Memory, needle_lower: &str) -> bool {
    [&m.text, &m.title, &m.summary].iter().any(|f| f.to_lowercase().contains(needle_lower))
}

/// A memory as the SDK's `MemoryItemResource`.
pub(super) fn memory_item(m: &Memory) -> Value {
    json!({
        "memory_id": m.memory_id,
        "org_id": m.org_id,
        "scope": {
            "level": m.scope_level,
            "actor_id": m.actor_id,
            "team_id": m.team_id,
            "role_id": m.role_id,
        },
        "type": m.memory_type,
        "kind": m.memory_kind,
        "memory_kind": m.memory_kind,
        "status": m.status,
        "text": m.text,
        "confidence": short(m.confidence),
        "strength": short(m.strength),
        "recall_count": m.recall_count,
        "decay_half_life_days": short(m.decay_half_life_days),
        "pinned": m.pinned,
        "tags": m.tags,
        "entity_refs": m.entities,
        "source_event_ids": m.source_event_ids,
        // memsy ingests events, not documents: no memory has a source URL.
        "source_urls": [],
        "summary": m.summary,
        "payload": {
            "title": m.title,
            "session_id": m.session_id,
            "source_metadata": m.source_metadata,
        },
        "last_recalled_at": m.last_recalled_at,
        "effective_from": m.effective_from,
        "effective_to": m.effective_to,
        "observed_at": m.observed_at,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    })
}

/// Bucket of a confidence in 0.0-0.2 … 0.8-1.0, judged on the value a
/// client sees (rounded like every item's `confidence`) so that its own
/// `min <= c < max` agrees; the last bucket includes 1.0, and out-of-range
/// values fall into the nearest end.
fn confidence_bucket(c: f32) -> usize {
    let c = short(c);
    (1..5).filter(|&i| c >= i as f64 / 5.0).count()
}

/// Aggregates over `ms` (any status), as the SDK's `MemoryStatsResponse`.
pub(super) fn stats(ms: &[Memory]) -> Value {
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut entities: HashMap<(&str, &str), u64> = HashMap::new();
    let mut by_day: BTreeMap<&str, u64> = BTreeMap::new();
    let mut buckets = [0u64; 5];
    let (mut sum_conf, mut sum_strength) = (0.0f64, 0.0f64);
    let (mut earliest, mut latest): (Option<&str>, Option<&str>) = (None, None);
    for m in ms {
        *by_type.entry(&m.memory_type).or_default() += 1;
        *by_kind.entry(&m.memory_kind).or_default() += 1;
        *by_status.entry(&m.status).or_default() += 1;
        // An entity named twice in one memory still counts that memory once.
        let mut seen = HashSet::new();
        for e in &m.entities {
            let key = (e.name.as_str(), e.entity_type.as_str());
            if seen.insert(key) {
                *entities.entry(key).or_default() += 1;
            }
        }
        buckets[confidence_bucket(m.confidence)] += 1;
        sum_conf += m.confidence as f64;
        sum_strength += m.strength as f64;
        let at = m.observed_at.as_str();
        if !at.is_empty() {
            // RFC 3339 starts with the date: the console's memories-over-time chart.
            *by_day.entry(at.get(..10).unwrap_or(at)).or_default() += 1;
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
            latest = Some(latest.map_or(at, |l| l.max(at)));
        }
    }
    let mut top: Vec<((&str, &str), u64)> = entities.into_iter().collect();
    top.sort_by(|(ka, ca), (kb, cb)| cb.cmp(ca).then_with(|| ka.cmp(kb)));
    let top_entities: Vec<Value> = top
        .into_iter()
        .take(TOP_ENTITIES)
        .map(|((name, ty), count)| json!({ "name": name, "type": ty, "count": count }))
        .collect();
    let confidence_buckets: Vec<Value> = buckets
        .iter()
        .enumerate()
        .map(|(i, count)| {
            let (min, max) = (i as f64 / 5.0, (i + 1) as f64 / 5.0);
            json!({ "range": format!("{min:.1}-{max:.1}"), "min": min, "max": max, "count": count })
        })
        .collect();
    let n = ms.len();
    let avg = |sum: f64| if n == 0 { 0.0 } else { (sum / n as f64 * 1e6).round() / 1e6 };
    json!({
        "total": n,
        "total_memories": n,
        "active_memories": by_status.get("active").copied().unwrap_or_default(),
        "by_type": by_type,
        "by_kind": by_kind,
        "by_status": by_status,
        "by_day": by_day,
        "avg_confidence": avg(sum_conf),
        "avg_strength": avg(sum_strength),
        "top_entities": top_entities,
        "confidence_buckets": confidence_buckets,
        "date_range": { "earliest": earliest, "latest": latest },
    })
}

/// A UUID in any case, with or without hyphens, as the lower-case
/// hyphenated form memory ids are stored in; None when it is not one.
pub(super) fn normalize_uuid(s: &str) -> Option<String> {
    let hex: String = match s.len() {
        36 => {
            let b = s.as_bytes();
            if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                return None;
            }
            s.chars().filter(|&c| c != '-').collect()
        }
        32 => s.to_string(),
        _ => return None,
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

/// `GET /console/memories`: see the module documentation.
pub async fn list_memories(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let sort = sort_param(&p, &SORTS)?;
    let status = p.choice("status", "active", &STATUSES)?;
    let page = p.page(50, 200)?;
    let filter = MemoryScan {
        actor_id: p.str("actor_id").map(str::to_string),
        memory_type: p.str("type").map(str::to_string),
        memory_kind: p.str("kind").map(str::to_string),
        status: (!matches!(status, "all" | "any")).then(|| status.to_string()),
        ..MemoryScan::org(caller.org())
    };
    let scanned = scan_memories(&s, &filter).await?;
    let mut ms = scanned.items;
    if let Some(needle) = p.str("search") {
        let needle = needle.to_lowercase();
        ms.retain(|m| matches_search(m, &needle));
    }
    sort_memories(&mut ms, sort);
    Ok(page_envelope(ms, page, scanned.truncated, memory_item))
}

/// `GET /console/memories/stats`: aggregates over every memory of the org.
pub async fn memory_stats(State(s): State<AppState>, caller: Authorized<Read>) -> Result<Json<Value>, ApiError> {
    let scanned = scan_memories(&s, &MemoryScan::org(caller.org())).await?;
    let mut body = stats(&scanned.items);
    body["truncated"] = scanned.truncated.into();
    Ok(Json(body))
}

/// `GET /console/memories/{memory_id}`: one memory of the caller's org.
pub async fn get_memory(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    Path(memory_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = normalize_uuid(&memory_id).ok_or_else(|| ApiError::invalid("memory_id", "must be a UUID"))?;
    let mut found = s.store.get_memories(caller.org(), std::slice::from_ref(&id)).await.map_err(store_unavailable)?;
    super::as_of_now(&mut found);
    // The store filters by org, so another org's memory is as absent as an unknown one.
    let m = found
        .into_iter()
        .find(|m| m.memory_id == id && m.org_id == caller.org())
        .ok_or_else(|| ApiError::not_found(format!("no memory '{id}' in this org")))?;
    Ok(Json(memory_item(&m)))
}

#[cfg(test)]
mod tests {
    use memsy_core::model::Entity;
    use memsy_testkit::sample_memory;

    use super::super::testing::{assert_sorts, sort_parses};
    use super::*;
    use crate::fields::page_of;

    fn mem(id: &str, at: &str, strength: f32, confidence: f32) -> Memory {
        let mut m = sample_memory("org", "a", "text", at);
        m.memory_id = id.into();
        m.strength = strength;
        m.confidence = confidence;
        m
    }

    #[test]
    fn sorts_break_ties_by_memory_id() {
        let t1 = "2024-01-01T00:00:00.000Z";
        let t2 = "2024-02-01T00:00:00.000Z";
        let base = [mem("c", t1, 1.0, 0.5), mem("a", t2, 2.0, 0.9), mem("b", t1, 2.0, 0.5), mem("d", t2, 1.0, 0.9)];
        let cases = [
            (MemorySort::ObservedDesc, ["a", "d", "b", "c"]),
            (MemorySort::ObservedAsc, ["b", "c", "a", "d"]),
            (MemorySort::StrengthDesc, ["a", "b", "c", "d"]),
            (MemorySort::ConfidenceDesc, ["a", "d", "b", "c"]),
            (MemorySort::CreatedDesc, ["a", "d", "b", "c"]),
        ];
        assert_sorts(&base, &cases, sort_memories, |m| &m.memory_id);
    }

    #[test]
    fn only_the_listed_sorts_parse() {
        for (name, _) in SORTS {
            assert!(sort_parses(&SORTS, name), "{name}");
        }
        for name in ["strength_asc", "observed_at"] {
            assert!(!sort_parses(&SORTS, name), "{name}");
        }
    }

    #[test]
    fn pages_cover_every_memory_once() {
        let t = "2024-01-01T00:00:00.000Z";
        let mut ms: Vec<Memory> = (0..7).map(|i| mem(&format!("m{i}"), t, 1.0, 0.5)).collect();
        ms.reverse();
        sort_memories(&mut ms, MemorySort::ObservedDesc);
        let mut seen = Vec::new();
        for offset in (0..ms.len()).step_by(3) {
            seen.extend(page_of(ms.clone(), offset, 3).into_iter().map(|m| m.memory_id));
        }
        assert_eq!(seen, (0..7).map(|i| format!("m{i}")).collect::<Vec<_>>());
        assert!(page_of(ms, 7, 3).is_empty());
    }

    #[test]
    fn search_is_case_insensitive_on_text_title_summary() {
        let mut m = sample_memory("org", "a", "I prefer Dark Mode", "2024-01-01T00:00:00.000Z");
        m.title = "UI Preference".into();
        m.summary = "Wants ÉCLAIRS".into();
        assert!(matches_search(&m, "dark mode"));
        assert!(matches_search(&m, "preference"));
        assert!(matches_search(&m, "éclairs"));
        assert!(!matches_search(&m, "light"));
    }

    #[test]
    fn item_has_the_sdk_shape() {
        let mut m = sample_memory("org", "a", "My dog's name is Rex.", "2024-01-01T00:00:00.000Z");
        m.entities = vec![Entity { name: "Rex".into(), entity_type: "pet".into() }];
        m.session_id = Some("s1".into());
        m.confidence = 0.85;
        let v = memory_item(&m);
        assert_eq!(v["scope"], json!({"level": "actor", "actor_id": "a", "team_id": null, "role_id": null}));
        assert_eq!(v["kind"], "semantic");
        assert_eq!(v["memory_kind"], "semantic");
        assert_eq!(v["type"], "fact");
        assert_eq!(v["confidence"], 0.85);
        assert_eq!(v["entity_refs"], json!([{"name": "Rex", "type": "pet"}]));
        assert_eq!(v["source_urls"], json!([]));
        assert_eq!(v["payload"]["session_id"], "s1");
        assert_eq!(v["payload"]["title"], "title");
        assert_eq!(v["payload"]["source_metadata"][0]["metadata"]["plan"], "pro");
        for k in ["last_recalled_at", "effective_from", "effective_to"] {
            assert!(v[k].is_null(), "{k}");
        }
    }

    #[test]
    fn stats_over_nothing() {
        let v = stats(&[]);
        assert_eq!(v["total"], 0);
        assert_eq!(v["total_memories"], 0);
        assert_eq!(v["active_memories"], 0);
        assert_eq!(v["avg_confidence"], 0.0);
        assert_eq!(v["avg_strength"], 0.0);
        assert_eq!(v["top_entities"], json!([]));
        assert_eq!(v["date_range"], json!({"earliest": null, "latest": null}));
        assert_eq!(v["confidence_buckets"].as_array().map(Vec::len), Some(5));
        assert_eq!(v["by_type"], json!({}));
        assert_eq!(v["by_day"], json!({}));
    }

    #[test]
    fn stats_counts_and_buckets() {
        let e = |n: &str, t: &str| Entity { name: n.into(), entity_type: t.into() };
        let mut a = mem("a", "2024-03-01T00:00:00.000Z", 1.0, 0.1);
        a.entities = vec![e("Rex", "pet"), e("Rex", "pet"), e("Ann", "person")];
        let mut b = mem("b", "2024-01-01T00:00:00.000Z", 2.0, 0.2);
        b.entities = vec![e("Rex", "pet"), e("Bob", "person")];
        b.status = "superseded".into();
        b.memory_type = "preference".into();
        let mut c = mem("c", "2024-02-01T00:00:00.000Z", 3.0, 1.0);
        c.memory_kind = "episodic".into();
        let v = stats(&[a, b, c]);
        assert_eq!(v["total"], 3);
        assert_eq!(v["active_memories"], 2);
        assert_eq!(v["by_status"], json!({"active": 2, "superseded": 1}));
        assert_eq!(v["by_type"], json!({"fact": 2, "preference": 1}));
        assert_eq!(v["by_kind"], json!({"semantic": 2, "episodic": 1}));
        assert_eq!(v["avg_strength"], 2.0);
        assert_eq!(v["avg_confidence"], 0.433333);
        assert_eq!(
            v["top_entities"],
            json!([
                {"name": "Rex", "type": "pet", "count": 2},
                {"name": "Ann", "type": "person", "count": 1},
                {"name": "Bob", "type": "person", "count": 1},
            ])
        );
        let counts: Vec<u64> =
            v["confidence_buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).collect();
        assert_eq!(counts, [1, 1, 0, 0, 1]);
        assert_eq!(v["confidence_buckets"][0]["range"], "0.0-0.2");
        assert_eq!(v["confidence_buckets"][4]["range"], "0.8-1.0");
        assert_eq!(v["confidence_buckets"][4]["max"], 1.0);
        assert_eq!(v["date_range"]["earliest"], "2024-01-01T00:00:00.000Z");
        assert_eq!(v["date_range"]["latest"], "2024-03-01T00:00:00.000Z");
        assert_eq!(v["by_day"], json!({"2024-01-01": 1, "2024-02-01": 1, "2024-03-01": 1}));
    }

    #[test]
    fn confidence_bucket_edges() {
        let cases = [(0.0, 0), (0.19999, 0), (0.2, 1), (0.4, 2), (0.6, 3), (0.79, 3), (0.8, 4), (1.0, 4)];
        for (c, want) in cases {
            assert_eq!(confidence_bucket(c), want, "{c}");
        }
        assert_eq!(confidence_bucket(-0.5), 0);
        assert_eq!(confidence_bucket(1.5), 4);
        assert_eq!(confidence_bucket(f32::NAN), 0);
    }

    #[test]
    fn top_entities_are_capped_at_ten() {
        let ms: Vec<Memory> = (0..12)
            .map(|i| {
                let mut m = mem(&format!("m{i}"), "2024-01-01T00:00:00.000Z", 1.0, 0.5);
                m.entities = vec![Entity { name: format!("e{i:02}"), entity_type: "thing".into() }];
                m
            })
            .collect();
        let v = stats(&ms);
        let top = v["top_entities"].as_array().unwrap();
        assert_eq!(top.len(), 10);
        assert_eq!(top[0]["name"], "e00");
    }

    #[test]
    fn uuids_are_normalised() {
        let canonical = "0b1c2d3e-4f50-5a6b-8c7d-9e0f1a2b3c4d";
        assert_eq!(normalize_uuid(canonical).as_deref(), Some(canonical));
        assert_eq!(normalize_uuid(&canonical.to_uppercase()).as_deref(), Some(canonical));
        assert_eq!(normalize_uuid(&canonical.replace('-', "")).as_deref(), Some(canonical));
        for bad in ["not-a-uuid", "", "0b1c2d3e-4f50-5a6b-8c7d-9e0f1a2b3c4g", "0b1c2d3e04f50-5a6b-8c7d-9e0f1a2b3c4d"] {
            assert_eq!(normalize_uuid(bad), None, "{bad}");
        }
        // Multi-byte characters never slice a string mid-character.
        assert_eq!(normalize_uuid("ééééééééééééééééé-"), None);
        assert_eq!(normalize_uuid("0b1c2d3e-4f50-5a6b-8c7d-9e0f1a2b3cé"), None);
    }
}
