//! `POST /ingest`: validate the whole batch (nothing is stored when any
//! event is bad), resolve the de-duplication window, mark the new events
//! pending and count them while publishing them to JetStream, and wait for
//! every broker ack. Only then 200: a 200 means every returned id is
//! durable. Any failure after validation is a 503; retrying the same batch
//! within the de-duplication window gets the same ids and stores each event
//! once.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use chrono::Utc;
use memsy_bus::topology::events_subject;
use memsy_bus::OutMessage;
use memsy_core::model::EVENT_KINDS;
use memsy_core::{ids, time};
use memsy_proto::Event;
use prost::Message;
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::{info, info_span, warn, Instrument};
use utoipa::ToSchema;

use crate::caller::{Authorized, Write};
use crate::fields::{check_id_len, opt_str, read_object, reject_org_id, req_str, type_of};
use crate::{dedup, ApiError, AppState, Component, Counted};
use memsy_usage::Dimension;

/// `POST /ingest`: the SDK's `IngestResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    /// One id per event, in the order sent; every one is durable. A
    /// duplicate within the de-duplication window gets its original's id.
    pub event_ids: Vec<String>,
}

pub async fn ingest(
    State(s): State<AppState>,
    caller: Authorized<Write>,
    headers: HeaderMap,
    body: Body,
) -> Result<(Extension<Counted>, Json<IngestResponse>), ApiError> {
    let key = &caller.key;
    let limits = &s.config.limits;
    let obj = read_object(&headers, body, limits.max_body_bytes).await?;
    reject_org_id(&obj)?;
    let now = time::now_rfc3339();
    let events = validate_batch(&obj, &key.org_id, &now, limits)?;
    caller.check_quota(Dimension::EventsIngested, events.len() as u64)?;
    caller.check_quota(Dimension::MemoriesStored, 0)?;
    caller.check_quota(Dimension::LlmTokens, 0)?;

    // De-duplicate against the window (and, since the claims run in order,
    // within the batch). A duplicate is published again under the original
    // id: the broker drops it if the original is stored (`Nats-Msg-Id`, whose
    // window is longer than ours) and stores it if the original never made
    // it, so an id we return is always durable. Claims are kept when
    // publishing fails, so a retry of the same batch gets the same ids.
    let claims: Vec<(String, String)> = events
        .iter()
        .map(|e| (dedup::fingerprint(&e.org_id, &e.actor_id, &e.session_id, &e.kind, &e.content), e.event_id.clone()))
        .collect();
    let originals = s.dedup.claim(&claims).await.map_err(|e| ApiError::unavailable(Component::Redis, e))?;
    let total = events.len();
    let mut returned = Vec::with_capacity(total);
    let mut to_store: Vec<Event> = Vec::with_capacity(total);
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for (mut event, original) in events.into_iter().zip(originals) {
        if let Some(id) = original {
            event.event_id = id;
            duplicates += 1;
        }
        returned.push(event.event_id.clone());
        if seen.insert(event.event_id.clone()) {
            to_store.push(event);
        }
    }
    let accepted = (total - duplicates) as u64;
    // Ids, never content: a trace is read by operators, not tenants. The
    // first hundred: each event's stage spans name it in any case.
    let ids = to_store.iter().take(100).map(|e| e.event_id.as_str()).collect::<Vec<_>>().join(",");
    let span = info_span!("ingest publish", org_id = key.org_id, events = to_store.len(), event_ids = ids);
    let month_total = store(&s, &key.org_id, &key.key_id, &to_store, accepted).instrument(span).await?;
    metrics::counter!(memsy_core::metrics::EVENTS_INGESTED).increment(accepted);
    info!(org_id = key.org_id, accepted, duplicates, "ingested");
    let counted = Counted(vec![(Dimension::EventsIngested, month_total)]);
    Ok((Extension(counted), Json(IngestResponse { event_ids: returned })))
}

/// Marks the events pending and counts the `accepted` new ones (one Redis
/// round trip) while publishing them, waiting for every ack; both must
/// succeed before the 200, so a returned id is never `not_found`. Returns
/// the org's month total of ingested events.
///
/// The marks are written here rather than through the status service: they
/// go with the count in one atomic round trip, where a call to the status
/// service would add a hop (and its own Redis round trip) to every ingest.
/// They run alongside the publish: `pending` never overwrites a state
/// already recorded, so a pipeline that completes an event before its
/// pending mark lands is not rolled back. The new events are counted once,
/// when they are claimed: a retry after a 503 finds them claimed (the same
/// ids, as duplicates) and does not count them again.
async fn store(s: &AppState, org_id: &str, key_id: &str, events: &[Event], accepted: u64) -> Result<u64, ApiError> {
    if !s.bus.is_connected() {
        return Err(ApiError::unavailable(Component::Nats, "not connected"));
    }
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let ttl = s.config.redis.status_ttl_secs;
    let pending = async {
        let mark = |pipe: &mut redis::Pipeline| memsy_status::mark_pending(pipe, org_id, &ids, ttl);
        s.meter
            .add_with(org_id, Some(key_id), Dimension::EventsIngested, accepted, Utc::now(), mark)
            .await
            .map_err(|e| ApiError::unavailable(Component::Redis, e))
    };
    let msgs = events
        .iter()
        .map(|e| OutMessage {
            subject: events_subject(&e.org_id, &e.event_id),
            msg_id: e.event_id.clone(),
            payload: e.encode_to_vec().into(),
            // The publishing span's context.
            traceparent: None,
        })
        .collect();
    let publish = async {
        s.bus.publish_all(msgs).await.map_err(|e| {
            warn!(org_id, error = %e, "publish failed; answering 503");
            ApiError::unavailable(Component::Nats, e)
        })
    };
    tokio::try_join!(pending, publish).map(|(total, ())| total)
}

/// Every event checked before anything is stored.
pub fn validate_batch(
    obj: &Map<String, Value>,
    org_id: &str,
    now: &str,
    limits: &memsy_core::config::Limits,
) -> Result<Vec<Event>, ApiError> {
    let events = match obj.get("events") {
        None | Some(Value::Null) => return Err(ApiError::invalid("events", "is required")),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(ApiError::invalid("events", format!("must be an array, not {}", type_of(other)))),
    };
    if events.is_empty() {
        return Err(ApiError::invalid("events", "must hold at least one event"));
    }
    if events.len() > limits.max_events_per_ingest {
        return Err(ApiError::invalid(
            "events",
            format!("holds {} events; at most {} are allowed per request", events.len(), limits.max_events_per_ingest),
        ));
    }
    events.iter().enumerate().map(|(i, v)| validate_event(i, v, org_id, now, limits)).collect()
}

fn validate_event(
    i: usize,
    v: &Value,
    org_id: &str,
    now: &str,
    limits: &memsy_core::config::Limits,
) -> Result<Event, ApiError> {
    let p = |f: &str| format!("events[{i}].{f}");
    let Value::Object(e) = v else {
        return Err(ApiError::invalid(format!("events[{i}]"), format!("must be an object, not {}", type_of(v))));
    };
    if e.contains_key("org_id") {
        return Err(ApiError::org_id_not_allowed().with("field", p("org_id")).with("event_index", i));
    }
    let actor_id = req_str(e, "actor_id", &p("actor_id"))?;
    check_id_len(actor_id, &p("actor_id"), limits.max_id_len)?;
    let session_id = req_str(e, "session_id", &p("session_id"))?;
    check_id_len(session_id, &p("session_id"), limits.max_id_len)?;
    let kind = req_str(e, "kind", &p("kind"))?;
    if !EVENT_KINDS.contains(&kind) {
        return Err(ApiError::invalid(p("kind"), format!("'{kind}' is not one of {}", EVENT_KINDS.join(", "))));
    }
    let content = req_str(e, "content", &p("content"))?;
    if content.trim().is_empty() {
        return Err(ApiError::invalid(p("content"), "must not be blank"));
    }
    if content.len() > limits.max_content_bytes {
        return Err(ApiError::invalid(
            p("content"),
            format!("is {} bytes; at most {} are allowed", content.len(), limits.max_content_bytes),
        ));
    }
    let opt_id = |f: &str| -> Result<Option<String>, ApiError> {
        match opt_str(e, f, &p(f))? {
            // An empty optional id means "none", as most clients send it.
            None | Some("") => Ok(None),
            Some(s) => {
                check_id_len(s, &p(f), limits.max_id_len)?;
                Ok(Some(s.to_string()))
            }
        }
    };
    let role_id = opt_id("role_id")?;
    let team_id = opt_id("team_id")?;
    let ts = match opt_str(e, "ts", &p("ts"))? {
        None | Some("") => now.to_string(),
        Some(s) => match time::parse_ts(s) {
            Some(t) => time::format_rfc3339(t),
            None => return Err(ApiError::invalid(p("ts"), format!("'{s}' is not an ISO 8601 timestamp"))),
        },
    };
    // The SDK sends metadata as a JSON string; a JSON object is accepted too
    // and kept as its serialisation.
    let metadata = match e.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(other) => {
            return Err(ApiError::invalid(
                p("metadata"),
                format!("must be a string or an object, not {}", type_of(other)),
            ))
        }
    };
    if let Some(m) = &metadata {
        if m.len() > limits.max_metadata_bytes {
            return Err(ApiError::invalid(
                p("metadata"),
                format!("is {} bytes; at most {} are allowed", m.len(), limits.max_metadata_bytes),
            ));
        }
    }
    Ok(Event {
        event_id: ids::new_event_id(),
        org_id: org_id.to_string(),
        actor_id: actor_id.to_string(),
        session_id: session_id.to_string(),
        kind: kind.to_string(),
        content: content.to_string(),
        role_id,
        team_id,
        ts,
        metadata,
        ingested_at: now.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use memsy_core::config::Limits;
    use serde_json::json;

    fn check(body: Value) -> Result<Vec<Event>, ApiError> {
        let Value::Object(o) = body else { panic!() };
        validate_batch(&o, "acme", "2026-01-01T00:00:00.000Z", &Limits::default())
    }

    fn ev() -> Value {
        json!({"actor_id": "u1", "session_id": "s1", "kind": "user_message", "content": "hello there"})
    }

    #[test]
    fn accepts_a_good_event_and_fills_ts() {
        let v = check(json!({"events": [ev()]})).unwrap();
        assert_eq!(v[0].ts, "2026-01-01T00:00:00.000Z");
        assert_eq!(v[0].org_id, "acme");
        assert!(ids::is_event_id(&v[0].event_id));
    }

    #[test]
    fn rejections_name_the_field_and_index() {
        let mut bad = ev();
        bad["kind"] = json!("not_a_real_kind");
        let e = check(json!({"events": [ev(), bad]})).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.extra["field"], "events[1].kind");
        assert_eq!(e.extra["event_index"], 1);

        for (field, value) in [
            ("actor_id", json!("")),
            ("session_id", json!("x".repeat(257))),
            ("ts", json!("yesterday")),
            ("content", json!("x".repeat(64 * 1024 + 1))),
            ("content", json!(42)),
            ("metadata", json!([1])),
        ] {
            let mut b = ev();
            b[field] = value;
            let e = check(json!({"events": [b]})).unwrap_err();
            assert_eq!(e.extra["field"], format!("events[0].{field}"), "{field}");
            assert_eq!(e.status.as_u16(), 422);
        }
        let mut b = ev();
        b.as_object_mut().unwrap().remove("actor_id");
        assert_eq!(check(json!({"events": [b]})).unwrap_err().extra["field"], "events[0].actor_id");
    }

    #[test]
    fn batch_level_rules() {
        assert_eq!(check(json!({})).unwrap_err().extra["field"], "events");
        assert_eq!(check(json!({"events": []})).unwrap_err().extra["field"], "events");
        assert_eq!(check(json!({"events": "x"})).unwrap_err().extra["field"], "events");
        let many: Vec<Value> = (0..1001).map(|_| ev()).collect();
        assert_eq!(check(json!({"events": many})).unwrap_err().status.as_u16(), 422);
        let mut b = ev();
        b["org_id"] = json!("other");
        let e = check(json!({"events": [b]})).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.code, "org_id_not_allowed");
    }

    #[test]
    fn metadata_object_and_empty_optional_ids() {
        let mut b = ev();
        b["metadata"] = json!({"plan": "pro"});
        b["role_id"] = json!("");
        b["ts"] = json!("2025-01-15T14:22:10Z");
        let v = check(json!({"events": [b]})).unwrap();
        assert_eq!(v[0].metadata.as_deref(), Some(r#"{"plan":"pro"}"#));
        assert_eq!(v[0].role_id, None);
        assert_eq!(v[0].ts, "2025-01-15T14:22:10.000Z");
    }
}
