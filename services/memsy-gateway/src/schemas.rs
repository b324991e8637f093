//! The request bodies and the responses that the OpenAPI document describes
//! and no handler builds as a type: bodies are read field by field (so that
//! a refusal names the exact field, see `fields.rs`) and these responses are
//! rendered by their handlers. Field names are the SDK's (memsy 0.3.5,
//! `models.py`); tests/e2e/test_openapi.py checks live answers against them,
//! so a handler and its schema cannot drift apart unnoticed.

// Described, never constructed: see above.
#![allow(dead_code)]

use std::collections::BTreeMap;

use memsy_core::model::EVENT_KINDS;
use memsy_store::UserStatus;
use memsy_usage::Dimension;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::auth::SCOPES;

/// A string that is one of `values`.
fn one_of_strings<'a>(values: impl IntoIterator<Item = &'a str>) -> Schema {
    let values: Vec<&str> = values.into_iter().collect();
    Schema::Object(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).build())
}

fn event_kind() -> Schema {
    one_of_strings(EVENT_KINDS)
}

fn scopes() -> Schema {
    Schema::Array(ArrayBuilder::new().items(RefOr::T(one_of_strings(SCOPES))).build())
}

fn dimension() -> Schema {
    one_of_strings(Dimension::ALL.iter().map(|d| d.as_str()))
}

fn user_status() -> Schema {
    one_of_strings(UserStatus::ALL.iter().map(|s| s.as_str()))
}

/// The event's metadata: the SDK sends a JSON string; an object is kept as
/// its serialisation.
fn metadata() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Object))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

// ---- errors -------------------------------------------------------------

/// Every refusal: `{"detail": {"error", "message", …}}` (error.rs).
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub detail: ErrorDetail,
}

/// What went wrong; some errors add fields (`field`, `event_index`,
/// `required_scope`, `component`, `retry_after`, `dimension`, …).
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `validation_error`, `invalid_api_key`,
    /// `insufficient_scope`, `not_found`, `rate_limited`,
    /// `usage_limit_exceeded`, `service_unavailable`, …
    pub error: String,
    pub message: String,
    /// The field a `validation_error` is about (`events[3].kind`).
    pub field: Option<String>,
    /// The event a `validation_error` of ingest is about.
    pub event_index: Option<u64>,
    /// The dependency a 503 names: `nats`, `redis`, `status`, `vector_store`, `embedder`, `llm`.
    pub component: Option<String>,
}

// ---- requests -----------------------------------------------------------

/// `POST /ingest`: nothing is stored unless every event is valid.
#[derive(Serialize, ToSchema)]
pub struct IngestRequest {
    /// At least one; at most `limits.max_events_per_ingest` (1000 by default).
    pub events: Vec<EventPayload>,
}

/// One event (the SDK's `EventPayload`). `org_id` may not be sent: the
/// org is the API key's.
#[derive(Serialize, ToSchema)]
pub struct EventPayload {
    pub actor_id: String,
    pub session_id: String,
    #[schema(schema_with = event_kind)]
    pub kind: String,
    /// Not blank; at most `limits.max_content_bytes`.
    pub content: String,
    pub role_id: Option<String>,
    pub team_id: Option<String>,
    /// ISO 8601; the time of ingest when absent.
    pub ts: Option<String>,
    #[schema(schema_with = metadata)]
    pub metadata: Option<Value>,
}

/// `POST /status`.
#[derive(Serialize, ToSchema)]
pub struct StatusRequest {
    /// At most `limits.max_status_ids`.
    pub event_ids: Vec<String>,
}

/// `POST /search`. Ids may only hold letters, digits and `_ - : . @ /`.
#[derive(Serialize, ToSchema)]
pub struct SearchRequest {
    pub query: String,
    /// 1 to `limits.max_search_limit`; 10 when absent.
    pub limit: Option<u32>,
    /// Minimum score, 0 to 1.
    pub threshold: Option<f64>,
    /// Put each result's source events under `metadata.source_events`.
    pub include_source_events: Option<bool>,
    pub actor_id: Option<String>,
    /// Only this conversation; cannot be combined with `exclude_session_id`.
    pub session_id: Option<String>,
    pub exclude_session_id: Option<String>,
    pub role_ids: Option<Vec<String>>,
    pub team_ids: Option<Vec<String>>,
}

/// `POST /orgs`, `/roles`, `/teams`.
#[derive(Serialize, ToSchema)]
pub struct HierarchyCreate {
    /// The API key's org, when sent.
    pub org_id: Option<String>,
    pub name: String,
    pub focus: String,
}

/// `PATCH /orgs/…`, `/roles/…`, `/teams/…`: every field optional. The
/// record's ids may be repeated but not changed.
#[derive(Serialize, ToSchema)]
pub struct HierarchyPatch {
    pub name: Option<String>,
    pub focus: Option<String>,
    /// Setting it makes the prompt the user's until `regenerate-prompt`.
    pub promotion_prompt: Option<String>,
    pub org_id: Option<String>,
    pub role_id: Option<String>,
    pub team_id: Option<String>,
}

/// `PATCH /memories/{memory_id}`: at least one of the two.
#[derive(Serialize, ToSchema)]
pub struct MemoryEditRequest {
    /// A pinned memory does not decay.
    pub pinned: Option<bool>,
    /// `archived` takes it out of search (it stays in the console).
    #[schema(schema_with = user_status)]
    pub status: Option<String>,
}

/// `POST /api/keys`.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyRequest {
    pub name: String,
    /// `read` and `write` when absent; `admin` includes both.
    #[schema(schema_with = scopes)]
    pub scopes: Option<Vec<String>>,
    /// ISO 8601, in the future.
    pub expires_at: Option<String>,
}

/// A body the deployment does not read (the route answers 403).
#[derive(Serialize, ToSchema)]
pub struct AnyObject {}

// ---- search -------------------------------------------------------------

/// `POST /search` (the SDK's `SearchResponse`).
#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    pub results: Vec<SearchResult>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    /// The memory's id.
    pub id: String,
    /// The memory's text.
    pub content: String,
    /// Cosine similarity, 0 to 1.
    pub score: f64,
    pub metadata: SearchMetadata,
}

#[derive(Serialize, ToSchema)]
pub struct SearchMetadata {
    pub title: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub entities: Vec<EntityRef>,
    pub session_id: Option<String>,
    pub actor_id: Option<String>,
    /// `actor`, `role`, `team` or `org`.
    pub scope_level: String,
    pub role_id: Option<String>,
    pub team_id: Option<String>,
    pub source_event_ids: Vec<String>,
    pub source_metadata: Vec<Value>,
    pub kind: String,
    pub memory_kind: String,
    #[serde(rename = "type")]
    pub memory_type: String,
    pub status: String,
    /// As of now: it decays between recalls.
    pub strength: f64,
    pub confidence: f64,
    pub observed_at: String,
    pub created_at: String,
    /// With `include_source_events` only.
    pub source_events: Option<Vec<SourceEvent>>,
}

#[derive(Serialize, ToSchema)]
pub struct SourceEvent {
    pub event_id: String,
    #[schema(schema_with = event_kind)]
    pub kind: String,
    pub content: String,
    pub ts: String,
}

#[derive(Serialize, ToSchema)]
pub struct EntityRef {
    pub name: String,
    #[serde(rename = "type")]
    pub entity_type: String,
}

// ---- console: memories --------------------------------------------------

/// One memory (the SDK's `MemoryItemResource`).
#[derive(Serialize, ToSchema)]
pub struct MemoryItemResource {
    pub memory_id: String,
    pub org_id: String,
    pub scope: MemoryScope,
    #[serde(rename = "type")]
    pub memory_type: String,
    pub kind: String,
    pub memory_kind: String,
    /// `active`, `superseded` or `archived`.
    pub status: String,
    pub text: String,
    pub confidence: f64,
    pub strength: f64,
    pub recall_count: u64,
    pub decay_half_life_days: f64,
    pub pinned: bool,
    pub tags: Vec<String>,
    pub entity_refs: Vec<EntityRef>,
    pub source_event_ids: Vec<String>,
    /// Always empty: memsy ingests events, not documents.
    pub source_urls: Vec<String>,
    pub summary: String,
    pub payload: MemoryPayload,
    pub last_recalled_at: Option<String>,
    pub effective_from: Option<String>,
    pub effective_to: Option<String>,
    pub observed_at: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct MemoryScope {
    pub level: String,
    pub actor_id: Option<String>,
    pub team_id: Option<String>,
    pub role_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemoryPayload {
    pub title: String,
    pub session_id: Option<String>,
    pub source_metadata: Vec<Value>,
}

/// A page of memories; `truncated` says the scan cap cut the org's memories short.
#[derive(Serialize, ToSchema)]
pub struct MemoryListResponse {
    pub items: Vec<MemoryItemResource>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub truncated: bool,
}

/// Aggregates over every memory of the org (the SDK's `MemoryStatsResponse`).
#[derive(Serialize, ToSchema)]
pub struct MemoryStatsResponse {
    pub total: u64,
    pub total_memories: u64,
    pub active_memories: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_kind: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    /// Memories by the day (`YYYY-MM-DD`, UTC) they were observed.
    pub by_day: BTreeMap<String, u64>,
    pub avg_confidence: f64,
    pub avg_strength: f64,
    /// The ten entities named by the most memories.
    pub top_entities: Vec<TopEntity>,
    pub confidence_buckets: Vec<ConfidenceBucket>,
    pub date_range: DateRange,
    pub truncated: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TopEntity {
    pub name: String,
    #[serde(rename = "type")]
    pub entity_type: String,
    pub count: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ConfidenceBucket {
    /// `0.0-0.2` … `0.8-1.0`.
    pub range: String,
    pub min: f64,
    pub max: f64,
    pub count: u64,
}

#[derive(Serialize, ToSchema)]
pub struct DateRange {
    pub earliest: Option<String>,
    pub latest: Option<String>,
}

/// `DELETE /memories/{memory_id}`.
#[derive(Serialize, ToSchema)]
pub struct MemoryDeleted {
    pub memory_id: String,
    pub deleted: bool,
}

// ---- console: actors and events -----------------------------------------

/// An actor, derived from the org's memories (the SDK's `ActorResource`).
#[derive(Serialize, ToSchema)]
pub struct ActorResource {
    pub actor_id: String,
    pub first_memory_at: Option<String>,
    pub last_memory_at: Option<String>,
    pub memory_count: u64,
    pub active_memory_count: u64,
    pub scope_levels: Vec<String>,
    pub role_ids: Vec<String>,
    pub team_ids: Vec<String>,
}

/// `GET /actors/{actor_id}`: an actor; `truncated` as in the lists.
#[derive(Serialize, ToSchema)]
pub struct ActorDetail {
    pub actor_id: String,
    pub first_memory_at: Option<String>,
    pub last_memory_at: Option<String>,
    pub memory_count: u64,
    pub active_memory_count: u64,
    pub scope_levels: Vec<String>,
    pub role_ids: Vec<String>,
    pub team_ids: Vec<String>,
    pub truncated: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ActorListResponse {
    pub items: Vec<ActorResource>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub truncated: bool,
}

/// One raw event, once indexed (the SDK's `EventItemResponse`).
#[derive(Serialize, ToSchema)]
pub struct EventItemResponse {
    pub event_id: String,
    pub org_id: String,
    pub actor_id: String,
    pub session_id: String,
    #[schema(schema_with = event_kind)]
    pub kind: String,
    pub content: String,
    pub ts: String,
    pub role_id: Option<String>,
    pub team_id: Option<String>,
    /// The event's metadata when it is a JSON object, else `{"raw": "<string>"}`.
    pub metadata: Option<BTreeMap<String, Value>>,
    pub ingested_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventListResponse {
    pub items: Vec<EventItemResponse>,
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    pub truncated: bool,
}

// ---- orgs, roles, teams -------------------------------------------------

/// The org's record (the SDK's `OrgResource`).
#[derive(Serialize, ToSchema)]
pub struct OrgResource {
    pub org_id: String,
    pub name: String,
    pub focus: String,
    pub promotion_prompt: String,
    pub created_at: String,
    pub updated_at: String,
    pub prompt_meta: crate::hierarchy::PromptMeta,
}

/// A role record (the SDK's `RoleResource`).
#[derive(Serialize, ToSchema)]
pub struct RoleResource {
    pub role_id: String,
    pub org_id: String,
    pub name: String,
    pub focus: String,
    pub promotion_prompt: String,
    pub created_at: String,
    pub updated_at: String,
    pub prompt_meta: crate::hierarchy::PromptMeta,
}

/// A team record (the SDK's `TeamResource`).
#[derive(Serialize, ToSchema)]
pub struct TeamResource {
    pub team_id: String,
    pub org_id: String,
    pub name: String,
    pub focus: String,
    pub promotion_prompt: String,
    pub created_at: String,
    pub updated_at: String,
    pub prompt_meta: crate::hierarchy::PromptMeta,
}

// ---- control plane ------------------------------------------------------

/// `GET /api/me`: the key and its org (the SDK's `MeResponse`).
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    /// The org.
    pub customer_id: String,
    /// Always empty: keys belong to an org, not to a person.
    pub email: String,
    /// The org's plan.
    pub tier: String,
    pub is_superadmin: bool,
    pub org_id: String,
    pub is_billing_admin: bool,
    /// The key's id.
    pub user_id: String,
    /// `admin` for a key with the admin scope, else `member`.
    pub org_role: String,
    pub key_id: String,
    pub key_name: String,
    #[schema(schema_with = scopes)]
    pub scopes: Vec<String>,
}

/// An API key, never the key itself (the SDK's `ApiKeyInfo`).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyInfo {
    pub key_id: String,
    /// The key's first characters.
    pub prefix: String,
    pub name: String,
    #[schema(schema_with = scopes)]
    pub scopes: Vec<String>,
    pub is_active: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyListResponse {
    pub keys: Vec<ApiKeyInfo>,
    pub max_keys: u64,
    pub active_count: u64,
}

/// A new key: `raw_key` is shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyResponse {
    pub key_id: String,
    pub raw_key: String,
    pub prefix: String,
    pub name: String,
    #[schema(schema_with = scopes)]
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// One count of one dimension on one day (or hour).
#[derive(Serialize, ToSchema)]
pub struct TimeseriesPoint {
    /// `YYYY-MM-DD`, or `YYYY-MM-DDTHH:00:00Z` for hourly series.
    pub date: String,
    #[schema(schema_with = dimension)]
    pub dimension: String,
    pub quantity: u64,
}

/// `GET /api/keys/{key_id}/usage`: the key's last `days` days.
#[derive(Serialize, ToSchema)]
pub struct KeyUsageResponse {
    pub key_id: String,
    pub days: u32,
    pub usage: Vec<TimeseriesPoint>,
}

#[derive(Serialize, ToSchema)]
pub struct DimensionUsage {
    #[schema(schema_with = dimension)]
    pub dimension: String,
    pub used: u64,
    /// None: unlimited.
    pub limit: Option<u64>,
    /// Always null on a self-hosted deployment.
    pub overage_rate: Option<f64>,
}

/// `GET /api/usage/summary`: this month's usage against the plan.
#[derive(Serialize, ToSchema)]
pub struct UsageSummaryResponse {
    pub org_id: String,
    pub tier: String,
    pub period_start: String,
    pub period_end: String,
    pub dimensions: Vec<DimensionUsage>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageTimeseriesResponse {
    pub org_id: String,
    /// `daily` or `hourly`.
    pub granularity: String,
    pub data: Vec<TimeseriesPoint>,
}
