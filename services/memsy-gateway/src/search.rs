//! `POST /search`: embed the query with the same model as the memories,
//! search the caller's org (always) narrowed by actor and conversation, and
//! return the SDK's `{results: [{id, content, score, metadata}]}`. The search
//! is hybrid (dense nearest neighbours and BM25 over the query text, fused by
//! reciprocal rank in the store); results keep the fused order, with
//! strength and recency breaking near-ties (`rank.rs`). The score is the
//! cosine similarity clamped to 0–1 whichever source found the memory, and
//! `threshold` applies to it.

use std::collections::{BTreeSet, HashMap};

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use memsy_core::model::Memory;
use memsy_store::SearchFilter;
use serde_json::{json, Map, Value};
use tracing::{info_span, Instrument};

use crate::caller::{Authorized, Read};
use crate::fields::{
    check_searchable_id, opt_bool, opt_f64, opt_int, opt_str, opt_str_list, read_object, reject_org_id,
};
use crate::{ApiError, AppState, Component, Consumed};
use memsy_usage::Dimension;

#[derive(Debug)]
pub struct SearchRequest {
    pub query: String,
    pub limit: usize,
    pub threshold: f32,
    pub include_source_events: bool,
    pub filter: SearchFilter,
}

pub fn parse(
    obj: &Map<String, Value>,
    org_id: &str,
    limits: &memsy_core::config::Limits,
) -> Result<SearchRequest, ApiError> {
    reject_org_id(obj)?;
    let query = match opt_str(obj, "query", "query")? {
        None => return Err(ApiError::invalid("query", "is required")),
        Some(q) if q.trim().is_empty() => return Err(ApiError::invalid("query", "must not be empty")),
        Some(q) if q.len() > limits.max_query_bytes => {
            return Err(ApiError::invalid(
                "query",
                format!("is {} bytes; at most {} are allowed", q.len(), limits.max_query_bytes),
            ))
        }
        Some(q) => q.to_string(),
    };
    let limit = opt_int(obj, "limit")?.unwrap_or(10);
    let max = limits.max_search_limit as i64;
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be between 1 and {max}, got {limit}")));
    }
    let threshold = opt_f64(obj, "threshold")?.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ApiError::invalid("threshold", format!("must be between 0 and 1, got {threshold}")));
    }
    let include_source_events = opt_bool(obj, "include_source_events")?.unwrap_or(false);
    let max_id = limits.max_id_len;
    let actor_id = match opt_str(obj, "actor_id", "actor_id")? {
        None => None,
        Some(a) => {
            check_searchable_id(a, "actor_id", max_id)?;
            Some(a.to_string())
        }
    };
    // An empty conversation id means "not set".
    let session = |key: &str| -> Result<Option<String>, ApiError> {
        match opt_str(obj, key, key)? {
            None | Some("") => Ok(None),
            Some(v) => {
                check_searchable_id(v, key, max_id)?;
                Ok(Some(v.to_string()))
            }
        }
    };
    let session_id = session("session_id")?;
    let exclude_session_id = session("exclude_session_id")?;
    if session_id.is_some() && exclude_session_id.is_some() {
        return Err(ApiError::invalid(
            "exclude_session_id",
            "cannot be combined with session_id: send one of them (an empty string counts as unset)",
        ));
    }
    let ids = |key: &str| -> Result<Vec<String>, ApiError> {
        let v = opt_str_list(obj, key)?;
        for (i, id) in v.iter().enumerate() {
            check_searchable_id(id, &format!("{key}[{i}]"), max_id)?;
        }
        Ok(v)
    };
    let role_ids = ids("role_ids")?;
    let team_ids = ids("team_ids")?;
    Ok(SearchRequest {
        query,
        limit: limit as usize,
        threshold: threshold as f32,
        include_source_events,
        filter: SearchFilter {
            org_id: org_id.to_string(),
            actor_id,
            session_id,
            exclude_session_id,
            role_ids,
            team_ids,
            status: Some("active".into()),
            ..SearchFilter::default()
        },
    })
}

pub async fn search(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    headers: HeaderMap,
    body: Body,
) -> Result<(Extension<Consumed>, Json<Value>), ApiError> {
    caller.check_quota(Dimension::SearchQueries, 1)?;
    let key = &caller.key;
    let obj = read_object(&headers, body, s.config.limits.max_body_bytes).await?;
    let req = parse(&obj, &key.org_id, &s.config.limits)?;

    // The query's text stays out of the spans: it is the tenant's content.
    let vector = s
        .embedder
        .embed(vec![req.query.clone()])
        .instrument(info_span!("embed query", org_id = key.org_id))
        .await
        .map_err(|e| ApiError::unavailable(Component::Embedder, e))?
        .pop()
        .ok_or_else(|| ApiError::unavailable(Component::Embedder, "returned no vector"))?;
    // More than asked for, so that strength and recency can reorder
    // near-ties at the edge of the page and other messages can take the
    // places of a message's second and third memories.
    let fetch = 2 * req.limit + RERANK_EXTRA;
    let hits = s
        .store
        .search(&vector, Some(&req.query), &req.filter, fetch)
        .instrument(info_span!("store search", org_id = key.org_id, limit = fetch))
        .await
        .map_err(|e| ApiError::unavailable(Component::VectorStore, e))?;
    let now = chrono::Utc::now();
    let hits: Vec<_> = hits
        .into_iter()
        .map(|h| (h.rank, h.score.clamp(0.0, 1.0), h.memory))
        .filter(|(_, score, _)| *score >= req.threshold)
        .collect();
    // Ordered by the store's rank (fusion), not by the score: a keyword
    // match with a modest cosine stays where fusion put it.
    let hits = crate::rank::rerank_by(hits, |(rank, _, m)| (*rank, m), now);
    let hits: Vec<(f32, Memory)> = crate::rank::one_per_message_first(hits, |(_, _, m)| m)
        .into_iter()
        .take(req.limit)
        .map(|(_, score, m)| (score, m))
        .collect();
    s.recalls.record(&key.org_id, hits.iter().map(|(_, m)| m.memory_id.clone()).collect());

    let mut sources = HashMap::new();
    if req.include_source_events {
        let ids: BTreeSet<String> = hits.iter().flat_map(|(_, m)| m.source_event_ids.iter().cloned()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let events = s
            .store
            .get_events(&key.org_id, &ids)
            .await
            .map_err(|e| ApiError::unavailable(Component::VectorStore, e))?;
        sources = events.into_iter().map(|e| (e.event_id.clone(), e)).collect();
    }
    metrics::counter!(memsy_core::metrics::SEARCHES).increment(1);
    let results: Vec<Value> = hits
        .into_iter()
        .map(|(score, m)| {
            let mut meta = metadata(&m);
            // Strength as of now: it decays between recalls.
            meta.insert("strength".into(), short(m.effective_strength(now)).into());
            if req.include_source_events {
                let evs: Vec<Value> = m
                    .source_event_ids
                    .iter()
                    .filter_map(|id| sources.get(id))
                    .map(|e| json!({"event_id": e.event_id, "kind": e.kind, "content": e.content, "ts": e.ts}))
                    .collect();
                meta.insert("source_events".into(), Value::Array(evs));
            }
            json!({"id": m.memory_id, "content": m.text, "score": short(score), "metadata": meta})
        })
        .collect();
    Ok((Extension(Consumed(vec![(Dimension::SearchQueries, 1)])), Json(json!({ "results": results }))))
}

/// Candidates fetched beyond `limit` for re-ranking.
const RERANK_EXTRA: usize = 10;

/// An f32 as the JSON number it was meant to be (0.85, not 0.8500000238).
fn short(x: f32) -> f64 {
    (x as f64 * 1e6).round() / 1e6
}

/// What a search result says about its memory.
pub fn metadata(m: &Memory) -> Map<String, Value> {
    let v = json!({
        "title": m.title,
        "summary": m.summary,
        "tags": m.tags,
        "entities": m.entities,
        "session_id": m.session_id,
        "actor_id": m.actor_id,
        "scope_level": m.scope_level,
        "role_id": m.role_id,
        "team_id": m.team_id,
        "source_event_ids": m.source_event_ids,
        "source_metadata": m.source_metadata,
        "kind": m.memory_kind,
        "memory_kind": m.memory_kind,
        "type": m.memory_type,
        "status": m.status,
        "strength": short(m.strength),
        "confidence": short(m.confidence),
        "observed_at": m.observed_at,
        "created_at": m.created_at,
    });
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memsy_core::config::Limits;

    fn p(v: Value) -> Result<SearchRequest, ApiError> {
        let Value::Object(o) = v else { panic!() };
        parse(&o, "acme", &Limits::default())
    }

    #[test]
    fn defaults() {
        let r = p(json!({"query": "pets"})).unwrap();
        assert_eq!((r.limit, r.threshold, r.include_source_events), (10, 0.0, false));
        assert_eq!(r.filter.org_id, "acme");
        assert_eq!(r.filter.actor_id, None);
        assert_eq!(r.filter.status.as_deref(), Some("active"));
    }

    #[test]
    fn session_rules() {
        let e = p(json!({"query": "q", "session_id": "a", "exclude_session_id": "b"})).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        let r = p(json!({"query": "q", "session_id": "", "exclude_session_id": "b"})).unwrap();
        assert_eq!(r.filter.session_id, None);
        assert_eq!(r.filter.exclude_session_id.as_deref(), Some("b"));
    }

    #[test]
    fn bad_values_name_their_field() {
        for (body, field) in [
            (json!({}), "query"),
            (json!({"query": " "}), "query"),
            (json!({"query": "q", "limit": 0}), "limit"),
            (json!({"query": "q", "limit": 101}), "limit"),
            (json!({"query": "q", "limit": "5"}), "limit"),
            (json!({"query": "q", "threshold": 1.5}), "threshold"),
            (json!({"query": "q", "actor_id": "has space"}), "actor_id"),
            (json!({"query": "q", "actor_id": ""}), "actor_id"),
            (json!({"query": "q", "session_id": "ü"}), "session_id"),
            (json!({"query": "q", "role_ids": ["ok", "not ok"]}), "role_ids[1]"),
        ] {
            let e = p(body.clone()).unwrap_err();
            assert_eq!(e.extra["field"], field, "{body}");
            assert_eq!(e.status.as_u16(), 422);
        }
        assert_eq!(p(json!({"query": "q", "org_id": "x"})).unwrap_err().status.as_u16(), 400);
    }
}
