//! The control plane under `/api`: who am I, API keys, usage, and the
//! answers a self-hosted deployment gives for billing, the Pro waiting list
//! and connectors (not part of memsy). Its raw events view is a console
//! view, served from `console`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use chrono::{Datelike, Days, Duration, NaiveDate, Utc};
use memsy_core::time::{format_rfc3339, parse_ts};
use memsy_usage::{limit, month_bounds, Dimension, Granularity};
use serde_json::{json, Value};
use tracing::info;

use crate::auth::{parse_scopes, ApiKeyRecord};
use crate::caller::{Admin, Authorized};
use crate::fields::{opt_str, opt_str_list, opt_text, read_object, Params};
use crate::{ApiError, AppState, Caller, Component};

/// Where a self-hosted deployment would send people interested in a paid plan.
const INTEREST_PATH: &str = "/api/interest/pro";

/// Days of per-key usage `GET /keys/{id}/usage` reports.
const KEY_USAGE_DAYS: u32 = 30;

pub async fn me(Extension(caller): Extension<Caller>) -> Json<Value> {
    let k = &caller.key;
    let admin = k.has_scope("admin");
    Json(json!({
        "customer_id": k.org_id,
        // API keys belong to an org, not to a person: there is no email.
        "email": "",
        "tier": caller.plan_name,
        "is_superadmin": false,
        "org_id": k.org_id,
        "is_billing_admin": false,
        "user_id": k.key_id,
        "org_role": if admin { "admin" } else { "member" },
        "key_id": k.key_id,
        "key_name": k.name,
        "scopes": k.scopes,
    }))
}

fn key_info(k: &ApiKeyRecord, last_used_at: Option<String>) -> Value {
    json!({
        "key_id": k.key_id,
        "prefix": k.prefix,
        "name": k.name,
        "scopes": k.scopes,
        "is_active": !k.is_expired(),
        "created_at": k.created_at,
        "last_used_at": last_used_at,
        "expires_at": k.expires_at,
    })
}

pub async fn list_keys(State(s): State<AppState>, caller: Authorized<Admin>) -> Result<Json<Value>, ApiError> {
    let keys = s.keys.list(caller.org()).await;
    let ids: Vec<String> = keys.iter().map(|k| k.key_id.clone()).collect();
    let used = s.meter.last_used(&ids).await.map_err(|e| ApiError::unavailable(Component::Redis, e))?;
    let active = keys.iter().filter(|k| !k.is_expired()).count();
    let infos: Vec<Value> = keys.iter().zip(used).map(|(k, u)| key_info(k, u)).collect();
    Ok(Json(json!({ "keys": infos, "max_keys": caller.plan.max_keys, "active_count": active })))
}

pub async fn create_key(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let obj = read_object(&headers, body, 64 * 1024).await?;
    // Trimmed first: a name of blanks is as empty as "".
    let name = opt_text(&obj, "name", 200)?.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let scopes = if obj.contains_key("scopes") {
        parse_scopes(&opt_str_list(&obj, "scopes")?.join(",")).map_err(|e| ApiError::invalid("scopes", e))?
    } else {
        vec!["read".to_string(), "write".to_string()]
    };
    let expires_at = match opt_str(&obj, "expires_at", "expires_at")? {
        None => None,
        Some(raw) => {
            let t = parse_ts(raw).ok_or_else(|| ApiError::invalid("expires_at", "is not an ISO 8601 time"))?;
            if t <= Utc::now() {
                return Err(ApiError::invalid("expires_at", "is in the past"));
            }
            Some(format_rfc3339(t))
        }
    };
    let live = s.keys.list(caller.org()).await.iter().filter(|k| !k.is_expired()).count() as u64;
    if live >= caller.plan.max_keys {
        return Err(ApiError::forbidden(
            "key_limit_reached",
            format!("plan '{}' allows {} live API keys; revoke one first", caller.plan_name, caller.plan.max_keys),
        )
        .with("limit", caller.plan.max_keys)
        .with("current", live));
    }
    let (raw, record) = s
        .keys
        .create(caller.org(), &name, &scopes, expires_at)
        .await
        .map_err(|e| ApiError::unavailable(Component::Nats, e))?;
    info!(org_id = caller.org(), key_id = record.key_id, by = caller.key.key_id, "api key created over the API");
    Ok(Json(json!({
        "key_id": record.key_id,
        "raw_key": raw,
        "prefix": record.prefix,
        "name": record.name,
        "scopes": record.scopes,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
    })))
}

pub async fn revoke_key(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = s.keys.revoke(caller.org(), &key_id).await.map_err(|e| ApiError::unavailable(Component::Nats, e))?;
    if !revoked {
        return Err(ApiError::not_found(format!("no API key '{key_id}' in this org")));
    }
    info!(org_id = caller.org(), key_id, by = caller.key.key_id, "api key revoked over the API");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn key_usage(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !s.keys.list(caller.org()).await.iter().any(|k| k.key_id == key_id) {
        return Err(ApiError::not_found(format!("no API key '{key_id}' in this org")));
    }
    let points = s
        .meter
        .key_usage(&key_id, KEY_USAGE_DAYS, Utc::now())
        .await
        .map_err(|e| ApiError::unavailable(Component::Redis, e))?;
    let usage: Vec<Value> = points
        .iter()
        .map(|p| json!({ "date": p.date, "dimension": p.dimension.as_str(), "quantity": p.quantity }))
        .collect();
    Ok(Json(json!({ "key_id": key_id, "days": KEY_USAGE_DAYS, "usage": usage })))
}

pub async fn usage_summary(State(s): State<AppState>, caller: Authorized<Admin>) -> Result<Json<Value>, ApiError> {
    let now = Utc::now();
    let mut counters =
        s.meter.month(caller.org(), now).await.map_err(|e| ApiError::unavailable(Component::Redis, e))?;
    if let Some(n) = s.levels.fresh(caller.org()).await {
        counters.insert(Dimension::MemoriesStored, n);
    }
    let (start, end) = month_bounds(now);
    let dimensions: Vec<Value> = Dimension::ALL
        .iter()
        .map(|&d| {
            json!({
                "dimension": d.as_str(),
                "used": counters.get(&d).copied().unwrap_or_default(),
                "limit": limit(&caller.plan, d),
                "overage_rate": null,
            })
        })
        .collect();
    Ok(Json(json!({
        "org_id": caller.org(),
        "tier": caller.plan_name,
        "period_start": format_rfc3339(start),
        "period_end": format_rfc3339(end - Duration::milliseconds(1)),
        "dimensions": dimensions,
    })))
}

fn date_param(p: &Params, key: &str) -> Result<Option<NaiveDate>, ApiError> {
    p.str(key)
        .map(|raw| {
            parse_ts(raw)
                .map(|t| t.date_naive())
                .ok_or_else(|| ApiError::invalid(key, format!("'{raw}' is not an ISO 8601 date")))
        })
        .transpose()
}

pub async fn usage_timeseries(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let granularity = p.choice("granularity", "daily", &["daily", "hourly"])?;
    let dims = match p.str("dimension") {
        None => Dimension::ALL.to_vec(),
        Some(d) => vec![Dimension::parse(d).ok_or_else(|| {
            let all: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
            ApiError::invalid("dimension", format!("'{d}' is not one of {}", all.join(", ")))
        })?],
    };
    let today = Utc::now().date_naive();
    let g = Granularity::parse(granularity).expect("validated above");
    let end = date_param(&p, "period_end")?.unwrap_or(today);
    // Without a start: the month (daily) or the day (hourly) that ends the
    // period, so that a period_end alone is never before its own start.
    let default_start = match g {
        Granularity::Daily => end - Days::new(u64::from(end.day0())),
        Granularity::Hourly => end,
    };
    let start = date_param(&p, "period_start")?.unwrap_or(default_start);
    if end < start {
        return Err(ApiError::invalid("period_end", "is before period_start"));
    }
    let points = s.meter.timeseries(caller.org(), &dims, g, start, end).await.map_err(|e| match e {
        memsy_usage::UsageError::Invalid(m) => ApiError::invalid("period_start", m),
        other => ApiError::unavailable(Component::Redis, other),
    })?;
    let data: Vec<Value> = points
        .iter()
        .map(|pt| json!({ "date": pt.date, "dimension": pt.dimension.as_str(), "quantity": pt.quantity }))
        .collect();
    Ok(Json(json!({ "org_id": caller.org(), "granularity": granularity, "data": data })))
}

/// `/api/billing/*` and `/api/interest/*`: a self-hosted deployment bills nobody.
pub async fn billing(Extension(_caller): Extension<Caller>) -> ApiError {
    ApiError::forbidden("billing_not_enabled", "billing is not enabled on this self-hosted memsy deployment")
        .with("interest_path", INTEREST_PATH)
}

/// `/api/connectors/*`: memsy ingests through its API only.
pub async fn connectors(Extension(caller): Extension<Caller>) -> ApiError {
    ApiError::forbidden(
        "feature_not_available",
        "connectors are not available on this memsy deployment; send events through POST /v1/ingest",
    )
    .with("feature", "connectors")
    .with("current_tier", caller.plan_name)
}
