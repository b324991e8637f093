//! `POST /status`: where each event is. Ids never seen, expired or of
//! another org come back failed with status `not_found`, so that a poller
//! waiting for every id to settle always terminates.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use memsy_status::EventState;
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
    let statuses = s.status.get(&key.org_id, &ids).await.map_err(|e| ApiError::unavailable(Component::Status, e))?;
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
