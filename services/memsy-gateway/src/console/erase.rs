//! `DELETE /actors/{actor_id}` (admin): erases everything memsy holds of one
//! actor of the caller's org and answers what it removed (see
//! [`crate::erasure`]). Erasing again is safe: the marker is set again and
//! nothing is found, which is a 404 like any actor the org does not hold.

use axum::extract::{Path, State};
use axum::Json;
use tracing::info;

use super::actors::check_org;
use crate::caller::{Admin, Authorized};
use crate::erasure::{ActorErasure, Eraser};
use crate::fields::{check_id_len, Params};
use crate::{ApiError, AppState};

/// What an erasure reaches, from the gateway's state.
fn eraser(s: &AppState) -> Eraser {
    Eraser {
        bus: s.bus.clone(),
        store: s.store.clone(),
        erasures: s.erasures.clone(),
        dedup: s.dedup.clone(),
        min_holders: s.config.indexer.promotion_min_actors.max(2),
    }
}

pub async fn erase_actor(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    Path(actor_id): Path<String>,
    p: Params,
) -> Result<Json<ActorErasure>, ApiError> {
    check_org(&p, &caller)?;
    check_id_len(&actor_id, "actor_id", s.config.limits.max_id_len)?;
    let erasure = eraser(&s).erase_actor(caller.org(), &actor_id).await?;
    info!(
        org_id = caller.org(),
        key_id = caller.key.key_id,
        events = erasure.events,
        memories = erasure.memories,
        stream_messages = erasure.stream_messages,
        "actor erased"
    );
    if !erasure.found_any() {
        return Err(ApiError::not_found(format!("actor '{actor_id}' has nothing in this org")));
    }
    Ok(Json(erasure))
}
