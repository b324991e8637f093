//! The route table: every route of the gateway, one row each, with what the
//! OpenAPI document says of it. The router (`lib.rs`) and the document
//! (`openapi.rs`) are both built from this table, so no route is served
//! undocumented and adding a route is adding a row.

use std::borrow::Cow;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::erasure::ActorErasure;
use crate::health::{HealthResponse, ReadyResponse};
use crate::hierarchy::api::{self as hier, Orgs, Roles, Teams};
use crate::ingest::IngestResponse;
use crate::schemas::*;
use crate::status::StatusResponse;
use crate::{console, control, docs, health, ingest, search, status, AppState};

/// Where a route is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The core API (the SDK's `MemsyClient`): under `/v1` and at the root;
    /// authenticated and metered.
    Core,
    /// The control plane (`MemsyControlClient`): under `/api`; authenticated and metered.
    Control,
    /// Operators' and readers' routes at the root; no key needed.
    Open,
}

impl Api {
    /// The prefix the document gives the route's path.
    pub fn prefix(self) -> &'static str {
        match self {
            Api::Core => "/v1",
            Api::Control => "/api",
            Api::Open => "",
        }
    }
}

/// What a key needs to call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key.
    Open,
    /// Any valid key.
    AnyKey,
    /// A key with this scope (`admin` has every scope).
    Scope(&'static str),
}

/// A schema by its component name, and how to collect it and the schemas it refers to.
#[derive(Clone)]
pub struct SchemaRef {
    pub name: Cow<'static, str>,
    pub collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

pub fn schema<T: ToSchema>() -> SchemaRef {
    SchemaRef {
        name: T::name(),
        collect: |out| {
            out.push((T::name().into_owned(), T::schema()));
            T::schemas(out);
        },
    }
}

/// The body of a response.
#[derive(Clone)]
pub enum Content {
    Json(SchemaRef),
    /// A JSON array of the schema.
    JsonList(SchemaRef),
    /// Anything of this media type.
    Other(&'static str),
    Empty,
}

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub description: &'static str,
    pub content: Content,
}

/// A query parameter: name, JSON type (`string`, `integer`, `boolean`), description.
pub type QueryParam = (&'static str, &'static str, &'static str);

/// What the document says of a route.
#[derive(Clone)]
pub struct Doc {
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub access: Access,
    /// The JSON request body, and whether it is required.
    pub body: Option<(SchemaRef, bool)>,
    pub query: &'static [QueryParam],
    /// The answers of the route itself; the errors every route of its kind
    /// can give are added by `openapi.rs`.
    pub replies: Vec<Reply>,
    /// A catch-all route (`/billing/{*rest}`) is documented as these paths
    /// (the ones the SDK calls) instead of its own.
    pub covers: &'static [&'static str],
}

pub struct Route {
    pub api: Api,
    pub method: Method,
    /// Relative to its mount, as axum routes it.
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
    pub doc: Doc,
}

impl Route {
    fn new<H: Handler<T, AppState>, T: 'static>(api: Api, method: Method, path: &'static str, handler: H) -> Self {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        let access = if api == Api::Open { Access::Open } else { Access::AnyKey };
        let doc =
            Doc { tag: "", summary: "", description: "", access, body: None, query: &[], replies: vec![], covers: &[] };
        Self { api, method, path, handler: on(filter, handler), doc }
    }

    /// The paths the document lists for this route (with their API's prefix).
    pub fn documented_paths(&self) -> Vec<String> {
        let paths: Vec<&str> = if self.is_catch_all() { self.doc.covers.to_vec() } else { vec![self.path] };
        paths.into_iter().map(|p| format!("{}{p}", self.api.prefix())).collect()
    }

    pub fn is_catch_all(&self) -> bool {
        self.path.contains("{*")
    }

    fn doc(mut self, tag: &'static str, summary: &'static str, description: &'static str) -> Self {
        (self.doc.tag, self.doc.summary, self.doc.description) = (tag, summary, description);
        self
    }

    fn scope(mut self, scope: &'static str) -> Self {
        self.doc.access = Access::Scope(scope);
        self
    }

    fn body<T: ToSchema>(mut self) -> Self {
        self.doc.body = Some((schema::<T>(), true));
        self
    }

    fn optional_body<T: ToSchema>(mut self) -> Self {
        self.doc.body = Some((schema::<T>(), false));
        self
    }

    fn query(mut self, params: &'static [QueryParam]) -> Self {
        self.doc.query = params;
        self
    }

    fn reply(mut self, status: u16, description: &'static str, content: Content) -> Self {
        self.doc.replies.push(Reply { status, description, content });
        self
    }

    fn ok<T: ToSchema>(self) -> Self {
        self.reply(200, "OK", Content::Json(schema::<T>()))
    }

    fn ok_list<T: ToSchema>(self) -> Self {
        self.reply(200, "OK", Content::JsonList(schema::<T>()))
    }

    fn no_content(self) -> Self {
        self.reply(204, "Done; no body", Content::Empty)
    }

    fn error(self, status: u16, description: &'static str) -> Self {
        self.reply(status, description, Content::Json(schema::<ErrorResponse>()))
    }

    /// A route that is not part of a self-hosted deployment: always 403.
    fn refused(self, code: &'static str) -> Self {
        let description = match code {
            "billing_not_enabled" => "`billing_not_enabled`: a self-hosted deployment bills nobody",
            _ => "`feature_not_available`: connectors are not part of memsy; send events through POST /v1/ingest",
        };
        self.error(403, description)
    }

    fn covers(mut self, paths: &'static [&'static str]) -> Self {
        self.doc.covers = paths;
        self
    }
}

fn v1<H: Handler<T, AppState>, T: 'static>(method: Method, path: &'static str, handler: H) -> Route {
    Route::new(Api::Core, method, path, handler)
}

fn api<H: Handler<T, AppState>, T: 'static>(method: Method, path: &'static str, handler: H) -> Route {
    Route::new(Api::Control, method, path, handler)
}

fn open<H: Handler<T, AppState>, T: 'static>(method: Method, path: &'static str, handler: H) -> Route {
    Route::new(Api::Open, method, path, handler)
}

const PAGE: [QueryParam; 2] =
    [("limit", "integer", "Items per page"), ("offset", "integer", "Items to skip; 0 when absent")];
const HIERARCHY_ORG: QueryParam = ("org_id", "string", "The API key's org when absent; another org is 404");
const HIERARCHY_LIST: [QueryParam; 3] = [HIERARCHY_ORG, PAGE[0], PAGE[1]];
const CONSOLE_ORG: QueryParam = ("org_id", "string", "The API key's org when absent; another org is 403");
const MEMORY_LIST: [QueryParam; 8] = [
    ("status", "string", "`active` (default), `superseded`, `archived`, or `all`/`any`"),
    ("type", "string", "Only memories of this type (`fact`, `preference`, …)"),
    ("kind", "string", "Only memories of this kind (`semantic`, `episodic`, …)"),
    ("actor_id", "string", "Only this actor's memories"),
    ("search", "string", "Case-insensitive substring of text, title or summary"),
    (
        "sort",
        "string",
        "`observed_at_desc` (default), `observed_at_asc`, `strength_desc`, `confidence_desc`, `created_at_desc`",
    ),
    PAGE[0],
    PAGE[1],
];
const ACTOR_LIST: [QueryParam; 5] = [
    CONSOLE_ORG,
    ("q", "string", "Case-insensitive substring of the actor id"),
    ("sort", "string", "`first_memory_desc` (default), `first_memory_asc`, `last_memory_desc`, `actor_id_asc`"),
    PAGE[0],
    PAGE[1],
];
const EVENT_LIST: [QueryParam; 6] = [
    ("actor_id", "string", "Only this actor's events"),
    ("session_id", "string", "Only this conversation's events"),
    ("kind", "string", "Only events of this kind"),
    ("sort", "string", "`ts_desc` (default) or `ts_asc`"),
    PAGE[0],
    PAGE[1],
];
const TIMESERIES: [QueryParam; 4] = [
    ("granularity", "string", "`daily` (default) or `hourly`"),
    ("dimension", "string", "Only this dimension (`api_calls`, `events_ingested`, …)"),
    ("period_start", "string", "ISO 8601 date; the start of the month (daily) or day (hourly) of period_end"),
    ("period_end", "string", "ISO 8601 date; today when absent"),
];

/// Every route, grouped by API. Rows of one path with several methods are
/// merged by the router.
pub fn table() -> Vec<Route> {
    use Method as M;
    const PROMPT: &str = "The record's promotion prompt is generated from its name and focus (by the configured \
                          LLM, or the template).";
    vec![
        // ---- core API ----------------------------------------------------
        v1(M::GET, "/health", health::health)
            .doc(
                "health",
                "The server and its dependencies",
                "Any valid key may ask: it is the SDK's connectivity check.",
            )
            .ok::<HealthResponse>(),
        v1(M::POST, "/ingest", ingest::ingest)
            .doc(
                "events",
                "Ingest a batch of events",
                "Nothing is stored unless every event is valid. A 200 means every returned id is durable; \
                 sending the same batch again within the de-duplication window returns the same ids.",
            )
            .scope("write")
            .body::<IngestRequest>()
            .ok::<IngestResponse>(),
        v1(M::POST, "/status", status::status)
            .doc("events", "Where each event is", "Ids never seen, expired or of another org are `not_found`.")
            .scope("read")
            .body::<StatusRequest>()
            .ok::<StatusResponse>(),
        v1(M::POST, "/search", search::search)
            .doc("search", "Search the org's memories", "Hybrid (dense and BM25) search of the caller's org.")
            .scope("read")
            .body::<SearchRequest>()
            .ok::<SearchResponse>(),
        v1(M::GET, "/orgs", hier::list_orgs)
            .doc("orgs", "The key's org record", "A list of at most one record.")
            .scope("admin")
            .ok_list::<OrgResource>(),
        v1(M::POST, "/orgs", hier::create::<Orgs>)
            .doc("orgs", "Create the org's record", PROMPT)
            .scope("admin")
            .body::<HierarchyCreate>()
            .ok::<OrgResource>()
            .error(409, "`already_exists`: the org has a record"),
        v1(M::GET, "/orgs/{org_id}", hier::get::<Orgs>)
            .doc("orgs", "The org's record", "")
            .scope("admin")
            .ok::<OrgResource>(),
        v1(M::PATCH, "/orgs/{org_id}", hier::update::<Orgs>)
            .doc("orgs", "Change the org's record", PROMPT)
            .scope("admin")
            .body::<HierarchyPatch>()
            .ok::<OrgResource>(),
        v1(M::DELETE, "/orgs/{org_id}", hier::delete::<Orgs>)
            .doc("orgs", "Delete the org's record", "Memories are untouched.")
            .scope("admin")
            .no_content(),
        v1(M::POST, "/orgs/{org_id}/regenerate-prompt", hier::regenerate::<Orgs>)
            .doc("orgs", "Generate the org's prompt again", PROMPT)
            .scope("admin")
            .ok::<OrgResource>(),
        v1(M::GET, "/roles", hier::list::<Roles>)
            .doc("roles", "The org's role records", "Oldest first.")
            .scope("admin")
            .query(&HIERARCHY_LIST)
            .ok_list::<RoleResource>(),
        v1(M::POST, "/roles", hier::create::<Roles>)
            .doc("roles", "Create a role record", PROMPT)
            .scope("admin")
            .body::<HierarchyCreate>()
            .ok::<RoleResource>(),
        v1(M::GET, "/roles/{role_id}", hier::get::<Roles>)
            .doc("roles", "A role record", "")
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .ok::<RoleResource>(),
        v1(M::PATCH, "/roles/{role_id}", hier::update::<Roles>)
            .doc("roles", "Change a role record", PROMPT)
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .body::<HierarchyPatch>()
            .ok::<RoleResource>(),
        v1(M::DELETE, "/roles/{role_id}", hier::delete::<Roles>)
            .doc("roles", "Delete a role record", "Memories are untouched.")
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .no_content(),
        v1(M::POST, "/roles/{role_id}/regenerate-prompt", hier::regenerate::<Roles>)
            .doc("roles", "Generate a role's prompt again", PROMPT)
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .ok::<RoleResource>(),
        v1(M::GET, "/teams", hier::list::<Teams>)
            .doc("teams", "The org's team records", "Oldest first.")
            .scope("admin")
            .query(&HIERARCHY_LIST)
            .ok_list::<TeamResource>(),
        v1(M::POST, "/teams", hier::create::<Teams>)
            .doc("teams", "Create a team record", PROMPT)
            .scope("admin")
            .body::<HierarchyCreate>()
            .ok::<TeamResource>(),
        v1(M::GET, "/teams/{team_id}", hier::get::<Teams>)
            .doc("teams", "A team record", "")
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .ok::<TeamResource>(),
        v1(M::PATCH, "/teams/{team_id}", hier::update::<Teams>)
            .doc("teams", "Change a team record", PROMPT)
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .body::<HierarchyPatch>()
            .ok::<TeamResource>(),
        v1(M::DELETE, "/teams/{team_id}", hier::delete::<Teams>)
            .doc("teams", "Delete a team record", "Memories are untouched.")
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .no_content(),
        v1(M::POST, "/teams/{team_id}/regenerate-prompt", hier::regenerate::<Teams>)
            .doc("teams", "Generate a team's prompt again", PROMPT)
            .scope("admin")
            .query(&[HIERARCHY_ORG])
            .ok::<TeamResource>(),
        v1(M::GET, "/console/memories", console::list_memories)
            .doc("memories", "The org's memories, a page at a time", "")
            .scope("read")
            .query(&MEMORY_LIST)
            .ok::<MemoryListResponse>(),
        v1(M::GET, "/console/memories/stats", console::memory_stats)
            .doc("memories", "Aggregates over the org's memories", "")
            .scope("read")
            .ok::<MemoryStatsResponse>(),
        v1(M::GET, "/console/memories/{memory_id}", console::get_memory)
            .doc("memories", "One memory", "`memory_id` is a UUID.")
            .scope("read")
            .ok::<MemoryItemResource>(),
        v1(M::PATCH, "/memories/{memory_id}", console::patch_memory)
            .doc(
                "memories",
                "Pin, unpin, archive or restore a memory",
                "A pinned memory does not decay; an archived one leaves search and stays in the console. \
                 Later rewrites by the pipeline keep both.",
            )
            .scope("write")
            .body::<MemoryEditRequest>()
            .ok::<MemoryItemResource>(),
        v1(M::DELETE, "/memories/{memory_id}", console::delete_memory)
            .doc(
                "memories",
                "Delete a memory",
                "Gone from every view at once; later events never bring it back, though `memsy replay` of the event \
                 that made it does (archive it to keep it out for good).",
            )
            .scope("write")
            .ok::<MemoryDeleted>(),
        v1(M::GET, "/actors", console::list_actors)
            .doc("actors", "The org's actors, a page at a time", "Derived from the org's memories on every read.")
            .scope("read")
            .query(&ACTOR_LIST)
            .ok::<ActorListResponse>(),
        v1(M::GET, "/actors/{actor_id}", console::get_actor)
            .doc("actors", "One actor", "404 when the actor has no memories in the org.")
            .scope("read")
            .query(&[CONSOLE_ORG])
            .ok::<ActorDetail>(),
        v1(M::DELETE, "/actors/{actor_id}", console::erase_actor)
            .doc(
                "actors",
                "Erase an actor",
                "Removes every event, memory, status entry, de-duplication claim and stream message of the actor, \
                 and its part in promoted memories; an erasure marker keeps events still in flight from bringing \
                 anything back. 404 when the org holds nothing of the actor.",
            )
            .scope("admin")
            .query(&[CONSOLE_ORG])
            .ok::<ActorErasure>(),
        v1(M::GET, "/actors/{actor_id}/export", console::export_actor)
            .doc(
                "actors",
                "Export an actor",
                "JSON lines, streamed: the actor's raw events oldest first as `{\"kind\": \"event\", \"event\": …}`, \
                 then its memories as `{\"kind\": \"memory\", \"memory\": …}`. `X-Export-Truncated: true` when \
                 the export was capped. 404 when the org holds nothing of the actor.",
            )
            .scope("admin")
            .query(&[CONSOLE_ORG])
            .reply(
                200,
                "The actor's events and memories, one JSON object per line",
                Content::Other("application/x-ndjson"),
            ),
        // ---- control plane -----------------------------------------------
        api(M::GET, "/health", health::health)
            .doc("health", "The server and its dependencies", "The same as GET /v1/health.")
            .ok::<HealthResponse>(),
        api(M::GET, "/me", control::me).doc("control", "The calling key and its org", "").ok::<MeResponse>(),
        api(M::GET, "/keys", control::list_keys)
            .doc("keys", "The org's API keys", "Never the keys themselves.")
            .scope("admin")
            .ok::<ApiKeyListResponse>(),
        api(M::POST, "/keys", control::create_key)
            .doc("keys", "Create an API key", "The raw key is in this answer only.")
            .scope("admin")
            .body::<CreateKeyRequest>()
            .ok::<CreateKeyResponse>(),
        api(M::DELETE, "/keys/{key_id}", control::revoke_key)
            .doc("keys", "Revoke an API key", "Every gateway refuses it within milliseconds.")
            .scope("admin")
            .no_content(),
        api(M::GET, "/keys/{key_id}/usage", control::key_usage)
            .doc("keys", "An API key's usage by day", "The last 30 days.")
            .scope("admin")
            .ok::<KeyUsageResponse>(),
        api(M::GET, "/usage/summary", control::usage_summary)
            .doc("usage", "This month's usage against the plan", "")
            .scope("admin")
            .ok::<UsageSummaryResponse>(),
        api(M::GET, "/usage/timeseries", control::usage_timeseries)
            .doc("usage", "Usage over time", "")
            .scope("admin")
            .query(&TIMESERIES)
            .ok::<UsageTimeseriesResponse>(),
        api(M::GET, "/console/events", console::console_events)
            .doc("events", "The org's raw events, a page at a time", "Events appear once indexed.")
            .scope("read")
            .query(&EVENT_LIST)
            .ok::<EventListResponse>(),
        api(M::GET, "/console/events/{event_id}", console::get_event)
            .doc("events", "One raw event", "Another org's event answers 404, as an unknown one does.")
            .scope("read")
            .ok::<EventItemResponse>(),
        api(M::GET, "/billing/{*rest}", control::billing)
            .doc("not self-hosted", "Billing", "")
            .refused("billing_not_enabled")
            .covers(&["/billing/summary", "/billing/invoices"]),
        api(M::POST, "/billing/{*rest}", control::billing).refused("billing_not_enabled"),
        api(M::PUT, "/billing/{*rest}", control::billing).refused("billing_not_enabled"),
        api(M::GET, "/interest/{*rest}", control::billing)
            .doc("not self-hosted", "The Pro waiting list", "")
            .refused("billing_not_enabled")
            .covers(&["/interest/pro/status"]),
        api(M::POST, "/interest/{*rest}", control::billing)
            .doc("not self-hosted", "Join the Pro waiting list", "")
            .optional_body::<AnyObject>()
            .refused("billing_not_enabled")
            .covers(&["/interest/pro"]),
        api(M::GET, "/connectors", control::connectors)
            .doc("not self-hosted", "Connectors", "")
            .refused("feature_not_available"),
        api(M::GET, "/connectors/{*rest}", control::connectors)
            .doc("not self-hosted", "Connectors", "")
            .refused("feature_not_available")
            .covers(&[
                "/connectors/providers",
                "/connectors/{connector_id}",
                "/connectors/{provider}/status",
                "/connectors/{connector_id}/branches",
                "/connectors/{connector_id}/picker-token",
                "/connectors/{connector_id}/resources",
            ]),
        api(M::POST, "/connectors/{*rest}", control::connectors)
            .doc("not self-hosted", "Connectors", "")
            .optional_body::<AnyObject>()
            .refused("feature_not_available")
            .covers(&["/connectors/{provider}/connect", "/connectors/s3/configure", "/connectors/{connector_id}/sync"]),
        api(M::PUT, "/connectors/{*rest}", control::connectors)
            .doc("not self-hosted", "Connectors", "")
            .optional_body::<AnyObject>()
            .refused("feature_not_available")
            .covers(&["/connectors/{connector_id}/resources"]),
        api(M::DELETE, "/connectors/{*rest}", control::connectors)
            .doc("not self-hosted", "Connectors", "")
            .refused("feature_not_available")
            .covers(&["/connectors/{connector_id}"]),
        // ---- open ------------------------------------------------------------
        open(M::GET, "/livez", health::livez).doc("operations", "Liveness", "`ok` while the process serves.").reply(
            200,
            "Alive",
            Content::Other("text/plain"),
        ),
        open(M::GET, "/readyz", health::readyz)
            .doc("operations", "Readiness", "Ready when ingest's dependencies (NATS and Redis) are up.")
            .ok::<ReadyResponse>()
            .reply(503, "Not ready", Content::Json(schema::<ReadyResponse>())),
        open(M::GET, "/metrics", memsy_core::metrics::endpoint).doc("operations", "Prometheus metrics", "").reply(
            200,
            "The Prometheus text format",
            Content::Other("text/plain"),
        ),
        open(M::GET, "/openapi.json", docs::openapi_json).doc("operations", "This document", "").reply(
            200,
            "OpenAPI 3.1",
            Content::Other("application/json"),
        ),
        open(M::GET, "/docs", docs::page).doc("operations", "This document, browsable", "").reply(
            200,
            "An HTML page",
            Content::Other("text/html"),
        ),
        open(M::GET, "/docs/redoc.standalone.js", docs::redoc_js)
            .doc("operations", "The page's script (Redoc)", "")
            .reply(200, "JavaScript", Content::Other("text/javascript")),
    ]
}
