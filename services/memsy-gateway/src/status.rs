//! `POST /status`: where each event is. Ids never seen, expired or of
//! another org come back failed with status `not_found`, so that a poller
//! waiting for every id to settle always terminates. The status store
//! (Redis) may have lost an event's state (restarted empty, or the state's
//! TTL passed): an event the store holds among its raw events was indexed,
//! so it is `completed` whatever Redis says, and never `not_found`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use memsy_status::{EventState, Status};
use serde_json::{json, Value};

use crate::caller::{Authorized, Read};
use crate::fields::{opt_str_list, read_object, reject_org_id};
use crate::{ApiError, AppState, Component};

pub async fn status(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let key = &caller.key;
    let obj = read_object(&headers, body, s.config.limits.max_body_bytes).await?;
    reject_org_id(&obj)?;
    if !obj.contains_key("event_ids") {
        return Err(ApiError::invalid("event_ids", "is required"));
    }
    let ids = opt_str_list(&obj, "event_ids")?;
    let max = s.config.limits.max_status_ids;
    if ids.len() > max {
        return Err(ApiError::invalid("event_ids", format!("holds {} ids; at most {max} are allowed", ids.len())));
    }
    let statuses = match s.status.get(&key.org_id, &ids).await {
        Ok(statuses) => with_durable_records(&s, &key.org_id, statuses).await?,
        // Without the status store, what the store holds is still known:
        // answer if that covers every id, else say what is down.
        Err(e) => match stored_only(&s, &key.org_id, &ids).await {
            Some(statuses) => statuses,
            None => return Err(ApiError::unavailable(Component::Status, e)),
        },
    };
    let (mut completed, mut failed, mut pending) = (vec![], vec![], vec![]);
    let mut by_id = BTreeMap::new();
    for st in &statuses {
        let label = match st.state {
            EventState::Completed => {
                completed.push(st.event_id.clone());
                "completed"
            }
            EventState::Pending => {
                pending.push(st.event_id.clone());
                "pending"
            }
            EventState::Failed => {
                failed.push(st.event_id.clone());
                "failed"
            }
            _ => {
                failed.push(st.event_id.clone());
                "not_found"
            }
        };
        by_id.insert(st.event_id.clone(), label);
    }
    let reasons: BTreeMap<&str, &str> = statuses
        .iter()
        .filter(|s| s.state == EventState::Failed && !s.reason.is_empty())
        .map(|s| (s.event_id.as_str(), s.reason.as_str()))
        .collect();
    Ok(Json(json!({
        "completedIds": completed,
        "failedIds": failed,
        "pendingIds": pending,
        "total": ids.len(),
        "statuses": by_id,
        "reasons": reasons,
    })))
}

/// `statuses` with every id Redis does not know looked up among the stored
/// raw events (written when an event is indexed): those are completed.
async fn with_durable_records(s: &AppState, org_id: &str, mut statuses: Vec<Status>) -> Result<Vec<Status>, ApiError> {
    let unknown: Vec<String> =
        statuses.iter().filter(|st| st.state == EventState::NotFound).map(|st| st.event_id.clone()).collect();
    if unknown.is_empty() {
        return Ok(statuses);
    }
    let stored =
        s.store.get_events(org_id, &unknown).await.map_err(|e| ApiError::unavailable(Component::VectorStore, e))?;
    let stored: std::collections::BTreeSet<&str> = stored.iter().map(|e| e.event_id.as_str()).collect();
    for st in statuses.iter_mut().filter(|st| st.state == EventState::NotFound) {
        if stored.contains(st.event_id.as_str()) {
            st.state = EventState::Completed;
        }
    }
    Ok(statuses)
}

/// Every id as completed when the store holds them all; None otherwise.
async fn stored_only(s: &AppState, org_id: &str, ids: &[String]) -> Option<Vec<Status>> {
    let stored = s.store.get_events(org_id, ids).await.ok()?;
    let stored: std::collections::BTreeSet<&str> = stored.iter().map(|e| e.event_id.as_str()).collect();
    ids.iter()
        .map(|id| {
            stored.contains(id.as_str()).then(|| Status {
                event_id: id.clone(),
                state: EventState::Completed,
                reason: String::new(),
            })
        })
        .collect()
}
