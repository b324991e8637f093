//! `GET /api/console/events`: the org's raw events once indexed, as the
//! SDK's `EventItemResponse`, a page at a time; `GET
//! /api/console/events/{event_id}`: one of them (a memory's source event).

use axum::extract::{Path, State};
use axum::Json;
use memsy_core::model::{StoredEvent, EVENT_KINDS};
use memsy_store::EventScan;
use serde_json::{json, Value};

use super::{scan_events, sort_param, store_unavailable};
use crate::caller::{Authorized, Read};
use crate::fields::{page_envelope, Params};
use crate::{ApiError, AppState};

/// `sort` values: newest (or oldest) first by `ts`.
const SORTS: [(&str, bool); 2] = [("ts_desc", true), ("ts_asc", false)];

/// The caller's metadata string as the console shows it: a JSON object as
/// is, anything else under `raw`.
fn metadata_value(raw: Option<&str>) -> Value {
    match raw {
        None => Value::Null,
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "raw": s }),
        },
    }
}

pub(super) fn event_item(e: &StoredEvent) -> Value {
    json!({
        "event_id": e.event_id,
        "org_id": e.org_id,
        "actor_id": e.actor_id,
        "session_id": e.session_id,
        "kind": e.kind,
        "content": e.content,
        "ts": e.ts,
        "role_id": e.role_id,
        "team_id": e.team_id,
        "metadata": metadata_value(e.metadata.as_deref()),
        "ingested_at": e.ingested_at,
    })
}

/// Sorts by `ts`, the event id breaking ties so that pages are stable.
fn sort_events(events: &mut [StoredEvent], descending: bool) {
    // Times are stored normalised (RFC 3339, UTC, milliseconds), so they sort as strings.
    events.sort_by(|a, b| (&a.ts, &a.event_id).cmp(&(&b.ts, &b.event_id)));
    if descending {
        events.reverse();
    }
}

/// `GET /api/console/events`: see the module documentation.
pub async fn console_events(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let descending = sort_param(&p, &SORTS)?;
    let page = p.page(50, 200)?;
    let kind = p.str("kind");
    if let Some(kind) = kind.filter(|k| !EVENT_KINDS.contains(k)) {
        return Err(ApiError::invalid("kind", format!("'{kind}' is not one of {}", EVENT_KINDS.join(", "))));
    }
    let scan = EventScan {
        org_id: caller.org().to_string(),
        actor_id: p.str("actor_id").map(str::to_string),
        session_id: p.str("session_id").map(str::to_string),
        kind: kind.map(str::to_string),
    };
    let scanned = scan_events(&s, &scan).await?;
    let mut events = scanned.items;
    sort_events(&mut events, descending);
    Ok(page_envelope(events, page, scanned.truncated, event_item))
}

/// `GET /api/console/events/{event_id}`: one event of the caller's org;
/// another org's event is as absent as an unknown one.
pub async fn get_event(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    Path(event_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let found = s.store.get_events(caller.org(), std::slice::from_ref(&event_id)).await.map_err(store_unavailable)?;
    let e = found
        .iter()
        .find(|e| e.event_id == event_id && e.org_id == caller.org())
        .ok_or_else(|| ApiError::not_found(format!("no event '{event_id}' in this org")))?;
    Ok(Json(event_item(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_an_object_or_raw() {
        assert_eq!(metadata_value(None), Value::Null);
        assert_eq!(metadata_value(Some(r#"{"a": 1}"#)), json!({"a": 1}));
        assert_eq!(metadata_value(Some("[1]")), json!({"raw": "[1]"}));
        assert_eq!(metadata_value(Some("plain")), json!({"raw": "plain"}));
    }
}
