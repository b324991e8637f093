//! `/orgs`, `/roles` and `/teams`: the SDK's `client.orgs`, `client.roles`
//! and `client.teams`. Every route needs the `admin` scope and sees only the
//! key's own org: another org's records are 404 (they do not exist for this
//! key), and creating one for another org is 403 `org_mismatch`. Unlike
//! ingest, bodies here carry `org_id`, because the SDK sends it.

use std::marker::PhantomData;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use memsy_usage::Dimension;
use serde_json::{Map, Value};
use tracing::info;

use super::{HierarchyError, Level, Patch, Record, MAX_FOCUS, MAX_NAME, MAX_PROMPT};
use crate::caller::{Admin, Authorized};
use crate::fields::{opt_prose, opt_str, opt_text, page_of, read_object, Params};
use crate::{ApiError, AppState, Caller};

/// Bodies are a few text fields; 8000 characters of prompt, JSON-escaped
/// as `\uXXXX` pairs, stay well below this.
const BODY_LIMIT: usize = 256 * 1024;
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

/// Orgs, roles or teams: the kinds of record a route serves.
pub trait Kind: Send + Sync + 'static {
    const LEVEL: Level;
}

pub struct Orgs;
pub struct Roles;
pub struct Teams;

impl Kind for Orgs {
    const LEVEL: Level = Level::Org;
}

impl Kind for Roles {
    const LEVEL: Level = Level::Role;
}

impl Kind for Teams {
    const LEVEL: Level = Level::Team;
}

// ---- validation -------------------------------------------------------

/// `name` and `focus` of a create body, both required.
pub fn parse_create(obj: &Map<String, Value>) -> Result<(String, String), ApiError> {
    let name = opt_text(obj, "name", MAX_NAME)?.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let focus = opt_text(obj, "focus", MAX_FOCUS)?.ok_or_else(|| ApiError::invalid("focus", "is required"))?;
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
        name: opt_text(obj, "name", MAX_NAME)?,
        focus: opt_text(obj, "focus", MAX_FOCUS)?,
        promotion_prompt: opt_prose(obj, "promotion_prompt", MAX_PROMPT)?,
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

/// The record a request addresses, for a key with the `admin` scope: an
/// org record by the org in the path, a role or team by the id in the path
/// and the org in `?org_id=` (absent means the key's own). Any other org is
/// 404 (see [`addressed_org`]).
pub struct Target<K> {
    caller: Caller,
    org: String,
    id: String,
    kind: PhantomData<K>,
}

impl<K: Kind, S: Send + Sync> FromRequestParts<S> for Target<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Authorized::<Admin>::from_request_parts(parts, state).await?.into_caller();
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
        let org = if K::LEVEL == Level::Org {
            addressed_org(caller.org(), Some(&id))?.to_string()
        } else {
            let query = Params::from_request_parts(parts, state).await?;
            addressed_org(caller.org(), query.str("org_id"))?.to_string()
        };
        Ok(Self { caller, org, id, kind: PhantomData })
    }
}

impl<K: Kind> Target<K> {
    fn not_found(&self) -> ApiError {
        ApiError::not_found(format!("no {} record '{}'", K::LEVEL.as_str(), self.id))
    }

    /// Logs what was done to the record (and who wrote its prompt now).
    fn log(&self, what: &str, record: Option<&Record>) {
        let (org_id, level, id, by) = (&self.org, K::LEVEL.as_str(), &self.id, &self.caller.key.key_id);
        info!(org_id, level, id, by, source = record.map(|r| r.prompt_meta.source()), "{level} record {what}");
    }
}

/// Before a prompt may be generated: when an LLM writes prompts that spends
/// tokens, so an org already past its plan's `llm_tokens` quota is refused
/// (429 `usage_limit_exceeded`), as its ingest is. The template spends none.
fn check_llm_quota(s: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if s.hierarchy.uses_llm() {
        caller.check_quota(Dimension::LlmTokens, 0)?;
    }
    Ok(())
}

fn list_json(records: &[Record]) -> Json<Value> {
    Json(Value::Array(records.iter().map(Record::to_json).collect()))
}

/// `GET /orgs`: the key's own org record, if it has one.
pub async fn list_orgs(State(s): State<AppState>, caller: Authorized<Admin>) -> Result<Json<Value>, ApiError> {
    let record = s.hierarchy.get(Level::Org, caller.org(), caller.org()).await?;
    Ok(list_json(record.as_slice()))
}

/// `GET /roles`, `GET /teams`: the org's records, oldest first, a page at a time.
pub async fn list<K: Kind>(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let org = addressed_org(caller.org(), p.str("org_id"))?;
    let (limit, offset) = p.page(DEFAULT_LIMIT, MAX_LIMIT)?;
    let records = s.hierarchy.list(K::LEVEL, org).await?;
    Ok(list_json(&page_of(records, offset, limit)))
}

/// `POST /orgs`, `/roles`, `/teams`: a new record in the key's org, its
/// prompt generated. An org has one record, so a second is 409.
pub async fn create<K: Kind>(
    State(s): State<AppState>,
    caller: Authorized<Admin>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let obj = read_object(&headers, body, BODY_LIMIT).await?;
    check_body_org(caller.org(), &obj)?;
    let (name, focus) = parse_create(&obj)?;
    check_llm_quota(&s, &caller)?;
    let org = caller.org();
    let record = s.hierarchy.create(K::LEVEL, org, &name, &focus).await.map_err(|e| match e {
        HierarchyError::Exists if K::LEVEL == Level::Org => ApiError::conflict(
            "already_exists",
            format!("org '{org}' already has a record; change it with PATCH /orgs/{org}"),
        ),
        e => e.into(),
    })?;
    let (level, id, by) = (K::LEVEL.as_str(), &record.id, &caller.key.key_id);
    info!(org_id = org, level, id, by, "{level} record created");
    Ok(Json(record.to_json()))
}

/// `GET` one record.
pub async fn get<K: Kind>(State(s): State<AppState>, t: Target<K>) -> Result<Json<Value>, ApiError> {
    let record = s.hierarchy.get(K::LEVEL, &t.org, &t.id).await?.ok_or_else(|| t.not_found())?;
    Ok(Json(record.to_json()))
}

/// `PATCH`: see [`parse_patch`] and [`super::Hierarchy::update`].
pub async fn update<K: Kind>(
    State(s): State<AppState>,
    t: Target<K>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let obj = read_object(&headers, body, BODY_LIMIT).await?;
    let id_field = format!("{}_id", K::LEVEL.as_str());
    let mut identity = vec![("org_id", t.org.as_str())];
    if K::LEVEL != Level::Org {
        identity.push((&id_field, &t.id));
    }
    let patch = parse_patch(&obj, &identity)?;
    if patch.promotion_prompt.is_none() && (patch.name.is_some() || patch.focus.is_some()) {
        check_llm_quota(&s, &t.caller)?;
    }
    let record = s.hierarchy.update(K::LEVEL, &t.org, &t.id, &patch).await?.ok_or_else(|| t.not_found())?;
    t.log("updated", Some(&record));
    Ok(Json(record.to_json()))
}

/// `POST …/regenerate-prompt`: the prompt generated again, whoever wrote it.
pub async fn regenerate<K: Kind>(State(s): State<AppState>, t: Target<K>) -> Result<Json<Value>, ApiError> {
    check_llm_quota(&s, &t.caller)?;
    let record = s.hierarchy.regenerate(K::LEVEL, &t.org, &t.id).await?.ok_or_else(|| t.not_found())?;
    t.log("prompt regenerated", Some(&record));
    Ok(Json(record.to_json()))
}

/// `DELETE`: the record only; memories are untouched.
pub async fn delete<K: Kind>(State(s): State<AppState>, t: Target<K>) -> Result<StatusCode, ApiError> {
    if !s.hierarchy.delete(K::LEVEL, &t.org, &t.id).await? {
        return Err(t.not_found());
    }
    t.log("deleted", None);
    Ok(StatusCode::NO_CONTENT)
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
        // A prompt is prose: the line breaks of a generated one come back unchanged.
        let p = parse_patch(&obj(json!({"promotion_prompt": "Promote:\n- X\n\tY"})), &[]).unwrap();
        assert_eq!(p.promotion_prompt.as_deref(), Some("Promote:\n- X\n\tY"));
        let cases = [
            (json!({"promotion_prompt": "a\u{0}b"}), "promotion_prompt"),
            (json!({"name": "a\nb"}), "name"),
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
