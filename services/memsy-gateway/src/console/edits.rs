//! `PATCH` and `DELETE /memories/{memory_id}`: a user's corrections of one
//! memory of their org. Both act on the store at once, so search, the
//! console, actors and stats see them on the next read; the pipeline's later
//! rewrites keep a pin and an archive (see `MemoryStore::replace_memories`)
//! and cannot bring a deleted memory back.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use memsy_store::{MemoryEdit, UserStatus};
use serde_json::{json, Value};

use super::memories::{memory_item, normalize_uuid};
use super::store_unavailable;
use crate::caller::{Authorized, Write};
use crate::fields::{opt_bool, opt_str, read_object, reject_org_id};
use crate::{ApiError, AppState};

/// The fields a memory edit may carry.
const EDITABLE: [&str; 2] = ["pinned", "status"];

fn memory_id_of(raw: &str) -> Result<String, ApiError> {
    normalize_uuid(raw).ok_or_else(|| ApiError::invalid("memory_id", "must be a UUID"))
}

fn no_such_memory(id: &str) -> ApiError {
    ApiError::not_found(format!("no memory '{id}' in this org"))
}

/// The edit a `PATCH` body asks for: `pinned` (true/false) and/or `status`
/// (`active`, `archived`); any other field is refused by name.
fn edit_of(body: &serde_json::Map<String, Value>) -> Result<MemoryEdit, ApiError> {
    if let Some(other) = body.keys().find(|k| !EDITABLE.contains(&k.as_str())) {
        return Err(ApiError::invalid(other.clone(), "cannot be changed: a memory edit takes pinned and status"));
    }
    let pinned = opt_bool(body, "pinned")?;
    let status = match opt_str(body, "status", "status")? {
        None => None,
        Some(raw) => Some(UserStatus::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            ApiError::invalid("status", format!("'{raw}' is not one of active, archived (superseded is set by memsy)"))
        })?),
    };
    if pinned.is_none() && status.is_none() {
        return Err(ApiError::invalid("pinned", "an edit needs pinned or status"));
    }
    Ok(MemoryEdit { pinned, status, at: memsy_core::time::now_rfc3339() })
}

/// `PATCH /memories/{memory_id}`: pin or unpin (a pinned memory does not
/// decay), archive (out of search, still in the console) or restore.
pub async fn patch_memory(
    State(s): State<AppState>,
    caller: Authorized<Write>,
    Path(memory_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id = memory_id_of(&memory_id)?;
    let body = read_object(&headers, body, s.config.limits.max_body_bytes).await?;
    reject_org_id(&body)?;
    let edit = edit_of(&body)?;
    let mut edited = s.store.edit_memory(caller.org(), &id, &edit).await.map_err(store_unavailable)?;
    super::as_of_now(edited.as_mut_slice());
    let m = edited.ok_or_else(|| no_such_memory(&id))?;
    Ok(Json(memory_item(&m)))
}

/// `DELETE /memories/{memory_id}`: the memory is gone from every view.
pub async fn delete_memory(
    State(s): State<AppState>,
    caller: Authorized<Write>,
    Path(memory_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = memory_id_of(&memory_id)?;
    let deleted = s.store.delete_memories(caller.org(), std::slice::from_ref(&id)).await.map_err(store_unavailable)?;
    if deleted.is_empty() {
        return Err(no_such_memory(&id));
    }
    Ok(Json(json!({ "memory_id": id, "deleted": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_edit_takes_pinned_and_status_only() {
        let e = edit_of(&body(json!({"pinned": true, "status": "archived"}))).unwrap();
        assert_eq!((e.pinned, e.status), (Some(true), Some(UserStatus::Archived)));
        let e = edit_of(&body(json!({"status": "active"}))).unwrap();
        assert_eq!((e.pinned, e.status), (None, Some(UserStatus::Active)));
        let field =
            |v: Value| edit_of(&body(v)).unwrap_err().extra.get("field").and_then(Value::as_str).map(String::from);
        assert_eq!(field(json!({})), Some("pinned".into()));
        assert_eq!(field(json!({"text": "x"})), Some("text".into()));
        assert_eq!(field(json!({"status": "superseded"})), Some("status".into()));
        assert_eq!(field(json!({"pinned": "yes"})), Some("pinned".into()));
        assert_eq!(field(json!({"org_id": "o", "pinned": true})), Some("org_id".into()));
    }
}
