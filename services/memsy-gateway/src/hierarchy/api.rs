//! `/orgs`, `/roles` and `/teams`: the SDK's `client.orgs`, `client.roles`
//! and `client.teams`. Every route needs the `admin` scope and sees only the
//! key's own org: another org's records are 404 (they do not exist for this
//! key), and creating one for another org is 403 `org_mismatch`. Unlike
//! ingest, bodies here carry `org_id`, because the SDK sends it.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::{Map, Value};
use tracing::info;

use super::{HierarchyError, Level, Patch, Record, MAX_FOCUS, MAX_NAME, MAX_PROMPT};
use crate::fields::{json_object, opt_str, page_of, read_body, Params};
use crate::{ApiError, AppState, Caller};

/// Bodies are a few text fields; 8000 characters of prompt, JSON-escaped
/// as `\uXXXX` pairs, stay well below this.
const BODY_LIMIT: usize = 256 * 1024;
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// Roles or teams: the two kinds of record addressed by a minted id.
pub trait Kind: Send + Sync + 'static {
    const LEVEL: Level;
}

pub struct Roles;
pub struct Teams;

impl Kind for Roles {
    const LEVEL: Level = Level::Role;
}

impl Kind for Teams {
    const LEVEL: Level = Level::Team;
}

// ---- validation -------------------------------------------------------

/// A text field: absent/null → None; otherwise a string, trimmed, not
/// empty, at most `max` characters.
fn text(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    let Some(raw) = opt_str(obj, key, key)? else { return Ok(None) };
    let t = raw.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(key, "must not be empty"));
    }
    let n = t.chars().count();
    if n > max {
        return Err(ApiError::invalid(key, format!("is {n} characters long; at most {max} are allowed")));
    }
    Ok(Some(t.to_string()))
}

/// `name` and `focus` of a create body, both required.
pub fn parse_create(obj: &Map<String, Value>) -> Result<(String, String), ApiError> {
    let name = text(obj, "name", MAX_NAME)?.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let focus = text(obj, "focus", MAX_FOCUS)?.ok_or_else(|| ApiError::invalid("focus", "is required"))?;
    Ok((name, focus))
}

/// A PATCH body; every field optional, an empty object is a no-op. Fields
/// naming the record (`org_id`, `role_id`, `team_id`) may be repeated but
/// not changed.
pub fn parse_patch(obj: &Map<String, Value>, identity: &[(&str, &str)]) -> Result<Patch, ApiError> {
    for (field, current) in identity {
        if let Some(v) = opt_str(obj, field, field)? {
            if v != *current {
                return Err(ApiError::invalid(*field, "cannot be changed"));
            }
        }
    }
    Ok(Patch {
        name: text(obj, "name", MAX_NAME)?,
        focus: text(obj, "focus", MAX_FOCUS)?,
        promotion_prompt: text(obj, "promotion_prompt", MAX_PROMPT)?,
    })
}

/// The `org_id` of a create body: absent means the key's org; another org
/// is 403, since a key may only shape its own org.
pub fn check_body_org(caller_org: &str, obj: &Map<String, Value>) -> Result<(), ApiError> {
    match opt_str(obj, "org_id", "org_id")? {
        None => Ok(()),
        Some(o) if o == caller_org => Ok(()),
        Some("") => Err(ApiError::invalid("org_id", "must not be empty")),
        Some(o) => Err(ApiError::forbidden(
            "org_mismatch",
            format!("org_id '{o}' is not the org of this API key; records can only be created in '{caller_org}'"),
        )
        .with("org_id", o)),
    }
}

/// The org a path or query addresses: absent means the key's org; any
/// other org has no records this key can see, so it is 404.
pub fn addressed_org<'a>(caller_org: &'a str, org_id: Option<&str>) -> Result<&'a str, ApiError> {
    match org_id {
        None => Ok(caller_org),
        Some(o) if o == caller_org => Ok(caller_org),
        Some(o) => Err(ApiError::not_found(format!("no org '{o}'"))),
    }
}

fn not_found(level: Level, id: &str) -> ApiError {
    ApiError::not_found(format!("no {} record '{id}'", level.as_str()))
}

async fn read_object(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, ApiError> {
    json_object(&read_body(headers, body, BODY_LIMIT).await?)
}

fn list_json(records: &[Record]) -> Json<Value> {
    Json(Value::Array(records.iter().map(Record::to_json).collect()))
}

// ---- /orgs --------------------------------------------------------------

/// `GET /orgs`: the key's own org record, if it has one.
pub async fn list_orgs(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let record = s.hierarchy.get(Level::Org, caller.org(), caller.org()).await?;
    Ok(list_json(record.as_slice()))
}

pub async fn create_org(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let obj = read_object(&headers, body).await?;
    check_body_org(caller.org(), &obj)?;
    let (name, focus) = parse_create(&obj)?;
    let org = caller.org();
    let record = s.hierarchy.create(Level::Org, org, &name, &focus).await.map_err(|e| match e {
        HierarchyError::Exists => ApiError::conflict(
            "already_exists",
            format!("org '{org}' already has a record; change it with PATCH /orgs/{org}"),
        ),
        e => e.into(),
    })?;
    info!(org_id = org, by = caller.key.key_id, "org record created");
    Ok(Json(record.to_json()))
}

pub async fn get_org(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Some(&org_id))?;
    let record = s.hierarchy.get(Level::Org, org, org).await?.ok_or_else(|| not_found(Level::Org, org))?;
    Ok(Json(record.to_json()))
}

pub async fn update_org(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Some(&org_id))?;
    let obj = read_object(&headers, body).await?;
    let patch = parse_patch(&obj, &[("org_id", org)])?;
    let record = s.hierarchy.update(Level::Org, org, org, &patch).await?.ok_or_else(|| not_found(Level::Org, org))?;
    info!(org_id = org, by = caller.key.key_id, source = prompt_source(&record), "org record updated");
    Ok(Json(record.to_json()))
}

pub async fn regenerate_org(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Some(&org_id))?;
    let record = s.hierarchy.regenerate(Level::Org, org, org).await?.ok_or_else(|| not_found(Level::Org, org))?;
    info!(org_id = org, by = caller.key.key_id, "org promotion prompt regenerated");
    Ok(Json(record.to_json()))
}

pub async fn delete_org(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Some(&org_id))?;
    if !s.hierarchy.delete(Level::Org, org, org).await? {
        return Err(not_found(Level::Org, org));
    }
    info!(org_id = org, by = caller.key.key_id, "org record deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---- /roles and /teams ------------------------------------------------------

pub async fn list<K: Kind>(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let p = Params(q);
    let org = addressed_org(caller.org(), p.str("org_id"))?;
    let (limit, offset) = p.page(DEFAULT_LIMIT, MAX_LIMIT)?;
    let records = s.hierarchy.list(K::LEVEL, org).await?;
    Ok(list_json(&page_of(records, offset, limit)))
}

pub async fn create<K: Kind>(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let obj = read_object(&headers, body).await?;
    check_body_org(caller.org(), &obj)?;
    let (name, focus) = parse_create(&obj)?;
    let record = s.hierarchy.create(K::LEVEL, caller.org(), &name, &focus).await?;
    info!(org_id = caller.org(), level = K::LEVEL.as_str(), id = record.id, by = caller.key.key_id, "record created");
    Ok(Json(record.to_json()))
}

pub async fn get<K: Kind>(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Params(q).str("org_id"))?;
    let record = s.hierarchy.get(K::LEVEL, org, &id).await?.ok_or_else(|| not_found(K::LEVEL, &id))?;
    Ok(Json(record.to_json()))
}

pub async fn update<K: Kind>(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Params(q).str("org_id"))?;
    let obj = read_object(&headers, body).await?;
    let id_field = format!("{}_id", K::LEVEL.as_str());
    let patch = parse_patch(&obj, &[("org_id", org), (&id_field, &id)])?;
    let record = s.hierarchy.update(K::LEVEL, org, &id, &patch).await?.ok_or_else(|| not_found(K::LEVEL, &id))?;
    info!(
        org_id = org,
        level = K::LEVEL.as_str(),
        id,
        by = caller.key.key_id,
        source = prompt_source(&record),
        "record updated"
    );
    Ok(Json(record.to_json()))
}

pub async fn regenerate<K: Kind>(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Params(q).str("org_id"))?;
    let record = s.hierarchy.regenerate(K::LEVEL, org, &id).await?.ok_or_else(|| not_found(K::LEVEL, &id))?;
    info!(org_id = org, level = K::LEVEL.as_str(), id, by = caller.key.key_id, "promotion prompt regenerated");
    Ok(Json(record.to_json()))
}

pub async fn delete<K: Kind>(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    caller.require("admin")?;
    let org = addressed_org(caller.org(), Params(q).str("org_id"))?;
    if !s.hierarchy.delete(K::LEVEL, org, &id).await? {
        return Err(not_found(K::LEVEL, &id));
    }
    info!(org_id = org, level = K::LEVEL.as_str(), id, by = caller.key.key_id, "record deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn prompt_source(r: &Record) -> &'static str {
    if r.prompt_meta.is_user() {
        "user"
    } else {
        "template"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn field_of(e: ApiError) -> (StatusCode, String) {
        (e.status, e.extra.get("field").and_then(Value::as_str).unwrap_or_default().to_string())
    }

    #[test]
    fn create_needs_name_and_focus() {
        let ok = parse_create(&obj(json!({"name": "  Support  ", "focus": "refunds", "extra": 1}))).unwrap();
        assert_eq!(ok, ("Support".to_string(), "refunds".to_string()));
        let cases = [
            (json!({"focus": "f"}), "name"),
            (json!({"name": "", "focus": "f"}), "name"),
            (json!({"name": "   ", "focus": "f"}), "name"),
            (json!({"name": 5, "focus": "f"}), "name"),
            (json!({"name": "n".repeat(MAX_NAME + 1), "focus": "f"}), "name"),
            (json!({"name": "n"}), "focus"),
            (json!({"name": "n", "focus": ""}), "focus"),
            (json!({"name": "n", "focus": ["f"]}), "focus"),
            (json!({"name": "n", "focus": "f".repeat(MAX_FOCUS + 1)}), "focus"),
        ];
        for (body, field) in cases {
            let e = parse_create(&obj(body.clone())).unwrap_err();
            assert_eq!(field_of(e), (StatusCode::UNPROCESSABLE_ENTITY, field.to_string()), "{body}");
        }
        // Limits count characters, not bytes.
        assert!(parse_create(&obj(json!({"name": "é".repeat(MAX_NAME), "focus": "f"}))).is_ok());
    }

    #[test]
    fn patch_fields_are_optional_but_checked() {
        let empty = parse_patch(&obj(json!({})), &[]).unwrap();
        assert!(empty.name.is_none() && empty.focus.is_none() && empty.promotion_prompt.is_none());
        let nulls = parse_patch(&obj(json!({"name": null, "focus": null})), &[]).unwrap();
        assert!(nulls.name.is_none() && nulls.focus.is_none());
        let p =
            parse_patch(&obj(json!({"promotion_prompt": "Promote X", "role_id": "role_1"})), &[("role_id", "role_1")])
                .unwrap();
        assert_eq!(p.promotion_prompt.as_deref(), Some("Promote X"));
        let cases = [
            (json!({"name": ""}), "name"),
            (json!({"focus": 3}), "focus"),
            (json!({"promotion_prompt": "p".repeat(MAX_PROMPT + 1)}), "promotion_prompt"),
            (json!({"promotion_prompt": " "}), "promotion_prompt"),
            (json!({"role_id": "role_2"}), "role_id"),
            (json!({"org_id": "other"}), "org_id"),
        ];
        for (body, field) in cases {
            let e = parse_patch(&obj(body.clone()), &[("org_id", "acme"), ("role_id", "role_1")]).unwrap_err();
            assert_eq!(field_of(e), (StatusCode::UNPROCESSABLE_ENTITY, field.to_string()), "{body}");
        }
    }

    #[test]
    fn orgs_are_the_callers_own() {
        assert!(check_body_org("acme", &obj(json!({"name": "n"}))).is_ok());
        assert!(check_body_org("acme", &obj(json!({"org_id": "acme"}))).is_ok());
        let e = check_body_org("acme", &obj(json!({"org_id": "globex"}))).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "org_mismatch"));
        // The SDK reads "scope" in a 403 as a missing scope; this is not one.
        assert!(!e.message.to_lowercase().contains("scope"));
        assert_eq!(
            check_body_org("acme", &obj(json!({"org_id": 1}))).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            check_body_org("acme", &obj(json!({"org_id": ""}))).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );

        assert_eq!(addressed_org("acme", None).unwrap(), "acme");
        assert_eq!(addressed_org("acme", Some("acme")).unwrap(), "acme");
        let e = addressed_org("acme", Some("globex")).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "not_found"));
    }
}
