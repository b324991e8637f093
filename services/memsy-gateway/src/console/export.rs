//! `GET /actors/{actor_id}/export` (admin): everything the store holds of
//! one actor of the caller's org as JSON lines (`application/x-ndjson`),
//! written out as the body streams: first the raw events, oldest first, as
//! `{"kind": "event", "event": {…}}` (the console's event item), then the
//! memories, oldest first, as `{"kind": "memory", "memory": {…}}` (the
//! console's memory item). Promoted memories have no actor and are not the
//! actor's. `X-Export-Truncated: true` when an actor holds more than the
//! export reads of either.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use memsy_store::{EventScan, MemoryScan};
use serde_json::{json, Value};

use super::actors::check_org;
use super::events::event_item;
use super::memories::memory_item;
use super::store_unavailable;
use crate::caller::{Admin, Authorized};
use crate::fields::{check_id_len, Params};
use crate::{ApiError, AppState};

/// Most events (memories) one export reads.
const EXPORT_CAP: usize = 1_000_000;

pub async fn export_actor(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    Path(actor_id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    check_org(&p, &caller)?;
    check_id_len(&actor_id, "actor_id", s.config.limits.max_id_len)?;
    let events = EventScan { org_id: caller.org().into(), actor_id: Some(actor_id.clone()), ..Default::default() };
    let events = s.store.scan_events(&events, EXPORT_CAP).await.map_err(store_unavailable)?;
    let memories = MemoryScan { actor_id: Some(actor_id.clone()), ..MemoryScan::org(caller.org()) };
    let memories = s.store.scan_memories(&memories, EXPORT_CAP).await.map_err(store_unavailable)?;
    if events.items.is_empty() && memories.items.is_empty() {
        return Err(ApiError::not_found(format!("actor '{actor_id}' has nothing in this org")));
    }
    let truncated = events.truncated || memories.truncated;
    let (mut events, mut memories) = (events.items, memories.items);
    events.sort_by(|a, b| (&a.ts, &a.event_id).cmp(&(&b.ts, &b.event_id)));
    memories.sort_by(|a, b| (&a.created_at, &a.memory_id).cmp(&(&b.created_at, &b.memory_id)));
    let lines = events
        .into_iter()
        .map(|e| json!({ "kind": "event", "event": event_item(&e) }))
        .chain(memories.into_iter().map(|m| json!({ "kind": "memory", "memory": memory_item(&m) })))
        .map(|v: Value| Ok::<_, Infallible>(Bytes::from(format!("{v}\n"))));
    let body = Body::from_stream(futures::stream::iter(lines));
    let mut response = ([(CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    if truncated {
        response.headers_mut().insert("x-export-truncated", axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}
