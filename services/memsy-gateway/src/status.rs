//! `POST /status`: where each event is. Ids never seen, expired or of
//! another org come back failed with status `not_found`, so that a poller
//! waiting for every id to settle always terminates. The status store
//! (Redis) may have lost an event's state (restarted empty, or the state's
//! TTL passed); for the ids it does not know the durable records answer: an
//! event the store holds among its raw events was indexed, so it is
//! `completed`; one with a dead letter is `failed` with the stage and
//! reason; one still in the raw-event log is `pending`. None of them is
//! ever `not_found`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use memsy_bus::EventRecord;
use memsy_core::ids::is_event_id;
use memsy_status::{EventState, Status};
use serde::Serialize;
use utoipa::ToSchema;

use crate::caller::{Authorized, Read};
use crate::fields::{opt_str_list, read_object, reject_org_id};
use crate::{ApiError, AppState, Component};

/// `POST /status`: the SDK's `StatusResponse`. Every id asked about is in
/// exactly one of the three lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    #[serde(rename = "completedIds")]
    pub completed_ids: Vec<String>,
    /// Failed, or `not_found` (never seen, expired or another org's).
    #[serde(rename = "failedIds")]
    pub failed_ids: Vec<String>,
    #[serde(rename = "pendingIds")]
    pub pending_ids: Vec<String>,
    /// How many ids were asked about.
    pub total: usize,
    /// Each distinct id and where it is.
    pub statuses: BTreeMap<String, EventStatus>,
    /// Why each failed event failed (`<stage>: <reason>`), when known.
    pub reasons: BTreeMap<String, String>,
}

/// Where one event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Pending,
    Completed,
    Failed,
    NotFound,
}

pub async fn status(
    State(s): State<AppState>,
    caller: Authorized<Read>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<StatusResponse>, ApiError> {
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
                EventStatus::Completed
            }
            EventState::Pending => {
                pending.push(st.event_id.clone());
                EventStatus::Pending
            }
            EventState::Failed => {
                failed.push(st.event_id.clone());
                EventStatus::Failed
            }
            _ => {
                failed.push(st.event_id.clone());
                EventStatus::NotFound
            }
        };
        by_id.insert(st.event_id.clone(), label);
    }
    let reasons = statuses
        .iter()
        .filter(|s| s.state == EventState::Failed && !s.reason.is_empty())
        .map(|s| (s.event_id.clone(), s.reason.clone()))
        .collect();
    Ok(Json(StatusResponse {
        completed_ids: completed,
        failed_ids: failed,
        pending_ids: pending,
        total: ids.len(),
        statuses: by_id,
        reasons,
    }))
}

/// `statuses` with every id Redis does not know looked up in the durable
/// records ([`durable_records`]). Ids Redis knows cost nothing more: the
/// common path stays one Redis call.
async fn with_durable_records(s: &AppState, org_id: &str, mut statuses: Vec<Status>) -> Result<Vec<Status>, ApiError> {
    let unknown: Vec<String> =
        statuses.iter().filter(|st| st.state == EventState::NotFound).map(|st| st.event_id.clone()).collect();
    if unknown.is_empty() {
        return Ok(statuses);
    }
    let mut found = durable_records(s, org_id, &unknown).await?;
    for st in statuses.iter_mut().filter(|st| st.state == EventState::NotFound) {
        if let Some(durable) = found.remove(&st.event_id) {
            *st = durable;
        }
    }
    Ok(statuses)
}

/// Without the status store: every id's state from the durable records
/// when they know them all; None otherwise (or when they cannot be read).
async fn stored_only(s: &AppState, org_id: &str, ids: &[String]) -> Option<Vec<Status>> {
    let mut found = durable_records(s, org_id, ids).await.ok()?;
    ids.iter().map(|id| found.remove(id)).collect()
}

/// The state of each of `ids` the durable records know, in the order that
/// settles it: the store's raw events (written when an event is indexed)
/// make it completed; else its latest dead letter makes it failed with the
/// stage and reason; else the raw-event log holding it makes it pending.
/// Ids none of them know (never ingested, another org's, or older than the
/// event log's `nats.events_max_age_days`) are left out.
async fn durable_records(s: &AppState, org_id: &str, ids: &[String]) -> Result<BTreeMap<String, Status>, ApiError> {
    let status = |id: &str, state, reason: String| Status { event_id: id.to_string(), state, reason };
    let stored = s.store.get_events(org_id, ids).await.map_err(|e| ApiError::unavailable(Component::VectorStore, e))?;
    let mut found: BTreeMap<String, Status> = stored
        .iter()
        .map(|e| (e.event_id.clone(), status(&e.event_id, EventState::Completed, String::new())))
        .collect();
    // Only ids the gateway could have minted can be in the broker's records.
    let rest: Vec<String> = ids.iter().filter(|id| !found.contains_key(*id) && is_event_id(id)).cloned().collect();
    if rest.is_empty() {
        return Ok(found);
    }
    if !s.bus.is_connected() {
        return Err(ApiError::unavailable(Component::Nats, "not connected"));
    }
    // Bounded like a call to the status service: a hung broker must not
    // hold the answer longer than a hung status store would.
    let limit = Duration::from_millis(s.config.status.timeout_ms);
    let records = tokio::time::timeout(limit, s.bus.event_records(org_id, &rest))
        .await
        .map_err(|_| ApiError::unavailable(Component::Nats, "the event records did not answer in time"))?
        .map_err(|e| ApiError::unavailable(Component::Nats, e))?;
    for (id, record) in rest.iter().zip(records) {
        let st = match record {
            Some(EventRecord::DeadLettered { stage, reason }) => {
                status(id, EventState::Failed, format!("{stage}: {reason}"))
            }
            Some(EventRecord::Queued) => status(id, EventState::Pending, String::new()),
            None => continue,
        };
        found.insert(id.clone(), st);
    }
    Ok(found)
}
